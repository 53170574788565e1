"""Certificate-based and keyless (Fulcio) checks of legacy cosign ``.sig`` and ``.att`` layers: pure functions over
bytes, trust material and a time -- what sigstore-python cannot do for the legacy OCI format.

A layer counts only when, in this order: its media type is right; the signature (over the simple-signing payload, or
over the DSSE PAE) verifies with the certificate's key; the payload is about *this* image digest; the Rekor entry
(unless ``rekor.ignoreTlog``) has a valid SET and is about this very signature and certificate; the certificate chains
to a trusted root at the signing time (the entry's integrated time); its embedded SCT verifies with a trusted CT log
key (unless ``ctlog.ignoreSCT``); its identity (SANs, OIDC issuer, Fulcio extensions) matches the policy; the required
annotations match. Each failure is reported in Kyverno's or cosign's words.

Signing time without a transparency log (``ignoreTlog: true``): cosign then checks the certificate against the RFC 3161
timestamp when the policy gives a TSA chain, else against the current time ("expected a signed timestamp to verify
an expired certificate" when it has expired). RFC 3161 timestamps are not implemented here, so ``ctlog.tsaCertChain``
is refused with a clear message and the current time (``now``) is used -- a 10-minute Fulcio certificate therefore
only verifies with the transparency log, as with cosign without a timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509

from sigward.errors import VerificationFailure, no_attestations_found, no_signatures_found
from sigward.policy.models import CertificateAttestor, CTLog, KeylessAttestor
from sigward.verify.cosign import (
    SignatureLayer,
    TlogOptions,
    VerifiedSignature,
    decode_signature,
)
from sigward.verify.dsse import (
    DSSE_MEDIA_TYPE,
    Statement,
    check_subject,
    parse_envelope,
    parse_statement,
    verify_envelope,
)
from sigward.verify.identity import (
    CertificateIdentity,
    IdentityPolicy,
    certificate_identity,
)
from sigward.verify.keys import PublicKeyVerifier, SupportedKey, spki_der
from sigward.verify.rekor import (
    RekorEntry,
    Signer,
    check_envelope_entry,
    check_signature_entry,
    tlog_options,
    verify_set,
)
from sigward.verify.simplesigning import SIMPLESIGNING_MEDIA_TYPE, annotations_match, check_payload, parse_payload
from sigward.verify.trust import LogKey, TrustedRoot, logs_from_pem_keys
from sigward.verify.x509chain import (
    MAX_CHAIN_CERTS,
    certificate_key,
    check_leaf,
    check_validity,
    der,
    load_certificate_pem,
    load_certificates_pem,
    rfc3339,
    verify_chain,
    verify_embedded_sct,
)

# A policy's `roots` may hold several Fulcio roots (and Kyverno puts every certificate of it in the root pool).
MAX_ROOT_CERTS = 64

# --- trust settings from the policy and the trusted root


def ct_logs(ctlog: CTLog | None, trusted_root: TrustedRoot) -> tuple[LogKey, ...] | None:
    """CT log keys the SCT must verify with; None when ``ignoreSCT``."""
    settings = ctlog if ctlog is not None else CTLog()
    if settings.tsa_cert_chain.strip():
        raise VerificationFailure(
            "ctlog.tsaCertChain: RFC 3161 signed timestamps are not supported; verify with the transparency log"
        )
    if settings.ignore_sct:
        return None
    if settings.pub_key.strip():
        return logs_from_pem_keys([settings.pub_key])
    return trusted_root.ctlogs


def fulcio_trust(
    roots_pem: str, trusted_root: TrustedRoot, *, when: datetime
) -> tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]]:
    """(roots, intermediates): the policy's ``roots`` (every certificate a trust anchor, as Kyverno's cert pool), else
    the trusted root's certificate authorities whose validity period contains ``when`` (the leaf's notBefore, as
    sigstore-go selects them): last certificate of each chain the root, the others intermediates."""
    if roots_pem.strip():
        return load_certificates_pem(roots_pem, what="keyless.roots", limit=MAX_ROOT_CERTS), ()
    roots: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = []
    for ca in trusted_root.certificate_authorities:
        if ca.valid_from is not None and when < ca.valid_from:
            continue
        if ca.valid_until is not None and when > ca.valid_until:
            continue
        roots.append(ca.certificates[-1])
        intermediates.extend(ca.certificates[:-1])
    if not roots:
        raise VerificationFailure(
            f"no Fulcio certificate authority in trusted root {trusted_root.source} was valid at {rfc3339(when)}"
        )
    return tuple(roots), tuple(intermediates)


# --- the layer checks


@dataclass(frozen=True)
class VerifiedCertificateSignature(VerifiedSignature):
    """A verified ``.sig`` layer signed with a certificate: the signing certificate, its verified path (leaf first;
    only the certificate itself when the policy pinned it without a chain) and its identity."""

    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()
    identity: CertificateIdentity | None = None


@dataclass(frozen=True)
class _Plan:
    """How one layer's certificate is judged, whatever the layer kind."""

    signing_cert: x509.Certificate  # its key verifies the signature
    layer_cert: x509.Certificate | None  # the certificate annotation, when present
    tlog: TlogOptions
    ct: tuple[LogKey, ...] | None
    path_at: Callable[[datetime], tuple[x509.Certificate, ...]]
    chained: bool  # a chain was verified (SCT applies); False when the policy pinned the certificate alone
    identity_check: Callable[[CertificateIdentity], None] | None = None


def _layer_certificate(layer: SignatureLayer) -> x509.Certificate:
    if not layer.certificate.strip():
        raise VerificationFailure("no certificate found on signature")
    return load_certificate_pem(layer.certificate, what="certificate annotation")


def _chain_annotation(layer: SignatureLayer) -> tuple[x509.Certificate, ...]:
    if not layer.chain.strip():
        return ()
    return load_certificates_pem(layer.chain, what="certificate chain annotation", limit=MAX_CHAIN_CERTS)


def _keyless_plan(layer: SignatureLayer, keyless: KeylessAttestor, trusted_root: TrustedRoot) -> _Plan:
    leaf = _layer_certificate(layer)
    ct = ct_logs(keyless.ctlog, trusted_root)
    tlog = tlog_options(keyless.rekor, trusted_root)
    annotation_chain = _chain_annotation(layer)

    def path_at(at: datetime) -> tuple[x509.Certificate, ...]:
        roots, intermediates = fulcio_trust(keyless.roots, trusted_root, when=leaf.not_valid_before_utc)
        return verify_chain(leaf, roots=roots, intermediates=(*annotation_chain, *intermediates), at=at)

    return _Plan(
        signing_cert=leaf,
        layer_cert=leaf,
        tlog=tlog,
        ct=ct,
        path_at=path_at,
        chained=True,
        identity_check=IdentityPolicy.from_attestor(keyless).check,
    )


def _certificate_plan(layer: SignatureLayer, certificates: CertificateAttestor, trusted_root: TrustedRoot) -> _Plan:
    """Kyverno's ``certificates`` attestor: ``cert`` alone is a pinned key (cosign loads a verifier from it, no chain
    or SCT); ``cert`` + ``certChain`` chains the pinned cert to the chain's last certificate; ``certChain`` alone is a
    root pool for the layer's own certificate."""
    if not certificates.cert.strip() and not certificates.cert_chain.strip():
        raise VerificationFailure("cert or certChain required")
    ct = ct_logs(certificates.ctlog, trusted_root)
    tlog = tlog_options(certificates.rekor, trusted_root)
    policy_chain = (
        load_certificates_pem(certificates.cert_chain, what="certificates.certChain")
        if certificates.cert_chain.strip()
        else ()
    )
    layer_cert = _layer_certificate(layer) if layer.certificate.strip() else None
    if certificates.cert.strip():
        pinned = load_certificate_pem(certificates.cert, what="certificates.cert")
        if layer_cert is not None and spki_der(certificate_key(layer_cert)) != spki_der(certificate_key(pinned)):
            raise VerificationFailure("both public key and certificate were provided but did not match")

        def pinned_path(at: datetime) -> tuple[x509.Certificate, ...]:
            if layer_cert is not None and der(layer_cert) != der(pinned):
                check_validity(layer_cert, at)
            if policy_chain:
                return verify_chain(pinned, roots=policy_chain[-1:], intermediates=policy_chain[:-1], at=at)
            check_validity(pinned, at)
            check_leaf(pinned, require_code_signing=False)
            return (pinned,)

        return _Plan(
            signing_cert=pinned,
            layer_cert=layer_cert,
            tlog=tlog,
            ct=ct,
            path_at=pinned_path,
            chained=bool(policy_chain),
        )
    if layer_cert is None:
        raise VerificationFailure("no certificate found on signature")
    leaf = layer_cert
    annotation_chain = _chain_annotation(layer)

    def pool_path(at: datetime) -> tuple[x509.Certificate, ...]:
        return verify_chain(leaf, roots=policy_chain, intermediates=annotation_chain, at=at)

    return _Plan(signing_cert=leaf, layer_cert=leaf, tlog=tlog, ct=ct, path_at=pool_path, chained=True)


def _signing_time(
    layer: SignatureLayer, plan: _Plan, check_entry: Callable[[RekorEntry], None], now: datetime | None, what: str
) -> tuple[datetime, int | None]:
    if not plan.tlog.required:
        return (now or datetime.now(UTC)), None
    if not layer.bundle:
        raise VerificationFailure(
            f"{what} has no Rekor bundle (set rekor.ignoreTlog: true to verify without the transparency log)"
        )
    entry = verify_set(layer.bundle, logs=plan.tlog.logs)
    check_entry(entry)
    return entry.integrated_at, entry.integrated_time


def _certificate_path(plan: _Plan, at: datetime, *, from_tlog: bool) -> tuple[x509.Certificate, ...]:
    if not from_tlog and plan.signing_cert.not_valid_after_utc < at:
        raise VerificationFailure(
            "expected a signed timestamp to verify an expired certificate: certificate expired before observed time: "
            f"{rfc3339(plan.signing_cert.not_valid_after_utc)} is before {rfc3339(at)} (without the transparency "
            "log the certificate must be valid now)"
        )
    path = plan.path_at(at)
    if plan.chained and plan.ct is not None:
        verify_embedded_sct(path, logs=plan.ct)
    return path


def _verifier(key: SupportedKey, signature_algorithm: str) -> PublicKeyVerifier:
    return PublicKeyVerifier(key=key, hash_name=signature_algorithm or "sha256", source="certificate")


def _verify_sig_layer(
    layer: SignatureLayer,
    plan: _Plan,
    *,
    image_digest: str,
    annotations: Mapping[str, str],
    signature_algorithm: str,
    now: datetime | None,
) -> VerifiedCertificateSignature:
    signature = decode_signature(layer)
    key = certificate_key(plan.signing_cert)
    _verifier(key, signature_algorithm).verify(signature, layer.payload)
    payload = parse_payload(layer.payload)
    check_payload(payload, image_digest=image_digest)

    def check_entry(entry: RekorEntry) -> None:
        signer = Signer(key=key, certificate=plan.layer_cert)
        check_signature_entry(entry.body, payload=layer.payload, signature=signature, signer=signer)

    at, integrated_time = _signing_time(layer, plan, check_entry, now, "signature")
    path = _certificate_path(plan, at, from_tlog=integrated_time is not None)
    identity: CertificateIdentity | None
    if plan.identity_check is not None:
        identity = certificate_identity(plan.signing_cert)
        plan.identity_check(identity)
    else:
        # Reported only (the certificates attestor matches no identity): a malformed private extension is no reason
        # to refuse a signature the policy accepts.
        try:
            identity = certificate_identity(plan.signing_cert)
        except VerificationFailure:
            identity = None
    if annotations and not annotations_match(payload, annotations):
        raise VerificationFailure("missing or incorrect annotation")
    return VerifiedCertificateSignature(
        layer=layer,
        payload=payload,
        integrated_time=integrated_time,
        certificate=plan.signing_cert,
        chain=path,
        identity=identity,
    )


def verify_layer_keyless(
    layer: SignatureLayer,
    *,
    image_digest: str,
    keyless: KeylessAttestor,
    annotations: Mapping[str, str],
    trusted_root: TrustedRoot,
    signature_algorithm: str = "sha256",
    now: datetime | None = None,
) -> VerifiedCertificateSignature:
    """A ``.sig`` layer signed with a Fulcio (or other CA) certificate, judged by a ``keyless`` attestor. ``now`` is
    the time the certificate must be valid at when ``rekor.ignoreTlog`` (default: the current time)."""
    _expect_media_type(layer, SIMPLESIGNING_MEDIA_TYPE, "a cosign simple signing payload")
    plan = _keyless_plan(layer, keyless, trusted_root)
    return _verify_sig_layer(
        layer,
        plan,
        image_digest=image_digest,
        annotations=annotations,
        signature_algorithm=signature_algorithm,
        now=now,
    )


def verify_layer_certificate(
    layer: SignatureLayer,
    *,
    image_digest: str,
    certificates: CertificateAttestor,
    annotations: Mapping[str, str],
    trusted_root: TrustedRoot,
    signature_algorithm: str = "sha256",
    now: datetime | None = None,
) -> VerifiedCertificateSignature:
    """A ``.sig`` layer judged by a ``certificates`` attestor (``cert`` and/or ``certChain``)."""
    _expect_media_type(layer, SIMPLESIGNING_MEDIA_TYPE, "a cosign simple signing payload")
    plan = _certificate_plan(layer, certificates, trusted_root)
    return _verify_sig_layer(
        layer,
        plan,
        image_digest=image_digest,
        annotations=annotations,
        signature_algorithm=signature_algorithm,
        now=now,
    )


def _expect_media_type(layer: SignatureLayer, media_type: str, description: str) -> None:
    if layer.media_type != media_type:
        raise VerificationFailure(f"layer media type {layer.media_type!r} is not {description}")


# --- attestations (.att DSSE layers)


def _verify_att_layer(
    layer: SignatureLayer, plan: _Plan, *, image_digest: str, signature_algorithm: str, now: datetime | None
) -> Statement:
    envelope = parse_envelope(layer.payload)
    key = certificate_key(plan.signing_cert)
    verify_envelope(envelope, _verifier(key, signature_algorithm))
    statement = parse_statement(envelope)
    check_subject(statement, image_digest=image_digest)

    def check_entry(entry: RekorEntry) -> None:
        signer = Signer(key=key, certificate=plan.layer_cert)
        check_envelope_entry(entry.body, envelope=envelope, raw_envelope=layer.payload, signer=signer)

    at, integrated_time = _signing_time(layer, plan, check_entry, now, "attestation")
    _certificate_path(plan, at, from_tlog=integrated_time is not None)
    if plan.identity_check is not None:
        plan.identity_check(certificate_identity(plan.signing_cert))
    return statement


def verify_attestation_keyless(
    layer: SignatureLayer,
    *,
    image_digest: str,
    keyless: KeylessAttestor,
    trusted_root: TrustedRoot,
    signature_algorithm: str = "sha256",
    now: datetime | None = None,
) -> Statement:
    """A cosign ``.att`` layer (DSSE envelope; certificate, chain and bundle annotations) under a ``keyless``
    attestor; the Rekor entry is ``intoto`` (or ``dsse``)."""
    _expect_media_type(layer, DSSE_MEDIA_TYPE, "a DSSE envelope")
    plan = _keyless_plan(layer, keyless, trusted_root)
    return _verify_att_layer(layer, plan, image_digest=image_digest, signature_algorithm=signature_algorithm, now=now)


def verify_attestation_certificate(
    layer: SignatureLayer,
    *,
    image_digest: str,
    certificates: CertificateAttestor,
    trusted_root: TrustedRoot,
    signature_algorithm: str = "sha256",
    now: datetime | None = None,
) -> Statement:
    """A cosign ``.att`` layer under a ``certificates`` attestor."""
    _expect_media_type(layer, DSSE_MEDIA_TYPE, "a DSSE envelope")
    plan = _certificate_plan(layer, certificates, trusted_root)
    return _verify_att_layer(layer, plan, image_digest=image_digest, signature_algorithm=signature_algorithm, now=now)


# --- plural forms: every layer that verifies, or cosign's "no matching ..." with each distinct reason

_T = TypeVar("_T")


def _collect(
    layers: Sequence[SignatureLayer],
    check: Callable[[SignatureLayer], _T],
    *,
    empty: Callable[[], VerificationFailure],
    prefix: str,
) -> tuple[_T, ...]:
    if not layers:
        raise empty()
    verified: list[_T] = []
    errors: list[str] = []
    for layer in layers:
        try:
            verified.append(check(layer))
        except VerificationFailure as exc:
            if exc.message not in errors:
                errors.append(exc.message)
    if not verified:
        raise VerificationFailure(prefix + "; ".join(errors))
    return tuple(verified)


def verify_signatures_keyless(
    layers: Sequence[SignatureLayer],
    *,
    image_digest: str,
    keyless: KeylessAttestor,
    annotations: Mapping[str, str],
    trusted_root: TrustedRoot,
    signature_algorithm: str = "sha256",
    now: datetime | None = None,
) -> tuple[VerifiedCertificateSignature, ...]:
    return _collect(
        layers,
        lambda layer: verify_layer_keyless(
            layer,
            image_digest=image_digest,
            keyless=keyless,
            annotations=annotations,
            trusted_root=trusted_root,
            signature_algorithm=signature_algorithm,
            now=now,
        ),
        empty=no_signatures_found,
        prefix="no matching signatures: ",
    )


def verify_signatures_certificate(
    layers: Sequence[SignatureLayer],
    *,
    image_digest: str,
    certificates: CertificateAttestor,
    annotations: Mapping[str, str],
    trusted_root: TrustedRoot,
    signature_algorithm: str = "sha256",
    now: datetime | None = None,
) -> tuple[VerifiedCertificateSignature, ...]:
    return _collect(
        layers,
        lambda layer: verify_layer_certificate(
            layer,
            image_digest=image_digest,
            certificates=certificates,
            annotations=annotations,
            trusted_root=trusted_root,
            signature_algorithm=signature_algorithm,
            now=now,
        ),
        empty=no_signatures_found,
        prefix="no matching signatures: ",
    )


def verify_attestations_keyless(
    layers: Sequence[SignatureLayer],
    *,
    image_digest: str,
    keyless: KeylessAttestor,
    trusted_root: TrustedRoot,
    signature_algorithm: str = "sha256",
    now: datetime | None = None,
) -> tuple[Statement, ...]:
    return _collect(
        layers,
        lambda layer: verify_attestation_keyless(
            layer,
            image_digest=image_digest,
            keyless=keyless,
            trusted_root=trusted_root,
            signature_algorithm=signature_algorithm,
            now=now,
        ),
        empty=no_attestations_found,
        prefix="no matching attestations: ",
    )


def verify_attestations_certificate(
    layers: Sequence[SignatureLayer],
    *,
    image_digest: str,
    certificates: CertificateAttestor,
    trusted_root: TrustedRoot,
    signature_algorithm: str = "sha256",
    now: datetime | None = None,
) -> tuple[Statement, ...]:
    return _collect(
        layers,
        lambda layer: verify_attestation_certificate(
            layer,
            image_digest=image_digest,
            certificates=certificates,
            trusted_root=trusted_root,
            signature_algorithm=signature_algorithm,
            now=now,
        ),
        empty=no_attestations_found,
        prefix="no matching attestations: ",
    )

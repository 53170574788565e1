"""Certificate-based and keyless (Fulcio) checks of legacy cosign ``.sig`` and ``.att`` layers: pure functions over
bytes, trust material and a time -- what sigstore-python cannot do for the legacy OCI format.

A layer counts only when, in this order: its media type is right; the signature (over the simple-signing payload, or
over the DSSE PAE) verifies with the certificate's key; the payload is about *this* image digest; the Rekor entry
(unless ``rekor.ignoreTlog``) has a valid SET and is about this very signature and certificate; the certificate chains
to a trusted root at the signing time (the entry's integrated time); its embedded SCT verifies with a trusted CT log
key (unless ``ctlog.ignoreSCT``); its identity (SANs, OIDC issuer, Fulcio extensions) matches the policy; the required
annotations match. Each failure is reported in Kyverno's or cosign's words.

The certificate rules (signing times, chain, SCT, identity) are :mod:`sigward.verify.certificates`, shared with
Sigstore bundles; RFC 3161 timestamps (the ``dev.sigstore.cosign/rfc3161timestamp`` annotation, checked against
``ctlog.tsaCertChain`` or the trusted root's timestamp authorities) are :mod:`sigward.verify.timestamps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Required, TypedDict, Unpack

from cryptography import x509

from sigward.errors import VerificationFailure, no_attestations_found, no_signatures_found
from sigward.policy.models import CertificateAttestor, KeylessAttestor
from sigward.verify.certificates import (
    CertificateTrust,
    SigningTimes,
    certificate_trust,
    check_certificate,
    signing_certificate,
    signing_times,
)
from sigward.verify.cosign import (
    SignatureLayer,
    VerifiedSignature,
    collect_verified,
    decode_signature,
    layer_timestamps,
)
from sigward.verify.dsse import (
    DSSE_MEDIA_TYPE,
    Statement,
    check_subject,
    parse_envelope,
    parse_statement,
    verify_envelope,
)
from sigward.verify.identity import CertificateIdentity
from sigward.verify.keys import PublicKeyVerifier, SupportedKey
from sigward.verify.rekor import (
    RekorEntry,
    Signer,
    check_envelope_entry,
    check_signature_entry,
    verify_set,
)
from sigward.verify.simplesigning import SIMPLESIGNING_MEDIA_TYPE, annotations_match, check_payload, parse_payload
from sigward.verify.timestamps import verify_timestamps
from sigward.verify.trust import TrustedRoot
from sigward.verify.x509chain import (
    MAX_CHAIN_CERTS,
    certificate_key,
    load_certificate_pem,
    load_certificates_pem,
)

# --- the layer checks


@dataclass(frozen=True)
class VerifiedCertificateSignature(VerifiedSignature):
    """A verified ``.sig`` layer signed with a certificate: the signing certificate, its verified path (leaf first;
    only the certificate itself when the policy pinned it without a chain) and its identity."""

    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()
    identity: CertificateIdentity | None = None


def _layer_certificate(layer: SignatureLayer) -> x509.Certificate | None:
    if not layer.certificate.strip():
        return None
    return load_certificate_pem(layer.certificate, what="certificate annotation")


def _chain_annotation(layer: SignatureLayer) -> tuple[x509.Certificate, ...]:
    if not layer.chain.strip():
        return ()
    return load_certificates_pem(layer.chain, what="certificate chain annotation", limit=MAX_CHAIN_CERTS)


def _signing_times(
    layer: SignatureLayer,
    trust: CertificateTrust,
    check_entry: Callable[[RekorEntry], None],
    timestamped: bytes,
    now: datetime | None,
    what: str,
) -> tuple[SigningTimes, int | None]:
    """The layer's time evidence: its Rekor bundle (SET) when the log is required, and its RFC 3161 timestamp
    (cosign timestamps the raw signature of a ``.sig`` layer, the whole envelope of an ``.att`` layer)."""
    integrated: int | None = None
    tlog_times: list[datetime] = []
    if trust.tlog.required:
        if not layer.bundle:
            raise VerificationFailure(
                f"{what} has no Rekor bundle (set rekor.ignoreTlog: true to verify without the transparency log)"
            )
        entry = verify_set(layer.bundle, logs=trust.tlog.logs)
        check_entry(entry)
        integrated = entry.integrated_time
        tlog_times.append(entry.integrated_at)
    stamps = verify_timestamps(layer_timestamps(layer), signature=timestamped, authorities=trust.tsa)
    return signing_times(trust, tlog_times=tlog_times, timestamps=stamps, now=now), integrated


def _verifier(key: SupportedKey, signature_algorithm: str) -> PublicKeyVerifier:
    return PublicKeyVerifier(key=key, hash_name=signature_algorithm or "sha256", source="certificate")


def _verify_sig_layer(
    layer: SignatureLayer,
    trust: CertificateTrust,
    *,
    image_digest: str,
    annotations: Mapping[str, str],
    signature_algorithm: str,
    now: datetime | None,
) -> VerifiedCertificateSignature:
    carried = _layer_certificate(layer)
    signing = signing_certificate(trust, carried)
    signature = decode_signature(layer)
    key = certificate_key(signing)
    _verifier(key, signature_algorithm).verify(signature, layer.payload)
    payload = parse_payload(layer.payload)
    check_payload(payload, image_digest=image_digest)

    def check_entry(entry: RekorEntry) -> None:
        signer = Signer(key=key, certificate=carried)
        check_signature_entry(entry.body, payload=layer.payload, signature=signature, signer=signer)

    times, integrated_time = _signing_times(layer, trust, check_entry, signature, now, "signature")
    checked = check_certificate(trust, carried=carried, carried_chain=_chain_annotation(layer), times=times)
    if annotations and not annotations_match(payload, annotations):
        raise VerificationFailure("missing or incorrect annotation")
    return VerifiedCertificateSignature(
        layer=layer,
        payload=payload,
        integrated_time=integrated_time,
        certificate=checked.certificate,
        chain=checked.path,
        identity=checked.identity,
    )


CertificateBased = KeylessAttestor | CertificateAttestor


class LayerOptions(TypedDict, total=False):
    """What every certificate-based layer check takes besides the layer and the attestor entry."""

    image_digest: Required[str]
    trusted_root: Required[TrustedRoot]
    signature_algorithm: str  # default sha256
    now: datetime | None  # the time the certificate must be valid at under rekor.ignoreTlog (default: now)


class SignatureOptions(LayerOptions, total=False):
    annotations: Mapping[str, str]


def verify_layer_by_certificate(
    layer: SignatureLayer, *, attestor: CertificateBased, **options: Unpack[SignatureOptions]
) -> VerifiedCertificateSignature:
    """A ``.sig`` layer signed with a Fulcio (or other CA) certificate, judged by a ``keyless`` or
    ``certificates`` attestor entry (its trust object built once: :func:`certificate_trust`)."""
    _expect_media_type(layer, SIMPLESIGNING_MEDIA_TYPE, "a cosign simple signing payload")
    return _verify_sig_layer(
        layer,
        certificate_trust(attestor, options["trusted_root"]),
        image_digest=options["image_digest"],
        annotations=options.get("annotations", {}),
        signature_algorithm=options.get("signature_algorithm", "") or "sha256",
        now=options.get("now"),
    )


def verify_layer_keyless(
    layer: SignatureLayer, *, keyless: KeylessAttestor, **options: Unpack[SignatureOptions]
) -> VerifiedCertificateSignature:
    return verify_layer_by_certificate(layer, attestor=keyless, **options)


def verify_layer_certificate(
    layer: SignatureLayer, *, certificates: CertificateAttestor, **options: Unpack[SignatureOptions]
) -> VerifiedCertificateSignature:
    return verify_layer_by_certificate(layer, attestor=certificates, **options)


def _expect_media_type(layer: SignatureLayer, media_type: str, description: str) -> None:
    if layer.media_type != media_type:
        raise VerificationFailure(f"layer media type {layer.media_type!r} is not {description}")


# --- attestations (.att DSSE layers)


def _verify_att_layer(
    layer: SignatureLayer, trust: CertificateTrust, *, image_digest: str, signature_algorithm: str, now: datetime | None
) -> Statement:
    carried = _layer_certificate(layer)
    signing = signing_certificate(trust, carried)
    envelope = parse_envelope(layer.payload)
    key = certificate_key(signing)
    verify_envelope(envelope, _verifier(key, signature_algorithm))
    statement = parse_statement(envelope)
    check_subject(statement, image_digest=image_digest)

    def check_entry(entry: RekorEntry) -> None:
        signer = Signer(key=key, certificate=carried)
        check_envelope_entry(entry.body, envelope=envelope, raw_envelope=layer.payload, signer=signer)

    times, _ = _signing_times(layer, trust, check_entry, layer.payload, now, "attestation")
    check_certificate(trust, carried=carried, carried_chain=_chain_annotation(layer), times=times)
    return statement


def verify_attestation_by_certificate(
    layer: SignatureLayer, *, attestor: CertificateBased, **options: Unpack[LayerOptions]
) -> Statement:
    """A cosign ``.att`` layer (DSSE envelope; certificate, chain and bundle annotations) under a ``keyless`` or
    ``certificates`` attestor entry; the Rekor entry is ``intoto`` (or ``dsse``)."""
    _expect_media_type(layer, DSSE_MEDIA_TYPE, "a DSSE envelope")
    return _verify_att_layer(
        layer,
        certificate_trust(attestor, options["trusted_root"]),
        image_digest=options["image_digest"],
        signature_algorithm=options.get("signature_algorithm", "") or "sha256",
        now=options.get("now"),
    )


def verify_attestation_keyless(
    layer: SignatureLayer, *, keyless: KeylessAttestor, **options: Unpack[LayerOptions]
) -> Statement:
    return verify_attestation_by_certificate(layer, attestor=keyless, **options)


def verify_attestation_certificate(
    layer: SignatureLayer, *, certificates: CertificateAttestor, **options: Unpack[LayerOptions]
) -> Statement:
    return verify_attestation_by_certificate(layer, attestor=certificates, **options)


# --- plural forms: every layer that verifies, or cosign's "no matching ..." with each distinct reason


def verify_signatures_by_certificate(
    layers: Sequence[SignatureLayer], *, attestor: CertificateBased, **options: Unpack[SignatureOptions]
) -> tuple[VerifiedCertificateSignature, ...]:
    return collect_verified(
        layers,
        lambda layer: verify_layer_by_certificate(layer, attestor=attestor, **options),
        empty=no_signatures_found,
        prefix="no matching signatures: ",
    )


def verify_attestations_by_certificate(
    layers: Sequence[SignatureLayer], *, attestor: CertificateBased, **options: Unpack[LayerOptions]
) -> tuple[Statement, ...]:
    return collect_verified(
        layers,
        lambda layer: verify_attestation_by_certificate(layer, attestor=attestor, **options),
        empty=no_attestations_found,
        prefix="no matching attestations: ",
    )


def verify_signatures_keyless(
    layers: Sequence[SignatureLayer], *, keyless: KeylessAttestor, **options: Unpack[SignatureOptions]
) -> tuple[VerifiedCertificateSignature, ...]:
    return verify_signatures_by_certificate(layers, attestor=keyless, **options)


def verify_signatures_certificate(
    layers: Sequence[SignatureLayer], *, certificates: CertificateAttestor, **options: Unpack[SignatureOptions]
) -> tuple[VerifiedCertificateSignature, ...]:
    return verify_signatures_by_certificate(layers, attestor=certificates, **options)


def verify_attestations_keyless(
    layers: Sequence[SignatureLayer], *, keyless: KeylessAttestor, **options: Unpack[LayerOptions]
) -> tuple[Statement, ...]:
    return verify_attestations_by_certificate(layers, attestor=keyless, **options)


def verify_attestations_certificate(
    layers: Sequence[SignatureLayer], *, certificates: CertificateAttestor, **options: Unpack[LayerOptions]
) -> tuple[Statement, ...]:
    return verify_attestations_by_certificate(layers, attestor=certificates, **options)

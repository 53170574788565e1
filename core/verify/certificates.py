"""The signing-certificate checks of a ``keyless`` or ``certificates`` attestor, one implementation for every format
(legacy ``.sig``/``.att`` layers and Sigstore bundles): which certificate's key signs, its chain to the trusted
anchors at each verified signing time, its embedded SCT, its identity.

:class:`CertificateTrust` is one attestor entry read once (policy ``roots``/``cert``/``certChain``, ``rekor``,
``ctlog``, identity policy, plus the trusted root). Formats parse their artifact into (carried certificate, carried
chain, signature bytes, log entries, timestamps), establish the signing times with :func:`signing_times`, then call
:func:`check_certificate`.

Rules (the same for both formats):

* **Signing time.** A verified transparency-log integrated time and/or verified RFC 3161 times; the certificate must
  chain (and the leaf be valid) at *each* of them. The log is required unless ``rekor.ignoreTlog`` or the trusted root
  (and the policy) list no transparency log at all (GitHub's instance). Without any verified time, only
  ``rekor.ignoreTlog`` falls back to the current time, as cosign does ("expected a signed timestamp to verify an
  expired certificate"); otherwise the artifact is refused.
* **Chain.** ``keyless.roots`` (every certificate an anchor, as Kyverno's pool), else the trusted root's certificate
  authorities whose ``validFor`` covers the leaf's notBefore and the signing time; ``certificates.certChain`` alone is
  an anchor pool for the carried certificate; ``cert`` + ``certChain`` chains the pinned certificate to the chain's last
  certificate; ``cert`` alone is a pinned key (no chain, no SCT). The path validator is
  :func:`sigward.verify.x509chain.verify_chain` (its docstring says why not ``cryptography.x509.verification``).
* **SCT.** Required for a chained certificate unless ``ctlog.ignoreSCT``; checked with ``ctlog.pubkey`` or the trusted
  root's CT logs; not demanded when neither lists a CT log (GitHub's instance issues no SCTs).
* **Identity.** :class:`sigward.verify.identity.IdentityPolicy` for ``keyless`` (``certificates`` match no identity).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from sigward.errors import FailureKind, VerificationFailure
from sigward.policy.models import CertificateAttestor, CTLog, KeylessAttestor, Rekor
from sigward.verify.cosign import TlogOptions
from sigward.verify.identity import CertificateIdentity, IdentityPolicy, certificate_identity
from sigward.verify.keys import spki_der
from sigward.verify.rekor import tlog_options
from sigward.verify.timestamps import TimestampCheck, valid_during
from sigward.verify.trust import CertificateAuthority, LogKey, TrustedRoot, logs_from_pem_keys
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


# --- the attestor entry, read once


@dataclass(frozen=True)
class CertificateTrust:
    """Everything a certificate-signed artifact is judged by under one attestor entry."""

    trusted_root: TrustedRoot
    tlog: TlogOptions  # required=False: no log demanded (ignoreTlog, or no log is trusted at all)
    ignore_tlog: bool  # the policy said rekor.ignoreTlog (the only case where "now" may stand in for a signing time)
    ct: tuple[LogKey, ...] | None  # None: no SCT demanded
    tsa: tuple[CertificateAuthority, ...]  # timestamp authorities (ctlog.tsaCertChain, else the trusted root's)
    anchors: tuple[x509.Certificate, ...] = ()  # policy trust anchors; empty (keyless): the trusted root's CAs
    policy_intermediates: tuple[x509.Certificate, ...] = ()
    pinned: x509.Certificate | None = None  # certificates.cert
    identity: IdentityPolicy | None = None  # keyless only
    keyless: bool = True


def ct_logs(ctlog: CTLog | None, trusted_root: TrustedRoot) -> tuple[LogKey, ...] | None:
    """CT log keys the SCT must verify with; None when no SCT is demanded (``ignoreSCT``, or no CT log trusted)."""
    settings = ctlog if ctlog is not None else CTLog()
    if settings.ignore_sct:
        return None
    if settings.pub_key.strip():
        return logs_from_pem_keys([settings.pub_key])
    return trusted_root.ctlogs or None


def policy_tsa_chain(ctlog: CTLog | None) -> tuple[CertificateAuthority, ...]:
    """``ctlog.tsaCertChain`` as one authority (TSA leaf first, root last; valid at all times, as Kyverno passes it
    to cosign); none when unset. Key-signed layers use only this (Kyverno gives cosign no trusted root for keys)."""
    chain = ctlog.tsa_cert_chain if ctlog is not None else ""
    if chain.strip():
        return (CertificateAuthority(certificates=load_certificates_pem(chain, what="ctlog.tsaCertChain")),)
    return ()


def tsa_authorities(ctlog: CTLog | None, trusted_root: TrustedRoot) -> tuple[CertificateAuthority, ...]:
    """``ctlog.tsaCertChain`` (:func:`policy_tsa_chain`), else the trusted root's timestamp authorities."""
    return policy_tsa_chain(ctlog) or trusted_root.timestamp_authorities


def _tlog(rekor: Rekor | None, trusted_root: TrustedRoot) -> tuple[TlogOptions, bool]:
    options = tlog_options(rekor, trusted_root)
    if options.required and not options.logs:
        # Nothing to verify a log entry with (a TSA-only root such as GitHub's): time comes from timestamps.
        options = TlogOptions(required=False)
    return options, bool(rekor is not None and rekor.ignore_tlog)


def keyless_trust(keyless: KeylessAttestor, trusted_root: TrustedRoot) -> CertificateTrust:
    tlog, ignore = _tlog(keyless.rekor, trusted_root)
    anchors = (
        load_certificates_pem(keyless.roots, what="keyless.roots", limit=MAX_ROOT_CERTS)
        if keyless.roots.strip()
        else ()
    )
    return CertificateTrust(
        trusted_root=trusted_root,
        tlog=tlog,
        ignore_tlog=ignore,
        ct=ct_logs(keyless.ctlog, trusted_root),
        tsa=tsa_authorities(keyless.ctlog, trusted_root),
        anchors=anchors,
        identity=IdentityPolicy.from_attestor(keyless),
        keyless=True,
    )


def certificates_trust(certificates: CertificateAttestor, trusted_root: TrustedRoot) -> CertificateTrust:
    if not certificates.cert.strip() and not certificates.cert_chain.strip():
        raise VerificationFailure("cert or certChain required")
    tlog, ignore = _tlog(certificates.rekor, trusted_root)
    chain = (
        load_certificates_pem(certificates.cert_chain, what="certificates.certChain")
        if certificates.cert_chain.strip()
        else ()
    )
    pinned = load_certificate_pem(certificates.cert, what="certificates.cert") if certificates.cert.strip() else None
    return CertificateTrust(
        trusted_root=trusted_root,
        tlog=tlog,
        ignore_tlog=ignore,
        ct=ct_logs(certificates.ctlog, trusted_root),
        tsa=tsa_authorities(certificates.ctlog, trusted_root),
        # cert + certChain: the chain's last certificate anchors the pinned one; certChain alone: a pool of anchors.
        anchors=(chain[-1:] if pinned is not None else chain),
        policy_intermediates=(chain[:-1] if pinned is not None else ()),
        pinned=pinned,
        keyless=False,
    )


# One trust object per (attestor entry, trusted root): parsing PEM roots/chains and compiling identity patterns once,
# not for every layer and bundle. Bounded: a policy set has tens of entries, a process sees a few roots at a time;
# 512 holds every pair of a large policy set across a root rotation, each entry a few KiB of parsed certificates.
MAX_CACHED_TRUSTS = 512

_trust_cache: OrderedDict[tuple[int, str], tuple[KeylessAttestor | CertificateAttestor, CertificateTrust]] = (
    OrderedDict()
)
_trust_lock = threading.Lock()


def certificate_trust(attestor: KeylessAttestor | CertificateAttestor, trusted_root: TrustedRoot) -> CertificateTrust:
    """The trust object of one ``keyless``/``certificates`` attestor entry under ``trusted_root``, built once per
    (entry, root fingerprint) and shared by both formats. Entries are policy models (frozen), keyed by identity: the
    cache holds the entry itself, so its id cannot be reused by another entry while cached. A bad entry (malformed
    PEM) raises every time; only built trust objects are kept."""
    key = (id(attestor), trusted_root.fingerprint)
    with _trust_lock:
        found = _trust_cache.get(key)
        if found is not None and found[0] is attestor:
            _trust_cache.move_to_end(key)
            return found[1]
    if isinstance(attestor, KeylessAttestor):
        trust = keyless_trust(attestor, trusted_root)
    else:
        trust = certificates_trust(attestor, trusted_root)
    with _trust_lock:
        _trust_cache[key] = (attestor, trust)
        _trust_cache.move_to_end(key)
        while len(_trust_cache) > MAX_CACHED_TRUSTS:
            _trust_cache.popitem(last=False)
    return trust


# --- time


@dataclass(frozen=True)
class SigningTimes:
    """When the signature was made, by verified evidence (``evidenced``), or the current time under ignoreTlog."""

    times: tuple[datetime, ...]
    evidenced: bool


def signing_times(
    trust: CertificateTrust,
    *,
    tlog_times: Sequence[datetime],
    timestamps: TimestampCheck,
    now: datetime | None = None,
) -> SigningTimes:
    """The times the certificate is checked at: every verified log time and RFC 3161 time; else, only under
    ``rekor.ignoreTlog``, the current time; else a refusal (no evidence of when the short-lived key signed)."""
    times = tuple(sorted([*tlog_times, *timestamps.times]))
    if times:
        return SigningTimes(times=times, evidenced=True)
    if trust.ignore_tlog:
        return SigningTimes(times=(now or datetime.now(UTC),), evidenced=False)
    reasons = "".join(f"; {p}" for p in timestamps.problems)
    raise VerificationFailure(
        "no verified signing time: no verified transparency log entry and no verified RFC 3161 timestamp" + reasons
    )


# --- the certificate


def signing_certificate(trust: CertificateTrust, carried: x509.Certificate | None) -> x509.Certificate:
    """The certificate whose key verifies the signature: the pinned ``cert`` (its key must be the carried one's), else
    the certificate the artifact carries."""
    if trust.pinned is not None:
        if carried is not None and spki_der(certificate_key(carried)) != spki_der(certificate_key(trust.pinned)):
            raise VerificationFailure("both public key and certificate were provided but did not match")
        return trust.pinned
    if carried is None:
        raise VerificationFailure("no certificate found on signature")
    return carried


def fulcio_trust(
    trusted_root: TrustedRoot, *, leaf: x509.Certificate, at: datetime
) -> tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]]:
    """(roots, intermediates) of the trusted root's certificate authorities that were trusted both when the leaf was
    issued and at the signing time ``at``: last certificate of each chain the root, the others intermediates."""
    roots: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = []
    for ca in trusted_root.certificate_authorities:
        if valid_during(ca, leaf.not_valid_before_utc) and valid_during(ca, at):
            roots.append(ca.certificates[-1])
            intermediates.extend(ca.certificates[:-1])
    if not roots:
        raise VerificationFailure(
            f"no Fulcio certificate authority in trusted root {trusted_root.source} was valid at "
            f"{rfc3339(leaf.not_valid_before_utc)} and {rfc3339(at)}"
        )
    return tuple(roots), tuple(intermediates)


def _path_at(
    trust: CertificateTrust,
    signing: x509.Certificate,
    carried: x509.Certificate | None,
    carried_chain: Sequence[x509.Certificate],
    at: datetime,
) -> tuple[x509.Certificate, ...]:
    if trust.pinned is not None:
        if carried is not None and der(carried) != der(trust.pinned):
            check_validity(carried, at)
        if trust.anchors:
            return verify_chain(signing, roots=trust.anchors, intermediates=trust.policy_intermediates, at=at)
        check_validity(signing, at)
        check_leaf(signing, require_code_signing=False)
        return (signing,)
    if trust.anchors:
        return verify_chain(signing, roots=trust.anchors, intermediates=tuple(carried_chain), at=at)
    roots, intermediates = fulcio_trust(trust.trusted_root, leaf=signing, at=at)
    return verify_chain(signing, roots=roots, intermediates=(*carried_chain, *intermediates), at=at)


@dataclass(frozen=True)
class CheckedCertificate:
    """A signing certificate that passed: its path (leaf first; the certificate alone when pinned without a chain)
    and its identity (None for a ``certificates`` attestor when the certificate has malformed Fulcio extensions)."""

    certificate: x509.Certificate
    path: tuple[x509.Certificate, ...]
    identity: CertificateIdentity | None


def check_certificate(
    trust: CertificateTrust,
    *,
    carried: x509.Certificate | None,
    carried_chain: Sequence[x509.Certificate] = (),
    times: SigningTimes,
) -> CheckedCertificate:
    """Chain at every signing time, SCT, identity. The signature itself is the format's business (it knows the
    bytes); it must be checked with ``signing_certificate(trust, carried)``'s key."""
    if len(carried_chain) > MAX_CHAIN_CERTS:
        raise VerificationFailure(
            f"certificate chain too long ({len(carried_chain)}), maximum allowed is {MAX_CHAIN_CERTS}"
        )
    signing = signing_certificate(trust, carried)
    if not times.evidenced and signing.not_valid_after_utc < times.times[0]:
        raise VerificationFailure(
            "expected a signed timestamp to verify an expired certificate: certificate expired before observed time: "
            f"{rfc3339(signing.not_valid_after_utc)} is before {rfc3339(times.times[0])} (without the transparency "
            "log or a timestamp the certificate must be valid now)",
            kind=FailureKind.SIGNED_TIMESTAMPS,
        )
    path: tuple[x509.Certificate, ...] = ()
    for at in times.times:
        path = _path_at(trust, signing, carried, carried_chain, at)
    chained = trust.pinned is None or bool(trust.anchors)
    if chained and trust.ct is not None:
        verify_embedded_sct(path, logs=trust.ct)
    identity: CertificateIdentity | None
    if trust.identity is not None:
        identity = certificate_identity(signing)
        trust.identity.check(identity)
    else:
        # Reported only (the certificates attestor matches no identity): a malformed private extension is no reason
        # to refuse a signature the policy accepts.
        try:
            identity = certificate_identity(signing)
        except VerificationFailure:
            identity = None
    return CheckedCertificate(certificate=signing, path=path, identity=identity)


__all__ = [
    "MAX_CACHED_TRUSTS",
    "MAX_ROOT_CERTS",
    "CertificateTrust",
    "CheckedCertificate",
    "SigningTimes",
    "certificate_trust",
    "certificates_trust",
    "check_certificate",
    "ct_logs",
    "fulcio_trust",
    "keyless_trust",
    "policy_tsa_chain",
    "signing_certificate",
    "signing_times",
    "tsa_authorities",
]

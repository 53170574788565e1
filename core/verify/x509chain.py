"""X.509 for cosign certificate signatures: loading PEM, building and checking a chain to trusted roots at a given
time, and the embedded Signed Certificate Timestamps (RFC 6962) a Fulcio certificate carries.

A path builder of our own rather than ``cryptography.x509.verification``: that verifier is a WebPKI (TLS) profile and
refuses what cosign accepts -- Ed25519 keys and signatures are forbidden, CA certificates must carry keyUsage (the
real PKI vector's root has none), the client verifier wants the clientAuth EKU -- and its errors ("candidates
exhausted: ...") do not say which certificate failed. The checks here follow Go's ``crypto/x509`` ``Verify`` as cosign
calls it (``KeyUsages: [CodeSigning]``), plus explicit CA checks:

* every certificate in the path is valid at the given time (the Rekor integrated time, an RFC 3161 time, or now --
  never "now" for a short-lived Fulcio certificate that has a transparency-log entry);
* each certificate's signature verifies with its issuer's key (ECDSA P-256/384/521, RSA >= 2048 PKCS#1 v1.5 or PSS,
  Ed25519); SHA-1/MD5 signatures are refused;
* issuing certificates have basicConstraints CA:TRUE (a version-1 trust anchor, which cannot carry extensions, is
  accepted as Go does), a keyUsage that allows keyCertSign when present, and their pathLenConstraint holds;
* extendedKeyUsage, wherever present in the path, allows codeSigning (or anyExtendedKeyUsage): a leaf without EKU is
  accepted, as Go accepts it (the PKI vector's leaf has none);
* no unhandled critical extension (name constraints are not evaluated, so a critical nameConstraints is refused);
* at most 10 intermediates between leaf and root, and a bounded number of signature checks, so a hostile chain
  annotation cannot make path building expensive.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.certificate_transparency import LogEntryType, SignedCertificateTimestamp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from sigward.errors import FailureKind, VerificationFailure
from sigward.verify.keys import KeyLoadError, PublicKeyVerifier, SupportedKey, check_key, spki_der
from sigward.verify.trust import LogKey

# Kyverno caps a policy's certChain at 11 certificates (10 intermediates + root, CVE-2026-32280); the same cap
# applies to the layer's chain annotation and bounds the path: leaf + at most 10 intermediates + root.
MAX_CHAIN_CERTS = 11
MAX_INTERMEDIATES = 10
# Signature checks one path search may spend (several candidate issuers with the same name are possible).
MAX_SIGNATURE_CHECKS = 64
# PEM bundles of a dozen certificates are ~20 KiB; anything far larger is not a chain.
MAX_PEM_BYTES = 256 * 1024

SCT_LIST_OID = ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS  # 1.3.6.1.4.1.11129.2.4.2
# A CA certificate with this EKU is a "precertificate signing certificate": the SCT then binds to *its* issuer.
PRECERT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.4")
_INSECURE_HASHES = ("sha1", "md5")
# Extensions whose semantics are checked here or that carry no constraint; any other critical one is refused.
_HANDLED_EXTENSIONS = frozenset(
    {
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
        SCT_LIST_OID,
    }
)


# --- loading


def _pem_bytes(text: str | bytes, what: str) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_PEM_BYTES:
        raise VerificationFailure(f"{what}: larger than {MAX_PEM_BYTES} bytes")
    if b"-----BEGIN" not in raw:
        # Kyverno accepts a base64-wrapped PEM for `cert` (loadCert tries base64 first).
        try:
            raw = base64.b64decode(b"".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            raise VerificationFailure(f"{what}: no PEM certificate found") from None
    return raw


def load_certificates_pem(
    text: str | bytes, *, what: str, limit: int = MAX_CHAIN_CERTS
) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle (refused when it holds more than ``limit``, as Kyverno refuses a longer
    certChain: "certificate chain too long (N), maximum allowed is 11")."""
    raw = _pem_bytes(text, what)
    count = raw.count(b"-----BEGIN CERTIFICATE-----")
    if count > limit:
        raise VerificationFailure(f"{what}: certificate chain too long ({count}), maximum allowed is {limit}")
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except (ValueError, x509.InvalidVersion) as exc:
        raise VerificationFailure(f"{what}: cannot parse PEM certificates: {exc}") from None
    if len(certs) > limit:
        raise VerificationFailure(f"{what}: certificate chain too long ({len(certs)}), maximum allowed is {limit}")
    return tuple(certs)


def load_certificate_pem(text: str | bytes, *, what: str) -> x509.Certificate:
    """The first certificate of a PEM text (cosign's certificate annotation, Kyverno's ``cert``)."""
    return load_certificates_pem(text, what=what, limit=MAX_CHAIN_CERTS)[0]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def certificate_key(cert: x509.Certificate) -> SupportedKey:
    """The certificate's public key, refused when it is of a kind cosign does not sign with."""
    try:
        return check_key(cert.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise VerificationFailure(f"invalid certificate found on signature: {exc}") from None
    except KeyLoadError as exc:
        raise VerificationFailure(f"invalid certificate found on signature: {exc.message}") from None


def describe(cert: x509.Certificate) -> str:
    subject = cert.subject.rfc4514_string()
    return f'"{subject}"' if subject else f"serial {cert.serial_number:x}"


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- validity and per-certificate checks


def check_validity(cert: x509.Certificate, at: datetime, *, role: str = "certificate") -> None:
    """``cert`` must be valid at ``at``; cosign's ``CheckExpiry`` wording."""
    if cert.not_valid_after_utc < at:
        raise VerificationFailure(
            f"{role} expired before observed time: {rfc3339(cert.not_valid_after_utc)} is before {rfc3339(at)}"
        )
    if cert.not_valid_before_utc > at:
        raise VerificationFailure(
            f"{role} was issued after observed time: {rfc3339(cert.not_valid_before_utc)} is after {rfc3339(at)}"
        )


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def _extensions(cert: x509.Certificate, role: str) -> x509.Extensions:
    try:
        return cert.extensions
    except ValueError as exc:  # duplicate or malformed extensions
        raise VerificationFailure(f"{role} {describe(cert)} has malformed extensions: {exc}") from None


def _check_critical(cert: x509.Certificate, role: str) -> None:
    for ext in _extensions(cert, role):
        if ext.critical and ext.oid not in _HANDLED_EXTENSIONS:
            name = "nameConstraints" if ext.oid == ExtensionOID.NAME_CONSTRAINTS else ext.oid.dotted_string
            raise VerificationFailure(f"{role} {describe(cert)} has an unhandled critical extension {name}")


def _check_code_signing(cert: x509.Certificate, role: str) -> None:
    ext = _extension(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if ext is None:
        return
    usages = ext.value
    assert isinstance(usages, x509.ExtendedKeyUsage)
    if ExtendedKeyUsageOID.CODE_SIGNING in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return
    raise VerificationFailure(
        f"{role} {describe(cert)} has an extendedKeyUsage without codeSigning (incompatible key usage)"
    )


def _check_signature_hash(cert: x509.Certificate) -> None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        oid = cert.signature_algorithm_oid.dotted_string
        raise VerificationFailure(
            f"certificate {describe(cert)} uses an unsupported signature algorithm {oid}"
        ) from None
    if algorithm is not None and algorithm.name in _INSECURE_HASHES:
        raise VerificationFailure(
            f"certificate {describe(cert)} is signed with the insecure algorithm {algorithm.name.upper()}"
        )


def check_leaf(cert: x509.Certificate, *, require_code_signing: bool = True) -> SupportedKey:
    """The end-entity checks: a usable signing key, digitalSignature when keyUsage is present, codeSigning when EKU is
    present, no unhandled critical extension. Returns the key."""
    key = certificate_key(cert)
    _check_critical(cert, "certificate")
    ku = _extension(cert, ExtensionOID.KEY_USAGE)
    if ku is not None:
        assert isinstance(ku.value, x509.KeyUsage)
        if not ku.value.digital_signature:
            raise VerificationFailure(f"certificate {describe(cert)} keyUsage does not allow digitalSignature")
    if require_code_signing:
        _check_code_signing(cert, "certificate")
    return key


def _ca_problem(
    cert: x509.Certificate, *, at: datetime, cas_below: int, anchor: bool, require_code_signing: bool
) -> str | None:
    """Why ``cert`` cannot issue here, or None."""
    role = "trusted root" if anchor else "intermediate CA"
    try:
        check_validity(cert, at, role="issuing CA certificate")
        certificate_key(cert)
        _check_critical(cert, role)
        if require_code_signing:
            _check_code_signing(cert, role)
    except VerificationFailure as exc:
        return exc.message
    bc = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if bc is None:
        if not (anchor and cert.version == x509.Version.v1):
            return f"{role} {describe(cert)} has no basicConstraints: not a CA"
    else:
        assert isinstance(bc.value, x509.BasicConstraints)
        if not bc.value.ca:
            return f"{role} {describe(cert)} is not a CA (basicConstraints CA:FALSE)"
        if bc.value.path_length is not None and cas_below > bc.value.path_length:
            return f"{role} {describe(cert)} path length constraint {bc.value.path_length} exceeded"
    ku = _extension(cert, ExtensionOID.KEY_USAGE)
    if ku is not None:
        assert isinstance(ku.value, x509.KeyUsage)
        if not ku.value.key_cert_sign:
            return f"{role} {describe(cert)} keyUsage does not allow certificate signing"
    return None


# --- path building


def _key_id_rank(child: x509.Certificate, candidate: x509.Certificate) -> int:
    """Go's preference: matching key identifiers first, then unknown, then mismatching (still tried)."""
    aki = _extension(child, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    ski = _extension(candidate, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if aki is None or ski is None:
        return 1
    assert isinstance(aki.value, x509.AuthorityKeyIdentifier)
    assert isinstance(ski.value, x509.SubjectKeyIdentifier)
    if aki.value.key_identifier is None:
        return 1
    return 0 if aki.value.key_identifier == ski.value.digest else 2


@dataclass
class _Search:
    pool: tuple[x509.Certificate, ...]
    anchors: frozenset[bytes]
    at: datetime
    require_code_signing: bool
    checks: int = 0
    problem: str = ""
    problem_depth: int = -1

    def note(self, depth: int, message: str) -> None:
        # Report the failure found deepest in the path: the most specific reason.
        if depth >= self.problem_depth:
            self.problem, self.problem_depth = message, depth

    def extend(self, path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        current = path[-1]
        in_path = {der(c) for c in path}
        candidates = [c for c in self.pool if c.subject == current.issuer and der(c) not in in_path]
        depth = len(path)
        if not candidates and current.issuer == current.subject and len(path) > 1:
            self.note(depth - 1, f"certificate signed by unknown authority: {describe(current)} is not a trusted root")
            return None
        if not candidates:
            self.note(
                depth - 1,
                f"certificate signed by unknown authority: no trusted or intermediate certificate named "
                f'"{current.issuer.rfc4514_string()}" (issuer of {describe(current)})',
            )
            return None
        try:
            _check_signature_hash(current)
        except VerificationFailure as exc:
            self.note(depth, exc.message)
            return None
        candidates.sort(key=lambda c: _key_id_rank(current, c))
        for candidate in candidates:
            if self.checks >= MAX_SIGNATURE_CHECKS:
                self.note(depth, "certificate chain building gave up: too many candidate issuers")
                return None
            self.checks += 1
            try:
                current.verify_directly_issued_by(candidate)
            except InvalidSignature:
                self.note(
                    depth, f"signature of {describe(current)} does not verify with the key of {describe(candidate)}"
                )
                continue
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                self.note(depth, f"cannot verify {describe(current)} with the key of {describe(candidate)}: {exc}")
                continue
            anchor = der(candidate) in self.anchors
            problem = _ca_problem(
                candidate,
                at=self.at,
                cas_below=len(path) - 1,
                anchor=anchor,
                require_code_signing=self.require_code_signing,
            )
            if problem is not None:
                self.note(depth, problem)
                continue
            if anchor:
                return [*path, candidate]
            if len(path) - 1 >= MAX_INTERMEDIATES:
                self.note(depth, f"certificate chain longer than {MAX_INTERMEDIATES} intermediates")
                continue
            found = self.extend([*path, candidate])
            if found is not None:
                return found
        return None


def _unique(certs: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    seen: set[bytes] = set()
    out = []
    for cert in certs:
        key = der(cert)
        if key not in seen:
            seen.add(key)
            out.append(cert)
    return tuple(out)


def verify_chain(
    leaf: x509.Certificate,
    *,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    at: datetime,
    require_code_signing: bool = True,
) -> tuple[x509.Certificate, ...]:
    """The path ``leaf, intermediates..., root`` valid at ``at``; :class:`VerificationFailure` naming the reason
    otherwise. ``intermediates`` are untrusted candidates (chain annotation, policy chain, trusted-root CA chains);
    only ``roots`` are trust anchors."""
    if not roots:
        raise VerificationFailure("no trusted root certificates to verify the certificate chain against")
    if len(intermediates) > 4 * MAX_CHAIN_CERTS:
        raise VerificationFailure(f"too many intermediate certificates ({len(intermediates)})")
    check_validity(leaf, at)
    check_leaf(leaf, require_code_signing=require_code_signing)
    anchors = frozenset(der(r) for r in roots)
    if der(leaf) in anchors:
        return (leaf,)
    search = _Search(
        pool=_unique([*roots, *intermediates]), anchors=anchors, at=at, require_code_signing=require_code_signing
    )
    path = search.extend([leaf])
    if path is None:
        raise VerificationFailure(f"certificate chain verification failed: {search.problem}")
    return tuple(path)


# --- Signed Certificate Timestamps (RFC 6962 section 3.2)


def _precert_issuer(path: Sequence[x509.Certificate]) -> x509.Certificate:
    issuer = path[1]
    eku = _extension(issuer, ExtensionOID.EXTENDED_KEY_USAGE)
    if (
        eku is not None
        and isinstance(eku.value, x509.ExtendedKeyUsage)
        and len(path) > 2
        and PRECERT_SIGNING_EKU in list(eku.value)
    ):
        return path[2]
    return issuer


def _u24(length: int) -> bytes:
    if length >= 1 << 24:
        raise VerificationFailure("certificate too large for an SCT")
    return struct.pack("!I", length)[1:]


def sct_signed_data(sct: SignedCertificateTimestamp, leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The ``digitally-signed`` input of a precertificate SCT: version, signature_type certificate_timestamp(0),
    timestamp (ms), entry_type precert_entry(1), sha256(issuer SPKI), the TBSCertificate without the SCT list
    extension (u24 length), extensions (u16 length)."""
    stamp = sct.timestamp.replace(tzinfo=UTC) if sct.timestamp.tzinfo is None else sct.timestamp
    millis = (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    issuer_key_hash = hashlib.sha256(spki_der(certificate_key(issuer))).digest()
    tbs = leaf.tbs_precertificate_bytes
    ext = sct.extension_bytes
    return (
        struct.pack("!BBQH", sct.version.value, 0, millis, 1)
        + issuer_key_hash
        + _u24(len(tbs))
        + tbs
        + struct.pack("!H", len(ext))
        + ext
    )


def embedded_scts(cert: x509.Certificate) -> tuple[SignedCertificateTimestamp, ...]:
    ext = _extension(cert, SCT_LIST_OID)
    if ext is None:
        return ()
    value = ext.value
    if not isinstance(value, x509.PrecertificateSignedCertificateTimestamps):
        raise VerificationFailure("certificate SCT list extension is malformed")
    return tuple(value)


def verify_embedded_sct(path: Sequence[x509.Certificate], *, logs: Sequence[LogKey]) -> datetime:
    """At least one embedded SCT of ``path[0]`` verifies with a trusted CT log key valid at the SCT's time, and no SCT
    of a trusted log fails (SCTs of logs we do not know are skipped). Returns the verified SCT's timestamp."""
    leaf = path[0]
    scts = embedded_scts(leaf)
    if not scts:
        raise VerificationFailure(
            "certificate does not include required embedded SCT and no detached SCT was set",
            kind=FailureKind.SCT_ENTRIES,
        )
    if len(path) < 2:
        raise VerificationFailure("certificate chain must contain at least a certificate and its issuer")
    if not logs:
        raise VerificationFailure("none of the CTFE keys have been found")
    issuer = _precert_issuer(path)
    by_id = {log.log_id.lower(): log for log in logs}
    verified: datetime | None = None
    for sct in scts:
        log = by_id.get(sct.log_id.hex())
        if log is None:
            continue
        if sct.entry_type != LogEntryType.PRE_CERTIFICATE:
            raise VerificationFailure("error verifying embedded SCT: not a precertificate SCT")
        if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
            raise VerificationFailure("error verifying embedded SCT: only SHA-256 SCT signatures are supported")
        stamp = sct.timestamp.replace(tzinfo=UTC) if sct.timestamp.tzinfo is None else sct.timestamp
        try:
            PublicKeyVerifier(key=log.key, source="CT log").verify(sct.signature, sct_signed_data(sct, leaf, issuer))
        except VerificationFailure as exc:
            raise VerificationFailure(f"error verifying embedded SCT: {exc.message}") from None
        if not log.valid_at(stamp):
            raise VerificationFailure("error verifying embedded SCT: CT log key was not valid at the SCT's time")
        verified = stamp
    if verified is None:
        ids = ", ".join(sct.log_id.hex() for sct in scts)
        raise VerificationFailure(f"ctfe public key not found for embedded SCT (log ID {ids})")
    return verified

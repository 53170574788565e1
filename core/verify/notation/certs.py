"""The Notary Project's certificate requirements (signature-specification.md "Certificate Requirements") on the
envelope's chain, and its validity rule. The cryptographic path (each certificate signed by the next, CA
constraints, path length, no SHA-1) is the shared :func:`sigward.verify.x509chain.verify_chain`; this module adds
only what Notation asks beyond it, so a future move of the chain check keeps one call site.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from sigward.errors import VerificationFailure
from sigward.verify.x509chain import der, verify_chain

# EKUs a Notation signing certificate must not carry (a TLS or e-mail certificate must not sign code).
FORBIDDEN_LEAF_EKUS = {
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "Any",
    ExtendedKeyUsageOID.SERVER_AUTH: "ServerAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "ClientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "EmailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "TimeStamping",
}
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


def subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def go_time(when: datetime) -> str:
    """Go's ``time.RFC1123Z`` as notation-go prints certificate times: ``Tue, 27 Jun 2023 06:10:00 +0000``."""
    return when.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _fail(cert: x509.Certificate, problem: str) -> VerificationFailure:
    return VerificationFailure(f'certificate with subject "{subject(cert)}": {problem}')


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        raise _fail(cert, "malformed extensions") from None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage:
    ext = _ext(cert, ExtensionOID.KEY_USAGE)
    if ext is None:
        raise _fail(cert, "key usage extension must be present")
    if not ext.critical:
        raise _fail(cert, "key usage extension must be marked critical")
    assert isinstance(ext.value, x509.KeyUsage)
    return ext.value


def _check_key_size(cert: x509.Certificate) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise _fail(cert, f"rsa key size {key.key_size} bits is not supported")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise _fail(cert, f"ecdsa key size {key.curve.key_size} bits is not supported")
    else:
        raise _fail(cert, f"key type {type(key).__name__} is not supported")


def check_leaf(cert: x509.Certificate) -> None:
    _check_key_size(cert)
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if bc is not None:
        assert isinstance(bc.value, x509.BasicConstraints)
        if bc.value.ca:
            raise _fail(cert, "if the basic constraints extension is present, the ca field must be set to false")
    ku = _key_usage(cert)
    if not ku.digital_signature:
        raise _fail(cert, "key usage must have the bit positions for digital signature set")
    if ku.key_cert_sign or ku.crl_sign:
        raise _fail(cert, "key usage must not have the bit positions for key cert sign or crl sign set")
    eku = _ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if eku is not None:
        assert isinstance(eku.value, x509.ExtendedKeyUsage)
        for oid, name in FORBIDDEN_LEAF_EKUS.items():
            if oid in eku.value:
                raise _fail(cert, f"extended key usage must not contain {name} eku")


def check_ca(cert: x509.Certificate, expected_path_len: int) -> None:
    _check_key_size(cert)
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if bc is None or not bc.critical or not isinstance(bc.value, x509.BasicConstraints) or not bc.value.ca:
        raise _fail(cert, "ca field in basic constraints must be present, critical, and set to true")
    if bc.value.path_length is not None and bc.value.path_length < expected_path_len:
        raise _fail(
            cert,
            f"expected path length of {expected_path_len} but certificate has path length "
            f"{bc.value.path_length} instead",
        )
    if not _key_usage(cert).key_cert_sign:
        raise _fail(cert, "key usage must have the bit positions for key cert sign set")


def check_validity(chain: Sequence[x509.Certificate], at: datetime) -> None:
    """Every certificate valid at ``at`` (notation-go's authenticTimestamp wording)."""
    for cert in chain:
        if at > cert.not_valid_after_utc:
            raise VerificationFailure(
                f'verification time is after certificate "{subject(cert)}" validity period, it was expired at '
                f'"{go_time(cert.not_valid_after_utc)}"'
            )
        if at < cert.not_valid_before_utc:
            raise VerificationFailure(
                f'verification time is before certificate "{subject(cert)}" validity period, it will be valid '
                f'from "{go_time(cert.not_valid_before_utc)}"'
            )


def check_authentic_chain(chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate]) -> None:
    """Authenticity: the envelope chain meets the certificate requirements, is ordered leaf → self-signed root, and
    holds at least one certificate of the trust store. Validity is the authenticTimestamp step's (timestamp.py)."""
    leaf = chain[0]
    check_leaf(leaf)
    for i, cert in enumerate(chain[1:]):
        check_ca(cert, i)
    trusted_der = {der(c) for c in trusted}
    if not any(der(c) in trusted_der for c in chain):
        raise VerificationFailure("the signature's certificate chain does not contain any trusted certificate")
    root = chain[-1]
    if root.issuer != root.subject:
        raise VerificationFailure(f'certificate chain must end with a root certificate, "{subject(root)}" is not')


def check_chain_path(chain: Sequence[x509.Certificate], at: datetime) -> None:
    """The shared path check (signatures, CA constraints, no SHA-1) at the authentic time ``at``."""
    try:
        verify_chain(chain[0], roots=(chain[-1],), intermediates=tuple(chain[1:-1]), at=at, require_code_signing=False)
    except VerificationFailure as exc:
        raise VerificationFailure(f"invalid certificate chain: {exc.message}") from None

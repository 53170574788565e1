"""notation-go's authenticTimestamp check: the time at which a Notation signature's certificate chain must be valid.

``notary.x509``: without a ``tsa`` trust store the chain must be valid now. With one, the RFC 3161 countersignature
(unprotected ``io.cncf.notary.timestampSignature``, a bare TimeStampToken whose ``messageImprint`` is the hash of the
raw signature bytes) is verified against the TSA roots by the one RFC 3161 check
(:func:`sigward.verify.timestamps.verify_timestamp`), and every certificate must be valid over ``genTime ± accuracy``;
the chain is then judged at ``genTime``. ``verifyTimestamp: always`` demands a token whenever a ``tsa`` store is set;
``afterCertExpiry`` only once some certificate of the chain has expired (before that the chain must be valid now).
``notary.x509.signingAuthority``: the signed ``authenticSigningTime`` (no TSA), every certificate valid at it.

Messages are notation-go's (verifier.go ``verifyTimestamp`` / ``verifyAuthenticTimestamp``), prefixed as sigward
reports every authenticTimestamp failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from cryptography import x509

from sigward.errors import VerificationFailure
from sigward.verify.notation.certs import check_validity, go_time, subject
from sigward.verify.notation.envelope import SCHEME_SIGNING_AUTHORITY, Envelope
from sigward.verify.timestamps import token_as_response, verify_timestamp
from sigward.verify.trust import CertificateAuthority

PREFIX = "authenticTimestamp validation failed: "


class VerifyTimestamp(StrEnum):
    """The trust policy's ``signatureVerification.verifyTimestamp`` option."""

    ALWAYS = "always"
    AFTER_CERT_EXPIRY = "afterCertExpiry"


def _fail(problem: str) -> VerificationFailure:
    return VerificationFailure(PREFIX + problem)


def _signing_authority_time(chain: Sequence[x509.Certificate], when: datetime) -> datetime:
    for cert in chain:
        if when < cert.not_valid_before_utc or when > cert.not_valid_after_utc:
            raise _fail(
                f'certificate "{subject(cert)}" was not valid when the digital signature was produced at '
                f'"{go_time(when)}"'
            )
    return when


def authentic_time(
    env: Envelope,
    *,
    tsa: Sequence[CertificateAuthority],
    verify_timestamp_option: VerifyTimestamp,
    now: datetime,
) -> datetime:
    """The time the envelope's chain is judged at, or a failure in notation-go's words."""
    chain = env.chain
    attrs = env.attributes
    if attrs.signing_scheme == SCHEME_SIGNING_AUTHORITY:
        assert attrs.authentic_signing_time is not None  # check_critical requires it under this scheme
        return _signing_authority_time(chain, attrs.authentic_signing_time)
    use_timestamp = bool(tsa)
    if use_timestamp and verify_timestamp_option == VerifyTimestamp.AFTER_CERT_EXPIRY:
        use_timestamp = any(now > cert.not_valid_after_utc for cert in chain)
    if not use_timestamp:
        try:
            check_validity(chain, now)
        except VerificationFailure as exc:
            raise _fail(exc.message) from None
        return now
    if env.timestamp_token is None:
        raise _fail("no timestamp countersignature was found in the signature envelope")
    try:
        response = token_as_response(env.timestamp_token)
    except VerificationFailure as exc:
        raise _fail(f"failed to parse timestamp countersignature with error: {exc.message}") from None
    try:
        stamp = verify_timestamp(response, signature=env.signature, authorities=tsa)
    except VerificationFailure as exc:
        raise _fail(f"failed to verify the timestamp countersignature with error: the token {exc.message}") from None
    for cert in chain:
        if stamp.time - stamp.accuracy < cert.not_valid_before_utc:
            raise _fail(
                f'timestamp can be before certificate "{subject(cert)}" validity period, it will be valid from '
                f'"{go_time(cert.not_valid_before_utc)}"'
            )
        if stamp.time + stamp.accuracy > cert.not_valid_after_utc:
            raise _fail(
                f'timestamp can be after certificate "{subject(cert)}" validity period, it was expired at '
                f'"{go_time(cert.not_valid_after_utc)}"'
            )
    return stamp.time

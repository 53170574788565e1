"""RFC 3161 signed timestamps: the one check of "a trusted timestamp authority saw this signature at time T", for
every format (Sigstore bundles' ``rfc3161Timestamps``, cosign's ``dev.sigstore.cosign/rfc3161timestamp`` layer
annotation). Pure over the token bytes, the timestamped bytes and the authorities.

A token counts when its CMS signature verifies with a timestamp authority's chain (the token may carry no
certificates at all, as GitHub's ``timestamp.githubapp.com`` tokens do: the chain then comes from the trusted root or
the policy's ``ctlog.tsaCertChain``), its ``messageImprint`` is the hash of the signature bytes, and its ``genTime``
lies inside that authority's ``validFor`` (a closed interval, as the Sigstore TimeRange is). A token that does not
verify proves nothing but does not spoil the others (as in sigstore-go): callers require enough verified times.

Notation carries a bare ``TimeStampToken`` (the CMS ContentInfo, not a ``TimeStampResp``) and TSA trust stores of
roots only (the TSA leaf then comes from the token): :func:`token_as_response` wraps such a token, and an authority
whose first certificate is a CA pins no TSA leaf.

``rfc3161-client`` (Trail of Bits, a sigstore-python dependency) is used through its public API only, imported
lazily so the cold admission path does not pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509

from sigward.errors import VerificationFailure
from sigward.verify.trust import CertificateAuthority

# sigstore-go caps a bundle at 32 timestamps; the same bound keeps a hostile artifact from buying CMS verifications.
MAX_TIMESTAMPS = 32
# A timestamp response is a few KiB (no embedded chain is ~1 KiB); a larger blob is not one.
MAX_TIMESTAMP_BYTES = 64 * 1024
# A TSA chain is leaf, an intermediate or two, root; a token carrying more certificates than this is not a real one.
MAX_TOKEN_CERTIFICATES = 8


@dataclass(frozen=True)
class VerifiedTimestamp:
    """A token that counted: its ``genTime`` and ``accuracy`` (zero when the token states none, as tspclient-go)."""

    time: datetime
    accuracy: timedelta = timedelta(0)


@dataclass(frozen=True)
class TimestampCheck:
    """The verified times (ascending) and, per token that did not count, why."""

    times: tuple[datetime, ...]
    problems: tuple[str, ...]


def valid_during(authority: CertificateAuthority, when: datetime) -> bool:
    """Whether ``when`` lies in the authority's ``validFor`` (closed interval; an open end is unbounded)."""
    if authority.valid_from is not None and when < authority.valid_from:
        return False
    return not (authority.valid_until is not None and when > authority.valid_until)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return bc.ca


def verify_timestamp(
    blob: bytes, *, signature: bytes, authorities: Sequence[CertificateAuthority]
) -> VerifiedTimestamp:
    """One RFC 3161 timestamp response over ``signature``, verified by one of ``authorities`` (raises
    :class:`VerificationFailure` saying why not). An authority listed leaf first pins that TSA leaf; one whose first
    certificate is a CA (a trust store of roots) takes the leaf from the token's certificates."""
    if not authorities:
        raise VerificationFailure("RFC 3161 timestamps are present but no timestamp authority is trusted")
    if len(blob) > MAX_TIMESTAMP_BYTES:
        raise VerificationFailure(f"is larger than {MAX_TIMESTAMP_BYTES} bytes")
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    try:
        response = decode_timestamp_response(blob)
    except ValueError:
        raise VerificationFailure("is not a timestamp response") from None
    last = "no timestamp authority"
    for authority in authorities:
        certs = list(authority.certificates)
        if not certs:
            continue
        builder = VerifierBuilder()
        if not _is_ca(certs[0]):
            builder = builder.tsa_certificate(certs[0])
            middle = certs[1:-1]
        else:
            middle = certs[:-1]
        builder = builder.add_root_certificate(certs[-1])
        for cert in middle:
            builder = builder.add_intermediate_certificate(cert)
        try:
            builder.build().verify_message(response, signature)
        except (VerificationError, ValueError) as exc:
            last = str(exc)[:200] or type(exc).__name__
            continue
        info = response.tst_info
        when = info.gen_time if info.gen_time.tzinfo else info.gen_time.replace(tzinfo=UTC)
        if not valid_during(authority, when):
            last = f"the timestamp time {when.isoformat()} is outside the authority's validity period"
            continue
        accuracy = info.accuracy
        spread = (
            timedelta(seconds=accuracy.seconds, milliseconds=accuracy.millis or 0, microseconds=accuracy.micros or 0)
            if accuracy is not None
            else timedelta(0)
        )
        return VerifiedTimestamp(time=when, accuracy=spread)
    raise VerificationFailure(f"is not verified by a trusted timestamp authority: {last}")


def verify_timestamps(
    tokens: Sequence[bytes], *, signature: bytes, authorities: Sequence[CertificateAuthority]
) -> TimestampCheck:
    """Check each RFC 3161 timestamp response in ``tokens`` over ``signature`` against ``authorities``."""
    if not tokens:
        return TimestampCheck(times=(), problems=())
    if len(tokens) > MAX_TIMESTAMPS:
        return TimestampCheck(times=(), problems=(f"more than {MAX_TIMESTAMPS} RFC 3161 timestamps",))
    if not authorities:
        return TimestampCheck(
            times=(), problems=("RFC 3161 timestamps are present but no timestamp authority is trusted",)
        )
    times: list[datetime] = []
    problems: list[str] = []
    for i, blob in enumerate(tokens):
        try:
            times.append(verify_timestamp(blob, signature=signature, authorities=authorities).time)
        except VerificationFailure as exc:
            problems.append(f"RFC 3161 timestamp {i} {exc.message}")
    return TimestampCheck(times=tuple(sorted(times)), problems=tuple(problems))


# -- a bare TimeStampToken (Notation's countersignature) as a TimeStampResp


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _read(data: bytes, at: int) -> tuple[int, int, int]:
    """``(tag, content start, content end)`` of the DER element at ``at``; definite lengths only, bounded."""
    if at + 2 > len(data):
        raise VerificationFailure("the timestamp token is truncated")
    tag, first = data[at], data[at + 1]
    start = at + 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise VerificationFailure("the timestamp token has an unsupported length encoding")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    else:
        length = first
    if start + length > len(data):
        raise VerificationFailure("the timestamp token is truncated")
    return tag, start, start + length


def _elements(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """``(tag, whole element, content)`` of each element in ``data`` (one level)."""
    out: list[tuple[int, bytes, bytes]] = []
    at = 0
    while at < len(data):
        tag, start, end = _read(data, at)
        out.append((tag, data[at:end], data[start:end]))
        at = end
        if len(out) > MAX_TOKEN_CERTIFICATES + 8:
            raise VerificationFailure("the timestamp token has too many elements")
    return out


def token_as_response(token: bytes) -> bytes:
    """A granted ``TimeStampResp`` (RFC 3161 §2.4.2) around a bare ``TimeStampToken``.

    The token's ``certificates`` SET is put in DER order on the way: real TSAs (GlobalSign, DigiCert) send it unsorted,
    rfc3161-client's strict DER parser refuses that, and the certificates are not covered by the CMS signature (the
    signed attributes are), so reordering them changes nothing that is verified."""
    if len(token) > MAX_TIMESTAMP_BYTES:
        raise VerificationFailure(f"the timestamp token is larger than {MAX_TIMESTAMP_BYTES} bytes")
    tag, start, end = _read(token, 0)
    if tag != 0x30 or end != len(token):
        raise VerificationFailure("the timestamp token is not a DER ContentInfo")
    info = _elements(token[start:end])
    if len(info) != 2 or info[0][0] != 0x06 or info[1][0] != 0xA0:
        raise VerificationFailure("the timestamp token is not a CMS ContentInfo")
    inner = _elements(info[1][2])
    if len(inner) != 1 or inner[0][0] != 0x30:
        raise VerificationFailure("the timestamp token has no SignedData")
    parts = []
    for part_tag, whole, content in _elements(inner[0][2]):
        if part_tag != 0xA0:
            parts.append(whole)
            continue
        certs = _elements(content)  # [0] IMPLICIT CertificateSet
        if len(certs) > MAX_TOKEN_CERTIFICATES:
            raise VerificationFailure(f"the timestamp token carries more than {MAX_TOKEN_CERTIFICATES} certificates")
        parts.append(_tlv(0xA0, b"".join(sorted(c[1] for c in certs))))
    signed_data = _tlv(0x30, b"".join(parts))
    content_info = _tlv(0x30, info[0][1] + _tlv(0xA0, signed_data))
    granted = _tlv(0x30, b"\x02\x01\x00")  # PKIStatusInfo { status granted(0) }
    return _tlv(0x30, granted + content_info)


__all__ = [
    "MAX_TIMESTAMPS",
    "TimestampCheck",
    "VerifiedTimestamp",
    "token_as_response",
    "valid_during",
    "verify_timestamp",
    "verify_timestamps",
]

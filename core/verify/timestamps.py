"""RFC 3161 signed timestamps: the one check of "a trusted timestamp authority saw this signature at time T", for
every format (Sigstore bundles' ``rfc3161Timestamps``, cosign's ``dev.sigstore.cosign/rfc3161timestamp`` layer
annotation). Pure over the token bytes, the timestamped bytes and the authorities.

A token counts when its CMS signature verifies with a timestamp authority's chain (the token may carry no
certificates at all, as GitHub's ``timestamp.githubapp.com`` tokens do: the chain then comes from the trusted root or
the policy's ``ctlog.tsaCertChain``), its ``messageImprint`` is the hash of the signature bytes, and its ``genTime``
lies inside that authority's ``validFor`` (a closed interval, as the Sigstore TimeRange is). A token that does not
verify proves nothing but does not spoil the others (as in sigstore-go): callers require enough verified times.

``rfc3161-client`` (Trail of Bits, a sigstore-python dependency) is used through its public API only, imported
lazily so the cold admission path does not pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sigward.verify.trust import CertificateAuthority

# sigstore-go caps a bundle at 32 timestamps; the same bound keeps a hostile artifact from buying CMS verifications.
MAX_TIMESTAMPS = 32
# A timestamp response is a few KiB (no embedded chain is ~1 KiB); a larger blob is not one.
MAX_TIMESTAMP_BYTES = 64 * 1024


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
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    times: list[datetime] = []
    problems: list[str] = []
    for i, blob in enumerate(tokens):
        if len(blob) > MAX_TIMESTAMP_BYTES:
            problems.append(f"RFC 3161 timestamp {i} is larger than {MAX_TIMESTAMP_BYTES} bytes")
            continue
        try:
            response = decode_timestamp_response(blob)
        except ValueError:
            problems.append(f"RFC 3161 timestamp {i} is not a timestamp response")
            continue
        last = "no timestamp authority"
        for authority in authorities:
            certs = list(authority.certificates)
            builder = VerifierBuilder().tsa_certificate(certs[0]).add_root_certificate(certs[-1])
            for middle in certs[1:-1]:
                builder = builder.add_intermediate_certificate(middle)
            try:
                builder.build().verify_message(response, signature)
            except (VerificationError, ValueError) as exc:
                last = str(exc)[:200] or type(exc).__name__
                continue
            when = response.tst_info.gen_time
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            if not valid_during(authority, when):
                last = f"the timestamp time {when.isoformat()} is outside the authority's validity period"
                continue
            times.append(when)
            break
        else:
            problems.append(f"RFC 3161 timestamp {i} is not verified by a trusted timestamp authority: {last}")
    return TimestampCheck(times=tuple(sorted(times)), problems=tuple(problems))


__all__ = ["MAX_TIMESTAMPS", "TimestampCheck", "valid_during", "verify_timestamps"]

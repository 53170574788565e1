"""Notation authenticTimestamp: RFC 3161 countersignatures (notation-go's own timestamp envelopes with GlobalSign
tokens, and envelopes signed here with the local TSA) and ``notary.x509.signingAuthority``'s authenticSigningTime,
with a negative twin per check, in notation-go's wording."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from sigward.errors import VerificationFailure
from sigward.verify.notation.envelope import (
    COSE_MEDIA_TYPE,
    JWS_MEDIA_TYPE,
    SCHEME_SIGNING_AUTHORITY,
    Envelope,
    parse_payload,
)
from sigward.verify.notation.parse import parse_envelope
from sigward.verify.notation.policy import tsa_store
from sigward.verify.notation.sign import build_envelope, payload_for
from sigward.verify.notation.timestamp import VerifyTimestamp
from sigward.verify.notation.verify import NotationTrust, Target, verify_envelope
from sigward.verify.timestamps import token_as_response
from tests.support.notation import TestCA, make_ca
from tests.support.tsa import LocalTSA, make_tsa
from tests.support.vectors import require_vectors

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ALWAYS, AFTER = VerifyTimestamp.ALWAYS, VerifyTimestamp.AFTER_CERT_EXPIRY


def _vector(*parts: str) -> bytes:
    return require_vectors("notation", "notation-go", "verifier-testdata", *parts).read_bytes()


def _cert(raw: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(raw) if raw[:1] == b"0" else x509.load_pem_x509_certificate(raw)


def _upstream(name: str) -> tuple[Envelope, Target]:
    raw = _vector("timestamp", "sigEnv", name)
    env = parse_envelope(JWS_MEDIA_TYPE if raw[:1] == b"{" else COSE_MEDIA_TYPE, raw)
    art = parse_payload(env.payload)
    return env, Target(art.media_type, art.digest, art.size)


def _trust(env: Envelope, tsa_file: str | None = "test-timestamp/globalsignRoot.cer", **kw: object) -> NotationTrust:
    tsa = tsa_store([_cert(_vector("truststore", "x509", "tsa", *tsa_file.split("/")))]) if tsa_file else ()
    return NotationTrust(ca=(env.chain[-1],), tsa=tsa, **kw)  # type: ignore[arg-type]


# -- notation-go's timestamp_test.go envelopes (real GlobalSign tokens; BER-ordered certificate sets)


@pytest.mark.parametrize(
    "name",
    ["jwsWithTimestamp.sig", "coseWithTimestamp.sig", "jwsExpiredWithTimestamp.sig", "coseExpiredWithTimestamp.sig"],
)
@pytest.mark.parametrize("option", [ALWAYS, AFTER])
def test_upstream_timestamped_envelopes_pass(name: str, option: VerifyTimestamp) -> None:
    env, target = _upstream(name)
    assert verify_envelope(env, target=target, trust=_trust(env, verify_timestamp=option), now=NOW) is not None


@pytest.mark.parametrize(
    ("name", "tsa_file", "fragment"),
    [
        # no tsa store: the expired code-signing certificate is judged now
        (
            "coseExpiredWithTimestamp.sig",
            None,
            'verification time is after certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US" validity period, '
            'it was expired at "Tue, 18 Jun 2024 07:30:31 +0000"',
        ),
        ("withoutTimestamp.sig", "test-timestamp/globalsignRoot.cer", "no timestamp countersignature was found"),
        # a TSA root that did not issue the token's TSA
        ("jwsWithTimestamp.sig", "test-mismatch/DigiCertTSARootSHA384.cer", "failed to verify the timestamp"),
        (
            "timestampBeforeNotBefore.sig",
            "test-timestamp/globalsignRoot.cer",
            'timestamp can be before certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US" validity period, '
            'it will be valid from "Fri, 18 Sep 2099 11:54:34 +0000"',
        ),
        (
            "timestampAfterNotAfter.sig",
            "test-timestamp/globalsignRoot.cer",
            'timestamp can be after certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US" validity period, '
            'it was expired at "Tue, 18 Sep 2001 11:54:34 +0000"',
        ),
    ],
)
def test_upstream_timestamp_failures(name: str, tsa_file: str | None, fragment: str) -> None:
    env, target = _upstream(name)
    with pytest.raises(VerificationFailure) as exc:
        verify_envelope(env, target=target, trust=_trust(env, tsa_file), now=NOW)
    assert exc.value.message.startswith("authenticTimestamp validation failed: ")
    assert fragment in exc.value.message


def test_upstream_token_over_other_bytes_fails() -> None:
    """TimeStampToken.p7s is a real token over another signature: moved into this envelope it proves nothing."""
    env, target = _upstream("jwsExpiredWithTimestamp.sig")
    doc = json.loads(_vector("timestamp", "sigEnv", "jwsExpiredWithTimestamp.sig"))
    doc["header"]["io.cncf.notary.timestampSignature"] = base64.b64encode(
        _vector("timestamp", "countersignature", "TimeStampToken.p7s")
    ).decode()
    moved = parse_envelope(JWS_MEDIA_TYPE, json.dumps(doc).encode())
    with pytest.raises(VerificationFailure, match=r"failed to verify the timestamp countersignature.*Mismatch"):
        verify_envelope(moved, target=target, trust=_trust(env), now=NOW)


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        (b"\x30\x03\x02\x01\x00", "not a CMS ContentInfo"),
        (b"\x30\x84\xff\xff\xff\xff", "truncated"),
        (b"\x04\x00", "not a DER ContentInfo"),
        (b"", "truncated"),
    ],
)
def test_malformed_countersignature_fails_closed(token: bytes, fragment: str) -> None:
    env, target = _upstream("jwsExpiredWithTimestamp.sig")
    doc = json.loads(_vector("timestamp", "sigEnv", "jwsExpiredWithTimestamp.sig"))
    doc["header"]["io.cncf.notary.timestampSignature"] = base64.b64encode(token).decode()
    broken = parse_envelope(JWS_MEDIA_TYPE, json.dumps(doc).encode())
    with pytest.raises(VerificationFailure, match=f"failed to parse timestamp countersignature.*{fragment}"):
        verify_envelope(broken, target=target, trust=_trust(env), now=NOW)


def test_after_cert_expiry_ignores_the_token_while_the_chain_is_valid() -> None:
    """notation-go's afterCertExpiry: an unexpired chain is judged now, even with no (or a useless) timestamp."""
    env, target = _upstream("withoutTimestamp.sig")
    assert verify_envelope(env, target=target, trust=_trust(env, verify_timestamp=AFTER), now=NOW) is not None


def test_token_as_response_sorts_the_certificate_set() -> None:
    env, _ = _upstream("jwsWithTimestamp.sig")
    assert env.timestamp_token is not None
    from rfc3161_client import decode_timestamp_response

    with pytest.raises(ValueError, match="InvalidSetOrdering"):
        decode_timestamp_response(
            b"\x30\x82"
            + (len(env.timestamp_token) + 5).to_bytes(2, "big")
            + b"\x30\x03\x02\x01\x00"
            + env.timestamp_token
        )
    assert len(decode_timestamp_response(token_as_response(env.timestamp_token)).signed_data.certificates) == 3


# -- envelopes signed here: an expired leaf, the local TSA (root-only trust store, chain embedded in the token)

SIGNING = datetime.now(UTC)


@lru_cache(maxsize=1)
def _expired_ca() -> TestCA:
    """Leaf valid from a day ago until an hour ago (expired now), root valid for 30 days."""
    return make_ca("expired", ec_key=True, leaf_not_after=SIGNING - timedelta(hours=1))


def _tsa() -> LocalTSA:
    return make_tsa(5)


def _sign(
    ca: TestCA,
    *,
    fmt: str = "jws",
    stamp: Callable[[bytes], bytes] | None = None,
    scheme: str = "notary.x509",
    when: datetime | None = None,
) -> tuple[Envelope, Target]:
    target = Target("application/vnd.oci.image.manifest.v1+json", "sha256:" + "a" * 64, 123)
    media_type, raw = build_envelope(
        fmt,
        payload=payload_for(target.media_type, target.digest, target.size),
        key=ca.leaf_key,
        chain=ca.chain,
        signing_time=when,
        signing_scheme=scheme,
        timestamper=stamp,
    )
    return parse_envelope(media_type, raw), target


def _stamper(tsa: LocalTSA, at: datetime, *, other: bytes | None = None) -> Callable[[bytes], bytes]:
    def stamp(signature: bytes) -> bytes:
        from rfc3161_client import decode_timestamp_response

        reply = tsa.stamp(other if other is not None else signature, gen_time=at, embed=tsa.chain)
        return decode_timestamp_response(reply).time_stamp_token()

    return stamp


def _local_trust(ca: TestCA, tsa: LocalTSA | None) -> NotationTrust:
    return NotationTrust(ca=(ca.root,), tsa=tsa_store([tsa.root]) if tsa else (), verify_timestamp=AFTER)


@pytest.mark.parametrize("fmt", ["jws", "cose"])
def test_expired_leaf_with_a_valid_timestamp_passes_and_its_twins_fail(fmt: str) -> None:
    ca, tsa = _expired_ca(), _tsa()
    inside = SIGNING - timedelta(hours=3)
    env, target = _sign(ca, fmt=fmt, stamp=_stamper(tsa, inside))
    now = datetime.now(UTC)
    assert verify_envelope(env, target=target, trust=_local_trust(ca, tsa), now=now).digest == target.digest
    # no tsa store: the expired leaf is judged now
    with pytest.raises(VerificationFailure, match="authenticTimestamp validation failed: verification time is after"):
        verify_envelope(env, target=target, trust=_local_trust(ca, None), now=now)
    # the TSA is not trusted (another TSA's root in the store)
    with pytest.raises(VerificationFailure, match="failed to verify the timestamp countersignature"):
        verify_envelope(env, target=target, trust=_local_trust(ca, make_tsa(6)), now=now)
    # a token over other bytes
    other, _ = _sign(ca, fmt=fmt, stamp=_stamper(tsa, inside, other=b"another signature"))
    with pytest.raises(VerificationFailure, match=r"failed to verify the timestamp countersignature.*Mismatch"):
        verify_envelope(other, target=target, trust=_local_trust(ca, tsa), now=now)
    # genTime after the leaf expired, or before it was issued
    late, _ = _sign(ca, fmt=fmt, stamp=_stamper(tsa, SIGNING))
    with pytest.raises(VerificationFailure, match="timestamp can be after certificate"):
        verify_envelope(late, target=target, trust=_local_trust(ca, tsa), now=now)
    early, _ = _sign(ca, fmt=fmt, stamp=_stamper(tsa, SIGNING - timedelta(days=3)))
    with pytest.raises(VerificationFailure, match="timestamp can be before certificate"):
        verify_envelope(early, target=target, trust=_local_trust(ca, tsa), now=now)


def test_expired_leaf_without_a_timestamp_fails() -> None:
    ca, tsa = _expired_ca(), _tsa()
    env, target = _sign(ca)
    with pytest.raises(VerificationFailure, match="no timestamp countersignature was found in the signature envelope"):
        verify_envelope(env, target=target, trust=_local_trust(ca, tsa), now=datetime.now(UTC))


def test_tsa_chain_pasted_leaf_first_pins_that_tsa() -> None:
    """A cosign-style tsaCertChain (TSA leaf, intermediate, root) works the same as a root-only store."""
    ca, tsa = _expired_ca(), _tsa()
    env, target = _sign(ca, stamp=_stamper(tsa, SIGNING - timedelta(hours=3)))
    trust = NotationTrust(ca=(ca.root,), tsa=tsa_store(list(tsa.chain)), verify_timestamp=AFTER)
    assert verify_envelope(env, target=target, trust=trust, now=datetime.now(UTC)).digest == target.digest


# -- notary.x509.signingAuthority: authenticSigningTime, no TSA


@pytest.mark.parametrize("fmt", ["jws", "cose"])
def test_signing_authority_time_inside_validity_passes_outside_fails(fmt: str) -> None:
    ca = _expired_ca()
    trust = NotationTrust(ca=(), signing_authority=(ca.root,))
    now = datetime.now(UTC)
    inside, target = _sign(ca, fmt=fmt, scheme=SCHEME_SIGNING_AUTHORITY, when=SIGNING - timedelta(hours=3))
    assert verify_envelope(inside, target=target, trust=trust, now=now).digest == target.digest
    outside, _ = _sign(ca, fmt=fmt, scheme=SCHEME_SIGNING_AUTHORITY, when=SIGNING)
    with pytest.raises(VerificationFailure, match="was not valid when the digital signature was produced at"):
        verify_envelope(outside, target=target, trust=trust, now=now)
    # Kyverno's mapping has no signingAuthority store: authenticity fails first
    with pytest.raises(VerificationFailure, match="does not contain any trusted certificate"):
        verify_envelope(inside, target=target, trust=NotationTrust(ca=(ca.root,)), now=now)


# -- Kyverno's attestor entry → trust stores


def test_trust_for_maps_tsa_cert_chain_and_refuses_a_bad_one() -> None:
    from sigward.policy.models import Attestor
    from sigward.verify.notation.policy import trust_for

    tsa = _tsa()
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (tsa.root, make_tsa(6).root))
    entry = Attestor.model_validate({"certificates": {"cert": _expired_ca().root_pem, "ctlog": {"tsaCertChain": pem}}})
    trust = trust_for(entry)
    assert [a.certificates for a in trust.tsa] == [(tsa.root,), (make_tsa(6).root,)]  # each root its own anchor
    assert trust.verify_timestamp == AFTER
    assert trust_for(Attestor.model_validate({"certificates": {"cert": _expired_ca().root_pem}})).tsa == ()
    bad = Attestor.model_validate({"certificates": {"cert": _expired_ca().root_pem, "ctlog": {"tsaCertChain": "x"}}})
    with pytest.raises(VerificationFailure, match=r"certificates\.ctlog\.tsaCertChain"):
        trust_for(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=4000), st.integers(min_value=0, max_value=255))
def test_fuzz_token_wrapping_fails_closed(data: bytes, position: int, value: int) -> None:
    """Random bytes and single-byte mutations of a real GlobalSign token: a response or a VerificationFailure."""
    env, _ = _upstream("jwsWithTimestamp.sig")
    assert env.timestamp_token is not None
    mutated = bytearray(env.timestamp_token)
    mutated[position % len(mutated)] = value
    for blob in (data, bytes(mutated)):
        with contextlib.suppress(VerificationFailure):
            token_as_response(blob)

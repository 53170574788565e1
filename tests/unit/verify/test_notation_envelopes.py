"""Notation envelope parsing and the pure checks on the Notary Project's own envelopes (notation-go testdata), with
negative twins, and the parsers fuzzed with hypothesis (never anything but a VerificationFailure)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sigward.errors import VerificationFailure
from sigward.verify.notation.envelope import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE
from sigward.verify.notation.parse import parse_envelope
from sigward.verify.notation.verify import NotationTrust, Target, verify_envelope
from tests.support.notation import make_ca
from tests.support.vectors import require_vectors

ALPINE = Target(
    "application/vnd.oci.image.manifest.v1+json",
    "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0",
    481,
)
NOW = datetime(2025, 1, 1, tzinfo=UTC)
CASES = [(JWS_MEDIA_TYPE, "jws_signature.sig"), (COSE_MEDIA_TYPE, "cose_signature.sig")]


def _raw(name: str) -> bytes:
    return (require_vectors("notation", "notation-go", "internal-testdata") / name).read_bytes()


@pytest.mark.parametrize(("media_type", "name"), CASES)
def test_upstream_envelope_verifies_and_its_twins_fail(media_type: str, name: str) -> None:
    env = parse_envelope(media_type, _raw(name))
    trusted = NotationTrust(ca=(env.chain[0],))
    assert verify_envelope(env, target=ALPINE, trust=trusted, now=NOW).digest == ALPINE.digest
    with pytest.raises(VerificationFailure, match="does not contain any trusted certificate"):
        verify_envelope(env, target=ALPINE, trust=NotationTrust(ca=(make_ca().root,)), now=NOW)
    other = Target(ALPINE.media_type, "sha256:" + "1" * 64, ALPINE.size)
    with pytest.raises(VerificationFailure, match="targetArtifact"):
        verify_envelope(env, target=other, trust=trusted, now=NOW)
    with pytest.raises(VerificationFailure, match="authenticTimestamp validation failed"):
        verify_envelope(env, target=ALPINE, trust=trusted, now=datetime(2200, 1, 1, tzinfo=UTC))


def test_tampered_jws_signature_fails() -> None:
    doc = json.loads(_raw("jws_signature.sig"))
    doc["signature"] = ("A" if doc["signature"][0] != "A" else "B") + doc["signature"][1:]
    env = parse_envelope(JWS_MEDIA_TYPE, json.dumps(doc).encode())
    with pytest.raises(VerificationFailure, match="signature is invalid"):
        verify_envelope(env, target=ALPINE, trust=NotationTrust(ca=(env.chain[0],)), now=NOW)


def test_unknown_critical_header_is_refused() -> None:
    conformance = require_vectors("notation", "notation-core-go", "signature-jws-testdata", "conformance.json")
    doc = json.loads(conformance.read_text())
    doc["header"]["x5c"] = []
    with pytest.raises(VerificationFailure, match='unsupported critical header "signedCritKey1"'):
        parse_envelope(JWS_MEDIA_TYPE, json.dumps(doc).encode())


def test_unsupported_media_type_in_notation_wording() -> None:
    with pytest.raises(VerificationFailure, match='media type "application/unsupported\\+json" is not supported'):
        parse_envelope("application/unsupported+json", b"{}")


def test_oversized_chain_is_refused() -> None:
    doc = json.loads(_raw("jws_signature.sig"))
    doc["header"]["x5c"] = doc["header"]["x5c"] * 12
    with pytest.raises(VerificationFailure, match="certificate chain too long"):
        parse_envelope(JWS_MEDIA_TYPE, json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2048), cose=st.booleans())
def test_fuzz_parsers_fail_closed(data: bytes, cose: bool) -> None:
    with contextlib.suppress(VerificationFailure):
        parse_envelope(COSE_MEDIA_TYPE if cose else JWS_MEDIA_TYPE, data)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255), cose=st.booleans())
# Regression: a certificate whose version byte was mutated raised cryptography's InvalidVersion (a stack trace).
@example(position=181, value=1, cose=True)
def test_fuzz_mutated_real_envelopes(position: int, value: int, cose: bool) -> None:
    media_type, name = CASES[1] if cose else CASES[0]
    raw = bytearray(_raw(name))
    raw[position % len(raw)] = value
    try:
        env = parse_envelope(media_type, bytes(raw))
        verify_envelope(env, target=ALPINE, trust=NotationTrust(ca=(env.chain[0],)), now=NOW)
    except VerificationFailure:
        pass

"""Key-based DSSE/in-toto attestation checks over bytes: the negative cases first-class."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from sigward.errors import VerificationFailure
from sigward.verify.attestations import verify_attestations_with_key
from sigward.verify.cosign import SignatureLayer, TlogOptions
from sigward.verify.dsse import Statement, pae, parse_envelope
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem
from tests.support.signing import SignedLayer, attestation_layer, in_toto_statement, new_key

DIGEST = "sha256:" + "e" * 64
OTHER = "sha256:" + "f" * 64
SLSA = "https://slsa.dev/provenance/v1"


def as_layer(s: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))


def verifier(slot: int = 0) -> PublicKeyVerifier:
    return PublicKeyVerifier(key=load_public_key_pem(new_key("p256", slot=slot).public_pem))


def good() -> SignedLayer:
    return attestation_layer(new_key("p256"), in_toto_statement(DIGEST, SLSA, {"buildType": "x"}))


def tamper(layer: SignedLayer) -> SignedLayer:
    env = json.loads(layer.payload)
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["buildType"] = "evil"
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return SignedLayer(payload=json.dumps(env).encode(), annotations=layer.annotations, media_type=layer.media_type)


def urlsafe(layer: SignedLayer) -> SignedLayer:
    env = json.loads(layer.payload)
    env["payload"] = base64.urlsafe_b64encode(base64.b64decode(env["payload"])).decode().rstrip("=")
    env["signatures"][0]["sig"] = base64.urlsafe_b64encode(base64.b64decode(env["signatures"][0]["sig"])).decode()
    return SignedLayer(payload=json.dumps(env).encode(), annotations=layer.annotations, media_type=layer.media_type)


@dataclass(frozen=True)
class Case:
    name: str
    layers: Callable[[], list[SignedLayer]]
    expect: str | None
    slot: int = 0


CASES = [
    Case("valid", lambda: [good()], None),
    Case("url-safe-base64", lambda: [urlsafe(good())], None),
    Case("wrong-key", lambda: [good()], "no matching attestations: invalid DSSE signature", slot=1),
    Case(
        "subject-is-another-image",
        lambda: [attestation_layer(new_key("p256"), in_toto_statement(OTHER, SLSA, {}))],
        "does not name the image digest",
    ),
    Case("tampered-statement", lambda: [tamper(good())], "invalid DSSE signature"),
    Case(
        "not-in-toto",
        lambda: [attestation_layer(new_key("p256"), b"plain bytes")],
        "in-toto statement is not JSON",
    ),
    Case(
        "signature-layer-instead",
        lambda: [
            SignedLayer(payload=b"{}", annotations={}, media_type="application/vnd.dev.cosign.simplesigning.v1+json")
        ],
        "is not a DSSE envelope",
    ),
    Case("none", lambda: [], "no attestations found"),
    Case("one-bad-one-good", lambda: [tamper(good()), good()], None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attestation_checks(case: Case) -> None:
    layers = [as_layer(x) for x in case.layers()]

    def run() -> tuple[Statement, ...]:
        return verify_attestations_with_key(
            layers, image_digest=DIGEST, verifier=verifier(case.slot), tlog=TlogOptions(required=False)
        )

    if case.expect is None:
        (statement,) = run()[-1:]
        assert statement.predicate_type == SLSA
        assert statement.names_digest(DIGEST)
    else:
        with pytest.raises(VerificationFailure) as info:
            run()
        assert case.expect in str(info.value)


def test_tlog_required_without_bundle() -> None:
    with pytest.raises(VerificationFailure, match="attestation has no Rekor bundle"):
        verify_attestations_with_key(
            [as_layer(good())], image_digest=DIGEST, verifier=verifier(), tlog=TlogOptions(required=True, logs=())
        )


def test_pae_matches_the_spec() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"payload": "", "signatures": []}', "no payloadType"),
        (b'{"payloadType": "x", "payload": "%%", "signatures": [{"sig": "AA=="}]}', "not base64"),
        (b'{"payloadType": "x", "payload": "", "signatures": []}', "no signatures"),
    ],
)
def test_malformed_envelopes(raw: bytes, message: str) -> None:
    with pytest.raises(VerificationFailure, match=message):
        parse_envelope(raw)

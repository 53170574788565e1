"""sigward.verify.timestamps on a real RFC 3161 token (GitHub's timestamp.githubapp.com, no embedded certificates)
with the GitHub trusted root's TSA chains, and the legacy ``rfc3161timestamp`` annotation parser."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from sigward.errors import VerificationFailure
from sigward.verify.cosign import ANNOTATION_RFC3161, SignatureLayer, layer_timestamps
from sigward.verify.timestamps import MAX_TIMESTAMPS, verify_timestamps
from sigward.verify.trust import CertificateAuthority, parse_trusted_root
from tests.support.vectors import vectors_dir

BUNDLE = "github-instance/actions-attest-build-provenance-attestation-13531551.sigstore.json"
GEN_TIME = datetime(2025, 11, 18, 7, 58, 34, tzinfo=UTC)


def material() -> tuple[bytes, bytes, tuple[CertificateAuthority, ...]]:
    folder = vectors_dir() / "github-attestations"
    if not folder.is_dir():
        pytest.skip(f"GitHub attestation vectors not present at {folder} (SIGWARD_VECTORS)")
    doc: dict[str, Any] = json.loads((folder / BUNDLE).read_bytes())
    token = base64.b64decode(
        doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"]
    )
    signature = base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"])
    root = parse_trusted_root((folder / "trusted-roots" / "github.json").read_bytes(), source="github.json")
    return token, signature, root.timestamp_authorities


def test_real_token_verifies_at_its_gentime() -> None:
    token, signature, tsas = material()
    check = verify_timestamps([token], signature=signature, authorities=tsas)
    assert check.times == (GEN_TIME,) and check.problems == ()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("other-signature", "not verified by a trusted timestamp authority"),
        ("no-authorities", "no timestamp authority is trusted"),
        ("authority-expired-at-gentime", "outside the authority's validity period"),
        ("older-generation-only", "not verified by a trusted timestamp authority"),
        ("altered-token", "RFC 3161 timestamp 0"),
        ("not-a-token", "is not a timestamp response"),
        ("too-many", f"more than {MAX_TIMESTAMPS}"),
    ],
)
def test_token_negatives(name: str, fragment: str) -> None:
    token, signature, tsas = material()
    tokens = [token]
    if name == "other-signature":
        signature = signature[:-1] + bytes([signature[-1] ^ 1])
    elif name == "no-authorities":
        tsas = ()
    elif name == "authority-expired-at-gentime":
        tsas = tuple(replace(t, valid_until=datetime(2025, 11, 18, tzinfo=UTC)) for t in tsas)
    elif name == "older-generation-only":
        tsas = tsas[:4]
    elif name == "altered-token":
        raw = bytearray(token)
        raw[-40] ^= 1
        tokens = [bytes(raw)]
    elif name == "not-a-token":
        tokens = [b"\x30\x03\x02\x01\x00"]
    elif name == "too-many":
        tokens = [token] * (MAX_TIMESTAMPS + 1)
    check = verify_timestamps(tokens, signature=signature, authorities=tsas)
    assert check.times == ()
    assert any(fragment in p for p in check.problems), check.problems


def _layer(value: str | None) -> SignatureLayer:
    annotations = {} if value is None else {ANNOTATION_RFC3161: value}
    return SignatureLayer(media_type="x", payload=b"", annotations=annotations)


def test_layer_annotation() -> None:
    assert layer_timestamps(_layer(None)) == ()
    assert layer_timestamps(_layer(json.dumps({"SignedRFC3161TimeStamp": "AAEC"}))) == (b"\x00\x01\x02",)
    for bad, fragment in [
        ("{", "not JSON"),
        ("{}", "no SignedRFC3161TimeStamp"),
        ('{"SignedRFC3161TimeStamp": "@"}', "not base64"),
    ]:
        with pytest.raises(VerificationFailure, match=fragment):
            layer_timestamps(_layer(bad))

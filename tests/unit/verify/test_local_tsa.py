"""TSA-only keyless bundles with tokens from a local RFC 3161 authority (tests/support/tsa.py), under a test trusted
root that, like GitHub's, lists a Fulcio CA and that TSA and no transparency or CT logs: the cases real GitHub data
cannot give — an expired TSA, a token older than the certificate, several tokens, tokens carrying certificates."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sigward.errors import SigwardError
from sigward.policy.models import KeylessAttestor
from sigward.verify.bundles import verify_bundle
from sigward.verify.dsse import INTOTO_PAYLOAD_TYPE, pae
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.support.bundles import b64, statement
from tests.support.fulcio import SIGNING_TIME, TEST_EMAIL, TEST_ISSUER, issue_leaf, make_fulcio, trusted_root_json
from tests.support.signing import new_key
from tests.support.tsa import LocalTSA, make_tsa

DIGEST = "sha256:" + hashlib.sha256(b"local-tsa-image").hexdigest()
FULCIO = make_fulcio(7)
SIGNER = new_key("p256", slot=77)
LEAF = issue_leaf(FULCIO, SIGNER, with_sct=False)  # valid SIGNING_TIME-30s … +10 min
TSA = make_tsa(0)
OTHER_TSA = make_tsa(1)
EXPIRED_TSA = make_tsa(2, not_after=SIGNING_TIME - timedelta(days=1))  # its certificate ended before the token
AT = SIGNING_TIME


def root(*authorities: dict[str, object]) -> TrustedRoot:
    doc = json.loads(trusted_root_json(FULCIO))
    doc.update(tlogs=[], ctlogs=[], timestampAuthorities=list(authorities))
    return parse_trusted_root(json.dumps(doc).encode(), source="local TSA root")


def dsse_signature() -> bytes:
    # The token covers the DSSE signature bytes; ECDSA is randomized, so sign once and stamp that signature.
    return _SIGNED[1]


def _signed() -> tuple[bytes, bytes]:
    payload = statement(DIGEST, predicate_type="https://slsa.dev/provenance/v1")
    return payload, SIGNER.sign(pae(INTOTO_PAYLOAD_TYPE, payload))


_SIGNED = _signed()


def bundle_with(tokens: Sequence[bytes]) -> bytes:
    payload, signature = _SIGNED
    material: dict[str, object] = {
        "certificate": {"rawBytes": b64(LEAF.public_bytes(serialization.Encoding.DER))},
        "tlogEntries": [],
    }
    if tokens:
        material["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": b64(t)} for t in tokens]}
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": b64(payload),
                "payloadType": INTOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": b64(signature), "keyid": ""}],
            },
        }
    ).encode()


def token(
    tsa: LocalTSA = TSA,
    when: datetime = AT,
    *,
    embed: Sequence[x509.Certificate] = (),
    serial: int = 1,
    imprint: bytes | None = None,
) -> bytes:
    return tsa.stamp(dsse_signature(), gen_time=when, embed=embed, serial=serial, imprint=imprint)


@dataclass(frozen=True)
class Case:
    name: str
    tokens: Sequence[bytes]
    authorities: Sequence[dict[str, object]] = field(default_factory=lambda: [TSA.authority()])
    error: str | None = None


CASES = [
    Case("one-token", [token()]),
    Case("token-with-embedded-chain", [token(embed=TSA.chain)]),
    Case("token-with-embedded-leaf", [token(embed=(TSA.leaf,))]),
    Case("several-tokens", [token(), token(when=AT + timedelta(seconds=5), serial=2)]),
    Case("bad-token-beside-good-one", [token(OTHER_TSA), token()]),
    Case("second-authority-verifies", [token(OTHER_TSA)], [TSA.authority(), OTHER_TSA.authority()]),
    # negatives
    Case("no-token", [], error="no verified signing time"),
    Case("untrusted-tsa", [token(OTHER_TSA)], error="no verified signing time.*Unable to verify pkcs7"),
    Case("embedded-cert-of-other-tsa", [token(embed=(OTHER_TSA.leaf,))], error="No leaf certificate found"),
    Case(
        "expired-tsa-certificate",
        [token(EXPIRED_TSA)],
        [EXPIRED_TSA.authority()],
        error="no verified.*Unable to verify pkcs7",
    ),
    Case(
        "tsa-validfor-ended-before-gentime",
        [token()],
        [TSA.authority(end=AT - timedelta(hours=1))],
        error="outside the authority's validity period",
    ),
    Case(
        "token-before-leaf-notbefore",
        [token(when=AT - timedelta(minutes=5))],
        error="certificate was issued after observed time",
    ),
    Case("token-after-leaf-expiry", [token(when=AT + timedelta(hours=1))], error="certificate expired before"),
    Case(
        "imprint-of-other-bytes", [token(imprint=hashlib.sha256(b"other").digest())], error="Mismatch between messages"
    ),
    Case("root-without-tsas", [token()], [], error="no timestamp authority is trusted"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_tsa_only_bundle(case: Case) -> None:
    def run() -> None:
        verify_bundle(
            bundle_with(case.tokens),
            image_digest=DIGEST,
            key=None,
            keyless=KeylessAttestor(subject=TEST_EMAIL, issuer=TEST_ISSUER),
            certificates=None,
            trusted_root=root(*case.authorities),
        )

    if case.error is None:
        run()
        return
    with pytest.raises(SigwardError, match=case.error):
        run()

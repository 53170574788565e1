"""TSA-only keyless bundles with tokens from a local RFC 3161 authority (tests/support/tsa.py), under a test trusted
root that, like GitHub's, lists a Fulcio CA and that TSA and no transparency or CT logs: the cases real GitHub data
cannot give — an expired TSA, a token older than the certificate, several tokens, tokens carrying certificates."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sigward.errors import SigwardError
from sigward.policy.models import KeylessAttestor
from sigward.verify.bundles import verify_bundle
from sigward.verify.cosign import ANNOTATION_RFC3161, SignatureLayer
from sigward.verify.dsse import INTOTO_PAYLOAD_TYPE, pae
from sigward.verify.keyless import verify_attestation_keyless, verify_layer_keyless
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.support.bundles import b64, statement
from tests.support.fulcio import (
    SIGNING_TIME,
    TEST_EMAIL,
    TEST_ISSUER,
    cert_attestation_layer,
    cert_layer,
    issue_leaf,
    make_fulcio,
    trusted_root_json,
)
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


# -- cosign's legacy layers: the ``dev.sigstore.cosign/rfc3161timestamp`` annotation. cosign (pkg/cosign/verify.go,
# VerifyRFC3161Timestamp) timestamps the raw signature bytes of a ``.sig`` layer and, since an ``.att`` layer has no
# base64 signature, the layer's payload (the whole DSSE envelope).


def with_stamp(layer: SignatureLayer, covered: bytes, *, when: datetime = AT) -> SignatureLayer:
    token_bytes = TSA.stamp(covered, gen_time=when)
    annotations = {**layer.annotations, ANNOTATION_RFC3161: json.dumps({"SignedRFC3161TimeStamp": b64(token_bytes)})}
    return replace(layer, annotations=annotations)


def sig_layer() -> SignatureLayer:
    return cert_layer(SIGNER, LEAF, image_digest=DIGEST, chain=FULCIO.chain)


def att_layer() -> SignatureLayer:
    payload = json.loads(statement(DIGEST, predicate_type="https://slsa.dev/provenance/v1"))
    return cert_attestation_layer(SIGNER, LEAF, payload, chain=FULCIO.chain)


def raw_signature(layer: SignatureLayer) -> bytes:
    return base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"])


@pytest.mark.parametrize(
    ("kind", "covers", "error"),
    [
        ("sig", "signature", None),
        ("att", "envelope", None),
        # negatives: the token covers other bytes than cosign timestamps, or is too early for the certificate
        ("sig", "payload", "no verified signing time"),
        ("att", "signature-in-envelope", "no verified signing time"),
        ("sig", "signature-early", "certificate was issued after observed time"),
    ],
)
def test_legacy_layer_rfc3161_annotation(kind: str, covers: str, error: str | None) -> None:
    layer = sig_layer() if kind == "sig" else att_layer()
    if covers in ("signature", "signature-early"):
        covered = raw_signature(layer)
    elif covers == "signature-in-envelope":
        covered = base64.b64decode(json.loads(layer.payload)["signatures"][0]["sig"])
    else:
        covered = layer.payload
    stamped = with_stamp(layer, covered, when=AT - timedelta(minutes=5) if covers.endswith("early") else AT)

    if error is None:
        verify_legacy(kind, stamped)
        return
    with pytest.raises(SigwardError, match=error):
        verify_legacy(kind, stamped)
    with pytest.raises(SigwardError, match="no verified signing time"):  # and with no token at all: nothing to go on
        verify_legacy(kind, layer)


def verify_legacy(kind: str, layer: SignatureLayer) -> None:
    keyless = KeylessAttestor(subject=TEST_EMAIL, issuer=TEST_ISSUER)
    trusted = root(TSA.authority())
    if kind == "sig":
        verify_layer_keyless(layer, image_digest=DIGEST, keyless=keyless, annotations={}, trusted_root=trusted)
    else:
        verify_attestation_keyless(layer, image_digest=DIGEST, keyless=keyless, trusted_root=trusted)

"""Key-based checks of cosign `.sig` layers, over bytes only: each scenario a row, negative cases included."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from sigward.errors import VerificationFailure
from sigward.verify.cosign import SignatureLayer, TlogOptions, VerifiedSignature, verify_signatures_with_key
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem, split_pem_public_keys
from sigward.verify.simplesigning import make_payload
from sigward.verify.trust import LogKey
from tests.support.signing import (
    KeyKind,
    SignedLayer,
    SigningKey,
    new_key,
    signed_layer,
    tampered,
    with_rekor_bundle,
)

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def as_layer(signed: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=signed.media_type, payload=signed.payload, annotations=dict(signed.annotations))


def verifier_for(key: SigningKey, *, hash_name: str = "sha256", pss: bool = False) -> PublicKeyVerifier:
    return PublicKeyVerifier(
        key=load_public_key_pem(key.public_pem), hash_name=hash_name, rsa_padding="pss" if pss else "pkcs1v15"
    )


def log_key_of(key: SigningKey) -> LogKey:
    loaded = load_public_key_pem(key.public_pem)
    from sigward.verify.keys import key_id

    return LogKey(log_id=key_id(loaded), key=loaded)


NO_TLOG = TlogOptions(required=False)


@dataclass(frozen=True)
class Case:
    name: str
    layers: Callable[[], list[SignedLayer]]
    verifier: Callable[[], PublicKeyVerifier]
    expect_error: str | None  # substring of the failure, None = verified
    annotations: tuple[tuple[str, str], ...] = ()
    tlog: Callable[[], TlogOptions] = lambda: NO_TLOG
    image_digest: str = DIGEST_A


def good(kind: KeyKind, **kw: object) -> Callable[[], list[SignedLayer]]:
    return lambda: [signed_layer(new_key(kind), image_digest=DIGEST_A, **kw)]  # type: ignore[arg-type]


CASES = [
    Case("ecdsa-p256", good("p256"), lambda: verifier_for(new_key("p256")), None),
    Case("ecdsa-p384-sha256", good("p384"), lambda: verifier_for(new_key("p384")), None),
    Case("ecdsa-p384-curve-hash", good("p384", hash_name="sha384"), lambda: verifier_for(new_key("p384")), None),
    Case("ecdsa-p521", good("p521", hash_name="sha512"), lambda: verifier_for(new_key("p521")), None),
    Case("rsa-2048-pkcs1", good("rsa2048"), lambda: verifier_for(new_key("rsa2048")), None),
    Case("rsa-3072-pkcs1", good("rsa3072"), lambda: verifier_for(new_key("rsa3072")), None),
    Case("rsa-pss", good("rsa2048", pss=True), lambda: verifier_for(new_key("rsa2048"), pss=True), None),
    Case(
        "rsa-pss-signature-with-pkcs1-verifier",
        good("rsa2048", pss=True),
        lambda: verifier_for(new_key("rsa2048")),
        "crypto/rsa: verification error",
    ),
    Case("ed25519", good("ed25519"), lambda: verifier_for(new_key("ed25519")), None),
    Case(
        "rsa-sha512-algorithm",
        good("rsa2048", hash_name="sha512"),
        lambda: verifier_for(new_key("rsa2048"), hash_name="sha512"),
        None,
    ),
    Case(
        "rsa-sha512-signature-sha256-policy",
        good("rsa2048", hash_name="sha512"),
        lambda: verifier_for(new_key("rsa2048")),
        "crypto/rsa: verification error",
    ),
    Case(
        "wrong-key",
        good("p256"),
        lambda: verifier_for(new_key("p256", slot=1)),
        "no matching signatures: invalid signature when validating ASN.1 encoded signature",
    ),
    Case("wrong-ed25519-key", good("ed25519"), lambda: verifier_for(new_key("ed25519", slot=1)), "ed25519"),
    Case(
        "replayed-from-another-digest",
        lambda: [signed_layer(new_key("p256"), image_digest=DIGEST_B)],
        lambda: verifier_for(new_key("p256")),
        "invalid or missing digest in claim: " + DIGEST_B,
    ),
    Case(
        "tampered-payload",
        lambda: [
            tampered(
                signed_layer(new_key("p256"), image_digest=DIGEST_A),
                make_payload(docker_reference="evil.test/app", manifest_digest=DIGEST_A),
            )
        ],
        lambda: verifier_for(new_key("p256")),
        "invalid signature",
    ),
    Case(
        "not-a-cosign-signature-type",
        lambda: [
            signed_layer(
                new_key("p256"),
                image_digest=DIGEST_A,
                payload=json.dumps(
                    {
                        "critical": {
                            "identity": {},
                            "image": {"docker-manifest-digest": DIGEST_A},
                            "type": "other",
                        }
                    }
                ).encode(),
            )
        ],
        lambda: verifier_for(new_key("p256")),
        "invalid payload type",
    ),
    Case(
        "payload-not-json",
        lambda: [signed_layer(new_key("p256"), image_digest=DIGEST_A, payload=b"\xff not json")],
        lambda: verifier_for(new_key("p256")),
        "error decoding the payload",
    ),
    Case("no-signatures", lambda: [], lambda: verifier_for(new_key("p256")), "no signatures found"),
    Case(
        "one-good-one-bad",
        lambda: [
            signed_layer(new_key("p256", slot=1), image_digest=DIGEST_A),
            signed_layer(new_key("p256"), image_digest=DIGEST_A),
        ],
        lambda: verifier_for(new_key("p256")),
        None,
    ),
    Case(
        "other-media-type",
        lambda: [
            SignedLayer(
                payload=b"hello",
                annotations=signed_layer(new_key("p256"), image_digest=DIGEST_A).annotations,
                media_type="text/plain",
            )
        ],
        lambda: verifier_for(new_key("p256")),
        "is not a cosign simple signing payload",
    ),
    Case(
        "signature-annotation-missing",
        lambda: [SignedLayer(payload=make_payload(docker_reference="x", manifest_digest=DIGEST_A), annotations={})],
        lambda: verifier_for(new_key("p256")),
        "signature annotation missing",
    ),
    Case(
        "signature-not-base64",
        lambda: [
            SignedLayer(
                payload=make_payload(docker_reference="x", manifest_digest=DIGEST_A),
                annotations={"dev.cosignproject.cosign/signature": "%%%"},
            )
        ],
        lambda: verifier_for(new_key("p256")),
        "not base64",
    ),
    Case(
        "annotations-match",
        good("p256", annotations={"env": "prod", "team": "a"}),
        lambda: verifier_for(new_key("p256")),
        None,
        annotations=(("env", "prod"),),
    ),
    Case(
        "annotations-mismatch",
        good("p256", annotations={"env": "dev"}),
        lambda: verifier_for(new_key("p256")),
        "missing or incorrect annotation",
        annotations=(("env", "prod"),),
    ),
    Case(
        "annotations-missing",
        good("p256"),
        lambda: verifier_for(new_key("p256")),
        "missing or incorrect annotation",
        annotations=(("env", "prod"),),
    ),
    Case(
        "tlog-required-without-bundle",
        good("p256"),
        lambda: verifier_for(new_key("p256")),
        "signature has no Rekor bundle",
        tlog=lambda: TlogOptions(required=True, logs=(log_key_of(new_key("p256", slot=9)),)),
    ),
    Case(
        "tlog-valid-set",
        lambda: [
            with_rekor_bundle(
                signed_layer(new_key("p256"), image_digest=DIGEST_A), new_key("p256", slot=9), new_key("p256")
            )
        ],
        lambda: verifier_for(new_key("p256")),
        None,
        tlog=lambda: TlogOptions(required=True, logs=(log_key_of(new_key("p256", slot=9)),)),
    ),
    Case(
        "tlog-set-by-untrusted-log",
        lambda: [
            with_rekor_bundle(
                signed_layer(new_key("p256"), image_digest=DIGEST_A), new_key("p256", slot=8), new_key("p256")
            )
        ],
        lambda: verifier_for(new_key("p256")),
        "unable to verify SET",
        tlog=lambda: TlogOptions(required=True, logs=(log_key_of(new_key("p256", slot=9)),)),
    ),
    Case(
        "tlog-entry-for-another-signer",
        lambda: [
            with_rekor_bundle(
                signed_layer(new_key("p256"), image_digest=DIGEST_A),
                new_key("p256", slot=9),
                new_key("p256", slot=3),
            )
        ],
        lambda: verifier_for(new_key("p256")),
        "transparency log entry key or certificate does not match",
        tlog=lambda: TlogOptions(required=True, logs=(log_key_of(new_key("p256", slot=9)),)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_key_verification(case: Case) -> None:
    layers = [as_layer(s) for s in case.layers()]

    def run() -> tuple[VerifiedSignature, ...]:
        return verify_signatures_with_key(
            layers,
            image_digest=case.image_digest,
            verifier=case.verifier(),
            annotations=dict(case.annotations),
            tlog=case.tlog(),
        )

    if case.expect_error is None:
        verified = run()
        assert verified
        assert all(v.payload.manifest_digest == case.image_digest for v in verified)
    else:
        with pytest.raises(VerificationFailure) as info:
            run()
        assert case.expect_error in str(info.value)


def test_tlog_entry_for_another_payload_is_refused() -> None:
    """A valid SET copied from another signature (same key) does not vouch for this one."""
    key, log = new_key("p256"), new_key("p256", slot=9)
    other = with_rekor_bundle(signed_layer(key, image_digest=DIGEST_B), log, key)
    mine = signed_layer(key, image_digest=DIGEST_A)
    spliced = SignedLayer(
        payload=mine.payload,
        annotations={
            **mine.annotations,
            "dev.sigstore.cosign/bundle": other.annotations["dev.sigstore.cosign/bundle"],
        },
    )
    with pytest.raises(VerificationFailure, match="transparency log entry hash does not match"):
        verify_signatures_with_key(
            [as_layer(spliced)],
            image_digest=DIGEST_A,
            verifier=verifier_for(key),
            annotations={},
            tlog=TlogOptions(required=True, logs=(log_key_of(log),)),
        )


def test_tlog_integrated_time_reported() -> None:
    key, log = new_key("p256"), new_key("p256", slot=9)
    layer = with_rekor_bundle(signed_layer(key, image_digest=DIGEST_A), log, key, integrated_time=1_600_000_123)
    (verified,) = verify_signatures_with_key(
        [as_layer(layer)],
        image_digest=DIGEST_A,
        verifier=verifier_for(key),
        annotations={},
        tlog=TlogOptions(required=True, logs=(log_key_of(log),)),
    )
    assert verified.integrated_time == 1_600_000_123


def test_split_pem_public_keys() -> None:
    a, b = new_key("p256").public_pem, new_key("p256", slot=1).public_pem
    assert split_pem_public_keys(a + b) == (a, b)
    assert split_pem_public_keys(a) == (a,)
    assert split_pem_public_keys("garbage") == ()


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "failed to load public key"),
        ("x" * 20_000, "larger than"),
    ],
)
def test_bad_public_keys(pem: str, message: str) -> None:
    with pytest.raises(VerificationFailure, match=message):
        load_public_key_pem(pem)


def test_small_rsa_key_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pem = small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(VerificationFailure, match="too small"):
        load_public_key_pem(pem)


def test_signature_blob_is_not_trusted_before_verification() -> None:
    """A payload naming the right digest but signed by nobody must not pass: verification precedes parsing."""
    payload = make_payload(docker_reference="x", manifest_digest=DIGEST_A)
    layer = SignatureLayer(
        media_type="application/vnd.dev.cosign.simplesigning.v1+json",
        payload=payload,
        annotations={
            "dev.cosignproject.cosign/signature": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
        },
    )
    with pytest.raises(VerificationFailure, match="invalid signature"):
        verify_signatures_with_key(
            [layer],
            image_digest=DIGEST_A,
            verifier=verifier_for(new_key("p256")),
            annotations={},
            tlog=NO_TLOG,
        )

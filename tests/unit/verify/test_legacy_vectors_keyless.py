"""Known answers on real cosign signatures (containers/image signature/fixtures): the keyless Fulcio + Rekor case and
the PKI certificate-chain case, through ``sigward.verify.keyless``.

Each ``signature-N`` file is ``\\x00sigstore-json\\n`` + JSON {mimeType, payload (base64), annotations}; the image
digest is sha256 of the ``manifest.json`` beside it. Rekor and CT keys come from the public-good trusted root that
sigstore-python ships (``load_trusted_root()``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sigward.errors import VerificationFailure
from sigward.policy.models import CertificateAttestor, KeylessAttestor
from sigward.verify.cosign import SignatureLayer
from sigward.verify.identity import certificate_identity
from sigward.verify.keyless import (
    verify_layer_certificate,
    verify_layer_keyless,
    verify_signatures_keyless,
)
from sigward.verify.keys import spki_pem
from sigward.verify.trust import TrustedRoot, load_trusted_root
from sigward.verify.x509chain import load_certificate_pem, load_certificates_pem, verify_chain, verify_embedded_sct
from tests.support.vectors import require_vectors

pytestmark = pytest.mark.vectors

FULCIO_CASE = "dir-img-cosign-fulcio-rekor-valid"
PKI_CASE = "dir-img-cosign-pki-valid"
INTEGRATED_TIME = 1674247893
SAN = "mitr@redhat.com"
ISSUER = "https://github.com/login/oauth"
PKI_NOW = datetime(2025, 6, 1, tzinfo=UTC)  # inside the PKI certificates' 2024-2052 validity


def vectors() -> Path:
    return require_vectors("cosign-containers-image")


def read_signature(path: Path) -> SignatureLayer:
    raw = path.read_bytes()
    prefix = b"\x00sigstore-json\n"
    assert raw.startswith(prefix), path
    doc = json.loads(raw[len(prefix) :])
    return SignatureLayer(
        media_type=doc["mimeType"], payload=base64.b64decode(doc["payload"]), annotations=doc["annotations"]
    )


def case(name: str) -> tuple[SignatureLayer, str]:
    folder = vectors() / name
    digest = "sha256:" + hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    return read_signature(folder / "signature-1"), digest


def text(name: str) -> str:
    return (vectors() / name).read_text()


def public_good() -> TrustedRoot:
    return load_trusted_root("public-good")


def keyless(**fields: Any) -> KeylessAttestor:
    return KeylessAttestor.model_validate(fields)


def certificates(**fields: Any) -> CertificateAttestor:
    return CertificateAttestor.model_validate(fields)


# --- keyless: Fulcio + Rekor


@pytest.mark.parametrize("with_roots", [True, False], ids=["fulcio_v1-root", "trusted-root-cas"])
def test_fulcio_rekor_valid(with_roots: bool) -> None:
    layer, digest = case(FULCIO_CASE)
    roots = {"roots": text("fulcio_v1.crt.pem")} if with_roots else {}
    verified = verify_layer_keyless(
        layer,
        image_digest=digest,
        keyless=keyless(subject=SAN, issuer=ISSUER, **roots),
        annotations={},
        trusted_root=public_good(),
    )
    assert verified.integrated_time == INTEGRATED_TIME
    assert verified.identity is not None
    assert verified.identity.sans == (SAN,)
    assert verified.identity.issuer == ISSUER
    leaf = verified.certificate
    assert leaf is not None
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(minutes=10)
    signed_at = datetime.fromtimestamp(INTEGRATED_TIME, tz=UTC)
    assert leaf.not_valid_before_utc <= signed_at <= leaf.not_valid_after_utc
    assert [c.subject.rfc4514_string() for c in verified.chain[1:]] == [
        "CN=sigstore-intermediate,O=sigstore.dev",
        "CN=sigstore,O=sigstore.dev",
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "*@redhat.com", "issuer": "https://github.com/*"},
        {"subjectRegExp": "^mitr@redhat", "issuerRegExp": "github\\.com/login"},
        {"additionalExtensions": {"oidcIssuer": ISSUER}},
        {"additionalExtensions": {"1.3.6.1.4.1.57264.1.1": "https://github.com/*"}},
        {"rekor": {"pubkey": "REKOR_PUB"}},
        {"ctlog": {"ignoreSCT": True, "pubkey": "COSIGN_PUB"}},
    ],
)
def test_fulcio_rekor_valid_with_other_policy_forms(fields: dict[str, Any]) -> None:
    layer, digest = case(FULCIO_CASE)
    # The vectors' `rekor.pub` is an unresolved symlink (its text is a path); the same public-good Rekor key is the
    # trusted root's first tlog key.
    rekor_pub = spki_pem(public_good().tlogs[0].key)
    raw = json.dumps(fields).replace("REKOR_PUB", json.dumps(rekor_pub)[1:-1])
    raw = raw.replace("COSIGN_PUB", json.dumps(text("cosign.pub"))[1:-1])
    verified = verify_layer_keyless(
        layer, image_digest=digest, keyless=keyless(**json.loads(raw)), annotations={}, trusted_root=public_good()
    )
    assert verified.integrated_time == INTEGRATED_TIME


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"subject": "someone@redhat.com"}, f"subject mismatch: expected someone@redhat.com, received {SAN}"),
        ({"subjectRegExp": "^bob@"}, f"subject mismatch: expected ^bob@, received {SAN}"),
        (
            {"subject": SAN, "issuer": "https://accounts.google.com"},
            f"issuer mismatch: expected https://accounts.google.com, received {ISSUER}",
        ),
        ({"rekor": {"pubkey": "COSIGN_PUB"}}, "unable to verify SET"),
        ({"ctlog": {"pubkey": "COSIGN_PUB"}}, "ctfe public key not found for embedded SCT"),
        ({"roots": "PKI_ROOT"}, "certificate signed by unknown authority"),
        ({"rekor": {"ignoreTlog": True}}, "expected a signed timestamp to verify an expired certificate"),
        (
            {"additionalExtensions": {"githubWorkflowRepository": "example/app"}},
            "extension mismatch: expected example/app for key githubWorkflowRepository, received nothing",
        ),
    ],
)
def test_fulcio_rekor_negative(fields: dict[str, Any], message: str) -> None:
    layer, digest = case(FULCIO_CASE)
    raw = json.dumps(fields).replace("COSIGN_PUB", json.dumps(text("cosign.pub"))[1:-1])
    raw = raw.replace("PKI_ROOT", json.dumps(text("pki_root_crts.pem"))[1:-1])
    with pytest.raises(VerificationFailure) as err:
        verify_layer_keyless(
            layer, image_digest=digest, keyless=keyless(**json.loads(raw)), annotations={}, trusted_root=public_good()
        )
    assert message in err.value.message


def test_fulcio_without_tlog_verifies_only_at_a_time_inside_the_leaf_validity() -> None:
    layer, digest = case(FULCIO_CASE)
    verified = verify_layer_keyless(
        layer,
        image_digest=digest,
        keyless=keyless(subject=SAN, rekor={"ignoreTlog": True}),
        annotations={},
        trusted_root=public_good(),
        now=datetime.fromtimestamp(INTEGRATED_TIME, tz=UTC),
    )
    assert verified.integrated_time is None


def test_fulcio_signature_does_not_replay_onto_another_image() -> None:
    layer, _ = case(FULCIO_CASE)
    _, other_digest = case(PKI_CASE)
    with pytest.raises(VerificationFailure, match="no matching signatures: invalid or missing digest in claim"):
        verify_signatures_keyless(
            [layer], image_digest=other_digest, keyless=keyless(subject=SAN), annotations={}, trusted_root=public_good()
        )


def test_loose_fulcio_certificate_and_chain() -> None:
    """`fulcio-cert` (another 10-minute Fulcio leaf) chains through `fulcio-chain` inside its validity, and its
    embedded SCT verifies with the public-good CT key."""
    leaf = load_certificate_pem(text("fulcio-cert"), what="fulcio-cert")
    chain = load_certificates_pem(text("fulcio-chain"), what="fulcio-chain")
    at = leaf.not_valid_before_utc + timedelta(minutes=1)
    path = verify_chain(leaf, roots=chain[-1:], intermediates=chain[:-1], at=at)
    assert len(path) == 3
    verify_embedded_sct(path, logs=public_good().ctlogs)
    assert certificate_identity(leaf).sans == (SAN,)
    with pytest.raises(VerificationFailure, match="certificate expired before observed time"):
        verify_chain(leaf, roots=chain[-1:], intermediates=chain[:-1], at=at + timedelta(minutes=10))


# --- certificates: the PKI chain (no Rekor bundle, no SCT)


NO_TLOG = {"ignoreTlog": True}
NO_SCT = {"ignoreSCT": True}
PKI_SANS = ("myhost.example.com", "qiwan@redhat.com")  # Go's order: DNS names, then emails


@pytest.mark.parametrize(
    "fields",
    [
        {"certChain": "ROOT", "rekor": NO_TLOG, "ctlog": NO_SCT},
        {"certChain": "INTERMEDIATE+ROOT", "rekor": NO_TLOG, "ctlog": NO_SCT},
        {"cert": "CERT", "rekor": NO_TLOG},
        {"cert": "CERT", "certChain": "INTERMEDIATE+ROOT", "rekor": NO_TLOG, "ctlog": NO_SCT},
    ],
    ids=["certChain-root", "certChain-full", "cert", "cert-and-certChain"],
)
def test_pki_valid(fields: dict[str, str]) -> None:
    layer, digest = case(PKI_CASE)
    material = {
        "ROOT": text("pki_root_crts.pem"),
        "INTERMEDIATE+ROOT": text("pki_intermediate_crts.pem") + text("pki_root_crts.pem"),
        "CERT": text("pki-cert"),
    }
    resolved = {k: material.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    verified = verify_layer_certificate(
        layer,
        image_digest=digest,
        certificates=certificates(**resolved),
        annotations={},
        trusted_root=public_good(),
        now=PKI_NOW,
    )
    assert verified.identity is not None and verified.identity.sans == PKI_SANS
    assert verified.payload.manifest_digest == digest
    assert verified.integrated_time is None


def test_pki_through_keyless_attestor_with_custom_roots() -> None:
    layer, digest = case(PKI_CASE)
    verified = verify_layer_keyless(
        layer,
        image_digest=digest,
        keyless=keyless(subject="qiwan@redhat.com", roots=text("pki_root_crts.pem"), rekor=NO_TLOG, ctlog=NO_SCT),
        annotations={},
        trusted_root=public_good(),
        now=PKI_NOW,
    )
    assert verified.chain[-1].subject.rfc4514_string().startswith("CN=Linuxera Root Certificate Authority")
    with pytest.raises(VerificationFailure, match=r"issuer mismatch: expected https://x, received $"):
        verify_layer_keyless(
            layer,
            image_digest=digest,
            keyless=keyless(issuer="https://x", roots=text("pki_root_crts.pem"), rekor=NO_TLOG, ctlog=NO_SCT),
            annotations={},
            trusted_root=public_good(),
            now=PKI_NOW,
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"certChain": "FULCIO", "rekor": NO_TLOG, "ctlog": NO_SCT}, "certificate signed by unknown authority"),
        (
            {"cert": "CERT", "certChain": "FULCIO", "rekor": NO_TLOG, "ctlog": NO_SCT},
            "certificate signed by unknown authority",
        ),
        ({"certChain": "ROOT", "rekor": NO_TLOG}, "certificate does not include required embedded SCT"),
        ({"certChain": "ROOT", "ctlog": NO_SCT}, "signature has no Rekor bundle"),
        ({"cert": "FULCIO_LEAF", "rekor": NO_TLOG}, "both public key and certificate were provided but did not match"),
    ],
)
def test_pki_negative(fields: dict[str, Any], message: str) -> None:
    layer, digest = case(PKI_CASE)
    material = {
        "ROOT": text("pki_root_crts.pem"),
        "CERT": text("pki-cert"),
        "FULCIO": text("fulcio_v1.crt.pem"),
        "FULCIO_LEAF": text("fulcio-cert"),
    }
    resolved = {k: material.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    with pytest.raises(VerificationFailure) as err:
        verify_layer_certificate(
            layer,
            image_digest=digest,
            certificates=certificates(**resolved),
            annotations={},
            trusted_root=public_good(),
            now=PKI_NOW,
        )
    assert message in err.value.message

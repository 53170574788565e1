"""Known-answer tests on real cosign/skopeo signatures (containers/image signature/fixtures), through the same
``Verifier`` the CLI uses; only the signature source is in memory, because these images' blobs are not published.

Each ``signature-N`` file is containers/image's on-disk form: ``\\x00sigstore-json\\n`` then JSON with the payload and
the layer annotations, exactly what a ``.sig`` layer holds in a registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from sigward.deadline import Deadline
from sigward.policy.loader import load_policy_text
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.results import Verdict
from tests.support.memory import MemorySignatureSource
from tests.support.vectors import require_vectors

REPO = "192.168.64.2:5000/cosign-signed-single-sample"
IMAGE = f"{REPO}:latest"


def read_signature(path: Path) -> SignatureLayer:
    raw = path.read_bytes()
    prefix = b"\x00sigstore-json\n"
    assert raw.startswith(prefix), path
    doc = json.loads(raw[len(prefix) :])
    return SignatureLayer(
        media_type=doc["mimeType"], payload=base64.b64decode(doc["payload"]), annotations=doc["annotations"]
    )


def policy(public_key: str, *, rekor: str = "ignoreTlog: true") -> str:
    key = textwrap.indent(public_key.strip(), " " * 18)
    return f"""
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: containers-image-vectors
spec:
  validationFailureAction: Enforce
  rules:
  - name: cosign-key
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ["192.168.64.2:5000/*"]
      attestors:
      - entries:
        - keys:
            publicKeys: |-
{key}
            rekor:
              {rekor}
"""


def run_case(
    case_dir: Path, signatures: list[Path], key_file: str, *, rekor: str = "ignoreTlog: true"
) -> tuple[Verdict, str]:
    base = case_dir if case_dir.is_dir() else case_dir.parent
    vectors = require_vectors("cosign-containers-image")
    source = MemorySignatureSource()
    manifest = base / "manifest.json"
    layers = tuple(read_signature(p) for p in signatures)
    if manifest.exists():
        digest = "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest()
        source.add_image(IMAGE, digest)
        source.add_signatures(REPO, digest, layers)
    policies = load_policy_text(policy((vectors / key_file).read_text(), rekor=rekor), "vectors.yaml").policies
    (result,) = Verifier(source=source).verify_images([IMAGE], policies, deadline=Deadline.after(10))
    return result.verdict, result.message


@pytest.mark.parametrize(
    ("case", "key", "expected", "message"),
    [
        ("dir-img-cosign-valid", "cosign.pub", Verdict.PASS, "verified image signatures"),
        ("dir-img-cosign-valid-2", "cosign.pub", Verdict.PASS, "verified image signatures"),
        ("dir-img-cosign-valid-with-tag", "cosign.pub", Verdict.PASS, "verified image signatures"),
        ("dir-img-cosign-mixed", "cosign.pub", Verdict.PASS, "verified image signatures"),
        (
            "dir-img-cosign-modified-manifest",
            "cosign.pub",
            Verdict.FAIL,
            "invalid or missing digest in claim",
        ),
        ("dir-img-cosign-no-manifest", "cosign.pub", Verdict.FAIL, "not found"),
        (
            "dir-img-cosign-other-attachment",
            "cosign.pub",
            Verdict.FAIL,
            "not a cosign simple signing payload",
        ),
        ("dir-img-cosign-valid", "cosign2.pub", Verdict.FAIL, "no matching signatures"),
    ],
)
def test_key_based_vectors(case: str, key: str, expected: Verdict, message: str) -> None:
    case_dir = require_vectors("cosign-containers-image", case)
    verdict, text = run_case(case_dir, sorted(case_dir.glob("signature-*")), key)
    assert verdict == expected, text
    assert message in text
    if expected == Verdict.FAIL:
        assert ".attestors[0].entries[0].keys" in text or "not found" in text


@pytest.mark.parametrize("key", ["cosign.pub", "cosign2.pub"])
def test_unknown_key_signature(key: str) -> None:
    """`unknown-cosign-key.signature` is by a third key: neither cosign.pub nor cosign2.pub accepts it."""
    vectors = require_vectors("cosign-containers-image")
    verdict, text = run_case(vectors / "dir-img-cosign-valid", [vectors / "unknown-cosign-key.signature"], key)
    assert verdict == Verdict.FAIL
    assert "no matching signatures: invalid signature when validating ASN.1 encoded signature" in text


def test_key_with_rekor_set_verifies_offline_against_public_good_rekor_key() -> None:
    """dir-img-cosign-key-rekor-valid: cosign2.pub plus the public-good Rekor key (from sigstore-python's trusted
    root) verifies the SET offline; integratedTime 1674251859."""
    case_dir = require_vectors("cosign-containers-image", "dir-img-cosign-key-rekor-valid")
    verdict, text = run_case(
        case_dir, [case_dir / "signature-1"], "cosign2.pub", rekor="url: https://rekor.sigstore.dev"
    )
    assert verdict == Verdict.PASS, text


def test_key_with_rekor_set_fails_with_the_wrong_rekor_key() -> None:
    vectors = require_vectors("cosign-containers-image")
    case_dir = vectors / "dir-img-cosign-key-rekor-valid"
    wrong_rekor = textwrap.indent((vectors / "cosign.pub").read_text().strip(), " " * 16)
    verdict, text = run_case(case_dir, [case_dir / "signature-1"], "cosign2.pub", rekor=f"pubkey: |-\n{wrong_rekor}")
    assert verdict == Verdict.FAIL
    assert "unable to verify SET" in text


def test_valid_signature_without_rekor_bundle_fails_when_tlog_required() -> None:
    """Kyverno's default (ignoreTlog false) requires the transparency log; a key-only signature then fails."""
    case_dir = require_vectors("cosign-containers-image", "dir-img-cosign-valid")
    verdict, text = run_case(
        case_dir, [case_dir / "signature-1"], "cosign.pub", rekor="url: https://rekor.sigstore.dev"
    )
    assert verdict == Verdict.FAIL
    assert "signature has no Rekor bundle" in text


def run_entry(case_dir: Path, entry: Mapping[str, object]) -> tuple[Verdict, str]:
    """The case through a policy whose single attestor entry is ``entry`` (keyless / certificates)."""
    from tests.support.policies import cluster_policy, dump

    source = MemorySignatureSource()
    digest = "sha256:" + hashlib.sha256((case_dir / "manifest.json").read_bytes()).hexdigest()
    source.add_image(IMAGE, digest)
    source.add_signatures(REPO, digest, (read_signature(case_dir / "signature-1"),))
    doc = cluster_policy(
        "containers-image-vectors",
        [{"imageReferences": ["192.168.64.2:5000/*"], "attestors": [{"entries": [entry]}]}],
    )
    policies = load_policy_text(dump(doc), "vectors.yaml").policies
    (result,) = Verifier(source=source).verify_images([IMAGE], policies, deadline=Deadline.after(10))
    return result.verdict, result.message


KEYLESS_IDENTITY = {"subject": "mitr@redhat.com", "issuer": "https://github.com/login/oauth"}


@pytest.mark.parametrize(
    ("keyless", "expected", "message"),
    [
        # the public-good trusted root's Fulcio CAs, Rekor key and CT key (shipped with sigstore-python)
        (
            {**KEYLESS_IDENTITY, "rekor": {"url": "https://rekor.sigstore.dev"}},
            Verdict.PASS,
            "verified image signatures",
        ),
        (
            {
                "subject": "*@redhat.com",
                "issuerRegExp": "^https://github\\.com/",
                "rekor": {"url": "https://rekor.sigstore.dev"},
            },
            Verdict.PASS,
            "",
        ),
        (
            {
                "subject": "someone@redhat.com",
                "issuer": "https://github.com/login/oauth",
                "rekor": {"url": "https://rekor.sigstore.dev"},
            },
            Verdict.FAIL,
            "subject mismatch: expected someone@redhat.com, received mitr@redhat.com",
        ),
        (
            {
                "subject": "mitr@redhat.com",
                "issuer": "https://accounts.google.com",
                "rekor": {"url": "https://rekor.sigstore.dev"},
            },
            Verdict.FAIL,
            "issuer mismatch: expected https://accounts.google.com, received https://github.com/login/oauth",
        ),
    ],
)
def test_fulcio_rekor_keyless_vector(keyless: dict[str, object], expected: Verdict, message: str) -> None:
    """dir-img-cosign-fulcio-rekor-valid: SAN mitr@redhat.com, GitHub OAuth issuer, SET at 1674247893."""
    case_dir = require_vectors("cosign-containers-image", "dir-img-cosign-fulcio-rekor-valid")
    verdict, text = run_entry(case_dir, {"keyless": keyless})
    assert verdict == expected, text
    assert message in text


def test_fulcio_rekor_keyless_vector_with_the_given_fulcio_root_and_a_wrong_rekor_key() -> None:
    vectors = require_vectors("cosign-containers-image")
    case_dir = vectors / "dir-img-cosign-fulcio-rekor-valid"
    roots = (vectors / "fulcio_v1.crt.pem").read_text()
    good = {**KEYLESS_IDENTITY, "roots": roots, "rekor": {"url": "https://rekor.sigstore.dev"}}
    assert run_entry(case_dir, {"keyless": good})[0] == Verdict.PASS
    wrong = {**good, "rekor": {"url": "https://rekor.sigstore.dev", "pubkey": (vectors / "cosign.pub").read_text()}}
    verdict, text = run_entry(case_dir, {"keyless": wrong})
    assert verdict == Verdict.FAIL and "unable to verify SET" in text


def test_pki_vector_through_the_certificates_attestor() -> None:
    """dir-img-cosign-pki-valid: a private PKI chain (no Rekor bundle, no SCT): valid with the chain, not with the
    Fulcio root."""
    vectors = require_vectors("cosign-containers-image")
    case_dir = vectors / "dir-img-cosign-pki-valid"
    chain = (vectors / "pki_intermediate_crts.pem").read_text() + (vectors / "pki_root_crts.pem").read_text()
    entry = {"certificates": {"certChain": chain, "rekor": {"ignoreTlog": True}, "ctlog": {"ignoreSCT": True}}}
    verdict, text = run_entry(case_dir, entry)
    assert verdict == Verdict.PASS, text
    wrong = {
        "certificates": {
            "certChain": (vectors / "fulcio_v1.crt.pem").read_text(),
            "rekor": {"ignoreTlog": True},
            "ctlog": {"ignoreSCT": True},
        }
    }
    verdict, text = run_entry(case_dir, wrong)
    assert verdict == Verdict.FAIL

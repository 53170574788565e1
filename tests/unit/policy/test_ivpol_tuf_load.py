"""IVPOL ``cosign.tuf`` at load: the mirror (https; http only to loopback; no credentials, query or fragment), the
bootstrap root (``root.data`` base64 as in Kyverno, or ``root.path`` relative to the policy file or absolute, read
now), each problem with its YAML path; ``trustedRoot`` takes precedence; the public-good mirror needs no root."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
from tuf.api.metadata import Metadata, Root, Timestamp  # type: ignore[attr-defined]

from sigward.errors import PolicyError
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.ivpol.models import RootedAttestorSet
from sigward.policy.loader import load_policies, load_policy_text

WHERE = "spec.attestors[0].cosign.tuf"
KEYLESS = {"identities": [{"issuer": "i", "subject": "s"}]}
MIRROR = "https://tuf.example.test"


def tuf_root() -> bytes:
    signer = CryptoSigner.generate_ecdsa()
    root = Root()
    for role in ("root", "timestamp", "snapshot", "targets"):
        root.add_key(signer.public_key, role)
    md = Metadata(root)
    md.sign(signer)
    return md.to_bytes()


ROOT = tuf_root()
B64 = base64.b64encode(ROOT).decode()


def ivpol(tuf: dict[str, Any], **cosign: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "attestors": [
                {
                    "name": "k",
                    "cosign": {"keyless": {"identities": [{"issuer": "i", "subject": "s"}]}, "tuf": tuf, **cosign},
                }
            ],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"}],
        },
    }


def load(doc: dict[str, Any], source: str = "p.yaml") -> ImagePolicy:
    (policy,) = load_policy_text(yaml.safe_dump(doc), source).image_policies
    return policy


def test_data_root_loads_with_a_placeholder_root() -> None:
    policy = load(ivpol({"mirror": MIRROR + "/", "root": {"data": B64}}))
    compiled = policy.attestors["k"]
    assert compiled.tuf is not None
    assert (compiled.tuf.mirror, compiled.tuf.root, compiled.tuf.path) == (MIRROR, ROOT, WHERE)
    assert isinstance(compiled.attestors, RootedAttestorSet) and compiled.attestors.trusted_root.value == ""


def test_public_good_mirror_needs_no_root() -> None:
    compiled = load(ivpol({"mirror": "https://tuf-repo-cdn.sigstore.dev"})).attestors["k"]
    assert compiled.tuf is not None and compiled.tuf.root == b""


def test_loopback_http_mirror_is_allowed() -> None:
    assert load(ivpol({"mirror": "http://127.0.0.1:8080", "root": {"data": B64}})).attestors["k"].tuf is not None


def test_path_relative_to_the_policy_file(tmp_path: Path) -> None:
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "root.json").write_bytes(ROOT)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(ivpol({"mirror": MIRROR, "root": {"path": "roots/root.json"}})))
    (policy,) = load_policies([str(policy_file)]).image_policies
    assert policy.attestors["k"].tuf is not None and policy.attestors["k"].tuf.root == ROOT


def test_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "root.json").write_bytes(ROOT)
    compiled = load(ivpol({"mirror": MIRROR, "root": {"path": str(tmp_path / "root.json")}})).attestors["k"]
    assert compiled.tuf is not None and compiled.tuf.root == ROOT


def test_trusted_root_takes_precedence() -> None:
    value = '{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": [{"baseUrl": "x"}]}'
    policy = load(ivpol({"mirror": "not even a url"}, trustedRoot={"value": value}))
    assert policy.attestors["k"].tuf is None
    assert any("cosign.tuf is ignored" in n for n in policy.notes), policy.notes


def timestamp_metadata() -> bytes:
    md = Metadata(Timestamp())
    md.sign(CryptoSigner.generate_ecdsa())
    return md.to_bytes()


@pytest.mark.parametrize(
    ("tuf", "path", "text"),
    [
        ({"root": {"data": B64}}, ".mirror", "a mirror URL is required"),
        ({"mirror": "ftp://tuf.example", "root": {"data": B64}}, ".mirror", "https://"),
        ({"mirror": "http://tuf.example", "root": {"data": B64}}, ".mirror", "only allowed to a loopback host"),
        ({"mirror": "http://10.0.0.1", "root": {"data": B64}}, ".mirror", "only allowed to a loopback host"),
        ({"mirror": "https://u:p@tuf.example", "root": {"data": B64}}, ".mirror", "credentials"),
        ({"mirror": "https://tuf.example?x=1", "root": {"data": B64}}, ".mirror", "query or fragment"),
        ({"mirror": "https://tuf.example:99999", "root": {"data": B64}}, ".mirror", "not a valid URL"),
        ({"mirror": MIRROR}, ".root", "root.path or root.data is required"),
        ({"mirror": MIRROR, "root": {}}, ".root", "root.path or root.data is required"),
        ({"mirror": MIRROR, "root": {"data": B64, "path": "/x"}}, ".root", "mutually exclusive"),
        ({"mirror": MIRROR, "root": {"data": "not base64!"}}, ".root.data", "base64"),
        ({"mirror": MIRROR, "root": {"data": base64.b64encode(b"{}").decode()}}, ".root", "not TUF root metadata"),
        (
            {"mirror": MIRROR, "root": {"data": base64.b64encode(timestamp_metadata()).decode()}},
            ".root",
            "timestamp metadata, not root",
        ),
        ({"mirror": MIRROR, "root": {"path": "/nonexistent/root.json"}}, ".root.path", "cannot read"),
        ({"mirror": MIRROR, "root": {"path": "root.json"}}, ".root.path", "give an absolute path"),
    ],
)
def test_refused_with_path(tuf: dict[str, Any], path: str, text: str) -> None:
    with pytest.raises(PolicyError) as info:
        load(ivpol(tuf))
    assert any(p.path == WHERE + path and text in p.message for p in info.value.problems), info.value.problems


def test_changing_the_mirror_changes_the_policy_hash() -> None:
    a = load(ivpol({"mirror": MIRROR, "root": {"data": B64}}))
    b = load(ivpol({"mirror": MIRROR + "/other", "root": {"data": B64}}))
    assert a.content_hash != b.content_hash

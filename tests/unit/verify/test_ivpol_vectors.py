"""ImageValidatingPolicy evaluation semantics that do not depend on the signature format (failurePolicy,
subresources, image functions, mutateDigest/verifyDigest/required, globs), on Kyverno's vector policies with their
``notary`` attestor replaced by a cosign key attestor served from memory: a fast harness. The vectors themselves,
with their Notary attestor and SBOM referrers as shipped, run through the real registry in
tests/integration/verify/test_ivpol_notary_vectors.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError
from sigward.policy.loader import load_policy_text
from sigward.references import parse_image_reference
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import evaluate_request, glob_match
from tests.support.memory import MemorySignatureSource
from tests.support.signing import new_key, signed_layer

VECTORS = Path("/work/shared/vectors/kyverno-ivpol/chainsaw")
KEY, OTHER = new_key("p256", slot=0), new_key("p256", slot=1)
SIGNED, UNSIGNED = "ghcr.io/kyverno/test-verify-image:signed", "ghcr.io/kyverno/test-verify-image:unsigned"
DIGESTS = {SIGNED: "sha256:" + "a" * 64, UNSIGNED: "sha256:" + "b" * 64}


def source(signer: Any = KEY) -> MemorySignatureSource:
    src = MemorySignatureSource()
    for image, digest in DIGESTS.items():
        src.add_image(parse_image_reference(image).reference, digest)
    s = signed_layer(signer, image_digest=DIGESTS[SIGNED], docker_reference="ghcr.io/kyverno/test-verify-image")
    layer = SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))
    src.add_signatures("ghcr.io/kyverno/test-verify-image", DIGESTS[SIGNED], (layer,))
    return src


def adapted(policy: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(policy)
    spec = doc["spec"]
    for attestor in spec["attestors"]:
        if "notary" in attestor:
            del attestor["notary"]
            attestor["cosign"] = {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}
    referrers = {a["name"] for a in spec.get("attestations", []) if "referrer" in a}
    spec["attestations"] = [a for a in spec.get("attestations", []) if "referrer" not in a]
    spec["validations"] = [
        v for v in spec["validations"] if not any(f"attestations.{r}" in v["expression"] for r in referrers)
    ]
    return doc


def load(directory: str) -> Any:
    text = (VECTORS / directory / "policy.yaml").read_text()
    return load_policy_text(yaml.safe_dump(adapted(yaml.safe_load(text))), directory).image_policies


def request_for(kind: str, obj: dict[str, Any], *, sub: str = "", op: str = "CREATE") -> dict[str, Any]:
    group, resource = {"Pod": ("", "pods"), "Deployment": ("apps", "deployments")}[kind]
    return {
        "uid": "1",
        "operation": op,
        "resource": {"group": group, "version": "v1", "resource": resource},
        "subResource": sub,
        "namespace": obj.get("metadata", {}).get("namespace", "default"),
        "name": obj.get("metadata", {}).get("name", ""),
        "object": obj,
    }


def deployment(image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": labels or {"prod": "true"}},
        "spec": {
            "template": {
                "metadata": {"labels": labels or {"prod": "true"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            }
        },
    }


def pod(
    image: str, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "labels": labels if labels is not None else {"prod": "true"}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


def test_match_conditions_skip_unlabelled() -> None:
    policies = load("validation-rules/reject")  # matchConditions require label prod=true
    decision = evaluate_request(
        policies,
        request_for("Deployment", deployment(UNSIGNED, labels={"prod": "false"})),
        verifier=Verifier(source=source()),
        deadline=Deadline.after(5),
    )
    assert decision.allowed and decision.outcomes[0].verdict.value == "skip"


class DownSource(MemorySignatureSource):
    def signature_layers(self, repo: Any, image_digest: str, *, deadline: Deadline, tag_prefix: str = "") -> Any:
        raise ExternalServiceError("registry ghcr.io unreachable")

    def bundles(self, repo: Any, image_digest: str, *, deadline: Deadline) -> Any:
        raise ExternalServiceError("registry ghcr.io unreachable")


def test_registry_down_denies_whatever_the_failure_policy() -> None:
    """Regression (wrong allow): the registry is unreachable: an evaluation error, which Kyverno's IVPOL webhook
    denies under Deny whatever the failurePolicy (failurePolicy governs only a webhook that cannot answer)."""
    down = DownSource()
    down.digests = source().digests
    doc = adapted(yaml.safe_load((VECTORS / "validation-rules/accept/policy.yaml").read_text()))
    for failure_policy, allowed in (("Fail", False), ("Ignore", False)):
        doc["spec"]["failurePolicy"] = failure_policy
        policies = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
        decision = evaluate_request(
            policies,
            request_for("Deployment", deployment(SIGNED)),
            verifier=Verifier(source=down),
            deadline=Deadline.after(5),
        )
        assert decision.allowed is allowed, (failure_policy, decision)
        assert decision.outcomes[0].verdict.value == "error"
        assert "unreachable" in decision.outcomes[0].message


def test_block_ephemeral_containers_subresource() -> None:
    policies = load("subresources/block-ephemeral-containers")
    debug = pod(SIGNED)
    debug["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox"}]
    denied = evaluate_request(
        policies,
        request_for("Pod", debug, sub="ephemeralcontainers", op="UPDATE"),
        verifier=Verifier(source=source()),
        deadline=Deadline.after(5),
    )
    assert not denied.allowed and denied.message.endswith("Ephemeral (debug) containers are not permitted.")
    plain = evaluate_request(
        policies, request_for("Pod", pod(SIGNED)), verifier=Verifier(source=source()), deadline=Deadline.after(5)
    )
    assert plain.allowed


def test_imagereference_functions() -> None:
    policies = load("context/imagedata/imagereference")
    good = evaluate_request(
        policies,
        request_for("Deployment", deployment(SIGNED)),
        verifier=Verifier(source=source()),
        deadline=Deadline.after(5),
    )
    assert good.allowed
    bad = evaluate_request(
        policies,
        request_for("Deployment", deployment("docker.io/nginx:1")),
        verifier=Verifier(source=source()),
        deadline=Deadline.after(5),
    )
    assert not bad.allowed
    assert bad.message.endswith("Deployment must be have images from ghcr and images should be tagged")


def test_mutate_digest_pins_and_required_passes() -> None:
    doc = adapted(yaml.safe_load((VECTORS / "validation-rules/accept/policy.yaml").read_text()))
    doc["spec"]["validationConfigurations"] = {}  # CRD defaults: mutateDigest, verifyDigest, required all true
    policies = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    decision = evaluate_request(
        policies, request_for("Pod", pod(SIGNED)), verifier=Verifier(source=source()), deadline=Deadline.after(5)
    )
    assert decision.allowed, decision
    assert decision.patches == (
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"{SIGNED}@{DIGESTS[SIGNED]}"},
    )
    unsigned = evaluate_request(
        policies, request_for("Pod", pod(UNSIGNED)), verifier=Verifier(source=source()), deadline=Deadline.after(5)
    )
    assert not unsigned.allowed and not unsigned.patches


def test_verify_digest_refuses_tag_when_not_pinned() -> None:
    doc = adapted(yaml.safe_load((VECTORS / "validation-rules/accept/policy.yaml").read_text()))
    doc["spec"]["validationConfigurations"] = {"mutateDigest": False}
    policies = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    decision = evaluate_request(
        policies, request_for("Pod", pod(SIGNED)), verifier=Verifier(source=source()), deadline=Deadline.after(5)
    )
    assert not decision.allowed
    assert decision.message == f"Policy check-signed-images failed: image {SIGNED} does not have a digest"


def test_required_without_any_verification_call() -> None:
    doc = adapted(yaml.safe_load((VECTORS / "validation-rules/accept/policy.yaml").read_text()))
    doc["spec"]["validationConfigurations"] = {"mutateDigest": False, "verifyDigest": False}
    doc["spec"]["validations"] = [{"expression": "true"}]
    policies = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    decision = evaluate_request(
        policies, request_for("Pod", pod(SIGNED)), verifier=Verifier(source=source()), deadline=Deadline.after(5)
    )
    assert not decision.allowed
    assert "no policy performed a signature or attestation check on it" in decision.message


@pytest.mark.parametrize(
    ("glob", "text", "expected"),
    [
        ("ghcr.io/*", "ghcr.io/kyverno/x:1", True),
        ("ghcr.io/*", "docker.io/kyverno/x:1", False),
        ("ghcr.io/**", "ghcr.io/a/b/c", True),
        ("ghcr.io/{a,b}/*", "ghcr.io/b/x", True),
        ("ghcr.io/{a,b}/*", "ghcr.io/c/x", False),
        ("ghcr.io/[ab]?/x", "ghcr.io/a1/x", True),
        ("ghcr.io/[!ab]?/x", "ghcr.io/a1/x", False),
    ],
)
def test_glob(glob: str, text: str, expected: bool) -> None:
    assert glob_match(glob, text) is expected

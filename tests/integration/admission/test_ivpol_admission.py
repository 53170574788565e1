"""ImageValidatingPolicies through the admission function (functions-framework, real local registry, images signed
with sigward's test signer): Kyverno's conformance cases (shared/vectors/kyverno-ivpol) give Kyverno's outcome,
IVPOL decisions merge with ClusterPolicy ones (deny from either, pins merged, Warn → warnings, Audit → log), and
their signature checks are answered from the cache under the policy's content hash."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward import wiring
from sigward.admission.review import parse_review
from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages, require_signed_policy
from tests.support.admission import decode_patch, pod, pod_request, review
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry

VECTORS = Path("/work/shared/vectors/kyverno-ivpol/chainsaw")
KEY = new_key("p256")  # the key adm_images signs with
NOTARY_MSG = "failed to verify image with notary cert"


@dataclass(frozen=True)
class IvImages:
    host: str
    signed: str
    signed_digest: str
    unsigned: str
    unsigned_digest: str


@pytest.fixture(scope="module")
def iv_images(registry: LocalRegistry, adm_images: AdmissionImages) -> IvImages:
    """Kyverno's test images (``test-verify-image:signed`` / ``:unsigned``) re-created in the local registry."""
    repo = "kyverno/test-verify-image"
    signed = registry.push_image(repo, tag="signed")
    attach_signatures(registry, repo, signed, [signed_layer(KEY, image_digest=signed)])
    unsigned = registry.push_image(repo, tag="unsigned")
    registry.push_image(repo, tag="signed-keyless")
    host = registry.host
    return IvImages(host, f"{host}/{repo}:signed", signed, f"{host}/{repo}:unsigned", unsigned)


def adapted(directory: str, host: str, **spec_changes: Any) -> dict[str, Any]:
    """A vector policy as shipped, pointed at the local registry; its Notary attestor (Task C) becomes a cosign
    key attestor and Notary-only referrer attestations are dropped (as in tests/unit/verify/test_ivpol_vectors)."""
    doc: dict[str, Any] = yaml.safe_load((VECTORS / directory / "policy.yaml").read_text())
    spec = doc["spec"]
    for m in spec.get("matchImageReferences", []):
        if m.get("glob") in ("ghcr.io/*", "ghcr.io/**"):
            m["glob"] = f"{host}/" + m["glob"].partition("/")[2]
    for attestor in spec.get("attestors") or []:
        if "notary" in attestor:
            del attestor["notary"]
            attestor["cosign"] = {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}
    referrers = {a["name"] for a in spec.get("attestations", []) if "referrer" in a}
    spec["attestations"] = [a for a in spec.get("attestations", []) if "referrer" not in a]
    spec["validations"] = [
        v for v in spec["validations"] if not any(f"attestations.{r}" in v["expression"] for r in referrers)
    ]
    spec.update(copy.deepcopy(spec_changes))
    return doc


def deployment_request(image: str) -> dict[str, Any]:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default", "labels": {"prod": "true"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"prod": "true"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            }
        },
    }
    return pod_request(obj, kind="Deployment", group="apps")


def labelled_pod(image: str, **annotations: str) -> dict[str, Any]:
    obj = pod(image, labels={"prod": "true"})
    if annotations:
        obj["metadata"]["annotations"] = dict(annotations)
    return obj


def decide(env: AdmissionEnv, request: dict[str, Any], path: str = "/mutate") -> dict[str, Any]:
    resp = env.post(path, review(request))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    response: dict[str, Any] = resp.get_json()["response"]
    assert response["uid"] == request["uid"]
    return response


@dataclass(frozen=True)
class Case:
    directory: str
    image: str  # "signed" / "unsigned"
    kind: str
    allowed: bool
    message: str = ""
    warning: str = ""
    annotations: tuple[tuple[str, str], ...] = ()


CASES = [
    Case("validation-rules/accept", "signed", "Deployment", True),
    Case(
        "validation-rules/reject", "unsigned", "Deployment", False, f"Policy check-signed-images failed: {NOTARY_MSG}"
    ),
    Case(
        "validation-actions/deny", "unsigned", "Deployment", False, f"Policy check-signed-images failed: {NOTARY_MSG}"
    ),
    Case(
        "validation-actions/none", "unsigned", "Deployment", False, f"Policy check-signed-images failed: {NOTARY_MSG}"
    ),
    Case("validation-actions/audit", "unsigned", "Deployment", True),
    Case(
        "validation-actions/warn",
        "unsigned",
        "Deployment",
        True,
        warning=f"Policy check-signed-images failed: {NOTARY_MSG}",
    ),
    Case(
        "security/forged-verification-annotation",
        "unsigned",
        "Pod",
        False,
        f"Policy check-signed-images-forged-annotation failed: {NOTARY_MSG}",
        annotations=(("kyverno.io/image-verification-outcomes", '{"IMAGE":"pass"}'),),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.directory for c in CASES])
def test_vector_through_admission(case: Case, admission_env: Callable[..., AdmissionEnv], iv_images: IvImages) -> None:
    env = admission_env(adapted(case.directory, iv_images.host))
    image = iv_images.signed if case.image == "signed" else iv_images.unsigned
    if case.kind == "Pod":
        notes = {k: v.replace("IMAGE", image) for k, v in case.annotations}
        request = pod_request(labelled_pod(image, **notes))
    else:
        request = deployment_request(image)
    for path in ("/mutate", "/validate"):
        response = decide(env, request, path)
        assert response["allowed"] is case.allowed, (path, response)
        if not case.allowed:
            assert response["status"]["message"] == case.message
        assert response.get("warnings", []) == ([case.warning] if case.warning else [])


def test_audit_failure_is_logged_not_shown(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages, capsys: pytest.CaptureFixture[str]
) -> None:
    env = admission_env(adapted("validation-actions/audit", iv_images.host))
    response = decide(env, deployment_request(iv_images.unsigned))
    assert response["allowed"] is True and "warnings" not in response
    logged = capsys.readouterr()
    assert "ImageValidatingPolicy audit failure" in logged.out + logged.err
    assert NOTARY_MSG in logged.out + logged.err


def test_mutate_digest_pins_through_admission(admission_env: Callable[..., AdmissionEnv], iv_images: IvImages) -> None:
    env = admission_env(adapted("validation-rules/accept", iv_images.host, validationConfigurations={}))
    resp = env.post("/mutate", review(pod_request(labelled_pod(iv_images.signed))))
    assert resp.get_json()["response"]["allowed"] is True
    assert decode_patch(resp.get_json()) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"{iv_images.signed}@{iv_images.signed_digest}"}
    ]
    # the validate path never patches, and with verifyDigest the pinned form is what it admits
    pinned = f"{iv_images.signed}@{iv_images.signed_digest}"
    assert decide(env, pod_request(labelled_pod(pinned)), "/validate")["allowed"] is True
    unsigned = decide(env, pod_request(labelled_pod(iv_images.unsigned)))
    assert unsigned["allowed"] is False and "patch" not in unsigned


def test_pins_merge_with_cluster_policy_pinning(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages
) -> None:
    """Both forms pin the same container: one patch, not two conflicting ones."""
    env = admission_env(
        require_signed_policy(iv_images.host, pattern=f"{iv_images.host}/kyverno/*"),
        adapted("validation-rules/accept", iv_images.host, validationConfigurations={}),
    )
    resp = env.post("/mutate", review(pod_request(labelled_pod(iv_images.signed))))
    assert resp.get_json()["response"]["allowed"] is True
    assert decode_patch(resp.get_json()) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"{iv_images.signed}@{iv_images.signed_digest}"}
    ]


def test_conflicting_pins_deny() -> None:
    """A tag that moved between the two resolutions gives two different pins of one field: denied, not guessed."""
    from sigward.admission.ivpol import merge
    from sigward.verify.ivpol import Decision

    a = {"op": "replace", "path": "/spec/containers/0/image", "value": "r/x:1@sha256:" + "a" * 64}
    b = {**a, "value": "r/x:1@sha256:" + "b" * 64}
    merged = merge(allowed=True, message="", patch=[a], warnings=[], image=Decision(True, patches=(b,)), mutate=True)
    assert merged.allowed is False and "conflicting digest pins" in merged.message
    same = merge(allowed=True, message="", patch=[a], warnings=[], image=Decision(True, patches=(a,)), mutate=True)
    assert same.allowed and same.patch == (a,)
    validate = merge(allowed=True, message="", patch=(), warnings=[], image=Decision(True, patches=(b,)), mutate=False)
    assert validate.allowed and validate.patch == ()


@pytest.mark.parametrize(
    ("cluster_signed", "ivpol_signed", "allowed"),
    [(True, True, True), (False, True, False), (True, False, False), (False, False, False)],
    ids=["both-pass", "clusterpolicy-denies", "ivpol-denies", "both-deny"],
)
def test_deny_from_either_form_denies(
    admission_env: Callable[..., AdmissionEnv],
    iv_images: IvImages,
    adm_images: AdmissionImages,
    cluster_signed: bool,
    ivpol_signed: bool,
    allowed: bool,
) -> None:
    """The ClusterPolicy covers adm/*, the IVPOL covers kyverno/*; a Pod runs one image of each."""
    env = admission_env(
        require_signed_policy(iv_images.host, pattern=f"{iv_images.host}/adm/*"),
        adapted(
            "validation-rules/reject", iv_images.host, matchImageReferences=[{"glob": f"{iv_images.host}/kyverno/*"}]
        ),
    )
    images = (
        adm_images.signed if cluster_signed else adm_images.unsigned,
        iv_images.signed if ivpol_signed else iv_images.unsigned,
    )
    response = decide(env, pod_request(pod(*images, labels={"prod": "true"})))
    assert response["allowed"] is allowed, response
    if not allowed:
        message = response["status"]["message"]
        assert ("require-signed" in message) is (not cluster_signed)
        assert (NOTARY_MSG in message) is (not ivpol_signed)


def test_cache_hit_is_answered_from_memory_and_keyed_by_policy_content(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages
) -> None:
    env = admission_env(adapted("validation-rules/accept", iv_images.host))
    pinned = f"{iv_images.signed}@{iv_images.signed_digest}"
    request = pod_request(labelled_pod(pinned))
    assert decide(env, request)["allowed"] is True
    service = wiring.process_services().admission()
    again = service.decide_from_memory(parse_review(review(request)), mode="mutate")
    assert again is not None and again.allowed
    # an unsigned image was never verified: not in memory, so the event loop hands it to a thread
    unverified = pod_request(labelled_pod(f"{iv_images.unsigned}@{iv_images.unsigned_digest}"))
    assert service.decide_from_memory(parse_review(review(unverified)), mode="mutate") is None
    # the same policy with another CEL expression has another content hash: its verdicts are not reused
    changed = adapted("validation-rules/accept", iv_images.host)
    changed["spec"]["validations"][0]["expression"] += " && true"
    env2 = admission_env(changed)
    service2 = wiring.process_services().admission()
    assert service2.decide_from_memory(parse_review(review(request)), mode="mutate") is None
    assert decide(env2, request)["allowed"] is True


def test_registry_down_denies_whatever_the_failure_policy(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages
) -> None:
    """Regression (wrong allow under failurePolicy Ignore): signatures in a registry that refuses connections are an
    evaluation error, which Kyverno's IVPOL webhook denies under Deny whatever the failurePolicy (that only governs
    a webhook that cannot answer)."""
    from tests.support.netutil import free_port

    dead = f"127.0.0.1:{free_port()}"
    for failure_policy, allowed in (("Fail", False), ("Ignore", False)):
        doc = adapted("validation-rules/accept", iv_images.host, failurePolicy=failure_policy)
        doc["spec"]["matchImageReferences"] = [{"glob": f"{dead}/*"}]
        env = admission_env(doc, extra_env={"SIGWARD_INSECURE_REGISTRIES": f"{iv_images.host},{dead}"})
        pinned = f"{dead}/kyverno/x@sha256:" + "c" * 64
        response = decide(env, pod_request(labelled_pod(pinned)))
        assert response["allowed"] is allowed, (failure_policy, response)
        assert response["status"]["message"].startswith("Policy check-signed-images error: "), response


def test_vector_mutate_then_validate(admission_env: Callable[..., AdmissionEnv], iv_images: IvImages) -> None:
    """chainsaw mutate-then-validate: /mutate pins the tag; /validate (which does not pin) admits the pinned Pod and
    refuses the tag-only one with the policy's message — the validating webhook sees the stored object."""
    env = admission_env(adapted("mutate-then-validate", iv_images.host))
    tag = f"{iv_images.host}/kyverno/test-verify-image:signed-keyless"
    resp = env.post("/mutate", review(pod_request(pod(tag))))
    assert resp.get_json()["response"]["allowed"] is True
    (patch,) = decode_patch(resp.get_json())
    assert patch["path"] == "/spec/containers/0/image" and patch["value"].startswith(f"{tag}@sha256:")
    assert decide(env, pod_request(pod(patch["value"])), "/validate")["allowed"] is True
    refused = decide(env, pod_request(pod(tag)), "/validate")
    assert refused["allowed"] is False
    assert refused["status"]["message"] == (
        "Policy ivpol-mutate-then-validate failed: image must already be pinned to a digest by the mutating webhook"
    )


def test_vector_mutate_digest_disabled(admission_env: Callable[..., AdmissionEnv], iv_images: IvImages) -> None:
    """chainsaw mutate-digest-disabled: admitted, the image left as written (no patch)."""
    env = admission_env(adapted("mutate-digest-disabled", iv_images.host))
    tag = f"{iv_images.host}/kyverno/test-verify-image:signed-keyless"
    resp = env.post("/mutate", review(pod_request(pod(tag))))
    assert resp.get_json()["response"]["allowed"] is True
    assert decode_patch(resp.get_json()) == []

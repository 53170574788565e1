"""Kyverno's CEL PolicyException vectors (exceptions/autogen, report/with-exception) and the ``resource.get``
context vectors (context/configmap, context/resource) through the admission function and the real local registry
(Kyverno's test images re-created there, as in test_ivpol_admission), cluster objects shipped beside the policy or
read from the Kubernetes API stand-in: Kyverno's outcome for every resource, the exception named in the decision
audit, nothing pinned for an exempted resource; negative twins (exception absent, condition false, object missing,
wrong token)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.admission.conftest import AdmissionEnv
from tests.integration.admission.test_ivpol_admission import IvImages, adapted, decide, iv_images
from tests.support.admission import decode_patch, pod_request, review
from tests.support.kubeapi import KubeAPI

pytestmark = pytest.mark.registry
__all__ = ["iv_images"]  # the module-scoped fixture, re-exported for pytest

VECTORS = Path("/work/shared/vectors/kyverno-ivpol/chainsaw")
KYVERNO_IMAGE = "ghcr.io/kyverno/test-verify-image"
GROUPS = {"Deployment": "apps", "StatefulSet": "apps", "CronJob": "batch", "Pod": ""}


def resources(directory: str, name: str, host: str) -> list[dict[str, Any]]:
    """The vector's resource documents with Kyverno's image re-pointed at the local registry, in ``default``."""
    text = (VECTORS / directory / name).read_text().replace(KYVERNO_IMAGE, f"{host}/kyverno/test-verify-image")
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        doc["metadata"].setdefault("namespace", "default")
    return docs


def vector_doc(directory: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((VECTORS / directory / name).read_text())
    return doc


def request_for(obj: dict[str, Any]) -> dict[str, Any]:
    return pod_request(obj, kind=obj["kind"], group=GROUPS[obj["kind"]])


def audit_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr()
    found = []
    for line in (out.out + out.err).splitlines():
        if "admission decision" in line and line.startswith("{"):
            found.append(json.loads(line))
    return found


AUTOGEN = "exceptions/autogen"
DENIED = "Policy ivpol-autogen-sample failed: failed to verify image with notary cert"


@pytest.mark.parametrize(
    ("file", "allowed", "kind"),
    [
        *(("bad-resources.yaml", False, k) for k in ("Deployment", "StatefulSet", "CronJob")),
        *(("good-resources.yaml", True, k) for k in ("Deployment", "StatefulSet", "CronJob")),
    ],
)
def test_autogen_vector_enforced_resources(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages, file: str, allowed: bool, kind: str
) -> None:
    env = admission_env(adapted(AUTOGEN, iv_images.host), vector_doc(AUTOGEN, "exception.yaml"))
    (obj,) = [d for d in resources(AUTOGEN, file, iv_images.host) if d["kind"] == kind]
    response = decide(env, request_for(obj), "/mutate")
    assert response["allowed"] is allowed, response
    if not allowed:
        assert response["status"]["message"] == DENIED


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "CronJob"])
def test_autogen_vector_skipped_resources_are_exempted(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    env = admission_env(adapted(AUTOGEN, iv_images.host), vector_doc(AUTOGEN, "exception.yaml"))
    (obj,) = [d for d in resources(AUTOGEN, "skipped-resources.yaml", iv_images.host) if d["kind"] == kind]
    capsys.readouterr()
    for path in ("/mutate", "/validate"):
        resp = env.post(path, review(request_for(obj)))
        response = resp.get_json()["response"]
        assert response["allowed"] is True, (path, response)
        assert decode_patch(resp.get_json()) == [], path  # an exempted policy pins nothing
    (first, _) = audit_lines(capsys)
    assert first["exceptions"] == ["default/check-name"]
    (outcome,) = first["image_policies"]
    assert outcome == {
        "policy": "ivpol-autogen-sample",
        "verdict": "skip",
        "message": "rule is skipped due to policy exception: default/check-name",
        "exceptions": ["default/check-name"],
    }


@pytest.mark.parametrize(
    ("case", "exception"),
    [
        ("no exception loaded", None),
        ("condition names other resources", {"name": "c", "expression": "object.metadata.name == 'someone-else'"}),
    ],
)
def test_autogen_vector_skipped_resource_denied_without_its_exception(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages, case: str, exception: dict[str, Any] | None
) -> None:
    docs = [adapted(AUTOGEN, iv_images.host)]
    if exception is not None:
        exc = vector_doc(AUTOGEN, "exception.yaml")
        exc["spec"]["matchConditions"] = [exception]
        docs.append(exc)
    env = admission_env(*docs)
    (obj,) = [d for d in resources(AUTOGEN, "skipped-resources.yaml", iv_images.host) if d["kind"] == "Deployment"]
    response = decide(env, request_for(obj), "/mutate")
    assert response["allowed"] is False, case
    assert response["status"]["message"] == DENIED


WITH_EXCEPTION = "report/with-exception"


@pytest.mark.parametrize(
    ("file", "verdict", "exceptions"),
    [
        ("skipped-deployment.yaml", "skip", ["default/exclude-skipped-deployment"]),
        ("bad-deployment.yaml", "fail", None),
    ],
)
def test_with_exception_vector(
    admission_env: Callable[..., AdmissionEnv],
    iv_images: IvImages,
    capsys: pytest.CaptureFixture[str],
    file: str,
    verdict: str,
    exceptions: list[str] | None,
) -> None:
    """As shipped the policy is background-only (``evaluation.admission.enabled: false``): both deployments are
    admitted unevaluated. Evaluated at admission (Audit: admitted either way), the skipped deployment is skipped
    naming the exception and the bad one fails with the policy's message (Kyverno's report assert)."""
    (obj,) = resources(WITH_EXCEPTION, file, iv_images.host)
    shipped = admission_env(adapted(WITH_EXCEPTION, iv_images.host), vector_doc(WITH_EXCEPTION, "exception.yaml"))
    capsys.readouterr()
    assert decide(shipped, request_for(obj), "/validate")["allowed"] is True
    assert "image_policies" not in audit_lines(capsys)[0]
    at_admission = adapted(WITH_EXCEPTION, iv_images.host, evaluation={"admission": {"enabled": True}})
    env = admission_env(at_admission, vector_doc(WITH_EXCEPTION, "exception.yaml"))
    assert decide(env, request_for(obj), "/validate")["allowed"] is True  # Audit
    (line,) = audit_lines(capsys)
    (outcome,) = line["image_policies"]
    assert outcome["verdict"] == verdict
    assert outcome.get("exceptions") == exceptions
    assert line.get("exceptions") == exceptions
    if verdict == "fail":
        assert outcome["message"].startswith("failed to verify image with notary cert")


CONFIGMAP = "context/configmap"


@pytest.mark.parametrize(
    ("file", "required", "message"),
    [
        ("positive.yaml", False, ""),
        ("negative.yaml", False, "Policy check-deployment-labels failed: Deployment labels must be env=prod"),
        ("negative.yaml", None, "Policy check-deployment-labels failed: Deployment labels must be env=prod"),
        (  # as shipped: Kyverno's code at the vector commit (EnforceRequired, #16853) denies what no policy verified;
            # the chainsaw step still expects it admitted (written before required was enforced)
            "positive.yaml",
            None,
            "is not verified: no policy performed a signature or attestation check on it",
        ),
    ],
)
def test_configmap_vector_resource_get_lowercase(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages, file: str, required: bool | None, message: str
) -> None:
    """``resource.get`` (Kyverno's camelCase spelling) reads the ConfigMap shipped beside the policy."""
    changes = {} if required is None else {"validationConfigurations": {"required": required}}
    policy = adapted(CONFIGMAP, iv_images.host, **changes)
    assert 'resource.get("v1", "configmaps"' in policy["spec"]["variables"][0]["expression"]
    env = admission_env(policy, vector_doc(CONFIGMAP, "configmap.yaml"), extra_env={"SIGWARD_CLUSTER": "none"})
    (obj,) = resources(CONFIGMAP, file, iv_images.host)
    response = decide(env, request_for(obj), "/mutate")
    assert response["allowed"] is (not message), response
    if message:
        assert message in response["status"]["message"]


def test_configmap_vector_without_the_configmap_is_an_error(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages
) -> None:
    env = admission_env(adapted(CONFIGMAP, iv_images.host), extra_env={"SIGWARD_CLUSTER": "none"})
    (obj,) = resources(CONFIGMAP, "positive.yaml", iv_images.host)
    response = decide(env, request_for(obj), "/mutate")
    assert response["allowed"] is False  # failurePolicy Fail (the CRD default)
    assert "configmap default/policy-cm" in response["status"]["message"]


RESOURCE = "context/resource"
RESOURCE_DENIED = "Policy ivpol-resource-lookup-sample failed: Deployment labels must be env=prod"


@pytest.mark.parametrize(
    ("file", "pod", "token", "message"),
    [
        ("positive.yaml", True, None, ""),
        ("negative.yaml", True, None, RESOURCE_DENIED),
        (
            "positive.yaml",
            False,
            None,
            "pod default/policy-pod not found in the cluster",
        ),  # failurePolicy Fail (CRD default)
        ("positive.yaml", True, "wrong-token", "pod default/policy-pod"),
    ],
)
def test_resource_vector_reads_a_pod_through_the_cluster_connection(
    admission_env: Callable[..., AdmissionEnv],
    iv_images: IvImages,
    tmp_path: Path,
    file: str,
    pod: bool,
    token: str | None,
    message: str,
) -> None:
    """``resource.get("v1", "pods", …)`` reads the vector's Pod from the Kubernetes API stand-in."""
    with KubeAPI(tmp_path / "kube-tls") as kube:
        if pod:
            shipped = vector_doc(RESOURCE, "pod.yaml")
            shipped["metadata"]["namespace"] = "default"
            kube.add(shipped)
        kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", token=token)
        env = admission_env(adapted(RESOURCE, iv_images.host), extra_env={"SIGWARD_KUBECONFIG": str(kubeconfig)})
        (obj,) = resources(RESOURCE, file, iv_images.host)
        response = decide(env, request_for(obj), "/mutate")
    assert response["allowed"] is (not message), response
    if message:
        assert message in response["status"]["message"], response
        assert "wrong-token" not in response["status"]["message"]

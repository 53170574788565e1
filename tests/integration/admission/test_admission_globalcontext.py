"""GlobalContextEntries through admission and the real registry: a ClusterPolicy ``context[].globalReference`` key
(a ConfigMap shipped beside the policy, listed by a kubernetesResource entry; an apiCall entry through the Kubernetes
API stand-in) and Kyverno's chainsaw vector image-validating-policies/context/globalreference
(``globalContext.get`` of an apiCall projection), with their negative twins: another key, wrong token, API down
(failurePolicy decides), the count Kyverno's test denies on."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.integration.admission.test_admission_context import NO_CLUSTER, SIGNER, STRANGER, decide
from tests.integration.admission.test_ivpol_admission import IvImages, adapted, deployment_request, iv_images
from tests.integration.admission.test_ivpol_admission import decide as decide_request
from tests.support.admission import pod
from tests.support.kubeapi import KubeAPI, configmap
from tests.support.policies import cluster_policy, key_verification, keys_entry

pytestmark = pytest.mark.registry
__all__ = ["iv_images"]  # the fixture, imported for this module's tests

VECTOR = Path("/work/shared/vectors/kyverno-ivpol/chainsaw/context/globalreference")
KEYS_ENTRY = {
    "apiVersion": "kyverno.io/v2beta1",
    "kind": "GlobalContextEntry",
    "metadata": {"name": "signing-keys"},
    "spec": {
        "kubernetesResource": {"version": "v1", "resource": "configmaps", "namespace": "sigs"},
        "projections": [{"name": "org", "jmesPath": "[?metadata.name=='keys'] | [0].data.org"}],
    },
}
APICALL_ENTRY = {
    "apiVersion": "kyverno.io/v2alpha1",
    "kind": "GlobalContextEntry",
    "metadata": {"name": "keys-cm"},
    "spec": {"apiCall": {"urlPath": "/api/v1/namespaces/sigs/configmaps/keys", "refreshInterval": "1m"}},
}


def reference_policy(host: str, reference: dict[str, str], failure_policy: str | None = None) -> dict[str, Any]:
    doc = cluster_policy(
        "verify-with-global-key",
        [key_verification([f"{host}/adm/*"], [keys_entry("{{ keys }}")], mutate_digest=False)],
        failure_policy=failure_policy,
    )
    doc["spec"]["rules"][0]["context"] = [{"name": "keys", "globalReference": reference}]
    return doc


@pytest.mark.parametrize(("key", "signed_allowed"), [(SIGNER, True), (STRANGER, False)])
def test_global_reference_projection_of_shipped_configmaps(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, key: str, signed_allowed: bool
) -> None:
    env = admission_env(
        reference_policy(adm_images.host, {"name": "signing-keys.org"}),
        KEYS_ENTRY,
        configmap("sigs", "keys", {"org": key}),
        extra_env=NO_CLUSTER,
    )
    assert decide(env, pod(adm_images.signed))["allowed"] is signed_allowed
    assert decide(env, pod(adm_images.unsigned))["allowed"] is False


def test_global_reference_jmespath_over_the_whole_entry(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    ref = {"name": "signing-keys", "jmesPath": "[?metadata.name=='keys'] | [0].data.org"}
    env = admission_env(
        reference_policy(adm_images.host, ref),
        KEYS_ENTRY,
        configmap("sigs", "keys", {"org": SIGNER}),
        extra_env=NO_CLUSTER,
    )
    assert decide(env, pod(adm_images.signed))["allowed"] is True


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeAPI]:
    with KubeAPI(tmp_path / "kube-tls") as api:
        api.add(configmap("sigs", "keys", {"org": SIGNER}))
        yield api


@pytest.mark.parametrize(
    ("token", "failure_policy", "allowed"),
    [(None, "Fail", True), ("wrong-token", "Fail", False), ("wrong-token", "Ignore", True)],
)
def test_apicall_entry_through_the_cluster_connection(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    kube: KubeAPI,
    tmp_path: Path,
    token: str | None,
    failure_policy: str,
    allowed: bool,
) -> None:
    policy = reference_policy(adm_images.host, {"name": "keys-cm", "jmesPath": "data.org"}, failure_policy)
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", token=token)
    env = admission_env(policy, APICALL_ENTRY, extra_env={"SIGWARD_KUBECONFIG": str(kubeconfig)})
    response = decide(env, pod(adm_images.signed))
    assert response["allowed"] is allowed, response
    if not allowed:
        message = response["status"]["message"]
        assert "GlobalContextEntry keys-cm" in message and "permission denied" in message
        assert "wrong-token" not in message


# Kyverno's chainsaw test: the entry counts Deployments in the test namespace through the API server; one exists, so
# the new Deployment is denied with the count in the message.
KYVERNO_DENIAL = (
    "Policy ivpol-apicall-correct failed: cannot create new deployment as main-deployment already exists, "
    "variables.dcount: 1"
)


def vector_docs(host: str) -> list[dict[str, Any]]:
    entry = yaml.safe_load((VECTOR / "gctxentry.yaml").read_text())
    # The vector verifies no signature (its attestor is never called): `required` is turned off so the twins that
    # Kyverno's test does not exercise (dcount 0) show the globalContext validation passing, not the required check.
    return [adapted("context/globalreference", host, validationConfigurations={"required": False}), entry]


def deployments(*namespaces: str) -> list[dict[str, Any]]:
    main = yaml.safe_load((VECTOR / "main-deployment.yaml").read_text())
    out = []
    for ns in namespaces:
        d = copy.deepcopy(main)
        d["metadata"]["namespace"] = ns
        out.append(d)
    return out


@pytest.mark.parametrize(
    ("existing", "allowed", "message"),
    [
        (("test-globalcontext-apicall-correct",), False, KYVERNO_DENIAL),
        (("elsewhere",), True, ""),  # none in the test namespace: dcount 0
        ((), True, ""),
    ],
)
def test_chainsaw_globalreference_vector(
    admission_env: Callable[..., AdmissionEnv],
    iv_images: IvImages,
    kube: KubeAPI,
    tmp_path: Path,
    existing: tuple[str, ...],
    allowed: bool,
    message: str,
) -> None:
    kube.add_list("/apis/apps/v1/deployments", "Deployment", deployments(*existing))
    env = admission_env(
        *vector_docs(iv_images.host),
        extra_env={"SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig"))},
    )
    response = decide_request(env, deployment_request(iv_images.signed))
    assert response["allowed"] is allowed, response
    if message:
        assert response["status"]["message"] == message


def test_chainsaw_vector_with_the_api_down_fails_closed(
    admission_env: Callable[..., AdmissionEnv], iv_images: IvImages, tmp_path: Path
) -> None:
    with KubeAPI(tmp_path / "gone") as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    env = admission_env(*vector_docs(iv_images.host), extra_env={"SIGWARD_KUBECONFIG": str(kubeconfig)})
    response = decide_request(env, deployment_request(iv_images.signed))
    assert response["allowed"] is False, response
    assert "GlobalContextEntry gctxentry-apicall-projections" in response["status"]["message"]

"""Admission through the real registry with Kyverno's context features (chainsaw tests configmap-context-lookup,
noconfigmap-diffimage-success, keyed-secret, imageExtractors-* preconditions): cluster data shipped beside the
policies or read from a Kubernetes API stand-in, with their negative twins (wrong key, missing ConfigMap, wrong
token, precondition not met, other namespace)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.support.admission import pod, pod_request, review
from tests.support.kubeapi import KubeAPI, configmap, namespace, secret
from tests.support.policies import cluster_policy, key_verification, keys_entry
from tests.support.signing import new_key

pytestmark = pytest.mark.registry

SIGNER = new_key("p256").public_pem  # the key adm_images are signed with
STRANGER = new_key("p256", slot=7).public_pem
NO_CLUSTER = {"SIGWARD_CLUSTER": "none"}


def decide(env: AdmissionEnv, obj: dict[str, Any]) -> dict[str, Any]:
    resp = env.post("/mutate", review(pod_request(obj)))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out: dict[str, Any] = resp.get_json()["response"]
    return out


def configmap_policy(host: str, *, failure_policy: str | None = None, cm: str = "keys") -> dict[str, Any]:
    doc = cluster_policy(
        "verify-image-with-configmap-key",
        [key_verification([f"{host}/adm/*"], [keys_entry("{{ keys.data.org }}")], mutate_digest=False)],
        failure_policy=failure_policy,
    )
    doc["spec"]["rules"][0]["context"] = [{"name": "keys", "configMap": {"name": cm, "namespace": "default"}}]
    return doc


def test_configmap_shipped_beside_the_policy(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(
        configmap_policy(adm_images.host), configmap("default", "keys", {"org": SIGNER}), extra_env=NO_CLUSTER
    )
    assert decide(env, pod(adm_images.signed))["allowed"] is True
    denied = decide(env, pod(adm_images.unsigned))
    assert denied["allowed"] is False


def test_configmap_with_another_key_denies(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(
        configmap_policy(adm_images.host), configmap("default", "keys", {"org": STRANGER}), extra_env=NO_CLUSTER
    )
    assert decide(env, pod(adm_images.signed))["allowed"] is False


@pytest.mark.parametrize(("failure_policy", "allowed"), [("Fail", False), ("Ignore", True)])
def test_missing_configmap_is_an_error_failure_policy_decides(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, failure_policy: str, allowed: bool
) -> None:
    """Kyverno's noconfigmap-* tests: the lookup fails, the rule errors, failurePolicy decides (never an empty key)."""
    env = admission_env(configmap_policy(adm_images.host, failure_policy=failure_policy), extra_env=NO_CLUSTER)
    response = decide(env, pod(adm_images.signed))
    assert response["allowed"] is allowed
    if not allowed:
        assert "configmap default/keys" in response["status"]["message"]


PRE = {"all": [{"key": "{{ request.namespace }}", "operator": "Equals", "value": "prod", "message": "prod only"}]}


def test_preconditions_skip_and_apply(admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages) -> None:
    doc = cluster_policy(
        "pre", [key_verification([f"{adm_images.host}/adm/*"], [keys_entry(SIGNER)], mutate_digest=False)]
    )
    doc["spec"]["rules"][0]["preconditions"] = PRE
    env = admission_env(doc, extra_env=NO_CLUSTER)
    assert decide(env, pod(adm_images.unsigned, namespace="dev"))["allowed"] is True  # skipped: not prod
    assert decide(env, pod(adm_images.unsigned, namespace="prod"))["allowed"] is False
    assert decide(env, pod(adm_images.signed, namespace="prod"))["allowed"] is True


def test_policy_without_namespace_applies_to_default_only(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    doc = cluster_policy(
        "ns", [key_verification([f"{adm_images.host}/adm/*"], [keys_entry(SIGNER)], mutate_digest=False)]
    )
    doc["kind"] = "Policy"
    env = admission_env(doc, extra_env=NO_CLUSTER)
    assert decide(env, pod(adm_images.unsigned, namespace="default"))["allowed"] is False
    assert decide(env, pod(adm_images.unsigned, namespace="other"))["allowed"] is True


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeAPI]:
    with KubeAPI(tmp_path / "kube-tls") as api:
        api.add(secret("sigs", "cosign", {"cosign.pub": SIGNER}))
        yield api


@pytest.mark.parametrize(("token", "allowed"), [(None, True), ("wrong-token", False)])
def test_keys_secret_through_the_cluster_connection(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    kube: KubeAPI,
    tmp_path: Path,
    token: str | None,
    allowed: bool,
) -> None:
    entry = {"keys": {"secret": {"name": "cosign", "namespace": "sigs"}, "rekor": {"ignoreTlog": True}}}
    doc = cluster_policy(
        "secret-in-keys", [key_verification([f"{adm_images.host}/adm/*"], [entry], mutate_digest=False)]
    )
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", token=token)
    env = admission_env(doc, extra_env={"SIGWARD_KUBECONFIG": str(kubeconfig)})
    response = decide(env, pod(adm_images.signed))
    assert response["allowed"] is allowed, response
    if not allowed:
        assert "secret sigs/cosign" in response["status"]["message"]
        assert "wrong-token" not in response["status"]["message"]


def _selector_policy(host: str, *, failure_policy: str | None = None) -> dict[str, Any]:
    doc = cluster_policy(
        "by-namespace-label",
        [key_verification([f"{host}/adm/*"], [keys_entry(SIGNER)], mutate_digest=False)],
        failure_policy=failure_policy,
    )
    doc["spec"]["rules"][0]["match"] = {
        "all": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": {"signed": "required"}}}}]
    }
    return doc


def test_namespace_selector_with_shipped_namespaces(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    """Kyverno's keyed-basic-namespace-selector: only namespaces whose labels match are checked."""
    env = admission_env(
        _selector_policy(adm_images.host),
        namespace("strict", {"signed": "required"}),
        namespace("lax", {"signed": "optional"}),
        extra_env=NO_CLUSTER,
    )
    assert decide(env, pod(adm_images.unsigned, namespace="strict"))["allowed"] is False
    assert decide(env, pod(adm_images.signed, namespace="strict"))["allowed"] is True
    assert decide(env, pod(adm_images.unsigned, namespace="lax"))["allowed"] is True


@pytest.mark.parametrize(("failure_policy", "allowed"), [("Fail", False), ("Ignore", True)])
def test_namespace_labels_unknown_is_an_error(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, failure_policy: str, allowed: bool
) -> None:
    """Unlike Kyverno (which silently skips the policy when the lister fails), unreadable labels are a rule error."""
    env = admission_env(_selector_policy(adm_images.host, failure_policy=failure_policy), extra_env=NO_CLUSTER)
    response = decide(env, pod(adm_images.unsigned, namespace="unknown"))
    assert response["allowed"] is allowed
    if not allowed:
        assert "namespace unknown" in response["status"]["message"]


def test_namespace_selector_through_the_cluster_connection(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, kube: KubeAPI, tmp_path: Path
) -> None:
    kube.add(namespace("strict", {"signed": "required"}))
    env = admission_env(
        _selector_policy(adm_images.host), extra_env={"SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kc"))}
    )
    assert decide(env, pod(adm_images.unsigned, namespace="strict"))["allowed"] is False
    assert decide(env, pod(adm_images.unsigned, namespace="strict"))["allowed"] is False
    assert [s.path for s in kube.seen].count("/api/v1/namespaces/strict") == 1  # cached (TTL)


def _image_registry_policy(host: str, reference: str, operator: str) -> dict[str, Any]:
    doc = cluster_policy("image-data", [key_verification([f"{host}/adm/*"], [keys_entry(SIGNER)], mutate_digest=False)])
    rule = doc["spec"]["rules"][0]
    rule["context"] = [{"name": "imageData", "imageRegistry": {"reference": reference}}]
    rule["preconditions"] = {
        "all": [{"key": "{{ imageData.manifest.schemaVersion }}", "operator": operator, "value": 2}]
    }
    return doc


@pytest.mark.parametrize(("operator", "allowed"), [("Equals", False), ("NotEquals", True)])
def test_image_registry_context_through_the_real_registry(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, operator: str, allowed: bool
) -> None:
    """The imageRegistry entry reads the pod's own image (images.containers.c0.reference) from the registry; the
    precondition on its manifest decides whether the unsigned image is checked (denied) or skipped."""
    doc = _image_registry_policy(adm_images.host, "{{ images.containers.c0.reference }}", operator)
    env = admission_env(doc, extra_env=NO_CLUSTER)
    assert decide(env, pod(adm_images.unsigned))["allowed"] is allowed


def test_image_registry_context_missing_image_is_an_error(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    doc = _image_registry_policy(adm_images.host, f"{adm_images.host}/adm/does-not-exist:v1", "Equals")
    env = admission_env(doc, extra_env=NO_CLUSTER)
    response = decide(env, pod(adm_images.signed))
    assert response["allowed"] is False
    assert "failed to fetch image descriptor" in response["status"]["message"]


def test_preconditions_not_met_skip_the_validate_path_too(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    """A skipped rule asks nothing, not even verifyDigest (regression: the validate path checked digests first)."""
    doc = cluster_policy("pre", [key_verification([f"{adm_images.host}/adm/*"], [keys_entry(SIGNER)])])
    doc["spec"]["rules"][0]["preconditions"] = PRE
    env = admission_env(doc, extra_env=NO_CLUSTER)

    def validate(ns: str) -> dict[str, Any]:
        resp = env.post("/validate", review(pod_request(pod(adm_images.unsigned, namespace=ns))))
        out: dict[str, Any] = resp.get_json()["response"]
        return out

    assert validate("dev")["allowed"] is True
    denied = validate("prod")
    assert denied["allowed"] is False and "missing digest" in denied["status"]["message"]

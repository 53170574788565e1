"""infra/k8s/in-cluster, validated offline: every Kubernetes object against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), then the settings availability and security depend on —
replicas, PDB, probes, restricted securityContext, read-only root filesystem, NetworkPolicy, webhooks aimed at the
Service with a caBundle injected from the serving Certificate — and negative twins showing the validator bites."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # no stubs or py.typed upstream
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = REPO / "infra" / "k8s" / "in-cluster"
K8S_VERSION = "1.30.0"
CERT_MANAGER_KINDS = {"Issuer", "Certificate"}


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


DOCS = _docs()


def one(kind: str, name: str = "sigward") -> dict[str, Any]:
    (doc,) = [d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize(
    "doc",
    [d for d in DOCS if d["kind"] not in CERT_MANAGER_KINDS],
    ids=[f"{d['kind']}/{d['metadata']['name']}" for d in DOCS if d["kind"] not in CERT_MANAGER_KINDS],
)
def test_validates_against_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Deployment", ["spec", "replicas"], "two"),
        ("Deployment", ["spec", "template", "spec", "containers", 0, "securityContext", "readOnlyRootFS"], True),
        ("Service", ["spec", "ports", 0, "port"], "https"),
        ("PodDisruptionBudget", ["spec", "minAvailble"], 1),
        ("MutatingWebhookConfiguration", ["webhooks", 0, "timeoutSeconds"], "ten"),
        ("NetworkPolicy", ["spec", "policyTypes"], "Ingress"),
    ],
)
def test_validator_rejects_broken_twins(kind: str, path: list[Any], value: Any) -> None:
    doc = copy.deepcopy(one(kind))
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_deployment_is_highly_available_and_restricted() -> None:
    deploy = one("Deployment")
    spec = deploy["spec"]
    assert spec["replicas"] >= 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert (get["path"], get["scheme"], get["port"]) == ("/healthz", "HTTPS", "https")
    args = container["args"]
    assert (
        args[0] == "serve"
        and "--tls-cert=/etc/sigward/tls/tls.crt" in args
        and "--tls-key=/etc/sigward/tls/tls.key" in args
    )
    # every path sigward writes is a volume (the root filesystem is read-only)
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for written in (
        env["SIGWARD_STORE"].removeprefix("sqlite:///"),
        env["SIGWARD_TUF_CACHE"],
        env["PROMETHEUS_MULTIPROC_DIR"],
    ):
        assert any(written.startswith(m + "/") for m in mounts), written
    assert float(env["SIGWARD_DEADLINE_SECONDS"]) < min(
        w["timeoutSeconds"] for w in one("MutatingWebhookConfiguration")["webhooks"]
    )


def test_selectors_agree() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for selector in (
        one("Service")["spec"]["selector"],
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        one("Deployment")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert one("PodDisruptionBudget")["spec"]["minAvailable"] < one("Deployment")["spec"]["replicas"]
    (rule,) = one("NetworkPolicy")["spec"]["ingress"]
    assert rule["ports"] == [{"port": 9443, "protocol": "TCP"}]


def test_webhooks_reach_the_service_over_tls_and_spare_their_own_namespace() -> None:
    service = one("Service")
    certificate = one("Certificate", "sigward-tls")
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["secretName"] == "sigward-tls"
    assert {
        v["secret"]["secretName"] for v in one("Deployment")["spec"]["template"]["spec"]["volumes"] if "secret" in v
    } == {"sigward-tls"}
    for kind, path in (
        ("MutatingWebhookConfiguration", "/admission/mutate"),
        ("ValidatingWebhookConfiguration", "/admission/validate"),
    ):
        config = one(kind)
        assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "sigward/sigward-tls"
        (hook,) = config["webhooks"]
        ref = hook["clientConfig"]["service"]
        assert (ref["namespace"], ref["name"], ref["path"], ref["port"]) == ("sigward", "sigward", path, 443)
        assert "caBundle" in hook["clientConfig"] and hook["failurePolicy"] == "Fail"
        (expr,) = hook["namespaceSelector"]["matchExpressions"]
        assert expr["operator"] == "NotIn" and {"sigward", "kube-system"} <= set(expr["values"])
    assert one("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_policies_configmap_loads(tmp_path: Path) -> None:
    from sigward.errors import PolicyError
    from sigward.policy.loader import load_policies

    for name, text in one("ConfigMap", "sigward-policies")["data"].items():
        (tmp_path / name).write_text(text)
    # the shipped key is a placeholder: the policy is well-formed but refuses to load until a real key is put in
    with pytest.raises(PolicyError, match="keys"):
        load_policies([tmp_path])

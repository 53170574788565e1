"""IVPOL ``cosign.source.PullSecrets`` end to end: the named dockerconfigjson Secret, served by the Kubernetes API
stand-in in SIGWARD_SECRETS_NAMESPACE (Kyverno reads them from its own namespace), opens a real htpasswd registry
for ``sigward verify``; a wrong password or a Secret elsewhere never passes, credentials never appear in the
output; without a cluster connection the policy is refused at load with the YAML path."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.support.cluster_cli import dockerconfig, run_sigward, secrets_env
from tests.support.kubeapi import KubeAPI, secret
from tests.support.policies import dump
from tests.support.registry import HTPASSWD_PASSWORD, HTPASSWD_USER, LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
KEY = new_key("p256")
PATH = "spec.attestors[0].cosign.source.PullSecrets"


def _policy(tmp_path: Path, host: str) -> Path:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "pull-secrets"},
        "spec": {
            "matchImageReferences": [{"glob": f"{host}/*"}],
            "attestors": [
                {
                    "name": "k",
                    "cosign": {
                        "key": {"data": KEY.public_pem},
                        "ctlog": {"insecureIgnoreTlog": True},
                        "source": {"PullSecrets": [{"name": "regcred"}]},
                    },
                }
            ],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"}],
        },
    }
    path = tmp_path / "policy.yaml"
    path.write_text(dump(doc))
    return path


@pytest.fixture
def env(tmp_path: Path, auth_registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return secrets_env(tmp_path, auth_registry, monkeypatch)


@pytest.fixture(scope="module")
def signed(auth_registry: LocalRegistry) -> str:
    digest = auth_registry.push_image("ivsec/app", tag="v1")
    attach_signatures(auth_registry, "ivsec/app", digest, [signed_layer(KEY, image_digest=digest)])
    return f"{auth_registry.host}/ivsec/app@{digest}"


@pytest.mark.parametrize(
    ("secret_ns", "password", "passes"),
    [
        ("sigward-system", HTPASSWD_PASSWORD, True),
        ("sigward-system", "wrong-password", False),
        ("kyverno", HTPASSWD_PASSWORD, False),  # not in SIGWARD_SECRETS_NAMESPACE: missing, never anonymous
    ],
)
def test_verify_with_pull_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    auth_registry: LocalRegistry,
    signed: str,
    secret_ns: str,
    password: str,
    passes: bool,
) -> None:
    with KubeAPI(tmp_path) as kube:
        obj = secret(secret_ns, "regcred", {".dockerconfigjson": dockerconfig(auth_registry.host, password)})
        obj["type"] = "kubernetes.io/dockerconfigjson"
        kube.add(obj)
        env = {**env, "SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig"))}
        code, output = run_sigward(
            ["verify", "--json", "--policy", str(_policy(tmp_path, auth_registry.host)), signed], monkeypatch, env
        )
        basic = base64.b64encode(f"{HTPASSWD_USER}:{password}".encode()).decode()
        assert password not in output and basic not in output
        (result,) = json.loads(output[: output.rindex("}") + 1])["results"]
        if passes:
            assert code == 0 and result["verdict"] == "pass", output
        else:
            assert code != 0 and result["verdict"] in ("fail", "error"), output
        assert any(s.path == "/api/v1/namespaces/sigward-system/secrets/regcred" for s in kube.seen)


def test_refused_without_a_cluster_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], auth_registry: LocalRegistry, signed: str
) -> None:
    code, output = run_sigward(
        ["verify", "--policy", str(_policy(tmp_path, auth_registry.host)), signed], monkeypatch, env
    )
    assert code != 0 and PATH in output and "cluster connection" in output, output

"""``imageRegistryCredentials.secrets`` end to end: a dockerconfigjson Secret served by the Kubernetes API stand-in
(live connection, SIGWARD_SECRETS_NAMESPACE) opens a real htpasswd registry for ``sigward verify``; a missing Secret is
an infrastructure error; a credential is only ever sent to the host its ``auths`` key names; without a connection the
policy is refused at load with its YAML path."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster_cli import dockerconfig, run_sigward, secrets_env
from tests.support.httpservers import Reply, ScriptedServer, forward
from tests.support.kubeapi import KubeAPI, secret
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import HTPASSWD_PASSWORD, HTPASSWD_USER, LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
KEY = new_key("p256")
CHALLENGE = Reply(401, {"WWW-Authenticate": 'Basic realm="other"', "Content-Type": "application/json"}, b"{}")
PATH = "spec.rules[0].verifyImages[0].imageRegistryCredentials.secrets"


@pytest.fixture(scope="module")
def signed(auth_registry: LocalRegistry) -> Iterator[str]:
    digest = auth_registry.push_image("sec/app", tag="v1")
    attach_signatures(auth_registry, "sec/app", digest, [signed_layer(KEY, image_digest=digest)])
    yield f"{auth_registry.host}/sec/app:v1"


def _policy(tmp_path: Path, host: str, secrets: list[str]) -> Path:
    iv = key_verification([f"{host}/*"], [keys_entry(KEY.public_pem)])
    iv["imageRegistryCredentials"] = {"secrets": secrets}
    path = tmp_path / "policy.yaml"
    path.write_text(dump(cluster_policy("require-signed", [iv])))
    return path


@pytest.fixture
def env(tmp_path: Path, auth_registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return secrets_env(tmp_path, auth_registry, monkeypatch)


@pytest.mark.parametrize(
    ("secret_ns", "secret_host", "password", "verdict"),
    [
        ("sigward-system", None, HTPASSWD_PASSWORD, "pass"),  # the registry's own credential
        ("sigward-system", None, "wrong-password", "fail-or-error"),  # wrong password: never a pass
        ("sigward-system", "127.0.0.2:5999", HTPASSWD_PASSWORD, "fail-or-error"),  # another host's credential
        ("kyverno", None, HTPASSWD_PASSWORD, "error"),  # Secret not in SIGWARD_SECRETS_NAMESPACE: missing
    ],
)
def test_verify_with_registry_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    auth_registry: LocalRegistry,
    signed: str,
    secret_ns: str,
    secret_host: str | None,
    password: str,
    verdict: str,
) -> None:
    with KubeAPI(tmp_path) as kube:
        config = dockerconfig(secret_host or auth_registry.host, password)
        obj = secret(secret_ns, "regcred", {".dockerconfigjson": config})
        obj["type"] = "kubernetes.io/dockerconfigjson"
        kube.add(obj)
        env = {**env, "SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig"))}
        policy = _policy(tmp_path, auth_registry.host, ["regcred"])
        code, output = run_sigward(["verify", "--json", "--policy", str(policy), signed], monkeypatch, env)
        basic = base64.b64encode(f"{HTPASSWD_USER}:{password}".encode()).decode()
        assert password not in output and basic not in output
        (result,) = json.loads(output[: output.rindex("}") + 1])["results"]
        if verdict == "pass":
            assert code == 0 and result["verdict"] == "pass", output
        elif verdict == "error":
            assert result["verdict"] == "error" and "not found" in result["message"], output
        else:
            assert code != 0 and result["verdict"] in ("fail", "error"), output
        assert any(s.path == "/api/v1/namespaces/sigward-system/secrets/regcred" for s in kube.seen)


def test_credential_for_another_host_never_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], signed: str, fresh_registry: LocalRegistry
) -> None:
    """The Secret names the auth registry only; the rule also covers a second registry that challenges for Basic
    auth (a recording proxy in front of an open one): it is never sent the Secret's credential."""
    digest = fresh_registry.push_image("sec/other", tag="v1")
    attach_signatures(fresh_registry, "sec/other", digest, [signed_layer(KEY, image_digest=digest)])
    host = signed.split("/", 1)[0]
    with (
        KubeAPI(tmp_path) as kube,
        ScriptedServer(
            lambda seen: (
                forward(f"http://{fresh_registry.host}", seen) if "authorization" in seen.headers else CHALLENGE
            )
        ) as proxy,
    ):
        kube.add(secret("sigward-system", "regcred", {".dockerconfigjson": dockerconfig(host)}))
        env = {
            **env,
            "SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig")),
            "SIGWARD_INSECURE_REGISTRIES": f"{host},{proxy.host}",
        }
        iv = key_verification(["127.0.0.1*"], [keys_entry(KEY.public_pem)])
        iv["imageRegistryCredentials"] = {"secrets": ["regcred"]}
        policy = tmp_path / "policy.yaml"
        policy.write_text(dump(cluster_policy("require-signed", [iv])))
        image = f"{proxy.host}/sec/other:v1"
        code, output = run_sigward(["verify", "--json", "--policy", str(policy), signed, image], monkeypatch, env)
        results = {r["image"]: r["verdict"] for r in json.loads(output[: output.rindex("}") + 1])["results"]}
        assert results[signed] == "pass" and results[image] != "pass", output
        assert code != 0
        seen = proxy.requests_seen()
    assert any("sec/other" in s.path for s in seen)
    assert not any("authorization" in s.headers for s in seen)


@pytest.mark.parametrize("connected", [True, False])
def test_check_policy_needs_a_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], connected: bool
) -> None:
    policy = _policy(tmp_path, "registry.example", ["regcred"])
    with KubeAPI(tmp_path) as kube:
        if connected:
            env = {**env, "SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig"))}
        code, output = run_sigward(["check-policy", str(policy)], monkeypatch, env)
    if connected:
        assert code == 0, output
    else:
        assert code != 0 and PATH in output and "cluster connection" in output, output

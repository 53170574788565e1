"""ImageValidatingPolicy ``credentials`` end to end through a real htpasswd registry and ``sigward verify``:
``providers`` narrow the policy's registry requests as a ClusterPolicy's ``imageRegistryCredentials.providers`` do
(``default`` = the docker config: pass; ``amazon`` only: the docker config's credential is never used, no pass);
``secrets`` read a dockerconfigjson Secret through the live connection (the Kubernetes API stand-in): the right
credential passes, a wrong password or another host's credential never passes, and without a connection the
policy is refused at load with ``spec.credentials.secrets``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.cluster.test_registry_secrets import KEY
from tests.support.cluster_cli import dockerconfig, run_sigward
from tests.support.kubeapi import KubeAPI, secret
from tests.support.registry import HTPASSWD_PASSWORD, HTPASSWD_USER, LocalRegistry
from tests.support.signing import attach_signatures, signed_layer

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def signed(auth_registry: LocalRegistry) -> Iterator[str]:
    digest = auth_registry.push_image("ivcred/app", tag="v1")
    attach_signatures(auth_registry, "ivcred/app", digest, [signed_layer(KEY, image_digest=digest)])
    yield f"{auth_registry.host}/ivcred/app:v1"


def ivpol(tmp_path: Path, host: str, credentials: dict[str, Any]) -> Path:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "require-signed"},
        "spec": {
            "matchImageReferences": [{"glob": f"{host}/*"}],
            "attestors": [
                {"name": "k", "cosign": {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}}
            ],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"}],
            "credentials": credentials,
        },
    }
    path = tmp_path / "ivpol.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def env(tmp_path: Path, auth_registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("SIGWARD_KUBECONFIG", "SIGWARD_CLUSTER", "KUBERNETES_SERVICE_HOST", "SIGWARD_POLICY"):
        monkeypatch.delenv(name, raising=False)
    docker = tmp_path / "docker-config"
    docker.mkdir()
    auth = base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    return {
        "DOCKER_CONFIG": str(docker),
        "SIGWARD_INSECURE_REGISTRIES": auth_registry.host,
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        "SIGWARD_SECRETS_NAMESPACE": "sigward-system",
        "SIGWARD_CLUSTER": "none",
    }


def verdict(output: str) -> str:
    (result,) = json.loads(output[: output.rindex("}") + 1])["results"]
    return str(result["verdict"])


@pytest.mark.parametrize(("providers", "passes"), [(["default"], True), (["amazon"], False), ([], True)])
def test_providers_narrow_the_policy_credentials(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    auth_registry: LocalRegistry,
    signed: str,
    providers: list[str],
    passes: bool,
) -> None:
    """The docker config holds the registry's credential: only a policy whose providers include ``default`` (or
    that names none: Kyverno's default keychain) may use it."""
    credentials: dict[str, Any] = {"providers": providers} if providers else {"allowInsecureRegistry": False}
    policy = ivpol(tmp_path, auth_registry.host, credentials)
    code, output = run_sigward(["verify", "--json", "--policy", str(policy), signed], monkeypatch, env)
    assert HTPASSWD_PASSWORD not in output
    if passes:
        assert code == 0 and verdict(output) == "pass", output
    else:
        assert code != 0 and verdict(output) != "pass", output


@pytest.mark.parametrize(
    ("secret_host", "password", "passes"),
    [(None, HTPASSWD_PASSWORD, True), (None, "wrong-password", False), ("127.0.0.2:5999", HTPASSWD_PASSWORD, False)],
)
def test_secrets_through_the_live_connection(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    auth_registry: LocalRegistry,
    signed: str,
    secret_host: str | None,
    password: str,
    passes: bool,
) -> None:
    empty = tmp_path / "empty-docker-config"
    empty.mkdir()
    with KubeAPI(tmp_path) as kube:
        obj = secret(
            "sigward-system",
            "regcred",
            {".dockerconfigjson": dockerconfig(secret_host or auth_registry.host, password)},
        )
        obj["type"] = "kubernetes.io/dockerconfigjson"
        kube.add(obj)
        env = {**env, "DOCKER_CONFIG": str(empty), "SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig"))}
        del env["SIGWARD_CLUSTER"]
        policy = ivpol(tmp_path, auth_registry.host, {"secrets": ["regcred"]})
        code, output = run_sigward(["verify", "--json", "--policy", str(policy), signed], monkeypatch, env)
        assert password not in output
        if passes:
            assert code == 0 and verdict(output) == "pass", output
        else:
            assert code != 0 and verdict(output) != "pass", output
        assert any(s.path == "/api/v1/namespaces/sigward-system/secrets/regcred" for s in kube.seen)


def test_secrets_refused_without_a_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], auth_registry: LocalRegistry
) -> None:
    policy = ivpol(tmp_path, auth_registry.host, {"secrets": ["regcred"]})
    code, output = run_sigward(["check-policy", str(policy)], monkeypatch, env)
    assert code != 0 and "spec.credentials.secrets" in output and "cluster connection" in output, output


@pytest.mark.parametrize(("providers", "passes"), [(["default"], True), (["amazon"], False)])
def test_imagedata_reads_with_the_policy_credentials(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    auth_registry: LocalRegistry,
    signed: str,
    providers: list[str],
    passes: bool,
) -> None:
    """``imagedata.Get`` (no signature check involved) reads the registry with the policy's providers only."""
    path = ivpol(tmp_path, auth_registry.host, {"providers": providers})
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["attestors"] = []
    doc["spec"]["validations"] = [
        {"expression": "images.containers.all(i, imagedata.Get(i).manifest.schemaVersion == 2)"}
    ]
    doc["spec"]["validationConfigurations"] = {"mutateDigest": False, "verifyDigest": False, "required": False}
    path.write_text(yaml.safe_dump(doc))
    code, output = run_sigward(["verify", "--json", "--policy", str(path), signed], monkeypatch, env)
    if passes:
        assert code == 0 and verdict(output) == "pass", output
    else:
        assert code != 0 and verdict(output) == "error", output

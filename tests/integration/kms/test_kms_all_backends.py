"""One policy holding keys from AWS KMS, Google Cloud KMS, Azure Key Vault and HashiCorp Vault at once: images
signed with any of them by `sigward sign` (the KMS Sign APIs) verify with only ambient configuration — through
`sigward verify` as a process and through the admission function.

Real parts: docker-registry, moto_server (AWS), the real google-cloud-kms, azure-keyvault-keys + azure-identity
(workload identity) and hvac clients against local servers speaking their wire protocols.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from sigward import wiring
from tests.support.admission import decode_patch, pod, pod_request, review
from tests.support.gcpkms_server import GcpKmsServer, key_uri
from tests.support.keyvault_server import KeyVaultServer
from tests.support.moto import MotoServer, create_signing_key, kms_admin
from tests.support.policies import cluster_policy, dump, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.vaultserver import ROOT_TOKEN, VaultServer

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Backends:
    uris: dict[str, str]
    env: dict[str, str]


@pytest.fixture(scope="module")
def all_backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    workdir = tmp_path_factory.mktemp("kms-all")
    with (
        MotoServer(workdir / "moto") as moto,
        GcpKmsServer() as gcp,
        KeyVaultServer(workdir / "keyvault") as azure,
        VaultServer() as vault,
    ):
        aws_key = create_signing_key(kms_admin(moto), "ECC_NIST_P256", alias="alias/sigward-all")
        gcp_key = gcp.add_key("cosign", "EC_SIGN_P256_SHA256")
        azure.add_key("cosign", "p256")
        vault.create_key("cosign", "ecdsa-p256")
        uris = {
            "aws": "awskms:///alias/sigward-all",
            "gcp": key_uri(gcp_key),
            "azure": azure.uri("cosign"),
            "vault": "hashivault://cosign",
        }
        assert aws_key
        env = {
            # AWS: the SDK's own endpoint variables and dummy credentials, as an IRSA pod would have real ones
            "AWS_ENDPOINT_URL_KMS": moto.url,
            "AWS_ENDPOINT_URL_STS": moto.url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            # Google Cloud KMS: the endpoint/emulator hook (production uses ADC and the default endpoint)
            "SIGWARD_GCPKMS_ENDPOINT": gcp.endpoint,
            "SIGWARD_GCPKMS_INSECURE": "1",
            # Azure: workload identity (federated token file) against the local token endpoint
            **azure.environment(),
            # Vault: address and token
            "VAULT_ADDR": vault.url,
            "VAULT_TOKEN": ROOT_TOKEN,
        }
        yield Backends(uris=uris, env=env)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def signed_images(
    all_backends: Backends, registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    env = {**os.environ, **all_backends.env}
    env["SIGWARD_INSECURE_REGISTRIES"] = registry.host
    env["SIGWARD_PRIVATE_REGISTRIES"] = "127.0.0.1"
    images: dict[str, str] = {}
    for name, uri in all_backends.uris.items():
        digest = registry.push_image(f"kms-all/{name}", tag="v1")
        image = f"{registry.host}/kms-all/{name}:v1"
        proc = run(["sign", "--key", uri, "--json", image], env)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        assert json.loads(proc.stdout)["digest"] == digest
        images[name] = image
    registry.push_image("kms-all/unsigned", tag="v1")
    images["unsigned"] = f"{registry.host}/kms-all/unsigned:v1"
    return images


def policy_yaml(host: str, uris: dict[str, str]) -> str:
    entries = [keys_entry(uri) for uri in uris.values()]
    iv = {"imageReferences": [f"{host}/kms-all/*"], "attestors": [{"count": 1, "entries": entries}]}
    return dump(cluster_policy("four-kms", [iv]))


def test_sigward_verify_with_keys_from_all_four_backends(
    all_backends: Backends, signed_images: dict[str, str], registry: LocalRegistry, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_yaml(registry.host, all_backends.uris))
    env = {**os.environ, **all_backends.env}
    env["SIGWARD_INSECURE_REGISTRIES"] = registry.host
    env["SIGWARD_PRIVATE_REGISTRIES"] = "127.0.0.1"
    proc = run(["verify", "--policy", str(policy), "--json", *signed_images.values()], env)
    rows = {r["image"]: r for r in json.loads(proc.stdout)["results"]}
    for name in ("aws", "gcp", "azure", "vault"):
        assert rows[signed_images[name]]["verdict"] == "pass", (name, rows[signed_images[name]]["message"])
    unsigned = rows[signed_images["unsigned"]]
    assert unsigned["verdict"] == "fail"
    for i in range(4):
        assert f".attestors[0].entries[{i}].keys: no signatures found" in unsigned["message"]
    assert proc.returncode == 1


def test_admission_with_keys_from_all_four_backends(
    all_backends: Backends,
    signed_images: dict[str, str],
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_yaml(registry.host, all_backends.uris))
    for key, value in all_backends.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SIGWARD_POLICY", str(policy))
    monkeypatch.setenv("SIGWARD_STORE", "memory:")
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    monkeypatch.delenv("SIGWARD_ADMISSION_TOKEN", raising=False)
    wiring.reset()
    try:
        app = functions_framework.create_app("admission", str(REPO / "functions" / "main.py"))  # type: ignore[no-untyped-call]
        client = app.test_client()
        signed = [signed_images[n] for n in ("aws", "gcp", "azure", "vault")]
        body: Any = client.post("/mutate", json=review(pod_request(pod(*signed)))).get_json()
        assert body["response"]["allowed"] is True, body
        assert len(decode_patch(body)) == 4
        body = client.post("/mutate", json=review(pod_request(pod(signed[0], signed_images["unsigned"])))).get_json()
        assert body["response"]["allowed"] is False
        assert signed_images["unsigned"] in body["response"]["status"]["message"]
    finally:
        wiring.reset()

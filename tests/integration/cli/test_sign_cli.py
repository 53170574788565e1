"""`sigward sign` with local keys against the real registry (anonymous, Basic and Bearer auth), and what it
writes verifies with `sigward verify`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from sigward.deadline import Deadline
from sigward.references import parse_repository
from sigward.registry import RegistryClient
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import HTPASSWD_PASSWORD, HTPASSWD_USER, LocalRegistry, local_config
from tests.support.signing import SigningKey, new_key
from tests.support.tokenserver import TOKEN_PASSWORD, TOKEN_USER, TokenServer

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]


def write_key(tmp: Path, key: SigningKey, *, password: bytes | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    pem = key.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path = tmp / f"{key.kind}-{len(list(tmp.iterdir()))}.pem"
    path.write_bytes(pem)
    return path


def run(args: list[str], registry_hosts: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update({"SIGWARD_INSECURE_REGISTRIES": registry_hosts, "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1"})
    env.pop(" SIGWARD_KEY_PASSWORD", None)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def policy_for(tmp: Path, host: str, *keys: SigningKey, repository: str | None = None) -> Path:
    path = tmp / f"policy-{len(list(tmp.iterdir()))}.yaml"
    path.write_text(
        dump(
            cluster_policy(
                "signed",
                [key_verification([f"{host}/*"], [keys_entry(k.public_pem) for k in keys], repository=repository)],
            )
        )
    )
    return path


@pytest.mark.parametrize("kind", ["p256", "p384", "rsa2048", "ed25519"])
def test_sign_then_verify(registry: LocalRegistry, tmp_path: Path, kind: str) -> None:
    key = new_key(kind, slot=7)  # type: ignore[arg-type]
    digest = registry.push_image(f"sign/{kind}", tag="v1")
    image = f"{registry.host}/sign/{kind}:v1"
    key_file = write_key(tmp_path, key)
    policy = policy_for(tmp_path, registry.host, key)
    before = run(["verify", "--policy", str(policy), image], registry.host)
    assert before.returncode == 1, before.stdout
    signed = run(["sign", "--key", str(key_file), "--json", image], registry.host)
    assert signed.returncode == 0, signed.stderr
    result = json.loads(signed.stdout)
    assert result["digest"] == digest
    assert result["signature_tag"] == f"sha256-{digest.split(':')[1]}.sig"
    assert result["added"] is True
    after = run(["verify", "--policy", str(policy), "--json", image], registry.host)
    assert after.returncode == 0, after.stdout + after.stderr
    # signing again with the same key adds nothing; another key appends a second layer
    again = run(["sign", "--key", str(key_file), image], registry.host)
    assert again.returncode == 0 and "already signed" in again.stdout
    other = new_key("p256", slot=8)
    assert run(["sign", "--key", str(write_key(tmp_path, other)), image], registry.host).returncode == 0
    client = RegistryClient(local_config(registry))
    manifest = client.get_manifest(
        parse_repository(f"{registry.host}/sign/{kind}"), result["signature_tag"], deadline=Deadline.after(10)
    )
    assert len(manifest.layers) == 2
    both = policy_for(tmp_path, registry.host, key, other)
    assert run(["verify", "--policy", str(both), image], registry.host).returncode == 0


def test_annotations_and_separate_repository(registry: LocalRegistry, tmp_path: Path) -> None:
    key = new_key("p256", slot=9)
    registry.push_image("sign/annotated", tag="v1")
    image = f"{registry.host}/sign/annotated:v1"
    key_file = write_key(tmp_path, key)
    sigs = f"{registry.host}/sign/signatures"
    signed = run(["sign", "--key", str(key_file), "-a", "env=prod", "--repository", sigs, image], registry.host)
    assert signed.returncode == 0, signed.stderr
    policy = tmp_path / "annotated.yaml"
    entry = keys_entry(key.public_pem, annotations={"env": "prod"})
    policy.write_text(dump(cluster_policy("p", [key_verification([f"{registry.host}/*"], [entry], repository=sigs)])))
    assert run(["verify", "--policy", str(policy), image], registry.host).returncode == 0
    wrong = tmp_path / "wrong.yaml"
    entry = keys_entry(key.public_pem, annotations={"env": "dev"})
    wrong.write_text(dump(cluster_policy("p", [key_verification([f"{registry.host}/*"], [entry], repository=sigs)])))
    proc = run(["verify", "--policy", str(wrong), image], registry.host)
    assert proc.returncode == 1 and "missing or incorrect annotation" in proc.stdout


def test_encrypted_keys(registry: LocalRegistry, tmp_path: Path) -> None:
    key = new_key("p256", slot=10)
    registry.push_image("sign/encrypted", tag="v1")
    image = f"{registry.host}/sign/encrypted:v1"
    key_file = write_key(tmp_path, key, password=b"pw-123")
    proc = run(["sign", "--key", str(key_file), image], registry.host)
    assert proc.returncode == 2 and "SIGWARD_KEY_PASSWORD" in proc.stderr
    proc = run(["sign", "--key", str(key_file), image], registry.host, SIGWARD_KEY_PASSWORD="pw-123")
    assert proc.returncode == 0, proc.stderr
    cosign_key = tmp_path / "cosign.key"
    cosign_key.write_text(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    proc = run(["sign", "--key", str(cosign_key), image], registry.host)
    assert proc.returncode == 2 and "cosign's encrypted key format" in proc.stderr
    proc = run(["sign", "--key", str(tmp_path / "missing.pem"), image], registry.host)
    assert proc.returncode == 2 and "not a KMS URI and not a readable key file" in proc.stderr


def auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_sign_with_basic_auth(
    auth_registry: LocalRegistry, tmp_path: Path, docker_config: Callable[[dict[str, Any]], Path]
) -> None:
    auth_registry.push_image("sign/basic", tag="v1")
    image = f"{auth_registry.host}/sign/basic:v1"
    key_file = write_key(tmp_path, new_key("p256", slot=11))
    config = docker_config({"auths": {auth_registry.host: auth_entry(HTPASSWD_USER, HTPASSWD_PASSWORD)}})
    proc = run(["sign", "--key", str(key_file), image], auth_registry.host, DOCKER_CONFIG=str(config.parent))
    assert proc.returncode == 0, proc.stderr
    config.write_text(json.dumps({"auths": {auth_registry.host: auth_entry(HTPASSWD_USER, "wrong")}}))
    proc = run(["sign", "--key", str(key_file), image], auth_registry.host, DOCKER_CONFIG=str(config.parent))
    assert proc.returncode == 1 and "denied" in proc.stderr
    assert "wrong" not in proc.stderr


def test_sign_with_bearer_token_push_scope(
    token_registry: LocalRegistry,
    token_server: TokenServer,
    tmp_path: Path,
    docker_config: Callable[[dict[str, Any]], Path],
) -> None:
    hosts = f"{token_registry.host},{token_server.host}"
    config = docker_config({"auths": {token_registry.host: auth_entry(TOKEN_USER, TOKEN_PASSWORD)}})
    token_registry.push_image("sign/bearer", tag="v1")
    image = f"{token_registry.host}/sign/bearer:v1"
    key = new_key("p256", slot=12)
    proc = run(["sign", "--key", str(write_key(tmp_path, key)), image], hosts, DOCKER_CONFIG=str(config.parent))
    assert proc.returncode == 0, proc.stderr
    policy = policy_for(tmp_path, token_registry.host, key)
    proc = run(["verify", "--policy", str(policy), image], hosts, DOCKER_CONFIG=str(config.parent))
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""``imageRegistryCredentials.allowInsecureRegistry``: loaded (no longer refused), but it never opens plain HTTP or
skips TLS verification by itself. Only the operator's SIGWARD_INSECURE_REGISTRIES does; check-policy says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sigward.policy.loader import load_policy_text
from sigward.policy.validation import INSECURE_REGISTRY_NOTE
from tests.support.httpservers import Reply, ScriptedServer, Seen
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

pytestmark = pytest.mark.registry
PATH = "spec.rules[0].verifyImages[0].imageRegistryCredentials.allowInsecureRegistry"


def _policy(host: str, credentials: dict[str, Any] | None) -> str:
    iv = key_verification([f"{host}/*"], [keys_entry(new_key("p256").public_pem)])
    if credentials is not None:
        iv["imageRegistryCredentials"] = credentials
    return dump(cluster_policy("insecure", [iv]))


@pytest.mark.parametrize(
    ("credentials", "noted"),
    [
        ({"allowInsecureRegistry": True}, True),
        ({"allowInsecureRegistry": True, "providers": ["google"]}, True),
        ({"allowInsecureRegistry": False}, False),
        ({"providers": ["google"]}, False),
        (None, False),
    ],
)
def test_allow_insecure_registry_loads_with_a_note(credentials: dict[str, Any] | None, noted: bool) -> None:
    loaded = load_policy_text(_policy("reg.example", credentials), "p.yaml")
    (policy,) = loaded.policies
    iv = policy.spec.rules[0].verify_images[0]
    wanted = credentials is not None and credentials.get("allowInsecureRegistry") is True
    assert (iv.image_registry_credentials is not None and iv.image_registry_credentials.allow_insecure_registry) is (
        wanted
    )
    notes = [n for n in loaded.notes if "allowInsecureRegistry" in n]
    assert bool(notes) is noted
    if noted:
        assert "verifyImages[0].imageRegistryCredentials.allowInsecureRegistry" in notes[0]
        assert INSECURE_REGISTRY_NOTE in notes[0]


def _sigward(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGWARD_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_check_policy_prints_the_note(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(_policy("reg.example", {"allowInsecureRegistry": True}))
    proc = _sigward(["check-policy", str(path)], {})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert f"note: {path}" in out
    assert "allowInsecureRegistry" in out and "SIGWARD_INSECURE_REGISTRIES" in out
    # The twin: without the field there is no such note.
    path.write_text(_policy("reg.example", None))
    proc = _sigward(["check-policy", str(path)], {})
    assert proc.returncode == 0 and "allowInsecureRegistry" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("listed", [False, True])
def test_policy_cannot_downgrade_transport(listed: bool, tmp_path: Path) -> None:
    """A plain-HTTP registry named by a policy with allowInsecureRegistry: true is not reached over HTTP unless the
    operator lists it: sigward talks TLS to it (the handshake fails, an infrastructure error) and sends it no HTTP
    request at all. Listed (the twin), the same registry is asked over HTTP."""

    def registry(seen: Seen) -> Reply:
        return Reply(status=404, headers={"Content-Type": "application/json"}, body=b'{"errors":[]}')

    with ScriptedServer(registry) as server:
        path = tmp_path / "p.yaml"
        path.write_text(_policy(server.host, {"allowInsecureRegistry": True}))
        env = {"SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1", "DOCKER_CONFIG": str(tmp_path)}
        if listed:
            env["SIGWARD_INSECURE_REGISTRIES"] = server.host
        proc = _sigward(["verify", "--policy", str(path), f"{server.host}/app:v1"], env)
        seen = server.requests_seen()
    if listed:
        assert seen, "the listed registry was never asked over HTTP"
        assert proc.returncode == 1, proc.stdout + proc.stderr  # 404: no such image, a decided failure
    else:
        assert seen == [], f"plain HTTP reached an unlisted registry: {seen}"
        assert proc.returncode == 3, proc.stdout + proc.stderr  # TLS to a plain-HTTP server: unreachable

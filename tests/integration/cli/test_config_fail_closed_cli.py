"""The command line as processes (issue 12 §1, §7): a registry spelled differently is still the same registry, a
policy path that yields no policy is exit 2 for every command that loads policies, ``.json`` policies load, and a
registry the network guard refuses is a configuration error (exit 2), not an unsigned image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.admission import pod, pod_request, review
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Loopback:
    port: str
    signed_path: str
    unsigned_path: str
    signed_digest: str


@pytest.fixture(scope="module")
def loopback(registry: LocalRegistry) -> Loopback:
    key = new_key("p256")
    signed = registry.push_image("spell/signed", tag="v1")
    attach_signatures(registry, "spell/signed", signed, [signed_layer(key, image_digest=signed)])
    registry.push_image("spell/unsigned", tag="v1")
    return Loopback(
        port=registry.host.rsplit(":", 1)[1],
        signed_path="spell/signed:v1",
        unsigned_path="spell/unsigned:v1",
        signed_digest=signed,
    )


def _env(loopback: Loopback, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["SIGWARD_INSECURE_REGISTRIES"] = f"127.0.0.1:{loopback.port},localhost:{loopback.port}"
    env["SIGWARD_PRIVATE_REGISTRIES"] = "127.0.0.1,localhost"
    env.pop("SIGWARD_POLICY", None)
    env.update(extra)
    return env


def sigward(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )


def _policy(tmp_path: Path, pattern: str, suffix: str = ".yaml", *, tabs: bool = False) -> Path:
    doc = cluster_policy("require-signed", [key_verification([pattern], [keys_entry(new_key("p256").public_pem)])])
    path = tmp_path / f"policy{suffix}"
    path.write_text(json.dumps(doc, indent="\t") if tabs or suffix == ".json" else dump(doc))
    return path


def _results(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads(proc.stdout)["results"]
    return results


# -- one registry, one spelling ---------------------------------------------------------------------------------------


# image host spelling, policy host spelling, exit status, verdict
SPELLING_CASES = [
    ("LOCALHOST", "localhost", 1, "fail"),
    ("localhost", "LocalHost", 1, "fail"),
    ("127.0.0.1", "localhost", 0, "skip"),  # another registry name, not another spelling
    ("localhost", "127.0.0.1", 0, "skip"),
]


@pytest.mark.parametrize(("image_host", "policy_host", "status", "verdict"), SPELLING_CASES)
def test_spelling_bypass_verify_unsigned(
    loopback: Loopback, tmp_path: Path, image_host: str, policy_host: str, status: int, verdict: str
) -> None:
    policy = _policy(tmp_path, f"{policy_host}:{loopback.port}/spell/*")
    image = f"{image_host}:{loopback.port}/{loopback.unsigned_path}"
    proc = sigward(["verify", "--policy", str(policy), "--json", image], _env(loopback))
    assert proc.returncode == status, proc.stderr
    (result,) = _results(proc)
    assert (result["image"], result["verdict"]) == (image, verdict)


def test_spelling_bypass_verify_signed_in_upper_case(loopback: Loopback, tmp_path: Path) -> None:
    policy = _policy(tmp_path, f"localhost:{loopback.port}/spell/*", ".json")
    image = f"LOCALHOST:{loopback.port}/{loopback.signed_path}"
    proc = sigward(["verify", "--policy", str(policy), "--json", image], _env(loopback))
    assert proc.returncode == 0, proc.stderr
    (result,) = _results(proc)
    assert (result["verdict"], result["digest"]) == ("pass", loopback.signed_digest)


def test_spelling_bypass_check_policy_notes_a_non_normal_pattern(loopback: Loopback, tmp_path: Path) -> None:
    policy = _policy(tmp_path, f"LOCALHOST:{loopback.port}/spell/*")
    proc = sigward(["check-policy", str(policy)], _env(loopback))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"is matched as 'localhost:{loopback.port}/spell/*'" in proc.stdout


# -- the network guard is configuration --


def test_registry_refused_by_the_network_guard_is_configuration(loopback: Loopback, tmp_path: Path) -> None:
    policy = _policy(tmp_path, "*")
    image = f"127.0.0.1:{loopback.port}/{loopback.signed_path}"
    env = _env(loopback, SIGWARD_PRIVATE_REGISTRIES="")  # loopback no longer allowlisted
    proc = sigward(["verify", "--policy", str(policy), "--json", image], env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "SIGWARD_PRIVATE_REGISTRIES" in proc.stderr
    assert "Traceback" not in proc.stderr
    # the same image, allowlisted, verifies: the refusal was the guard's, not the image's
    assert sigward(["verify", "--policy", str(policy), image], _env(loopback)).returncode == 0


# -- a policy path with nothing to enforce --


def _empty_paths(tmp_path: Path) -> dict[str, Path]:
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    non_policy = tmp_path / "ns.yaml"
    non_policy.write_text(dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}))
    return {"directory": empty_dir, "non_policy_file": non_policy}


@pytest.mark.parametrize("which", ["directory", "non_policy_file"])
@pytest.mark.parametrize("command", ["verify", "check-policy", "package", "review", "serve"])
def test_empty_policy_path_exits_2(loopback: Loopback, tmp_path: Path, command: str, which: str) -> None:
    path = _empty_paths(tmp_path)[which]
    env = _env(loopback)
    args = {
        "verify": ["verify", "--policy", str(path), f"127.0.0.1:{loopback.port}/{loopback.unsigned_path}"],
        "check-policy": ["check-policy", str(path)],
        "package": ["package", "--policy", str(path), "--out", str(tmp_path / "dist")],
        "review": ["review", "--policy", str(path), "-"],
        "serve": ["serve", "--port", "0"],
    }[command]
    if command == "serve":
        env["SIGWARD_POLICY"] = str(path)
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", *args],
        env=env,
        input=json.dumps(review(pod_request(pod(f"127.0.0.1:{loopback.port}/{loopback.unsigned_path}")))),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert str(path) in output
    assert "a policy path must yield a policy" in output or "yields no ClusterPolicy or Policy" in output
    assert "Traceback" not in output
    assert not (tmp_path / "dist").exists()

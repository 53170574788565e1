"""End to end on CNCF distribution's shape: the real docker-registry notifies `sigward serve`'s push_webhook
(Authorization header from its notifications config) on every push; pushing a signed image, then an unsigned one,
yields the right verdicts in the SQLite store, shown by `sigward verdict`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.pushstack import push_env, sigward_notification, wait_for_verdict
from tests.support.registry import LocalRegistry
from tests.support.serve import REPO, Served
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
SECRET = "distribution-push-secret-42"
KEY = new_key("p256", slot=40)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, Served, Path]]:
    workdir = tmp_path_factory.mktemp("push-e2e")
    serve_port = free_port()
    registry = LocalRegistry(
        workdir / "registry",
        notifications=[sigward_notification(serve_port, SECRET)],
    )
    policy = workdir / "policy.yaml"
    policy.write_text(
        dump(cluster_policy("require-signed", [key_verification([f"{registry.host}/*"], [keys_entry(KEY.public_pem)])]))
    )
    db = workdir / "verdicts.db"
    served = Served(
        workdir,
        push_env(policy=policy, db=db, secret=SECRET, registry_host=registry.host),
        port=serve_port,
    )
    served.start()
    registry.start()
    try:
        yield registry, served, db
    finally:
        registry.close()
        served.stop()


def wait_for(db: Path, digest: str, verdict: str, timeout: float = 30.0) -> list[str]:
    return [v.verdict for v in wait_for_verdict(db, digest, verdict, timeout)]


def test_signed_then_unsigned_push(stack: tuple[LocalRegistry, Served, Path]) -> None:
    registry, served, db = stack
    signed = registry.push_image("e2e/signed", tag="v1")
    attach_signatures(registry, "e2e/signed", signed, [signed_layer(KEY, image_digest=signed)])
    unsigned = registry.push_image("e2e/unsigned", tag="v1")
    # the image push may be seen before its signature (recorded unsigned, grace 0); the .sig push then re-verifies
    assert "pass" in wait_for(db, signed, "pass"), served.log()
    assert wait_for(db, unsigned, "unsigned") == ["unsigned"], served.log()
    env = {**os.environ, "SIGWARD_STORE": f"sqlite:///{db}"}
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "verdict", f"{registry.host}/e2e/signed@{signed}", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdicts"][-1]["verdict"] == "pass"
    assert doc["verdicts"][-1]["source"] == "distribution"
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "verdict", f"{registry.host}/e2e/unsigned@{unsigned}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("UNSIGNED")
    missing = "sha256:" + "0" * 64
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "verdict", f"{registry.host}/e2e/none@{missing}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert SECRET not in served.log()


def test_wrong_secret_is_refused(stack: tuple[LocalRegistry, Served, Path]) -> None:
    import requests

    _registry, served, _db = stack
    resp = requests.post(
        f"{served.url}/push/webhook",
        data=b'{"events": []}',
        timeout=5,
        headers={"Authorization": "Bearer wrong", "Content-Type": "application/vnd.docker.distribution.events.v1+json"},
    )
    assert resp.status_code == 401
    forged = requests.post(
        f"{served.url}/push/webhook",
        data=b"{}",
        timeout=5,
        headers={"X-GitHub-Event": "registry_package", "X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert forged.status_code == 401

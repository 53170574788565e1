"""``sigward review`` names the file in its errors; ``sigward serve --policy`` serves the given policies and fails
closed (exit 2, before binding) on a path that yields none."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sigward import cli
from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

REPO = Path(__file__).resolve().parents[3]


def _policy(tmp_path: Path, name: str = "needs-sig") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(dump(cluster_policy(name, [key_verification(["ghcr.io/*"], [keys_entry(new_key().public_pem)])])))
    return path


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "AdmissionReview"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "request"),
        (b"[]", "AdmissionReview"),
    ],
    ids=["malformed", "no-request", "not-an-object"],
)
def test_review_names_the_file_in_errors(tmp_path: Path, content: bytes, needle: str) -> None:
    review = tmp_path / "bad-review.json"
    review.write_bytes(content)
    err = io.StringIO()
    code = cli.run(["review", "--policy", str(_policy(tmp_path)), str(review)], out=io.StringIO(), err=err)
    assert code == 2
    assert f"error: {review}: " in err.getvalue()
    assert needle in err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_review_missing_file_is_named(tmp_path: Path) -> None:
    err = io.StringIO()
    missing = tmp_path / "absent.json"
    assert cli.run(["review", str(missing)], out=io.StringIO(), err=err) == 2
    assert f"{missing}: cannot read" in err.getvalue()


def _serve(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sigward.cli", "serve", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SIGWARD_POLICY"}
    env.update({"SIGWARD_STORE": "memory:", "SIGWARD_TUF_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    return env


def test_serve_policy_flag_serves_those_policies(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(["--port", str(port), "--policy", str(_policy(tmp_path, "from-flag"))], _env())
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert answer.status_code == 200
        assert json.loads(answer.text)["policies"] == ["from-flag"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.mark.parametrize("kind", ["missing", "empty-dir"])
def test_serve_policy_flag_without_policies_exits_2(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "absent.yaml"
    if kind == "empty-dir":
        target = tmp_path / "empty"
        target.mkdir()
    proc = _serve(["--port", str(free_port()), "--policy", str(target)], _env())
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, output
    assert str(target).encode() in output

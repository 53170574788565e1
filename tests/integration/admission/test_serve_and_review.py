"""`sigward serve` over real HTTP (its asyncio/h11 front, core/server.py) and `sigward review` as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.admission.conftest import AdmissionImages, require_signed_policy
from tests.support.admission import decode_patch, pod, pod_request, review
from tests.support.netutil import free_port
from tests.support.policies import dump

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]
TOKEN = "serve-test-token-123"


def env_for(policy_path: Path, images: AdmissionImages) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SIGWARD_POLICY": str(policy_path),
            "SIGWARD_INSECURE_REGISTRIES": images.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
            "SIGWARD_ADMISSION_TOKEN": TOKEN,
            "SIGWARD_STORE": "memory:",
        }
    )
    return env


@pytest.fixture(scope="module")
def served(adm_images: AdmissionImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("serve")
    policy = workdir / "policy.yaml"
    policy.write_text(dump(require_signed_policy(adm_images.host)))
    port = free_port()
    log = (workdir / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sigward.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env_for(policy, adm_images),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sigward serve did not start: {(workdir / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield base, workdir / "serve.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def post(base: str, path: str, doc: Any, **kwargs: Any) -> requests.Response:
    return requests.post(f"{base}{path}", json=doc, timeout=15, **kwargs)


def test_healthz(served: tuple[str, Path]) -> None:
    base, _ = served
    resp = requests.get(f"{base}/healthz", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "policies": ["require-signed"]}


def test_signed_pod_admitted_and_pinned_over_http(served: tuple[str, Path], adm_images: AdmissionImages) -> None:
    base, _ = served
    request = pod_request(pod(adm_images.signed))
    resp = post(base, f"/admission/{TOKEN}/mutate", review(request))
    assert resp.status_code == 200
    body = resp.json()
    assert body["response"]["allowed"] is True
    assert decode_patch(body)[0]["value"] == f"{adm_images.signed}@{adm_images.signed_digest}"


def test_unsigned_pod_denied_over_http(served: tuple[str, Path], adm_images: AdmissionImages) -> None:
    base, _ = served
    resp = post(
        base,
        "/admission/validate",
        review(pod_request(pod(adm_images.unsigned))),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    response = resp.json()["response"]
    assert response["allowed"] is False
    assert f"missing digest for {adm_images.unsigned}" in response["status"]["message"]
    resp = post(base, f"/admission/{TOKEN}", review(pod_request(pod(adm_images.unsigned))))
    assert resp.json()["response"]["allowed"] is False


def test_unauthenticated_over_http_and_logs_hold_no_token(
    served: tuple[str, Path], adm_images: AdmissionImages
) -> None:
    base, log = served
    assert post(base, "/admission/mutate", review(pod_request(pod(adm_images.signed)))).status_code == 401
    assert post(base, "/admission/nottoken/mutate", {"x": 1}).status_code == 401
    # One authorised decision of its own, so the log check does not depend on another test running first (xdist).
    decided = post(base, f"/admission/{TOKEN}/mutate", review(pod_request(pod(adm_images.unsigned))))
    assert decided.json()["response"]["allowed"] is False
    time.sleep(0.2)
    text = log.read_text()
    assert "admission decision" in text  # one structured line per decision
    assert TOKEN not in text
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            assert "severity" in record and "message" in record
            assert "object" not in record


def test_review_command(adm_images: AdmissionImages, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(dump(require_signed_policy(adm_images.host)))
    env = env_for(policy, adm_images)
    env.pop("SIGWARD_POLICY")
    signed = tmp_path / "signed.json"
    request = pod_request(pod(adm_images.signed))
    signed.write_text(json.dumps(review(request)))
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "review", "--policy", str(policy), str(signed)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["response"]["uid"] == request["uid"]
    assert out["response"]["allowed"] is True
    assert decode_patch(out)
    # denied is still exit 0 (a response was produced); stdin works
    unsigned = json.dumps(review(pod_request(pod(adm_images.unsigned))))
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "review", "--policy", str(policy), "-"],
        cwd=REPO,
        env=env,
        input=unsigned,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["response"]["allowed"] is False
    # bad input: exit 2 with a precise message
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "review", "--policy", str(policy), "-"],
        cwd=REPO,
        env=env,
        input='{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "v1beta1" in proc.stderr

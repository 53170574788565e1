"""``GET /metrics`` on ``sigward serve --workers 2`` after real admissions (real registry, real signatures) and real
push deliveries, asserted by metric name, labels and value; counts add up across the worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.admission.conftest import AdmissionImages, require_signed_policy
from tests.support.admission import pod, pod_request, review
from tests.support.netutil import free_port
from tests.support.policies import dump

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]
SIGNED_ADMISSIONS = 8
UNSIGNED_ADMISSIONS = 3


@pytest.fixture(scope="module")
def served(adm_images: AdmissionImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    workdir = tmp_path_factory.mktemp("metrics")
    policy = workdir / "policy.yaml"
    policy.write_text(dump(require_signed_policy(adm_images.host)))
    exempt = workdir / "exception.yaml"
    exempt.write_text(dump(legacy_exception()))
    metrics_dir = workdir / "prom"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGWARD_")}
    env.update(
        {
            "SIGWARD_POLICY": f"{policy}:{exempt}",
            "SIGWARD_INSECURE_REGISTRIES": adm_images.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
            "SIGWARD_STORE": f"sqlite:///{workdir / 'verdicts.db'}",
            "SIGWARD_PUSH_GRACE_SECONDS": "0",
            "SIGWARD_TUF_OFFLINE": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PYTHONPATH": str(REPO),
        }
    )
    port = free_port()
    log = (workdir / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sigward.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=REPO,
        env=env,
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
        yield base, metrics_dir, workdir / "serve.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def legacy_exception() -> dict[str, Any]:
    return {
        "apiVersion": "kyverno.io/v2",
        "kind": "PolicyException",
        "metadata": {"name": "legacy-apps", "namespace": "kyverno"},
        "spec": {
            "exceptions": [{"policyName": "require-signed", "ruleNames": ["*"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["legacy"]}}]},
        },
    }


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = requests.get(f"{base}/metrics", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def distribution_push(host: str, repository: str, digest: str, event_id: str) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": event_id,
                "timestamp": "2024-05-01T10:00:00.000000000Z",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "repository": repository,
                    "url": f"http://{host}/v2/{repository}/manifests/{digest}",
                },
                "request": {"host": host},
            }
        ]
    }


def test_metrics_after_admissions_and_pushes(served: tuple[str, Path, Path], adm_images: AdmissionImages) -> None:
    base, metrics_dir, _ = served
    before = scrape(base)  # other tests of this module may have run first on this server: compare deltas

    def delta(name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    def admit(image: str) -> bool:
        # a fresh connection each: the two processes accept from one socket
        with requests.Session() as s:
            answer = s.post(f"{base}/admission/mutate", json=review(pod_request(pod(image))), timeout=15)
        return bool(answer.json()["response"]["allowed"])

    with ThreadPoolExecutor(4) as pool:
        allowed = list(pool.map(admit, [adm_images.signed] * SIGNED_ADMISSIONS))
        denied = list(pool.map(admit, [adm_images.unsigned] * UNSIGNED_ADMISSIONS))
    assert allowed == [True] * SIGNED_ADMISSIONS and denied == [False] * UNSIGNED_ADMISSIONS

    pushed = requests.post(
        f"{base}/push/webhook",
        data=json.dumps(distribution_push(adm_images.host, "adm/signed", adm_images.signed_digest, "ev-1")),
        headers={"Content-Type": "application/vnd.docker.distribution.events.v2+json"},
        timeout=15,
    )
    assert pushed.status_code == 200, pushed.text

    samples = scrape(base)
    total = "sigward_admission_requests_total"
    assert delta(total) == SIGNED_ADMISSIONS + UNSIGNED_ADMISSIONS
    assert (
        value(
            samples,
            total,
            request_webhook="mutate",
            resource_kind="Pod",
            resource_request_operation="CREATE",
            request_allowed="true",
        )
        == SIGNED_ADMISSIONS
    )
    assert delta(total, request_allowed="false") == UNSIGNED_ADMISSIONS
    assert delta(total, request_allowed="error") == 0
    results = "sigward_policy_results_total"
    common = {"policy_name": "require-signed", "rule_type": "imageVerify"}
    assert delta(results, rule_result="pass", rule_execution_cause="admission_request", **common) == (SIGNED_ADMISSIONS)
    assert delta(results, rule_result="fail", rule_execution_cause="admission_request", **common) == (
        UNSIGNED_ADMISSIONS
    )
    assert delta(results, rule_execution_cause="push_event", rule_result="pass", **common) >= 1
    assert delta("sigward_admission_review_duration_seconds_count") == SIGNED_ADMISSIONS + UNSIGNED_ADMISSIONS
    # every image verdict is timed by where it came from; at least the first signed one is verified cold
    durations = "sigward_image_verification_duration_seconds_count"
    assert delta(durations, verification_source="cold") >= 2  # signed and unsigned, each once per process
    assert delta(durations) == SIGNED_ADMISSIONS + UNSIGNED_ADMISSIONS
    hits = delta("sigward_verification_cache_requests_total", cache_result="hit")
    misses = delta("sigward_verification_cache_requests_total", cache_result="miss")
    assert hits + misses == SIGNED_ADMISSIONS + UNSIGNED_ADMISSIONS and hits >= 1
    assert delta("sigward_registry_requests_total", request_outcome="ok") > 0
    assert delta("sigward_registry_requests_total", request_kind="manifest.get") > 0
    pushes = delta("sigward_push_events_total", event_source="distribution")
    assert pushes == 1 and delta("sigward_push_events_total", push_outcome="recorded") == 1
    assert delta("sigward_deadline_exhausted_total") == 0
    assert delta("sigward_store_requests_total", store_operation="record", request_outcome="ok") >= 1
    # bounded cardinality: no image name or digest anywhere in a label
    text = requests.get(f"{base}/metrics", timeout=5).text
    assert adm_images.signed_digest not in text and "adm/signed" not in text and "adm/unsigned" not in text
    # the counts came from the worker processes' own files
    assert len({p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}) >= 1


def test_forged_kind_and_operation_do_not_mint_series(
    served: tuple[str, Path, Path], adm_images: AdmissionImages
) -> None:
    base, _, _ = served
    request = pod_request(pod(adm_images.signed))
    request["kind"] = {"group": "", "version": "v1", "kind": "Evil-" + "x" * 40}
    request["operation"] = "CREATE"
    requests.post(f"{base}/admission/mutate", json=review(request), timeout=15)
    text = requests.get(f"{base}/metrics", timeout=5).text
    assert "Evil-" not in text


def test_decision_audit_line(served: tuple[str, Path, Path], adm_images: AdmissionImages) -> None:
    """The denial can be explained from the log line alone; no body, no userInfo.extra, no secret."""
    base, _, log = served
    obj = pod(adm_images.unsigned)
    obj["metadata"]["namespace"] = "team-a"
    obj["metadata"]["annotations"] = {"secret-annotation": "body-must-not-leak-9f3"}
    request = pod_request(obj)
    request["namespace"] = "team-a"
    request["userInfo"] = {
        "username": "alice@example.com",
        "groups": ["devs", "system:authenticated", 7],
        "extra": {"token": ["extra-secret-7c1"]},
    }
    answer = requests.post(f"{base}/admission/mutate", json=review(request), timeout=15).json()
    assert answer["response"]["allowed"] is False
    deadline = time.monotonic() + 5
    line: dict[str, Any] | None = None
    while line is None and time.monotonic() < deadline:
        for raw in log.read_text().splitlines():
            if request["uid"] in raw and '"admission decision"' in raw:
                line = json.loads(raw)
        time.sleep(0.05)
    assert line is not None
    assert line["user"] == "alice@example.com"
    assert line["groups"] == ["devs", "system:authenticated"]  # strings only
    assert (line["namespace"], line["operation"], line["kind"]) == ("team-a", "CREATE", "Pod")
    assert line["outcome"] == "denied" and line["allowed"] is False
    assert line["digests"] == [adm_images.unsigned_digest]
    (verdict,) = line["verdicts"]
    assert verdict["policy"] == "require-signed" and verdict["rule"]
    assert verdict["verdict"] == "fail" and verdict["reason_type"] == "no_signatures" and verdict["blocking"]
    assert verdict["digest"] == adm_images.unsigned_digest
    assert isinstance(line["latency_ms"], float)
    text = json.dumps(line)
    assert "extra-secret-7c1" not in text and "body-must-not-leak-9f3" not in text


def test_exempted_admission_is_logged_and_counted(served: tuple[str, Path, Path], adm_images: AdmissionImages) -> None:
    base, _, log = served
    before = scrape(base)
    obj = pod(adm_images.unsigned)
    obj["metadata"]["namespace"] = "legacy"
    request = pod_request(obj)
    request["namespace"] = "legacy"
    response = requests.post(f"{base}/admission/mutate", json=review(request), timeout=15).json()["response"]
    assert response["allowed"] is True and "patch" not in response
    assert any("rule is skipped due to policy exceptions" in w for w in response.get("warnings", []))
    samples = scrape(base)
    name = "sigward_policy_exceptions_applied_total"
    labels = {"policy_name": "require-signed", "exception": "kyverno/legacy-apps"}
    assert value(samples, name, **labels) - value(before, name, **labels) == 1
    skip = {"rule_result": "skip", "policy_name": "require-signed"}
    results = "sigward_policy_results_total"
    assert value(samples, results, **skip) - value(before, results, **skip) == 1
    line = _decision_line(log, request["uid"])
    assert line["exceptions"] == ["kyverno/legacy-apps"] and line["outcome"] == "allowed"
    assert line["verdicts"][0]["verdict"] == "skip" and line["verdicts"][0]["exceptions"] == ["kyverno/legacy-apps"]


def _decision_line(log: Path, uid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for raw in log.read_text().splitlines():
            if uid in raw and '"admission decision"' in raw:
                return dict(json.loads(raw))
        time.sleep(0.05)
    raise AssertionError(f"no decision line for {uid}")

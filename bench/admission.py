"""Admission latency and throughput, measured side by side in one run against the real local registry.

    .venv/bin/python -m bench.admission [--cold N] [--warm N] [--seconds S]

Prints a table: p50/p99 of a 3-container Pod admission in-process — cold (new client, nothing cached) and warm (cache
hit) — registry requests per cold image verification against the floor (resolve tag + `.sig` manifest + one blob per
signature), and cache-hit throughput of `sigward serve` (gunicorn) over HTTP with concurrent clients (wrk when
installed, else Python threads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.admission.review import parse_review  # noqa: E402
from core.admission.service import AdmissionService, AdmissionSettings  # noqa: E402
from core.policy.loader import load_policy_text  # noqa: E402
from core.registry import RegistryClient, RegistryConfig  # noqa: E402
from core.verify.caching import CachingSignatureSource  # noqa: E402
from core.verify.engine import Verifier  # noqa: E402
from core.verify.oci import RegistrySignatureSource  # noqa: E402
from tests.support.admission import pod, pod_request, review  # noqa: E402
from tests.support.netutil import free_port  # noqa: E402
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry  # noqa: E402
from tests.support.registry import LocalRegistry  # noqa: E402
from tests.support.signing import attach_signatures, new_key, signed_layer  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, values: list[float]) -> str:
    return f"| {name:<44} | {pct(values, 0.5):>9.2f} | {pct(values, 0.99):>9.2f} | {len(values):>5} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", type=int, default=30)
    parser.add_argument("--warm", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sigward-bench-"))
    registry = LocalRegistry(workdir / "registry")
    registry.start()
    try:
        run(registry, workdir, args)
    finally:
        registry.close()
        shutil.rmtree(workdir, ignore_errors=True)


def run(registry: LocalRegistry, workdir: Path, args: argparse.Namespace) -> None:
    key = new_key("p256")
    images = []
    for i in range(3):
        digest = registry.push_image(f"bench/app{i}", tag="v1")
        attach_signatures(registry, f"bench/app{i}", digest, [signed_layer(key, image_digest=digest)])
        images.append(f"{registry.host}/bench/app{i}:v1")
    policy_yaml = dump(
        cluster_policy("bench", [key_verification([f"{registry.host}/bench/*"], [keys_entry(key.public_pem)])])
    )
    policies = load_policy_text(policy_yaml, "bench.yaml").policies
    config = RegistryConfig(insecure_registries=frozenset({registry.host}), private_registries=frozenset({"127.0.0.1"}))
    request = parse_review(review(pod_request(pod(*images))))

    def new_service() -> tuple[AdmissionService, RegistryClient]:
        client = RegistryClient(config)
        verifier = Verifier(source=CachingSignatureSource(RegistrySignatureSource(client)))
        return AdmissionService(policies=lambda: policies, verifier=verifier, settings=AdmissionSettings()), client

    cold: list[float] = []
    requests_per_image: list[float] = []
    for _ in range(args.cold):
        svc, client = new_service()
        started = time.perf_counter()
        decision = svc.decide(request, mode="mutate")
        cold.append((time.perf_counter() - started) * 1000)
        assert decision.allowed and len(decision.patch) == 3, decision
        requests_per_image.append(client.stats.total / len(images))
        svc.close()
        client.close()

    svc, client = new_service()
    svc.decide(request, mode="mutate")
    warm: list[float] = []
    for _ in range(args.warm):
        started = time.perf_counter()
        svc.decide(request, mode="mutate")
        warm.append((time.perf_counter() - started) * 1000)
    svc.close()
    client.close()

    http = http_throughput(registry, images, policy_yaml, workdir, args.seconds)

    floor = 3  # resolve tag, .sig manifest, one signature blob
    print()
    print("| measurement (3-container Pod)                  |   p50 ms  |   p99 ms  |     n |")
    print("|----------------------------------------------|-----------|-----------|-------|")
    print(row("in-process cold (new client, nothing cached)", cold))
    print(row("in-process warm (verdict cache hit)", warm))
    print(
        f"| {'HTTP warm via sigward serve (gunicorn)':<44} | {http['p50']:>9.2f} | {http['p99']:>9.2f} |"
        f" {http['count']:>5} |"
    )
    print()
    print(
        f"registry requests per cold image verification: {statistics.mean(requests_per_image):.2f} "
        f"(floor {floor}: resolve + .sig manifest + 1 blob; the first image of a cold client also pays /v2/ ping)"
    )
    print(
        f"cache-hit throughput over HTTP: {http['rps']:.0f} admissions/s "
        f"({http['tool']}, {http['connections']} connections, "
        f"{http['workers']} gunicorn workers x {http['threads']} threads)"
    )


def http_throughput(
    registry: LocalRegistry, images: list[str], policy_yaml: str, workdir: Path, seconds: float
) -> dict[str, Any]:
    policy_path = workdir / "policy.yaml"
    policy_path.write_text(policy_yaml)
    port = free_port()
    workers, threads = 2, 8
    env = dict(os.environ)
    env.update(
        {
            "SIGWARD_POLICY": str(policy_path),
            "SIGWARD_INSECURE_REGISTRIES": registry.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        }
    )
    env.pop("SIGWARD_ADMISSION_TOKEN", None)
    log = (workdir / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/admission/mutate"
    body = json.dumps(review(pod_request(pod(*images))))
    try:
        for _ in range(300):
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        for _ in range(20):  # warm every worker's cache
            assert requests.post(url, data=body, timeout=10).json()["response"]["allowed"]
        connections = 16
        if shutil.which("wrk"):
            return wrk(url, body, workdir, seconds, connections) | {"workers": workers, "threads": threads}
        return python_load(url, body, seconds, connections) | {"workers": workers, "threads": threads}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def wrk(url: str, body: str, workdir: Path, seconds: float, connections: int) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %d %f %f\\n", summary.requests, summary.errors.status,'
        " latency:percentile(50) / 1000, latency:percentile(99) / 1000))\nend\n"
    )
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{int(seconds)}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(text for text in out.splitlines() if text.startswith("RESULT"))
    _, total, errors, p50, p99 = line.split()
    assert int(errors) == 0, out
    return {
        "rps": int(total) / seconds,
        "p50": float(p50),
        "p99": float(p99),
        "count": int(total),
        "tool": "wrk",
        "connections": connections,
    }


def python_load(url: str, body: str, seconds: float, connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        session = requests.Session()
        local: list[float] = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            resp = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
            local.append((time.perf_counter() - started) * 1000)
            assert resp.status_code == 200
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "rps": len(latencies) / seconds,
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
        "count": len(latencies),
        "tool": "python threads",
        "connections": connections,
    }


if __name__ == "__main__":
    main()

"""Soak: ``.venv/bin/python -m bench.soak [--seconds 60] [--clients 8]``.

Concurrent admissions mixing signed, unsigned and faulty images (a registry port where nothing listens, and one
that accepts connections but never answers) against ``sigward serve`` (gunicorn), for a bounded time. Afterwards:
zero wrong allows, zero 5xx, and the server's memory (RSS) and open file descriptors flat between the first and the
last quarter of the run. Loopback only; every request has a timeout; the run stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.admission import pod, pod_request, review  # noqa: E402
from tests.support.httpservers import SilentServer  # noqa: E402
from tests.support.netutil import free_port  # noqa: E402
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry  # noqa: E402
from tests.support.registry import LocalRegistry  # noqa: E402
from tests.support.signing import attach_signatures, new_key, signed_layer  # noqa: E402


def proc_stats(pid: int) -> tuple[int, int]:
    """(RSS kB, open fds) summed over the gunicorn master and its workers."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    rss = fds = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            continue
    return rss, fds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sigward-soak-"))
    registry = LocalRegistry(workdir / "registry")
    registry.start()
    silent = SilentServer()
    closed_port = free_port()
    key = new_key("p256", slot=91)
    signed, unsigned = [], []
    for i in range(10):
        d = registry.push_image(f"soak/signed{i}", tag="v1")
        attach_signatures(registry, f"soak/signed{i}", d, [signed_layer(key, image_digest=d)])
        signed.append(f"{registry.host}/soak/signed{i}:v1")
        registry.push_image(f"soak/unsigned{i}", tag="v1")
        unsigned.append(f"{registry.host}/soak/unsigned{i}:v1")
    faulty = [f"{silent.host}/soak/hang:v1", f"127.0.0.1:{closed_port}/soak/down:v1"]
    policy = workdir / "policy.yaml"
    patterns = [f"{registry.host}/*", f"{silent.host}/*", f"127.0.0.1:{closed_port}/*"]
    policy.write_text(
        dump(cluster_policy("soak", [key_verification(patterns, [keys_entry(key.public_pem)])], failure_policy="Fail"))
    )
    port = free_port()
    env = {
        **os.environ,
        "SIGWARD_POLICY": str(policy),
        "SIGWARD_STORE": f"sqlite:///{workdir}/v.db",
        "SIGWARD_INSECURE_REGISTRIES": f"{registry.host},{silent.host},127.0.0.1:{closed_port}",
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        "SIGWARD_DEADLINE_SECONDS": "2",
    }
    env.pop("SIGWARD_ADMISSION_TOKEN", None)
    log = (workdir / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "sigward.cli", "serve", "--port", str(port), "--workers", "2", "--threads", "16"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/admission/mutate"
    results = {"requests": 0, "allowed_ok": 0, "denied_ok": 0, "wrong_allows": 0, "http_5xx": 0, "errors": 0}
    lock = threading.Lock()
    samples: list[tuple[float, int, int]] = []
    try:
        for _ in range(300):
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        stop = time.monotonic() + args.seconds
        start = time.monotonic()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            session = requests.Session()
            while time.monotonic() < stop:
                kind = rng.choice(["signed", "signed", "unsigned", "mixed", "faulty"])
                if kind == "signed":
                    images, should_allow = rng.sample(signed, 3), True
                elif kind == "unsigned":
                    images, should_allow = [rng.choice(unsigned)], False
                elif kind == "mixed":
                    images, should_allow = [rng.choice(signed), rng.choice(unsigned)], False
                else:
                    images, should_allow = [rng.choice(signed), rng.choice(faulty)], False
                try:
                    resp = session.post(url, data=json.dumps(review(pod_request(pod(*images)))), timeout=10)
                except requests.RequestException:
                    with lock:
                        results["errors"] += 1
                    continue
                with lock:
                    results["requests"] += 1
                    if resp.status_code >= 500:
                        results["http_5xx"] += 1
                        continue
                    allowed = resp.json()["response"]["allowed"]
                    if allowed and not should_allow:
                        results["wrong_allows"] += 1
                    elif allowed:
                        results["allowed_ok"] += 1
                    else:
                        results["denied_ok"] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        while time.monotonic() < stop:
            rss, fds = proc_stats(server.pid)
            samples.append((time.monotonic() - start, rss, fds))
            time.sleep(1.0)
        for t in threads:
            t.join(timeout=30)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        log.close()
        silent.close()
        registry.close()
    quarter = max(1, len(samples) // 4)
    early, late = samples[quarter : 2 * quarter] or samples[:1], samples[-quarter:]
    rss_early = sum(s[1] for s in early) / len(early)
    rss_late = sum(s[1] for s in late) / len(late)
    fds_early = sum(s[2] for s in early) / len(early)
    fds_late = sum(s[2] for s in late) / len(late)
    print(json.dumps(results, indent=2))
    print(
        f"duration {args.seconds:.0f} s, {args.clients} clients, {results['requests'] / args.seconds:.0f} admissions/s"
    )
    print(f"server RSS: {rss_early / 1024:.0f} MB (second quarter) -> {rss_late / 1024:.0f} MB (last quarter)")
    print(f"server open fds: {fds_early:.0f} -> {fds_late:.0f}")
    ok = (
        results["wrong_allows"] == 0
        and results["http_5xx"] == 0
        and rss_late <= rss_early * 1.25 + 20_000
        and fds_late <= fds_early + 20
    )
    print("SOAK PASSED" if ok else "SOAK FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

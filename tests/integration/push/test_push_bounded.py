"""Push deliveries are bounded and policy-first (issue 20 §2), process-level against ``sigward serve``:

- 100 events naming a host no policy matches: acknowledged at once, and a listener on that host (allowed as a
  private registry, so only the policy keeps sigward away) counts zero connections — its twin, a host a policy does
  match, is contacted;
- 100 events for a matched registry that never answers: one bounded delivery, a 503 (redelivery) within the push
  deadline, not 100 × the deadline;
- a flood of such deliveries: a concurrent admission is still answered in under a second, and deliveries past the
  push lane's bound are answered 503 at once.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sigward.push.service import DEFAULT_PUSH_DEADLINE_SECONDS
from tests.support.admission import pod, pod_request, review
from tests.support.faults import AcceptCounter
from tests.support.httpservers import SilentServer
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.serve import Served
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry

SECRET = "push-bounded-secret-577215"
KEY = new_key("p256", slot=73)
DIGEST = "sha256:" + "ab" * 32
SLACK = 1.5


class Hosts:
    def __init__(self) -> None:
        self.unmatched = AcceptCounter("127.0.0.2")
        self.matched = AcceptCounter("127.0.0.3")
        self.silent = SilentServer()

    def close(self) -> None:
        self.unmatched.close()
        self.matched.close()
        self.silent.close()


@pytest.fixture(scope="module")
def stack(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Hosts, str]]:
    workdir = tmp_path_factory.mktemp("push-bounded")
    digest = registry.push_image("bounded/app", tag="v1")
    attach_signatures(registry, "bounded/app", digest, [signed_layer(KEY, image_digest=digest)])
    hosts = Hosts()
    patterns = [f"{registry.host}/*", f"{hosts.matched.host}/*", f"{hosts.silent.host}/*"]
    policy = workdir / "policy.yaml"
    policy.write_text(
        dump(cluster_policy("require-signed", [key_verification(patterns, [keys_entry(KEY.public_pem)])]))
    )
    insecure = [registry.host, hosts.unmatched.host, hosts.matched.host, hosts.silent.host]
    served = Served(
        workdir,
        {
            "SIGWARD_POLICY": str(policy),
            "SIGWARD_PUSH_SECRET": SECRET,
            "SIGWARD_PUSH_GRACE_SECONDS": "0",
            "SIGWARD_STORE": f"sqlite:///{workdir / 'verdicts.db'}",
            "SIGWARD_INSECURE_REGISTRIES": ",".join(insecure),
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1,127.0.0.2,127.0.0.3",
        },
    )
    served.start()
    try:
        yield served, hosts, f"{registry.host}/bounded/app:v1"
    finally:
        served.stop()
        hosts.close()


def delivery(host: str, count: int = 100) -> bytes:
    events = [
        {
            "id": str(uuid.uuid4()),
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": DIGEST,
                "repository": f"flood/app{i}",
                "url": f"http://{host}/v2/flood/app{i}/manifests/{DIGEST}",
                # untagged manifests may be referrers (cosign v3 bundles): their subject would be looked up
                **({"tag": "v1"} if i % 2 else {}),
            },
            "request": {"host": host},
        }
        for i in range(count)
    ]
    return json.dumps({"events": events}).encode()


def push(served: Served, body: bytes, timeout: float = 15) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    resp = requests.post(
        f"{served.url}/push/webhook",
        data=body,
        headers={
            "Authorization": f"Bearer {SECRET}",
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        },
        timeout=timeout,
    )
    return resp.status_code, resp.json(), time.monotonic() - started


def test_unmatched_host_is_acknowledged_without_a_connection(stack: tuple[Served, Hosts, str]) -> None:
    served, hosts, _ = stack
    for _ in range(4):  # each worker process has imported the push handling (a one-off cost, not per delivery)
        assert push(served, delivery(hosts.unmatched.host, count=1))[0] == 200
    status, body, elapsed = push(served, delivery(hosts.unmatched.host))
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["ignored"] * 100
    assert elapsed < 0.5, elapsed
    time.sleep(0.2)
    assert hosts.unmatched.accepted == 0


def test_matched_host_is_contacted(stack: tuple[Served, Hosts, str]) -> None:
    """The twin: the same events naming a host a policy matches do reach it (and, refused, ask for redelivery)."""
    served, hosts, _ = stack
    status, body, _ = push(served, delivery(hosts.matched.host, count=3))
    assert status == 503, body
    deadline = time.monotonic() + 2
    while hosts.matched.accepted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hosts.matched.accepted > 0


def test_matched_never_answering_host_is_one_bounded_delivery(stack: tuple[Served, Hosts, str]) -> None:
    served, hosts, _ = stack
    status, body, elapsed = push(served, delivery(hosts.silent.host))
    assert status == 503, body
    assert elapsed < DEFAULT_PUSH_DEADLINE_SECONDS + SLACK, elapsed
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["retry"] * 100
    assert sum("deadline was reached before this event" in r["reason"] for r in body["results"]) >= 98


def test_admission_is_answered_during_a_push_flood(stack: tuple[Served, Hosts, str]) -> None:
    served, hosts, image = stack
    admission = json.dumps(review(pod_request(pod(image))))
    assert requests.post(f"{served.url}/admission/mutate", data=admission, timeout=10).json()["response"]["allowed"]
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def one() -> None:
        status, _, elapsed = push(served, delivery(hosts.silent.host), timeout=30)
        with lock:
            results.append((status, elapsed))

    flood = [threading.Thread(target=one) for _ in range(60)]
    for thread in flood:
        thread.start()
    time.sleep(0.5)  # the push lanes are full
    started = time.monotonic()
    resp = requests.post(f"{served.url}/admission/mutate", data=admission, timeout=10)
    elapsed = time.monotonic() - started
    assert resp.json()["response"]["allowed"] is True
    assert elapsed < 1.0, elapsed
    for thread in flood:
        thread.join(30)
    assert len(results) == 60
    assert all(status == 503 for status, _ in results)
    assert sum(elapsed < 0.5 for _, elapsed in results) >= 20  # past the lane's bound: refused at once
    assert max(elapsed for _, elapsed in results) < 2 * DEFAULT_PUSH_DEADLINE_SECONDS + SLACK

"""Process-level (issue 20 §1, §3): `sigward serve` with the real docker-registry.

- A pathological tag (`aaaa…a-` against `^(a+)+$`, exponential for a backtracking engine) and a pathological
  attestation value are decided quickly, and a concurrent ordinary admission is delayed by less than 100 ms.
- Harbor and distribution events for the same digest in two repositories within one second are both verified and
  recorded; a crafted distribution event reusing Harbor's delivery id cannot suppress; redelivery is idempotent.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sigward.store.sqlite import SqliteStore
from tests.support.admission import pod, pod_request, review
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.serve import Served
from tests.support.signing import (
    attach_attestations,
    attach_signatures,
    attestation_layer,
    in_toto_statement,
    new_key,
    signed_layer,
)

pytestmark = pytest.mark.registry
KEY = new_key("p256", slot=41)
PREDICATE_TYPE = "https://example.test/pathological/v1"
EVIL_TAG = "a" * 127 + "-"  # the longest tag the grammar allows; 2**127 paths for `^(a+)+$` in Python's re
EVIL_VALUE = "a" * 200_000 + "-"


def policy_doc(host: str) -> dict[str, Any]:
    patho = key_verification([f"{host}/patho/*"], [keys_entry(KEY.public_pem)])
    patho["attestations"] = [
        {
            "type": PREDICATE_TYPE,
            "attestors": [{"entries": [keys_entry(KEY.public_pem)]}],
            "conditions": [
                {"all": [{"key": "{{ regex_match('^(a+)+$', long) }}", "operator": "Equals", "value": True}]}
            ],
        }
    ]
    patho["validate"] = {
        "deny": {
            "conditions": {
                "any": [
                    {"key": "{{ regex_match('^(a+)+$', image.tag) }}", "operator": "Equals", "value": True},
                ]
            }
        }
    }
    ordinary = key_verification([f"{host}/ok/*"], [keys_entry(KEY.public_pem)])
    return cluster_policy("linear-patterns", [patho, ordinary])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, Served, Path, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("patterns-serve")
    registry = LocalRegistry(workdir / "registry")
    registry.start()
    images: dict[str, str] = {}
    for repo in ("patho/app", "ok/app", "team/one", "team/two"):
        digest = registry.push_image(repo, tag="v1")
        attach_signatures(registry, repo, digest, [signed_layer(KEY, image_digest=digest)])
        images[repo] = digest
    statement = in_toto_statement(images["patho/app"], PREDICATE_TYPE, {"long": EVIL_VALUE})
    attach_attestations(registry, "patho/app", images["patho/app"], [attestation_layer(KEY, statement)])
    # team/one and team/two hold the same image (same digest) for the event identity test
    same = registry.push_image("team/one", tag="same", layers=[b"same-layer"], config=b'{"same":1}')
    assert registry.push_image("team/two", tag="same", layers=[b"same-layer"], config=b'{"same":1}') == same
    for repo in ("team/one", "team/two"):
        attach_signatures(registry, repo, same, [signed_layer(KEY, image_digest=same)])
    images["same"] = same
    policy = workdir / "policy.yaml"
    doc = policy_doc(registry.host)
    doc2 = cluster_policy("team-signed", [key_verification([f"{registry.host}/team/*"], [keys_entry(KEY.public_pem)])])
    policy.write_text(dump(doc, doc2))
    db = workdir / "verdicts.db"
    served = Served(
        workdir,
        {
            "SIGWARD_POLICY": str(policy),
            "SIGWARD_STORE": f"sqlite:///{db}",
            "SIGWARD_PUSH_GRACE_SECONDS": "0",
            "SIGWARD_INSECURE_REGISTRIES": registry.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        },
    )
    served.start()
    try:
        yield registry, served, db, images
    finally:
        served.stop()
        registry.close()


def admit(served: Served, image: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    resp = requests.post(f"{served.url}/admission/mutate", json=review(pod_request(pod(image))), timeout=30)
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200, served.log()
    return resp.json()["response"], elapsed


def test_pathological_tag_and_attestation_do_not_delay_an_ordinary_admission(
    stack: tuple[LocalRegistry, Served, Path, dict[str, str]],
) -> None:
    registry, served, _db, images = stack
    evil = f"{registry.host}/patho/app:{EVIL_TAG}@{images['patho/app']}"
    ordinary = f"{registry.host}/ok/app:v1@{images['ok/app']}"

    decided, evil_elapsed = admit(served, evil)
    assert decided["allowed"] is False, decided  # the attestation condition fails closed; no stack trace, no allow
    assert "attestation" in json.dumps(decided["status"]), decided
    assert evil_elapsed < 5.0
    assert admit(served, ordinary)[0]["allowed"] is True

    baseline = [admit(served, ordinary)[1] for _ in range(5)]
    concurrent: list[float] = []
    for _ in range(5):
        worker = threading.Thread(target=admit, args=(served, evil))
        worker.start()
        time.sleep(0.005)
        response, elapsed = admit(served, ordinary)
        worker.join(timeout=30)
        assert response["allowed"] is True
        concurrent.append(elapsed)
    extra = statistics.median(concurrent) - statistics.median(baseline)
    assert extra < 0.1, (baseline, concurrent)


def harbor(host: str, repository: str, digest: str, occur_at: int) -> dict[str, Any]:
    namespace, _, name = repository.partition("/")
    return {
        "type": "PUSH_ARTIFACT",
        "occur_at": occur_at,
        "operator": "admin",
        "event_data": {
            "resources": [{"digest": digest, "tag": "same", "resource_url": f"{host}/{repository}:same"}],
            "repository": {"name": name, "namespace": namespace, "repo_full_name": repository, "repo_type": "private"},
        },
    }


def distribution(host: str, repository: str, digest: str, event_id: str) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": event_id,
                "timestamp": "2024-05-01T12:00:00Z",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": 10,
                    "repository": repository,
                    "url": f"http://{host}/v2/{repository}/manifests/{digest}",
                    "tag": "same",
                },
                "request": {"id": "r", "addr": "127.0.0.1", "host": host, "method": "PUT", "useragent": "docker"},
            }
        ]
    }


def post_event(served: Served, doc: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    resp = requests.post(f"{served.url}/push/webhook", json=doc, headers=headers, timeout=30)
    assert resp.status_code == 200, (resp.status_code, resp.text, served.log())
    body: dict[str, Any] = resp.json()
    return body


def statuses(body: dict[str, Any]) -> list[str]:
    return [o["status"] for o in body.get("outcomes", body.get("results", []))]


def verdict_repositories(db: Path, digest: str) -> set[str]:
    store = SqliteStore(str(db))
    try:
        return {v.repository for v in store.for_digest(digest) if v.verdict == "pass"}
    finally:
        store.close()


def test_same_digest_in_two_repositories_within_one_second_are_both_recorded(
    stack: tuple[LocalRegistry, Served, Path, dict[str, str]],
) -> None:
    registry, served, db, images = stack
    digest, host = images["same"], registry.host
    now = int(time.time())
    harbor_headers = {"User-Agent": "Harbor"}
    dist_headers = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}
    first = post_event(served, harbor(host, "team/one", digest, now), harbor_headers)
    second = post_event(served, harbor(host, "team/two", digest, now), harbor_headers)
    assert "duplicate" not in json.dumps(first) and "duplicate" not in json.dumps(second), (first, second)
    assert verdict_repositories(db, digest) == {f"{host}/team/one", f"{host}/team/two"}, served.log()
    # Redelivery of Harbor's event is idempotent.
    assert "duplicate" in json.dumps(post_event(served, harbor(host, "team/one", digest, now), harbor_headers))
    # A distribution event with Harbor's synthesized delivery id is not a duplicate of it (another source).
    crafted_id = f"{now}:PUSH_ARTIFACT:{digest}"
    crafted = post_event(served, distribution(host, "team/one", digest, crafted_id), dist_headers)
    assert "duplicate" not in json.dumps(crafted), crafted
    assert "duplicate" in json.dumps(
        post_event(served, distribution(host, "team/one", digest, crafted_id), dist_headers)
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost@evil.example/x",
        "https://user:pw-s3cret@hooks.example/x",
        "https://169.254.169.254/",
        "http://127.0.0.1.evil.example/hook",
    ],
)
def test_serve_refuses_a_bad_findings_url_at_start_up(url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.serve import REPO

    policy = tmp_path / "policy.yaml"
    policy.write_text(dump(cluster_policy("p", [key_verification(["ghcr.io/org/*"], [keys_entry(KEY.public_pem)])])))
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "serve", "--port", "1"],
        cwd=REPO,
        env={**os.environ, "SIGWARD_POLICY": str(policy), "SIGWARD_FINDINGS_WEBHOOK": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "SIGWARD_FINDINGS_WEBHOOK is not usable" in proc.stderr
    assert "s3cret" not in proc.stderr and "Traceback" not in proc.stderr

"""GitHub artifact attestations through push re-verification: the real docker-registry notifies `sigward serve` when a
bundle referrer is pushed; the subject (the attested digest) is re-verified under a policy allowing the public-good
and GitHub roots (files, offline) and the verdict lands in the SQLite store. A TSA-only bundle whose token was removed
is recorded as a failure, never a pass."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.store.sqlite import SqliteStore
from tests.support.github_attestations import GH_1, GH_2, PG, bundle_doc, bundle_entry, no_timestamps, root_path, serve
from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump
from tests.support.registry import LocalRegistry
from tests.support.serve import Served

pytestmark = pytest.mark.registry
SECRET = "gh-push-secret-7"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, Served, Path]]:
    workdir = tmp_path_factory.mktemp("gh-push")
    serve_port = free_port()
    registry = LocalRegistry(
        workdir / "registry",
        notifications=[
            {
                "name": "sigward",
                "url": f"http://127.0.0.1:{serve_port}/push/webhook",
                "headers": {"Authorization": [f"Bearer {SECRET}"]},
                "timeout": "2s",
                "threshold": 3,
                "backoff": "1s",
            }
        ],
    )
    doc = cluster_policy("gh-attested", [bundle_entry(f"{registry.host}/*")])
    doc["metadata"]["annotations"] = {"sigward.dev/trusted-roots": "public-good,github"}
    policy = workdir / "policy.yaml"
    policy.write_text(dump(doc))
    db = workdir / "verdicts.db"
    served = Served(
        workdir,
        {
            "SIGWARD_POLICY": str(policy),
            "SIGWARD_STORE": f"sqlite:///{db}",
            "SIGWARD_PUSH_SECRET": SECRET,
            "SIGWARD_PUSH_GRACE_SECONDS": "0",
            "SIGWARD_INSECURE_REGISTRIES": registry.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
            "SIGWARD_TRUSTED_ROOT": str(root_path("public-good.json")),
            "SIGWARD_GITHUB_TRUSTED_ROOT": str(root_path("gh-attestation-trusted-root-2025-11.jsonl")),
        },
        port=serve_port,
    )
    served.start()
    registry.start()
    try:
        yield registry, served, db
    finally:
        registry.close()
        served.stop()


def verdicts(db: Path, digest: str, want: str, timeout: float = 30.0) -> list[str]:
    store = SqliteStore(str(db))
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    try:
        while time.monotonic() < deadline:
            seen = [v.verdict for v in store.for_digest(digest)]
            if want in seen:
                return seen
            time.sleep(0.2)
    finally:
        store.close()
    return seen


def test_referrer_pushes_reverify_the_attested_digest(stack: tuple[LocalRegistry, Served, Path]) -> None:
    registry, served, db = stack
    serve(registry, "ghp/private", GH_1.digest, json.dumps(bundle_doc(GH_1)).encode())
    serve(registry, "ghp/public", PG.digest, json.dumps(bundle_doc(PG)).encode())
    serve(registry, "ghp/tampered", GH_2.digest, json.dumps(no_timestamps(bundle_doc(GH_2))).encode())
    assert "pass" in verdicts(db, GH_1.digest, "pass"), served.log()
    assert "pass" in verdicts(db, PG.digest, "pass"), served.log()
    seen = verdicts(db, GH_2.digest, "fail")
    assert seen and "pass" not in seen and "fail" in seen, (seen, served.log())

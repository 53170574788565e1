"""GitHub artifact attestations through push re-verification: the real docker-registry notifies `sigward serve` when a
bundle referrer is pushed; the subject (the attested digest) is re-verified under a policy allowing the public-good
and GitHub roots (files, offline) and the verdict lands in the SQLite store. A TSA-only bundle whose token was removed
is recorded as a failure, never a pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.github_attestations import GH_1, GH_2, PG, bundle_doc, bundle_entry, no_timestamps, root_path, serve
from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump
from tests.support.pushstack import push_env, sigward_notification, wait_for_verdict
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
        notifications=[sigward_notification(serve_port, SECRET)],
    )
    doc = cluster_policy("gh-attested", [bundle_entry(f"{registry.host}/*")])
    doc["metadata"]["annotations"] = {"sigward.dev/trusted-roots": "public-good,github"}
    policy = workdir / "policy.yaml"
    policy.write_text(dump(doc))
    db = workdir / "verdicts.db"
    served = Served(
        workdir,
        push_env(
            policy=policy,
            db=db,
            secret=SECRET,
            registry_host=registry.host,
            extra={
                "SIGWARD_TRUSTED_ROOT": str(root_path("public-good.json")),
                "SIGWARD_GITHUB_TRUSTED_ROOT": str(root_path("gh-attestation-trusted-root-2025-11.jsonl")),
            },
        ),
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
    return [v.verdict for v in wait_for_verdict(db, digest, want, timeout)]


def test_referrer_pushes_reverify_the_attested_digest(stack: tuple[LocalRegistry, Served, Path]) -> None:
    registry, served, db = stack
    serve(registry, "ghp/private", GH_1.digest, json.dumps(bundle_doc(GH_1)).encode())
    serve(registry, "ghp/public", PG.digest, json.dumps(bundle_doc(PG)).encode())
    serve(registry, "ghp/tampered", GH_2.digest, json.dumps(no_timestamps(bundle_doc(GH_2))).encode())
    assert "pass" in verdicts(db, GH_1.digest, "pass"), served.log()
    assert "pass" in verdicts(db, PG.digest, "pass"), served.log()
    seen = verdicts(db, GH_2.digest, "fail")
    assert seen and "pass" not in seen and "fail" in seen, (seen, served.log())

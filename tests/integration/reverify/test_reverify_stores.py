"""Re-verification end to end on the real docker-registry with the SQLite store and the Firestore emulator: verdicts
recorded by the push service are walked again by the reverify service with the real registry client — a key
removed from the policy, a policy change and a signature deleted from the registry each flip a stored pass with one
finding; an unchanged world writes nothing; concurrent runs report a flip once; `sigward reverify --dry-run` prints
what a new policy would deny and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError
from sigward.events import PushEvent
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.push.findings import Finding
from sigward.push.service import PushService, PushSettings
from sigward.registry import RegistryClient
from sigward.reverify.service import ReverifyService, ReverifySettings
from sigward.store import VerdictStore, open_store
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource
from tests.support.emulators import GcloudEmulator, gcloud_available
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry, local_config
from tests.support.serve import REPO as CHECKOUT
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
KEY = new_key("p256", slot=72)
ROTATED = new_key("p256", slot=73)


def policy_doc(registry: LocalRegistry, *pems: str) -> str:
    entries = [keys_entry(pem) for pem in pems]
    return dump(cluster_policy("require-signed", [key_verification([f"{registry.host}/*"], entries, count=1)]))


def policies(registry: LocalRegistry, *pems: str) -> list[Policy]:
    return list(load_policy_text(policy_doc(registry, *pems), "p.yaml").policies)


@dataclass
class Recorder:
    findings: list[Finding] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def notify(self, finding: Finding, *, deadline: Deadline) -> bool:
        with self.lock:
            self.findings.append(finding)
        return True


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    made = LocalRegistry(tmp_path_factory.mktemp("reverify-registry"))
    made.start()
    yield made
    made.close()


@pytest.fixture(scope="module")
def firestore_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not gcloud_available("cloud-firestore-emulator"):
        pytest.skip("the gcloud Firestore emulator (google-cloud-cli-firestore-emulator + Java) is not installed")
    emulator = GcloudEmulator("firestore", tmp_path_factory.mktemp("firestore"))
    emulator.start()
    warm_up(emulator.host)
    yield emulator.host
    emulator.stop()


def warm_up(host: str) -> None:
    """The emulator's first transactions take seconds on a cold JVM, longer than a push deadline: warm it."""
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    try:
        warm = open_store("firestore://sigward-test/warm-up")
        for attempt in range(5):
            try:
                warm.first_seen(f"k{attempt}", now=1.0)
                warm.set_state("s", str(attempt), expected=warm.get_state("s"))
                warm.scan(after="", limit=1)
                break
            except ExternalServiceError:
                continue
        warm.close()
    finally:
        del os.environ["FIRESTORE_EMULATOR_HOST"]


@pytest.fixture(params=["sqlite", "firestore"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VerdictStore]:
    if request.param == "sqlite":
        made = open_store(f"sqlite:///{tmp_path / 'v.db'}")
    else:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", request.getfixturevalue("firestore_host"))
        made = open_store(f"firestore://sigward-test/reverify-{tmp_path.name}")
    yield made
    made.close()


@dataclass
class Stack:
    registry: LocalRegistry
    store: VerdictStore
    client: RegistryClient
    policies: list[Policy]
    recorder: Recorder = field(default_factory=Recorder)

    def verifier(self) -> Verifier:
        return Verifier(source=RegistrySignatureSource(self.client))

    def push(self, repo: str, digest: str) -> None:
        event = PushEvent(
            source="distribution",
            event_id=f"{repo}-{digest[-8:]}",
            action="push",
            registry=self.registry.host,
            repository=repo,
            digest=digest,
            tag="v1",
            media_type="application/vnd.oci.image.manifest.v1+json",
        )
        service = PushService(
            policies=lambda: self.policies,
            verifier=self.verifier(),
            store=self.store,
            settings=PushSettings(grace_seconds=0),
        )
        outcome = service.handle(event)
        assert outcome.status == "recorded", outcome.reason

    def reverify(self, **settings: Any) -> ReverifyService:
        return ReverifyService(
            policies=lambda: self.policies,
            verifier=self.verifier(),
            store=self.store,
            settings=ReverifySettings(**settings),
            notifier=self.recorder,
        )

    def verdicts(self, digest: str) -> list[str]:
        return sorted(v.verdict for v in self.store.for_digest(digest))


@pytest.fixture
def stack(registry: LocalRegistry, store: VerdictStore) -> Iterator[Stack]:
    client = RegistryClient(local_config(registry))
    yield Stack(registry, store, client, policies(registry, KEY.public_pem))
    client.close()


def signed_image(registry: LocalRegistry, repo: str) -> tuple[str, str]:
    digest = registry.push_image(repo, tag="v1")
    sig = attach_signatures(registry, repo, digest, [signed_layer(KEY, image_digest=digest)])
    return digest, sig


def test_unchanged_world_then_signature_deleted_from_the_registry(stack: Stack) -> None:
    digest, sig = signed_image(stack.registry, "rv/deleted")
    stack.push("rv/deleted", digest)
    assert stack.verdicts(digest) == ["pass"]
    before = [v.as_json() for v in stack.store.for_digest(digest)]
    report = stack.reverify().run()
    assert report.verified >= 1 and report.flips == () and report.updated == 0 and stack.recorder.findings == []
    assert [v.as_json() for v in stack.store.for_digest(digest)] == before  # no writes
    resp = requests.delete(f"{stack.registry.url}/v2/rv/deleted/manifests/{sig}", timeout=5)
    assert resp.status_code == 202
    flips = [f for f in stack.reverify().run().flips if f.digest == digest]
    assert [(f.before, f.after, f.reason.name) for f in flips] == [("pass", "unsigned", "NO_SIGNATURES")]
    assert stack.verdicts(digest) == ["unsigned"]
    assert [f.digest for f in stack.recorder.findings] == [digest]


def test_key_removed_from_the_policy_flips_with_a_finding(stack: Stack) -> None:
    digest, _ = signed_image(stack.registry, "rv/rotated")
    stack.push("rv/rotated", digest)
    stack.policies = policies(stack.registry, ROTATED.public_pem)
    report = stack.reverify().run()
    flips = [f for f in report.flips if f.digest == digest]
    assert [(f.before, f.after, f.reason.name) for f in flips] == [("pass", "fail", "NOT_SATISFIED")]
    assert stack.verdicts(digest) == ["fail", "superseded"]
    assert stack.reverify().run().flips == ()  # reported once


def test_policy_change_still_satisfied_rekeys_without_findings(stack: Stack) -> None:
    digest, _ = signed_image(stack.registry, "rv/extended")
    stack.push("rv/extended", digest)
    stack.policies = policies(stack.registry, KEY.public_pem, ROTATED.public_pem)
    report = stack.reverify().run()
    assert report.flips == () and stack.verdicts(digest) == ["pass", "superseded"]
    new_hash = stack.policies[0].content_hash
    assert {v.policy_hash for v in stack.store.for_digest(digest) if v.verdict == "pass"} == {new_hash}


def test_concurrent_runs_report_a_flip_once(stack: Stack) -> None:
    digest, _ = signed_image(stack.registry, "rv/concurrent")
    stack.push("rv/concurrent", digest)
    stack.policies = policies(stack.registry, ROTATED.public_pem)
    barrier = threading.Barrier(3)
    reports: list[Any] = []

    def run(service: ReverifyService) -> None:
        barrier.wait()
        reports.append(service.run())

    threads = [threading.Thread(target=run, args=(stack.reverify(),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(1 for r in reports for f in r.flips if f.digest == digest) == 1
    assert [f.digest for f in stack.recorder.findings].count(digest) == 1


def test_concurrent_runs_without_the_lease_report_once_on_the_store_itself(stack: Stack) -> None:
    """Every run believes it holds the lease: only the store's compare-and-set (SQLite conditional UPDATE,
    Firestore transaction) stands between them."""
    from tests.unit.reverify.test_reverify_service import LeaselessStore

    digest, _ = signed_image(stack.registry, "rv/leaseless")
    stack.push("rv/leaseless", digest)
    stack.policies = policies(stack.registry, ROTATED.public_pem)
    stack.store = LeaselessStore(stack.store)
    barrier = threading.Barrier(3)
    reports: list[Any] = []

    def run(service: ReverifyService) -> None:
        barrier.wait()
        reports.append(service.run())

    threads = [threading.Thread(target=run, args=(stack.reverify(),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(reports) == 3
    assert sum(1 for r in reports for f in r.flips if f.digest == digest) == 1
    assert [f.digest for f in stack.recorder.findings].count(digest) == 1


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", "reverify", *args],
        cwd=CHECKOUT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_dry_run_prints_what_a_new_policy_would_deny(registry: LocalRegistry, tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    store = open_store(f"sqlite:///{db}")
    client = RegistryClient(local_config(registry))
    stack = Stack(registry, store, client, policies(registry, KEY.public_pem))
    digest, _ = signed_image(registry, "rv/cli")
    stack.push("rv/cli", digest)
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(policy_doc(registry, KEY.public_pem))
    new.write_text(policy_doc(registry, ROTATED.public_pem))
    env = {
        "SIGWARD_STORE": f"sqlite:///{db}",
        "SIGWARD_INSECURE_REGISTRIES": registry.host,
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        "SIGWARD_TUF_OFFLINE": "1",
    }
    before = [v.as_json() for v in store.for_digest(digest)]
    proc = run_cli("--policy", str(new), "--dry-run", "--json", env=env)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is True and [f["digest"] for f in doc["flipped"]] == [digest]
    assert doc["flipped"][0]["reason"] == "NOT_SATISFIED"
    assert [v.as_json() for v in store.for_digest(digest)] == before and store.get_state("reverify/cursor") == ""
    proc = run_cli("--policy", str(old), env=env)  # the current policy: nothing flips
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("--policy", str(old), "--since", "soon", env=env)
    assert proc.returncode == 2 and "--since" in proc.stderr
    proc = run_cli("--policy", str(tmp_path / "missing.yaml"), env=env)
    assert proc.returncode == 2
    client.close()
    store.close()


def test_scan_replace_and_state_on_the_firestore_emulator(
    firestore_host: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.unit.store.test_store_reverify_contract import check_contract

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_host)
    made = open_store(f"firestore://sigward-test/contract-{tmp_path.name}")
    check_contract(made)
    made.close()


def test_scan_yields_one_digests_records_together_on_the_firestore_emulator(
    firestore_host: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.unit.store.test_store_reverify_contract import check_scan_groups_digests

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_host)
    made = open_store(f"firestore://sigward-test/grouped-{tmp_path.name}")
    check_scan_groups_digests(made)
    made.close()

"""The Firestore verdict store against the real gcloud Firestore emulator (FIRESTORE_EMULATOR_HOST)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.store import StoredStatus, StoredVerdict, VerdictKey, open_store
from sigward.store.firestore import FirestoreStore
from tests.support.emulators import GcloudEmulator, gcloud_available
from tests.support.memory import stored_key

DIGEST = "sha256:" + "a" * 64

pytestmark = pytest.mark.skipif(
    not gcloud_available("cloud-firestore-emulator"),
    reason="the gcloud Firestore emulator (google-cloud-cli-firestore-emulator + Java) is not installed",
)


@pytest.fixture(scope="module")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcloudEmulator]:
    emulator = GcloudEmulator("firestore", tmp_path_factory.mktemp("firestore"))
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def store(
    firestore_emulator: GcloudEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FirestoreStore]:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    made = open_store(f"firestore://sigward-test/verdicts-{tmp_path.name}")
    assert isinstance(made, FirestoreStore)
    yield made
    made.close()


def verdict(**kw: object) -> StoredVerdict:
    base: dict[str, object] = dict(
        digest=DIGEST,
        repository="registry.test/app",
        policy="p",
        policy_hash="h1",
        rule="r",
        entries="0",
        verdict="pass",
        message="verified",
        verified_at=1000.0,
        expires_at=2000.0,
        source="gcr",
        event_id="e1",
        image="registry.test/app:v1",
    )
    base.update(kw)
    base["verdict"] = StoredStatus(str(base["verdict"]))
    return StoredVerdict(**base)  # type: ignore[arg-type]


def key(policy_hash: str = "h1") -> VerdictKey:
    return stored_key(digest=DIGEST, repository="registry.test/app", policy_hash=policy_hash, rule="r", entries="0")


def test_contract_on_the_emulator(store: FirestoreStore) -> None:
    store.record(verdict())
    found = store.lookup(key(policy_hash="h1"), now=1500)
    assert found == verdict()
    assert store.lookup(key(policy_hash="h2"), now=1500) is None
    assert store.lookup(key(policy_hash="h1"), now=2500) is None
    store.record(verdict(rule="other", verified_at=900.0))
    assert [v.rule for v in store.for_digest(DIGEST)] == ["other", "r"]
    assert not store.event_done("gcr/123", now=10)
    store.mark_event("gcr/123", now=10, ttl=100)
    assert store.event_done("gcr/123", now=20)
    assert store.first_seen("img", now=10, ttl=100) == 10
    assert store.first_seen("img", now=30, ttl=100) == 10


def test_emulator_down_is_an_infrastructure_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from sigward.errors import ExternalServiceError
    from tests.support.netutil import free_port

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    store = open_store("firestore://sigward-test/down")
    with pytest.raises(ExternalServiceError):
        store.record(verdict())

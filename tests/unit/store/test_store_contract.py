"""Every verdict store keeps the same contract: exact-key lookups, expiry, history per digest, event idempotency,
first sightings; SQLite also across threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.errors import ConfigurationError, ExternalServiceError
from sigward.store import StoredStatus, StoredVerdict, VerdictStore, open_store
from sigward.store.memory import MemoryStore
from sigward.store.sqlite import SqliteStore
from tests.support.memory import stored_key

DIGEST = "sha256:" + "a" * 64


def verdict(**kw: object) -> StoredVerdict:
    base: dict[str, object] = {
        "digest": DIGEST,
        "repository": "registry.test/app",
        "policy": "p",
        "policy_hash": "h1",
        "rule": "r",
        "entries": "0",
        "verdict": "pass",
        "message": "verified",
        "verified_at": 1000.0,
        "expires_at": 2000.0,
        "source": "distribution",
        "event_id": "e1",
        "image": "registry.test/app:v1",
    }
    base.update(kw)
    base["verdict"] = StoredStatus(str(base["verdict"]))
    return StoredVerdict(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VerdictStore]:
    made: VerdictStore = MemoryStore() if request.param == "memory" else SqliteStore(str(tmp_path / "v.db"))
    yield made
    made.close()


def lookup(store: VerdictStore, now: float = 1500.0, **kw: str) -> StoredVerdict | None:
    key = {"digest": DIGEST, "repository": "registry.test/app", "policy_hash": "h1", "rule": "r", "entries": "0"}
    key.update(kw)
    return store.lookup(stored_key(**key), now=now)


def test_record_and_exact_lookup(store: VerdictStore) -> None:
    store.record(verdict())
    assert lookup(store) == verdict()
    for other in (
        {"policy_hash": "h2"},
        {"rule": "x"},
        {"entries": "0,1"},
        {"repository": "other/app"},
        {"digest": "sha256:" + "b" * 64},
    ):
        assert lookup(store, 1500.0, **other) is None, other


def test_expiry_and_replacement(store: VerdictStore) -> None:
    store.record(verdict())
    assert lookup(store, now=2500.0) is None
    store.record(verdict(verdict="fail", message="no signatures found", verified_at=1600.0))
    found = lookup(store)
    assert found is not None and found.verdict == "fail"


def test_history_per_digest(store: VerdictStore) -> None:
    store.record(verdict(rule="a", verified_at=3.0))
    store.record(verdict(rule="b", verified_at=1.0))
    store.record(verdict(digest="sha256:" + "c" * 64))
    assert [v.rule for v in store.for_digest(DIGEST)] == ["b", "a"]


def test_events_and_sightings(store: VerdictStore) -> None:
    assert not store.event_done("evt/1", now=10.0)
    store.mark_event("evt/1", now=10.0, ttl=100.0)
    assert store.event_done("evt/1", now=50.0)
    assert not store.event_done("evt/1", now=200.0)
    assert store.first_seen("img", now=10.0, ttl=100.0) == 10.0
    assert store.first_seen("img", now=20.0, ttl=100.0) == 10.0
    assert store.first_seen("img", now=500.0, ttl=100.0) == 500.0  # expired sighting starts again


def test_sqlite_threads(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "v.db"))
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(50):
                store.record(verdict(rule=f"r{i}-{j}"))
                assert lookup(store, rule=f"r{i}-{j}") is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.for_digest(DIGEST)) == 400
    store.close()


def _writer(path: str, n: int) -> None:
    store = SqliteStore(path)
    for j in range(100):
        store.record(verdict(rule=f"p{n}-{j}"))
        store.first_seen(f"k{j}", now=time.time())
    store.close()


def test_sqlite_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "v.db")
    SqliteStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, n)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(SqliteStore(path).for_digest(DIGEST)) == 300


def test_open_store(tmp_path: Path) -> None:
    assert isinstance(open_store("memory:"), MemoryStore)
    sqlite = open_store(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(sqlite, SqliteStore) and sqlite.path == f"{tmp_path}/x.db"
    assert isinstance(open_store(environ={"SIGWARD_STORE": f"sqlite:///{tmp_path}/y.db"}), SqliteStore)
    for bad in ("redis://x", "firestore://project", "firestore:///coll", "sqlite:///"):
        with pytest.raises(ConfigurationError):
            open_store(bad)


def test_unusable_sqlite_path_is_an_infrastructure_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExternalServiceError):
        SqliteStore(str(blocker / "sub" / "v.db"))


def test_memory_store_outage() -> None:
    store = MemoryStore()
    store.available = False
    with pytest.raises(ExternalServiceError):
        store.record(verdict())

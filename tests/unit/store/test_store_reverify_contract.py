"""The store operations re-verification relies on, identical on every backend: key-ordered scans with a cursor,
compare-and-set of a verdict (the loser writes nothing) and of a named state value; SQLite also across processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.store import StoredStatus, StoredVerdict, VerdictStore
from sigward.store.memory import MemoryStore
from sigward.store.sqlite import SqliteStore

DIGEST = "sha256:" + "b" * 64


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
        "verified_at": 1000.25,
        "expires_at": 2000.0,
        "source": "distribution",
        "event_id": "e1",
        "image": "registry.test/app:v1",
    }
    base.update(kw)
    base["verdict"] = StoredStatus(str(base["verdict"]))
    return StoredVerdict(**base)  # type: ignore[arg-type]


def check_contract(store: VerdictStore) -> None:
    """Shared by the memory and SQLite stores here and the Firestore emulator test."""
    records = [verdict(rule=f"r{i}") for i in range(5)]
    for r in records:
        store.record(r)
    keys = sorted(r.key for r in records)
    positions = {r.key: r.scan_position for r in records}
    # scan: (digest, key) order — one digest here, so key order —, pages after a cursor, empty past the end
    assert [v.key for v in store.scan(after="", limit=2)] == keys[:2]
    assert [v.key for v in store.scan(after=positions[keys[1]], limit=10)] == keys[2:]
    assert store.scan(after=positions[keys[-1]], limit=10) == []
    # replace: wins against the version read, loses against a stale one (and writes nothing then)
    current = next(r for r in records if r.key == keys[0])
    failed = verdict(rule=current.rule, verdict="fail", verified_at=1500.5, message="no signatures found")
    assert store.replace(current, failed) is True
    assert store.replace(current, verdict(rule=current.rule, verdict="unsigned", verified_at=1600.0)) is False
    (stored,) = [v for v in store.for_digest(DIGEST) if v.key == keys[0]]
    assert (stored.verdict, stored.message) == ("fail", "no signatures found")
    assert store.replace(verdict(rule="never-recorded"), verdict(rule="never-recorded", verdict="fail")) is False
    assert not [v for v in store.for_digest(DIGEST) if v.rule == "never-recorded"]
    with pytest.raises(ValueError):
        store.replace(current, verdict(rule="other"))
    # state: compare-and-set from "" (absent), then from the value read only
    assert store.get_state("reverify/cursor") == ""
    assert store.set_state("reverify/cursor", "a", expected="") is True
    assert store.set_state("reverify/cursor", "b", expected="") is False
    assert store.set_state("reverify/cursor", "b", expected="x") is False
    assert store.set_state("reverify/cursor", "b", expected="a") is True
    assert store.get_state("reverify/cursor") == "b"
    assert store.set_state("reverify/cursor", "", expected="b") is True  # released
    assert store.set_state("reverify/cursor", "c", expected="") is True
    assert store.get_state("other") == ""


def check_scan_groups_digests(store: VerdictStore) -> None:
    """Regression (re-verification at scale: records scanned in hashed-key order put one digest's verdicts far
    apart, so the per-run signature cache rarely served the second): a scan yields one digest's records together,
    in digest order, across pages of any size."""
    digests = [f"sha256:{c * 64}" for c in "3c1a"]
    records = [verdict(digest=d, rule=f"r{i}", policy=f"p{i}") for i in range(3) for d in digests]
    for r in records:
        store.record(r)
    expected = [r.key for r in sorted(records, key=lambda r: (r.digest, r.key))]
    for limit in (1, 2, 4, 100):
        walked: list[StoredVerdict] = []
        after = ""
        while page := store.scan(after=after, limit=limit):
            assert len(page) <= limit
            walked.extend(page)
            after = page[-1].scan_position
        assert [v.key for v in walked] == expected, limit
        order = [v.digest for v in walked]
        assert order == sorted(order)  # each digest's records adjacent
    with pytest.raises(ValueError):
        store.scan(after=expected[0], limit=10)  # a bare key is no position (cursors from before are reset)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VerdictStore]:
    made: VerdictStore = MemoryStore() if request.param == "memory" else SqliteStore(str(tmp_path / "v.db"))
    yield made
    made.close()


def test_scan_replace_and_state(store: VerdictStore) -> None:
    check_contract(store)


def test_scan_yields_one_digests_records_together(store: VerdictStore) -> None:
    check_scan_groups_digests(store)


def _contender(path: str, name: str, queue: multiprocessing.Queue[str]) -> None:
    store = SqliteStore(path)
    current = verdict()
    won = store.replace(current, verdict(verdict="fail", verified_at=2000.0, source=name))
    lease = store.set_state("lease", name, expected="")
    queue.put(f"{name}:{int(won)}:{int(lease)}")
    store.close()


def test_sqlite_compare_and_set_has_one_winner_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "v.db")
    SqliteStore(path).record(verdict())
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(path, f"p{i}", queue)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    answers = [queue.get(timeout=5).split(":") for _ in procs]
    assert sum(int(a[1]) for a in answers) == 1 and sum(int(a[2]) for a in answers) == 1
    store = SqliteStore(path)
    (stored,) = store.for_digest(DIGEST)
    assert stored.verdict == "fail" and stored.source in {a[0] for a in answers if a[1] == "1"}
    assert store.get_state("lease") in {a[0] for a in answers if a[2] == "1"}
    store.close()

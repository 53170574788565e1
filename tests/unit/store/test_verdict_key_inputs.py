"""Verdict keys with inputs (trust fingerprint, request-specific values): stored and found only under the same
inputs, old keys unchanged, and an SQLite store from before the column still opens and keeps its verdicts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sigward.store import StoredStatus, StoredVerdict, verdict_key
from sigward.store.memory import MemoryStore
from sigward.store.sqlite import SqliteStore
from tests.support.memory import stored_key

DIGEST = "sha256:" + "3" * 64
BASE = {"digest": DIGEST, "repository": "registry.test/app", "policy_hash": "h", "rule": "r", "entries": "0"}


def verdict(inputs: str = "") -> StoredVerdict:
    return StoredVerdict(
        policy="p", verdict=StoredStatus.PASS, message="ok", verified_at=1.0, expires_at=100.0, inputs=inputs, **BASE
    )


def test_empty_inputs_keep_the_old_key() -> None:
    assert verdict_key(**BASE) == verdict_key(**BASE, inputs="")
    assert verdict_key(**BASE, inputs='{"image.tag":"v1"}') != verdict_key(**BASE)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_lookup_needs_the_same_inputs(kind: str, tmp_path: Path) -> None:
    store = MemoryStore() if kind == "memory" else SqliteStore(str(tmp_path / "v.db"))
    store.record(verdict('{"image.tag":"v1"}'))
    found = store.lookup(stored_key(**BASE, inputs='{"image.tag":"v1"}'), now=2.0)
    assert found is not None and found.inputs == '{"image.tag":"v1"}'
    assert store.lookup(stored_key(**BASE, inputs='{"image.tag":"v2"}'), now=2.0) is None
    assert store.lookup(stored_key(**BASE), now=2.0) is None  # a tagless lookup never finds a tag-dependent verdict
    store.close()


def test_sqlite_store_from_before_inputs_column_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE verdicts (key TEXT PRIMARY KEY, digest TEXT NOT NULL, repository TEXT NOT NULL, "
        "policy TEXT NOT NULL, policy_hash TEXT NOT NULL, rule TEXT NOT NULL, entries TEXT NOT NULL, "
        "verdict TEXT NOT NULL, message TEXT NOT NULL, verified_at REAL NOT NULL, expires_at REAL NOT NULL, "
        "source TEXT NOT NULL, event_id TEXT NOT NULL, image TEXT NOT NULL)"
    )
    conn.execute(
        "INSERT INTO verdicts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (verdict_key(**BASE), DIGEST, "registry.test/app", "p", "h", "r", "0", "pass", "ok", 1.0, 100.0, "", "", ""),
    )
    conn.commit()
    conn.close()
    store = SqliteStore(str(path))
    found = store.lookup(stored_key(**BASE), now=2.0)
    assert found is not None and found.verdict == "pass" and found.inputs == ""
    store.record(verdict('{"trust":"root-2"}'))
    assert store.lookup(stored_key(**BASE, inputs='{"trust":"root-2"}'), now=2.0) is not None
    store.close()

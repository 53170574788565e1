"""SQLite verdict store: the embedded default. WAL mode and a busy timeout make it safe for gunicorn's threads
(one connection per thread) and for several worker processes sharing the file."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from sigward.errors import ExternalServiceError
from sigward.store import (
    DEFAULT_EVENT_TTL_SECONDS,
    VERSION_TIME_TOLERANCE,
    StoredStatus,
    StoredVerdict,
    VerdictKey,
    position_after,
)

# How long a writer waits for another process's transaction before giving up (then: infrastructure error).
BUSY_TIMEOUT_MS = 5000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY, digest TEXT NOT NULL, repository TEXT NOT NULL, policy TEXT NOT NULL,
    policy_hash TEXT NOT NULL, rule TEXT NOT NULL, entries TEXT NOT NULL, verdict TEXT NOT NULL,
    message TEXT NOT NULL, verified_at REAL NOT NULL, expires_at REAL NOT NULL, source TEXT NOT NULL,
    event_id TEXT NOT NULL, image TEXT NOT NULL, inputs TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS verdicts_by_digest ON verdicts (digest);
CREATE INDEX IF NOT EXISTS verdicts_by_scan_position ON verdicts (digest, key);
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sightings (key TEXT PRIMARY KEY, first_seen REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = (
    "digest, repository, policy, policy_hash, rule, entries, verdict, message, verified_at, expires_at, source, "
    "event_id, image, inputs"
)


def _add_inputs_column(conn: sqlite3.Connection) -> None:
    """Stores written before verdict keys had ``inputs`` lack the column; their rows keep the old keys."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(verdicts)")}
    if "inputs" not in columns:
        try:
            conn.execute("ALTER TABLE verdicts ADD COLUMN inputs TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with self._conn() as conn:
                conn.executescript(_SCHEMA)
                _add_inputs_column(conn)
        except (OSError, sqlite3.Error) as exc:
            raise ExternalServiceError(f"verdict store {path} unusable: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._conn().execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise ExternalServiceError(f"verdict store {self.path} failed: {exc}") from exc

    def _change(self, sql: str, params: tuple[object, ...]) -> int:
        """Run one write and say how many rows it changed (the compare-and-set answers)."""
        try:
            return int(self._conn().execute(sql, params).rowcount)
        except sqlite3.Error as exc:
            raise ExternalServiceError(f"verdict store {self.path} failed: {exc}") from exc

    def record(self, verdict: StoredVerdict) -> None:
        self._run(
            f"INSERT OR REPLACE INTO verdicts (key, {_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant columns
            (
                verdict.key,
                verdict.digest,
                verdict.repository,
                verdict.policy,
                verdict.policy_hash,
                verdict.rule,
                verdict.entries,
                verdict.verdict.value,
                verdict.message,
                verdict.verified_at,
                verdict.expires_at,
                verdict.source,
                verdict.event_id,
                verdict.image,
                verdict.inputs,
            ),
        )

    @staticmethod
    def _row(row: tuple[object, ...]) -> StoredVerdict:
        (digest, repository, policy, policy_hash, rule, entries, verdict, message, verified_at, expires_at, source,
         event_id, image, inputs) = row  # fmt: skip
        return StoredVerdict(
            digest=str(digest),
            repository=str(repository),
            policy=str(policy),
            policy_hash=str(policy_hash),
            rule=str(rule),
            entries=str(entries),
            verdict=StoredStatus.parse(str(verdict)),
            message=str(message),
            verified_at=float(verified_at),  # type: ignore[arg-type]
            expires_at=float(expires_at),  # type: ignore[arg-type]
            source=str(source),
            event_id=str(event_id),
            image=str(image),
            inputs=str(inputs),
        )

    def lookup(self, key: VerdictKey, *, now: float) -> StoredVerdict | None:
        stored = key.stored
        rows = self._run(f"SELECT {_COLUMNS} FROM verdicts WHERE key = ? AND expires_at > ?", (stored, now))  # noqa: S608
        return self._row(rows[0]) if rows else None

    def for_digest(self, digest: str) -> list[StoredVerdict]:
        rows = self._run(f"SELECT {_COLUMNS} FROM verdicts WHERE digest = ? ORDER BY verified_at", (digest,))  # noqa: S608
        return [self._row(r) for r in rows]

    def event_done(self, event_id: str, *, now: float) -> bool:
        return bool(self._run("SELECT 1 FROM events WHERE event_id = ? AND expires_at > ?", (event_id, now)))

    def mark_event(self, event_id: str, *, now: float, ttl: float = DEFAULT_EVENT_TTL_SECONDS) -> None:
        self._run("INSERT OR REPLACE INTO events (event_id, expires_at) VALUES (?, ?)", (event_id, now + ttl))

    def first_seen(self, key: str, *, now: float, ttl: float = DEFAULT_EVENT_TTL_SECONDS) -> float:
        self._run("DELETE FROM sightings WHERE key = ? AND expires_at <= ?", (key, now))
        self._run(
            "INSERT OR IGNORE INTO sightings (key, first_seen, expires_at) VALUES (?, ?, ?)", (key, now, now + ttl)
        )
        rows = self._run("SELECT first_seen FROM sightings WHERE key = ?", (key,))
        return float(rows[0][0]) if rows else now  # type: ignore[arg-type]

    def scan(self, *, after: str, limit: int) -> list[StoredVerdict]:
        digest, key = position_after(after)
        rows = self._run(
            f"SELECT {_COLUMNS} FROM verdicts WHERE (digest, key) > (?, ?) ORDER BY digest, key LIMIT ?",  # noqa: S608
            (digest, key, limit),
        )
        return [self._row(r) for r in rows]

    def replace(self, current: StoredVerdict, new: StoredVerdict) -> bool:
        if current.key != new.key:
            raise ValueError("replace() keeps the key: current and new must have the same key")
        # One UPDATE is atomic in SQLite: the condition and the write cannot be split by another process.
        changed = self._change(
            "UPDATE verdicts SET verdict = ?, message = ?, verified_at = ?, expires_at = ?, source = ?, "
            "event_id = ?, image = ?, policy = ? WHERE key = ? AND verdict = ? AND abs(verified_at - ?) < ?",
            (
                new.verdict.value,
                new.message,
                new.verified_at,
                new.expires_at,
                new.source,
                new.event_id,
                new.image,
                new.policy,
                current.key,
                current.verdict.value,
                current.verified_at,
                VERSION_TIME_TOLERANCE,
            ),
        )
        return changed == 1

    def get_state(self, name: str) -> str:
        rows = self._run("SELECT value FROM state WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else ""

    def set_state(self, name: str, value: str, *, expected: str) -> bool:
        if expected:
            return self._change("UPDATE state SET value = ? WHERE name = ? AND value = ?", (value, name, expected)) == 1
        changed = self._change(
            "INSERT INTO state (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value "
            "WHERE state.value = ''",
            (name, value),
        )
        return changed == 1

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

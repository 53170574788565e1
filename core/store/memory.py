"""In-memory verdict store (tests, single-process demos)."""

from __future__ import annotations

import threading

from sigward.store import DEFAULT_EVENT_TTL_SECONDS, StoredVerdict, VerdictKey, position_after, same_version


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._verdicts: dict[str, StoredVerdict] = {}
        self._events: dict[str, float] = {}
        self._seen: dict[str, tuple[float, float]] = {}
        self._state: dict[str, str] = {}
        self.writes = 0  # verdict writes, for tests asserting that nothing changed
        self.available = True  # tests flip this to simulate an outage

    def _check(self) -> None:
        if not self.available:
            from sigward.errors import ExternalServiceError

            raise ExternalServiceError("verdict store unavailable (memory store switched off)")

    def record(self, verdict: StoredVerdict) -> None:
        self._check()
        with self._lock:
            self._verdicts[verdict.key] = verdict
            self.writes += 1

    def lookup(self, key: VerdictKey, *, now: float) -> StoredVerdict | None:
        self._check()
        stored = key.stored
        with self._lock:
            found = self._verdicts.get(stored)
        return found if found is not None and found.expires_at > now else None

    def for_digest(self, digest: str) -> list[StoredVerdict]:
        self._check()
        with self._lock:
            return sorted((v for v in self._verdicts.values() if v.digest == digest), key=lambda v: v.verified_at)

    def event_done(self, event_id: str, *, now: float) -> bool:
        self._check()
        with self._lock:
            expires = self._events.get(event_id)
        return expires is not None and expires > now

    def mark_event(self, event_id: str, *, now: float, ttl: float = DEFAULT_EVENT_TTL_SECONDS) -> None:
        self._check()
        with self._lock:
            self._events[event_id] = now + ttl

    def first_seen(self, key: str, *, now: float, ttl: float = DEFAULT_EVENT_TTL_SECONDS) -> float:
        self._check()
        with self._lock:
            found = self._seen.get(key)
            if found is not None and found[1] > now:
                return found[0]
            self._seen[key] = (now, now + ttl)
            return now

    def scan(self, *, after: str, limit: int) -> list[StoredVerdict]:
        self._check()
        start = position_after(after)
        with self._lock:
            found = sorted((v.digest, k) for k, v in self._verdicts.items() if (v.digest, k) > start)[:limit]
            return [self._verdicts[k] for _, k in found]

    def replace(self, current: StoredVerdict, new: StoredVerdict) -> bool:
        self._check()
        if current.key != new.key:
            raise ValueError("replace() keeps the key: current and new must have the same key")
        with self._lock:
            found = self._verdicts.get(current.key)
            if found is None or not same_version(found, current):
                return False
            self._verdicts[new.key] = new
            self.writes += 1
            return True

    def get_state(self, name: str) -> str:
        self._check()
        with self._lock:
            return self._state.get(name, "")

    def set_state(self, name: str, value: str, *, expected: str) -> bool:
        self._check()
        with self._lock:
            if self._state.get(name, "") != expected:
                return False
            self._state[name] = value
            return True

    def close(self) -> None:
        return None

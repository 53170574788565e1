"""Bounded TTL caches with single flight: concurrent callers of the same key share one computation.

Used for verdicts (keyed by policy content hash, rule, repository and digest — a policy change invalidates by
construction), tag → digest resolutions, and public keys. Entries expire by the clock passed in, so tests control
time; the lock is never held while computing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    expires_at: float


class TTLCache(Generic[K, V]):
    """LRU-bounded cache whose entries live ``ttl`` seconds (per entry: ``ttl_for(value)``; 0 = do not cache)."""

    def __init__(
        self,
        *,
        max_entries: int,
        ttl: float,
        ttl_for: Callable[[V], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_entries
        self._ttl = ttl
        self._ttl_for = ttl_for
        self._clock = clock
        self._data: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._inflight: dict[K, Future[V]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return entry.value

    def put(self, key: K, value: V) -> None:
        ttl = self._ttl_for(value) if self._ttl_for is not None else self._ttl
        if ttl <= 0:
            return
        with self._lock:
            self._data[key] = _Entry(value=value, expires_at=self._clock() + ttl)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def invalidate(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def get_or_compute(self, key: K, compute: Callable[[], V], *, timeout: float | None = None) -> V:
        """The cached value, or the result of ``compute`` — run once however many threads ask at the same time.

        A waiter gives up after ``timeout`` seconds (raising ``TimeoutError``); the computation itself goes on and
        its result is cached for the next caller. Exceptions are shared with the waiters and not cached.
        """
        with self._lock:
            entry = self._data.get(key)
            if entry is not None and entry.expires_at > self._clock():
                self._data.move_to_end(key)
                self.hits += 1
                return entry.value
            future = self._inflight.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._inflight[key] = future
            self.misses += 1
        if not owner:
            return future.result(timeout=timeout)
        try:
            value = compute()
        except BaseException as exc:
            future.set_exception(exc)
            with self._lock:
                self._inflight.pop(key, None)
            raise
        self.put(key, value)
        future.set_result(value)
        with self._lock:
            self._inflight.pop(key, None)
        return value

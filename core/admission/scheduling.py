"""Fair sharing of verification threads between concurrent decisions.

A plain shared pool serves first come, first served: one request with fifty images on a registry that never answers
fills every thread until its deadline, and the next request's image never starts — it then times out as if *its*
registry were unreachable, an error that ``failurePolicy: Ignore`` admits. Here each batch (one decision's
verifications) may hold at most ``per_batch`` threads at once, idle threads take work from the batches round-robin,
and threads are added on demand (up to ``max_threads``) so that a new batch finds a thread even while others hang.
Work that never started before the deadline is reported as such (:class:`NotStarted`), never as a registry outage.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sigward.deadline import Deadline

T = TypeVar("T")

# Threads a single decision may occupy at once: enough to overlap the network waits of a Pod's images.
DEFAULT_PER_BATCH = 8
# Threads in all: per_batch × the concurrent decisions a process serves (its admission HTTP threads) and then some;
# each waits on the network, so the cost is memory (a thread stack), not CPU.
DEFAULT_MAX_THREADS = 256
# An idle thread beyond need exits after this long, so a burst does not leave hundreds of threads behind.
IDLE_SECONDS = 30.0


class NotStarted:
    """The work never started before the deadline: the pool was busy, nothing is known about the image."""


class TimedOut:
    """The work started but had not finished at the deadline."""


NOT_STARTED = NotStarted()
TIMED_OUT = TimedOut()


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Raised:
    error: BaseException


Outcome = Done[T] | Raised | NotStarted | TimedOut


@dataclass(eq=False)
class _Batch(Generic[T]):
    tasks: Sequence[Callable[[], T]]
    pending: deque[int]
    outcomes: list[Outcome[T] | None]
    left: int
    running: int = 0
    finished: threading.Event = field(default_factory=threading.Event)


class FairPool:
    """Runs batches of callables on shared threads, fairly; thread-safe, one per process is enough."""

    def __init__(
        self,
        *,
        per_batch: int = DEFAULT_PER_BATCH,
        max_threads: int = DEFAULT_MAX_THREADS,
        name: str = "sigward-verify",
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        if per_batch < 1 or max_threads < 1:
            raise ValueError("per_batch and max_threads must be at least 1")
        self.per_batch = per_batch
        self.max_threads = max_threads
        self._name = name
        self._idle_seconds = idle_seconds
        self._cv = threading.Condition()
        self._ready: deque[_Batch[object]] = deque()
        self._threads = 0
        self._idle = 0
        self._closed = False

    @property
    def threads(self) -> int:
        return self._threads

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def run(self, tasks: Sequence[Callable[[], T]], deadline: Deadline) -> list[Outcome[T]]:
        """Run ``tasks``; return one outcome each, in order, by the deadline at the latest."""
        if not tasks:
            return []
        batch: _Batch[T] = _Batch(
            tasks=tasks, pending=deque(range(len(tasks))), outcomes=[None] * len(tasks), left=len(tasks)
        )
        with self._cv:
            if self._closed:
                raise RuntimeError("the verification pool is closed")
            # served least recently = never: ahead of batches that already run something
            self._ready.appendleft(batch)  # type: ignore[arg-type]
            wanted = min(len(tasks), self.per_batch)
            spawn = min(max(0, wanted - self._idle), self.max_threads - self._threads)
            for _ in range(spawn):
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True).start()
            self._cv.notify(wanted)
        batch.finished.wait(max(deadline.remaining(), 0.0))
        with self._cv:
            for index in batch.pending:
                batch.outcomes[index] = NOT_STARTED
            batch.pending.clear()
            if batch in self._ready:
                self._ready.remove(batch)  # type: ignore[arg-type]
            return [TIMED_OUT if o is None else o for o in batch.outcomes]

    def _take(self) -> tuple[_Batch[object], int] | None:
        """The next task, round-robin over batches, skipping batches at their thread share. Caller holds the lock."""
        for batch in self._ready:
            if batch.pending and batch.running < self.per_batch:
                index = batch.pending.popleft()
                batch.running += 1
                self._ready.remove(batch)
                if batch.pending:
                    self._ready.append(batch)  # served last now: behind every other waiting batch
                return batch, index
        return None

    def _work(self) -> None:
        while True:
            with self._cv:
                taken = self._take()
                while taken is None:
                    if self._closed:
                        self._threads -= 1
                        return
                    self._idle += 1
                    woken = self._cv.wait(self._idle_seconds)
                    self._idle -= 1
                    taken = self._take()
                    if taken is None and not woken:
                        self._threads -= 1
                        return
            batch, index = taken
            outcome: Outcome[object]
            try:
                outcome = Done(batch.tasks[index]())
            except BaseException as exc:  # handed to the caller, who decides what it means
                outcome = Raised(exc)
            with self._cv:
                batch.running -= 1
                batch.left -= 1
                batch.outcomes[index] = outcome
                if batch.left == 0:
                    batch.finished.set()
                if batch.pending:
                    self._cv.notify()  # its share has a free slot again

"""FairPool: one batch of hanging work cannot keep another batch from starting; work that never started is reported
as such (not as an outage); outcomes keep their order; a batch never holds more than its share of threads."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sigward.admission.scheduling import NOT_STARTED, TIMED_OUT, Done, FairPool, Raised
from sigward.deadline import Deadline

_POOLS: list[FairPool] = []


def track(pool: FairPool) -> FairPool:
    _POOLS.append(pool)
    return pool


@pytest.fixture(autouse=True)
def _close_pools() -> Iterator[None]:
    yield
    while _POOLS:
        _POOLS.pop().close()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # release whatever still hangs


def hang(gate: threading.Event) -> Callable[[], str]:
    def task() -> str:
        gate.wait(10)
        return "late"

    return task


def record(order: list[str], name: str) -> str:
    order.append(name)
    return name


def run_in_background(pool: FairPool, tasks: list[Callable[[], str]], seconds: float) -> threading.Thread:
    thread = threading.Thread(target=pool.run, args=(tasks, Deadline.after(seconds)), daemon=True)
    thread.start()
    time.sleep(0.1)  # its tasks have taken their threads
    return thread


@pytest.mark.parametrize(("per_batch", "max_threads"), [(4, 64), (8, 256), (1, 4)])
def test_hanging_batch_does_not_keep_another_from_starting(
    gate: threading.Event, per_batch: int, max_threads: int
) -> None:
    pool = track(FairPool(per_batch=per_batch, max_threads=max_threads))
    run_in_background(pool, [hang(gate) for _ in range(50)], 3.0)
    started = time.monotonic()
    outcomes = pool.run([lambda: "quick"], Deadline.after(2.0))
    assert outcomes == [Done("quick")]
    assert time.monotonic() - started < 0.5
    assert pool.threads <= per_batch + 1


def test_batch_never_holds_more_than_its_share() -> None:
    pool = track(FairPool(per_batch=3, max_threads=32))
    lock = threading.Lock()
    running = 0
    peak = 0

    def task() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return 1

    outcomes = pool.run([task] * 12, Deadline.after(5.0))
    assert outcomes == [Done(1)] * 12
    assert peak == 3


def test_exhausted_pool_reports_not_started_never_an_outage(gate: threading.Event) -> None:
    """Every thread hangs on another batch: the new batch's work is NOT_STARTED at its deadline."""
    pool = track(FairPool(per_batch=2, max_threads=2))
    run_in_background(pool, [hang(gate), hang(gate)], 3.0)
    started = time.monotonic()
    outcomes = pool.run([lambda: "never"], Deadline.after(0.3))
    assert outcomes == [NOT_STARTED]
    assert 0.25 < time.monotonic() - started < 1.0


def test_started_but_unfinished_work_is_timed_out(gate: threading.Event) -> None:
    pool = track(FairPool(per_batch=4, max_threads=4))
    outcomes = pool.run([lambda: "done", hang(gate)], Deadline.after(0.3))
    assert outcomes == [Done("done"), TIMED_OUT]


def test_exceptions_are_handed_back_in_order() -> None:
    pool = track(FairPool())
    boom = ValueError("boom")

    def fail() -> str:
        raise boom

    outcomes = pool.run([lambda: "a", fail, lambda: "c"], Deadline.after(2.0))
    assert outcomes == [Done("a"), Raised(boom), Done("c")]


def test_round_robin_between_waiting_batches(gate: threading.Event) -> None:
    """With one thread, a second batch's task runs before the first batch's remaining ones."""
    pool = track(FairPool(per_batch=1, max_threads=1))
    order: list[str] = []
    release = threading.Event()

    def first() -> str:
        release.wait(2)
        order.append("a0")
        return "a0"

    tasks_a: list[Callable[[], str]] = [first, *[functools.partial(record, order, f"a{i}") for i in range(1, 4)]]
    thread = run_in_background(pool, tasks_a, 3.0)
    b = threading.Thread(target=pool.run, args=([functools.partial(record, order, "b")], Deadline.after(3.0)))
    b.start()
    time.sleep(0.05)
    release.set()
    b.join(3)
    thread.join(3)
    assert order.index("b") <= 1, order


def test_empty_and_closed() -> None:
    pool = track(FairPool())
    assert pool.run([], Deadline.after(1.0)) == []
    pool.close()
    with pytest.raises(RuntimeError):
        pool.run([lambda: 1], Deadline.after(1.0))
    with pytest.raises(ValueError):
        FairPool(per_batch=0)

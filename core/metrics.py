"""Prometheus metrics for ``sigward serve`` (``GET /metrics``), named and labelled in Kyverno's style.

Why a facade: prometheus-client costs ~85 ms to import, and a Cloud Run function (which has no scraper; its
metrics are log-based, see terraform/gcp) must not pay that. Every ``record_*`` function is a no-op until
:func:`enable` is called — by ``sigward serve`` only — and then costs one dictionary lookup and one increment.

Several serve processes share one port, so counts live in prometheus-client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, one file per process); :func:`render` sums them, so a scrape that lands on any process
sees the whole server.

Cardinality is bounded on purpose: no image, digest, namespace, user or object name is ever a label. Policy and rule
names come from the loaded policies (the operator's own, few), every other label from a closed set below.
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

NAMESPACE = "sigward"
# Kyverno's default bucket boundaries (0.005 … 30 s), plus sub-millisecond buckets: a cached admission is answered in
# well under a millisecond, and that is exactly what an operator wants to see separated from a cold verification.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Admission kinds get their own label value; anything else (a CRD, or a forged review) is "other", so an
# unauthenticated caller cannot mint series.
KNOWN_KINDS = frozenset(
    {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "ReplicationController"}
)
KNOWN_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})


class VerificationSource(enum.StrEnum):
    """Where an image × rule verdict came from."""

    COLD = "cold"  # verified now (registry, KMS, crypto)
    CACHE = "cache"  # this process's memory
    STORE = "store"  # the verdict store (a push-time or another instance's pass)


class Outcome(enum.StrEnum):
    """How a request to a dependency (registry, KMS, store) ended."""

    OK = "ok"
    CLIENT_ERROR = "client_error"  # 4xx: refused, not found (a decided answer)
    THROTTLED = "throttled"  # 429
    SERVER_ERROR = "server_error"  # 5xx
    ERROR = "error"  # no answer: connection, TLS, malformed
    DEADLINE = "deadline"  # the decision's time budget ran out


class DeadlineScope(enum.StrEnum):
    ADMISSION = "admission"  # an image × rule verification did not finish before the admission deadline
    NOT_STARTED = "not_started"  # every thread was busy: it never started before the deadline
    REGISTRY = "registry"  # a registry request ran out of time
    PUSH = "push"


def outcome_of_status(status: int) -> Outcome:
    if status == 429:
        return Outcome.THROTTLED
    if status >= 500:
        return Outcome.SERVER_ERROR
    if status >= 400:
        return Outcome.CLIENT_ERROR
    return Outcome.OK


@dataclass(frozen=True)
class _Instruments:
    registry: CollectorRegistry
    multiprocess_dir: str | None
    admission_requests: Any
    admission_duration: Any
    policy_results: Any
    verification_duration: Any
    cache_requests: Any
    registry_requests: Any
    kms_requests: Any
    store_requests: Any
    push_events: Any
    deadline_exhausted: Any
    exceptions_applied: Any


@dataclass(frozen=True)
class _Bound:
    """Children of the closed label sets, bound once per process on first use (binding in ``serve``'s parent would
    give it a metrics file of its own): the cached admission path answers on the event loop, where every microsecond
    is a request not served (see :func:`record_memory_hits`)."""

    cache_hit: Any
    cache_miss: Any
    verification_by_source: dict[VerificationSource, Any]

    @classmethod
    def of(cls, m: _Instruments) -> _Bound:
        return cls(
            cache_hit=m.cache_requests.labels("hit"),
            cache_miss=m.cache_requests.labels("miss"),
            verification_by_source={s: m.verification_duration.labels(s.value) for s in VerificationSource},
        )


_instruments: _Instruments | None = None
_bound: _Bound | None = None
# Labelled children by (instrument, label values): prometheus-client's labels() validates and locks on every call; the
# label sets are bounded, so this stays small and saves most of the per-update cost on the admission hot path.
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _bound_children(m: _Instruments) -> _Bound:
    global _bound  # noqa: PLW0603 - derived from _instruments, reset with it
    found = _bound
    if found is None:
        found = _bound = _Bound.of(m)
    return found


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children.setdefault(key, metric.labels(*labels))
    return found


def enabled() -> bool:
    return _instruments is not None


def enable(*, multiprocess_dir: str | None = None, multiprocess: bool = False) -> str | None:
    """Create the instruments. ``multiprocess``: values go to files in ``multiprocess_dir`` (or a fresh temporary
    directory; stale files from an earlier run are removed) — call it before forking worker processes. Returns the
    directory used, or None in single-process mode."""
    global _instruments, _bound  # noqa: PLW0603 - one set of instruments per process, like prometheus-client's REGISTRY
    _children.clear()
    _bound = None
    directory = None
    if multiprocess:
        directory = multiprocess_dir or os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="sigward-metrics-")
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
        # prometheus-client picks its value storage from this variable when first imported
        os.environ[MULTIPROC_ENV] = directory
    import prometheus_client as pc

    if multiprocess and not _multiprocess_values(pc):
        raise RuntimeError("prometheus-client was imported before multiprocess metrics were enabled")
    registry = pc.CollectorRegistry(auto_describe=True)

    def counter(name: str, doc: str, labels: Iterable[str]) -> Any:
        return pc.Counter(name, doc, list(labels), namespace=NAMESPACE, registry=registry)

    def histogram(name: str, doc: str, labels: Iterable[str]) -> Any:
        return pc.Histogram(name, doc, list(labels), namespace=NAMESPACE, registry=registry, buckets=BUCKETS)

    admission_labels = ("request_webhook", "resource_kind", "resource_request_operation", "request_allowed")
    _instruments = _Instruments(
        registry=registry,
        multiprocess_dir=directory,
        admission_requests=counter(
            "admission_requests", "AdmissionReviews decided (request_allowed: true/false/error)", admission_labels
        ),
        admission_duration=histogram(
            "admission_review_duration_seconds",
            "Time to decide one AdmissionReview (all policies)",
            ("request_webhook", "request_allowed"),
        ),
        policy_results=counter(
            "policy_results",
            "Rule results per image: rule_result pass/fail/error/skip; rule_execution_cause admission_request/push",
            ("policy_name", "rule_name", "rule_type", "rule_result", "rule_execution_cause"),
        ),
        verification_duration=histogram(
            "image_verification_duration_seconds",
            "Time to one image × rule verdict, by where it came from (cold, cache, store)",
            ("verification_source",),
        ),
        cache_requests=counter(
            "verification_cache_requests", "Admission verdict cache lookups (cache_result hit/miss)", ("cache_result",)
        ),
        registry_requests=counter(
            "registry_requests", "Registry HTTP requests by kind and outcome", ("request_kind", "request_outcome")
        ),
        kms_requests=counter("kms_requests", "KMS public-key requests", ("kms_provider", "request_outcome")),
        store_requests=counter("store_requests", "Verdict store requests", ("store_operation", "request_outcome")),
        push_events=counter("push_events", "Registry push events handled", ("event_source", "push_outcome")),
        deadline_exhausted=counter(
            "deadline_exhausted", "Work cut short by an exhausted time budget", ("deadline_scope",)
        ),
        exceptions_applied=counter(
            "policy_exceptions_applied",
            "Rule results decided by a PolicyException (skip)",
            ("policy_name", "rule_name", "exception"),
        ),
    )
    return directory


def _multiprocess_values(pc: Any) -> bool:
    from prometheus_client import values

    del pc
    return values.ValueClass is not values.MutexValue


def disable() -> None:
    """Forget the instruments (tests); the multiprocess directory stays for the caller to remove."""
    global _instruments, _bound  # noqa: PLW0603
    _instruments = None
    _bound = None
    _children.clear()


def remove_directory(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of every process's metrics, and its content type."""
    import prometheus_client as pc

    m = _instruments
    if m is None:
        return b"", pc.CONTENT_TYPE_LATEST
    if m.multiprocess_dir is not None:
        from prometheus_client import multiprocess

        registry = pc.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=m.multiprocess_dir)  # type: ignore[no-untyped-call]
        return pc.generate_latest(registry), pc.CONTENT_TYPE_LATEST
    return pc.generate_latest(m.registry), pc.CONTENT_TYPE_LATEST


# -- recording (each a no-op while disabled) ------------------------------------------------------------------------


def bounded_kind(kind: str) -> str:
    return kind if kind in KNOWN_KINDS else "other"


def bounded_operation(operation: str) -> str:
    return operation if operation in KNOWN_OPERATIONS else "other"


def record_admission(*, webhook: str, kind: str, operation: str, allowed: bool | None, seconds: float) -> None:
    """One decided AdmissionReview; ``allowed`` None = it could not be decided (denied with an error)."""
    m = _instruments
    if m is None:
        return
    result = "error" if allowed is None else ("true" if allowed else "false")
    _child(m.admission_requests, webhook, bounded_kind(kind), bounded_operation(operation), result).inc()
    _child(m.admission_duration, webhook, result).observe(seconds)


def record_rule_result(*, policy: str, rule: str, result: str, cause: str) -> None:
    m = _instruments
    if m is not None:
        _child(m.policy_results, policy, rule, "imageVerify", result, cause).inc()


def record_rule_results(results: Iterable[tuple[str, str, str]], *, cause: str) -> None:
    """Many (policy, rule, result) outcomes of one request: one increment per distinct label set (a Pod's images
    mostly share their rule and result), each of which is a locked file write in multiprocess mode."""
    m = _instruments
    if m is None:
        return
    counts: dict[tuple[str, str, str], int] = {}
    for labels in results:
        counts[labels] = counts.get(labels, 0) + 1
    for (policy, rule, result), count in counts.items():
        _child(m.policy_results, policy, rule, "imageVerify", result, cause).inc(count)


def record_verification(source: VerificationSource, seconds: float) -> None:
    m = _instruments
    if m is not None:
        _bound_children(m).verification_by_source[source].observe(seconds)


def record_cache(*, hit: bool) -> None:
    m = _instruments
    if m is not None:
        bound = _bound_children(m)
        (bound.cache_hit if hit else bound.cache_miss).inc()


def record_memory_hits(count: int) -> None:
    """``count`` verdicts taken from this process's memory without a thread: cache hits that took no time (one
    increment for all of them; the duration histogram still gets one observation each)."""
    m = _instruments
    if m is None or count <= 0:
        return
    bound = _bound_children(m)
    bound.cache_hit.inc(count)
    observe = bound.verification_by_source[VerificationSource.CACHE].observe
    for _ in range(count):
        observe(0.0)


def record_registry_request(kind: str, outcome: Outcome) -> None:
    m = _instruments
    if m is not None:
        _child(m.registry_requests, kind, outcome.value).inc()


def record_kms_request(provider: str, outcome: Outcome) -> None:
    m = _instruments
    if m is not None:
        _child(m.kms_requests, provider, outcome.value).inc()


def record_store_request(operation: str, outcome: Outcome) -> None:
    m = _instruments
    if m is not None:
        _child(m.store_requests, operation, outcome.value).inc()


def record_push_event(source: str, outcome: str) -> None:
    m = _instruments
    if m is not None:
        _child(m.push_events, source, outcome).inc()


def record_deadline_exhausted(scope: DeadlineScope) -> None:
    m = _instruments
    if m is not None:
        _child(m.deadline_exhausted, scope.value).inc()


def record_exception_applied(*, policy: str, rule: str, exception: str) -> None:
    m = _instruments
    if m is not None:
        _child(m.exceptions_applied, policy, rule, exception).inc()

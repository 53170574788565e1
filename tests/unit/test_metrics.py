"""sigward.metrics: a no-op until enabled (no prometheus-client import), and in multiprocess mode the counts of every
forked process add up in one scrape."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigward import metrics
from tests.support.fresh_process import run_fresh


def _run(code: str, tmp_path: Path) -> str:
    return run_fresh(code, tmp_path)


def test_disabled_records_nothing_and_imports_nothing(tmp_path: Path) -> None:
    out = _run(
        """
        import sys
        from sigward import metrics
        metrics.record_admission(webhook="mutate", kind="Pod", operation="CREATE", allowed=True, seconds=0.1)
        metrics.record_cache(hit=True)
        metrics.record_registry_request("manifest.get", metrics.Outcome.OK)
        print(metrics.enabled(), "prometheus_client" in sys.modules)
        """,
        tmp_path,
    )
    assert out.split() == ["False", "False"]


def test_counts_add_up_across_forked_processes(tmp_path: Path) -> None:
    out = _run(
        f"""
        import os
        from sigward import metrics
        metrics.enable(multiprocess=True, multiprocess_dir={str(tmp_path / "prom")!r})
        children = []
        for n in (3, 5):
            pid = os.fork()
            if pid == 0:
                for _ in range(n):
                    metrics.record_admission(
                        webhook="mutate", kind="Pod", operation="CREATE", allowed=True, seconds=0.002
                    )
                metrics.record_push_event("ecr", "recorded")
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        print(metrics.render()[0].decode())
        """,
        tmp_path,
    )
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(out)
        for s in family.samples
    }
    labels = (
        ("request_allowed", "true"),
        ("request_webhook", "mutate"),
        ("resource_kind", "Pod"),
        ("resource_request_operation", "CREATE"),
    )
    assert samples[("sigward_admission_requests_total", labels)] == 8
    assert samples[("sigward_push_events_total", (("event_source", "ecr"), ("push_outcome", "recorded")))] == 2
    bucket = (("le", "0.0025"), ("request_allowed", "true"), ("request_webhook", "mutate"))
    assert samples[("sigward_admission_review_duration_seconds_bucket", bucket)] == 8
    assert len(list((tmp_path / "prom").glob("counter_*.db"))) == 2  # one file per process


def test_stale_files_from_an_earlier_run_are_removed(tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    (prom / "counter_99999.db").write_bytes(b"stale")
    _run(f"from sigward import metrics; metrics.enable(multiprocess=True, multiprocess_dir={str(prom)!r})", tmp_path)
    assert not (prom / "counter_99999.db").exists()


@pytest.mark.parametrize(
    ("kind", "operation", "want"),
    [
        ("Pod", "CREATE", ("Pod", "CREATE")),
        ("Deployment", "UPDATE", ("Deployment", "UPDATE")),
        ("MyCRD", "CREATE", ("other", "CREATE")),
        ("Pod", "PATCH-ME", ("Pod", "other")),
        ("x" * 500, "", ("other", "other")),
    ],
)
def test_labels_are_bounded(kind: str, operation: str, want: tuple[str, str]) -> None:
    assert (metrics.bounded_kind(kind), metrics.bounded_operation(operation)) == want


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, metrics.Outcome.OK),
        (307, metrics.Outcome.OK),
        (404, metrics.Outcome.CLIENT_ERROR),
        (429, metrics.Outcome.THROTTLED),
        (503, metrics.Outcome.SERVER_ERROR),
    ],
)
def test_outcome_of_status(status: int, outcome: metrics.Outcome) -> None:
    assert metrics.outcome_of_status(status) is outcome


def _scrape(code: str, tmp_path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = _run(code + "\nprint(metrics.render()[0].decode())\n", tmp_path)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(out)
        for s in family.samples
    }


@pytest.mark.parametrize(("hits", "want"), [(3, 3.0), (1, 1.0), (0, 0.0)])
def test_batched_memory_hits_count_like_one_update_each(tmp_path: Path, hits: int, want: float) -> None:
    """Regression (serve hot path made cheaper): one batched call per request still counts every hit and observes
    every duration; with no hit the (pre-bound) series read 0."""
    samples = _scrape(
        f"from sigward import metrics\nmetrics.enable(multiprocess=True, multiprocess_dir={str(tmp_path / 'p')!r})\n"
        f"metrics.record_memory_hits({hits})\nmetrics.record_cache(hit=False)",
        tmp_path,
    )
    assert samples[("sigward_verification_cache_requests_total", (("cache_result", "hit"),))] == want
    assert samples[("sigward_verification_cache_requests_total", (("cache_result", "miss"),))] == 1.0
    count = ("sigward_image_verification_duration_seconds_count", (("verification_source", "cache"),))
    assert samples[count] == want


def test_grouped_rule_results_add_up_per_label_set(tmp_path: Path) -> None:
    samples = _scrape(
        f"from sigward import metrics\nmetrics.enable(multiprocess=True, multiprocess_dir={str(tmp_path / 'p')!r})\n"
        "metrics.record_rule_results([('p', 'r', 'pass'), ('p', 'r', 'pass'), ('p', 'r', 'fail'), ('q', 'r', 'pass')],"
        " cause='admission_request')",
        tmp_path,
    )

    def got(policy: str, result: str) -> float | None:
        labels = {
            "policy_name": policy,
            "rule_name": "r",
            "rule_type": "imageVerify",
            "rule_result": result,
            "rule_execution_cause": "admission_request",
        }
        return samples.get(("sigward_policy_results_total", tuple(sorted(labels.items()))))

    assert (got("p", "pass"), got("p", "fail"), got("q", "pass"), got("q", "fail")) == (2.0, 1.0, 1.0, None)

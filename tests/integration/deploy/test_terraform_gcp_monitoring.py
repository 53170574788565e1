"""terraform/gcp/monitoring.tf, read statically (the Google provider cannot be downloaded here): the log-based
metrics match the exact lines sigward logs (checked against a real decision line and a real push line), their
labels are bounded, and the dashboard and the three alert policies point at those metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.hcl import block, load_module

REPO = Path(__file__).resolve().parents[3]
GCP = REPO / "terraform" / "gcp"
BOUNDED_FIELDS = {"outcome", "mode", "operation", "status"}


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return load_module(GCP)


def _metric(module: dict[str, Any], name: str) -> dict[str, Any]:
    body: dict[str, Any] = module["resource"]["google_logging_metric"][name]
    return body


def test_metrics_filter_the_lines_sigward_logs(module: dict[str, Any]) -> None:
    from sigward.admission import http as admission_http
    from sigward.push import http as push_http

    decisions = _metric(module, "admission_decisions")
    assert (
        'jsonPayload.message=\\"admission decision\\"' in decisions["filter"]
        or 'jsonPayload.message="admission decision"' in decisions["filter"]
    )
    # the messages are the ones the code emits
    assert '"admission decision"' in Path(admission_http.__file__).read_text()
    assert '"push handled"' in Path(push_http.__file__).read_text()
    push = _metric(module, "push_events")
    assert "push handled" in push["filter"]
    assert "severity>=ERROR" in _metric(module, "admission_errors")["filter"]


def test_label_extractors_read_bounded_fields_that_the_decision_line_has(module: dict[str, Any]) -> None:
    from sigward.admission.audit import decision_fields  # noqa: F401 - the fields below come from it

    for name in ("admission_decisions", "admission_latency", "push_events"):
        extractors = _metric(module, name).get("label_extractors", {})
        if isinstance(extractors, list):
            extractors = extractors[0]
        for label, expr in extractors.items():
            field = re.fullmatch(r"EXTRACT\(jsonPayload\.(\w+)\)", expr)
            assert field and field.group(1) in BOUNDED_FIELDS, (name, label, expr)
    latency = _metric(module, "admission_latency")
    assert latency["value_extractor"] == "EXTRACT(jsonPayload.latency_ms)"
    assert block(latency, "metric_descriptor")["value_type"] == "DISTRIBUTION"


def test_decision_line_carries_the_extracted_fields() -> None:
    """A real decision line (sigward.admission.audit) has every field the metrics extract, as JSON numbers/strings."""
    from sigward.admission.audit import decision_fields
    from sigward.admission.review import parse_review
    from sigward.admission.service import Decision
    from tests.support.admission import pod, pod_request, review

    request = parse_review(review(pod_request(pod("ghcr.io/a/b:v1"))))
    fields = decision_fields(request, Decision(allowed=False), mode="mutate", latency_ms=12.5)
    line = json.loads(json.dumps(fields))
    assert (line["outcome"], line["mode"], line["operation"], line["latency_ms"]) == (
        "denied",
        "mutate",
        "CREATE",
        12.5,
    )


def test_dashboard_and_alerts_use_the_metrics(module: dict[str, Any]) -> None:
    resources = module["resource"]
    assert set(resources["google_monitoring_alert_policy"]) == {"deny_spike", "errors", "latency_p99"}
    text = json.dumps(resources["google_monitoring_alert_policy"]) + json.dumps(
        resources["google_monitoring_dashboard"]
    )
    for metric in ("admission-decisions", "admission-latency", "admission-errors"):
        assert f"${{var.name_prefix}}-{metric}" in text
    p99 = block(block(resources["google_monitoring_alert_policy"]["latency_p99"], "conditions"), "condition_threshold")
    assert block(p99, "aggregations")["per_series_aligner"] == "ALIGN_PERCENTILE_99"
    deny = block(block(resources["google_monitoring_alert_policy"]["deny_spike"], "conditions"), "condition_threshold")
    assert 'outcome=\\"denied\\"' in deny["filter"] or 'outcome="denied"' in deny["filter"]
    for policy in resources["google_monitoring_alert_policy"].values():
        assert policy["notification_channels"] == "${var.alert_notification_channels}"
        assert policy["count"] == "${var.monitoring_enabled ? 1 : 0}"


def test_monitoring_api_enabled(module: dict[str, Any]) -> None:
    assert "monitoring.googleapis.com" in json.dumps(module["locals"])

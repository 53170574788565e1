"""Webhook configurations: what a cluster needs, and the checked-in manifests are exactly what the CLI renders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sigward.admission.webhooks import render_webhook_configurations, webhook_configurations
from sigward.errors import BadRequestError

REPO = Path(__file__).resolve().parents[3]


def test_mutating_and_validating_configurations() -> None:
    mutating, validating = webhook_configurations(url="https://adm.example.run.app", token="tok")
    assert mutating["kind"] == "MutatingWebhookConfiguration"
    assert validating["kind"] == "ValidatingWebhookConfiguration"
    (m,) = mutating["webhooks"]
    (v,) = validating["webhooks"]
    assert m["clientConfig"] == {"url": "https://adm.example.run.app/tok/mutate"}
    assert v["clientConfig"] == {"url": "https://adm.example.run.app/tok/validate"}
    for hook in (m, v):
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "None"
        assert hook["failurePolicy"] == "Fail"
        assert hook["timeoutSeconds"] == 10
        (expr,) = hook["namespaceSelector"]["matchExpressions"]
        assert expr["operator"] == "NotIn"
        assert "kube-system" in expr["values"]
        resources = {r for rule in hook["rules"] for r in rule["resources"]}
        assert {"pods", "pods/ephemeralcontainers", "deployments", "cronjobs", "jobs"} <= resources
    assert m["reinvocationPolicy"] == "IfNeeded"
    assert "reinvocationPolicy" not in v


def test_options() -> None:
    mutating, _ = webhook_configurations(
        url="https://x.example/", failure_policy="Ignore", timeout_seconds=5, exclude_namespaces=["sigward"]
    )
    (hook,) = mutating["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] == 5
    assert hook["clientConfig"]["url"] == "https://x.example/mutate"
    assert "sigward" in hook["namespaceSelector"]["matchExpressions"][0]["values"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://plain.example"}, "must use https"),
        ({"url": "https://x.example/?a=b"}, "query"),
        ({"url": "https://x.example", "token": "a/b"}, "single path segment"),
        ({"url": "https://x.example", "failure_policy": "Maybe"}, "Fail or Ignore"),
        ({"url": "https://x.example", "timeout_seconds": 31}, "between 1 and 30"),
    ],
)
def test_refusals(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        webhook_configurations(**kwargs)  # type: ignore[arg-type]


def test_checked_in_manifests_match_the_renderer() -> None:
    text = (REPO / "infra" / "k8s" / "webhooks.yaml").read_text()
    rendered = render_webhook_configurations(url="https://SIGWARD-ADMISSION-URL", token="ADMISSION-TOKEN")
    assert list(yaml.safe_load_all(text)) == list(yaml.safe_load_all(rendered))

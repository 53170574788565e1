"""A ``wgpolicyk8s.io/v1alpha2`` PolicyReport for ``sigward verify --output policyreport``: one result per (image,
rule), shaped as Kyverno's ``ToPolicyReportResult`` (source, policy, rule, result, message, scored, severity,
category, timestamp, properties) with the report ``summary``. The checked thing is an image, not a Kubernetes
object, so it goes in ``properties`` (``image``, ``digest``) rather than ``resources``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.models import Policy
from sigward.reports import facts_for
from sigward.verify.results import RuleVerdict, Verdict

API_VERSION = "wgpolicyk8s.io/v1alpha2"
RESULTS = ("pass", "fail", "warn", "error", "skip")


def _result(verdict: RuleVerdict, scored: bool) -> str:
    if verdict.verdict == Verdict.FAIL and not scored:
        return "warn"  # Kyverno: an unscored policy's failure is a warning
    return verdict.verdict.value


def render_policy_report(
    verdicts: Sequence[RuleVerdict],
    policies: Sequence[Policy],
    *,
    image_policies: Sequence[ImagePolicy] = (),
    name: str = "sigward-verify",
    namespace: str = "default",
    now: float | None = None,
    scope: Mapping[str, str] | None = None,
    process: str = "sigward verify",
) -> dict[str, Any]:
    """The report; with ``scope`` (``apiVersion``/``kind``/``name`` of an admitted resource, as Kyverno's
    per-resource reports carry) the results are about that resource."""
    stamp = time.time() if now is None else now
    seconds = int(stamp)
    timestamp = {"seconds": seconds, "nanos": int((stamp - seconds) * 1e9)}
    results: list[dict[str, Any]] = []
    summary = dict.fromkeys(RESULTS, 0)
    for v in verdicts:
        facts = facts_for(v, policies, image_policies)
        outcome = _result(v, facts.scored)
        summary[outcome] += 1
        entry: dict[str, Any] = {
            "source": facts.source,
            "policy": facts.policy.key if facts.policy is not None else (v.policy or "-"),
            "rule": facts.rule or v.rule or "-",
            "result": outcome,
            "message": v.message,
            "scored": facts.scored,
            "timestamp": timestamp,
            "properties": (
                {"image": v.image, "digest": v.digest, "process": process} if v.image else {"process": process}
            ),
        }
        # Kyverno's IVPOL results carry the policy's auditAnnotations as properties (report/admission vector);
        # sigward's own property names win a clash, so a policy cannot disguise which image or process it reports
        entry["properties"] = {**dict(v.properties), **entry["properties"]}
        if v.exceptions:  # Kyverno: a skip by PolicyException names it (report/with-exception vector)
            entry["properties"]["exceptions"] = ",".join(v.exceptions)
        if facts.severity:
            entry["severity"] = facts.severity
        if facts.category:
            entry["category"] = facts.category
        results.append(entry)
    report: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "sigward"}},
        "results": results,
        "summary": summary,
    }
    if scope is not None:
        report["scope"] = dict(scope)
    return report

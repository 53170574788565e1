"""Report formats for ``sigward verify --output``: text, json (the contract's shape), SARIF 2.1.0 for code-scanning
CI systems, and a ``wgpolicyk8s.io/v1alpha2`` PolicyReport for Kubernetes dashboards (Policy Reporter and the like).

Each format is a pure function of the verdicts and the loaded policies (annotations, failure actions)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module for OutputFormat; pydantic models load only when a report is made
    from sigward.policy.models import Policy
    from sigward.verify.results import RuleVerdict


class OutputFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    POLICYREPORT = "policyreport"


# Kyverno's annotations for report severity and category (pkg/utils/report/results.go).
SEVERITY_ANNOTATION = "policies.kyverno.io/severity"
CATEGORY_ANNOTATION = "policies.kyverno.io/category"
SCORED_ANNOTATION = "policies.kyverno.io/scored"
SEVERITIES = ("critical", "high", "medium", "low", "info")


@dataclass(frozen=True)
class RuleFacts:
    """What a report needs to know about the rule behind a verdict (None fields: no such policy, e.g. a skip)."""

    policy: Policy | None
    enforce: bool
    severity: str
    category: str
    scored: bool


def facts_for(verdict: RuleVerdict, policies: Sequence[Policy]) -> RuleFacts:
    policy = next((p for p in policies if verdict.policy and verdict.policy in (p.name, p.key)), None)
    if policy is None:
        return RuleFacts(policy=None, enforce=False, severity="", category="", scored=True)
    rule = next((r for r in policy.spec.rules if verdict.rule in (r.name, f"autogen-{r.name}")), None)
    enforce = policy.spec.enforces(rule) if rule is not None else policy.spec.validation_failure_action == "Enforce"
    severity = policy.annotations.get(SEVERITY_ANNOTATION, "").strip().lower()
    return RuleFacts(
        policy=policy,
        enforce=enforce,
        severity=severity if severity in SEVERITIES else "",
        category=policy.annotations.get(CATEGORY_ANNOTATION, ""),
        scored=policy.annotations.get(SCORED_ANNOTATION, "").strip().lower() != "false",
    )

"""Report formats for ``sigward verify --output``: text, json (the contract's shape), SARIF 2.1.0 for code-scanning
CI systems, and a ``wgpolicyk8s.io/v1alpha2`` PolicyReport for Kubernetes dashboards (Policy Reporter and the like).

Each format is a pure function of the verdicts and the loaded policies (annotations, failure actions)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module for OutputFormat; pydantic models load only when a report is made
    from sigward.policy.ivpol.load import ImagePolicy
    from sigward.policy.models import Policy
    from sigward.verify.ivpol import PolicyOutcome
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
# The ``source`` of a result in a PolicyReport: Kyverno's engine names (report vectors: report/admission,
# report/background assert ``source: KyvernoImageValidatingPolicy`` for ImageValidatingPolicy results).
SOURCE_CLUSTER_POLICY = "sigward"
SOURCE_IMAGE_POLICY = "KyvernoImageValidatingPolicy"
IMAGE_POLICY_KINDS = ("ImageValidatingPolicy", "NamespacedImageValidatingPolicy")


@dataclass(frozen=True)
class RuleFacts:
    """What a report needs to know about the rule behind a verdict (None fields: no such policy, e.g. a skip)."""

    policy: Policy | None
    enforce: bool
    severity: str
    category: str
    scored: bool
    source: str = SOURCE_CLUSTER_POLICY
    rule: str = ""  # the rule name a report shows ("" → the verdict's own)
    policy_source: str = ""  # the file the policy was loaded from
    form: str = "verifyImages rule"  # what the rule is, for human text


def image_policy_facts(verdict: RuleVerdict, image_policies: Sequence[ImagePolicy]) -> RuleFacts:
    """An ImageValidatingPolicy result as Kyverno reports it: the policy name is also the rule, ``Deny`` enforces,
    and ``source`` names the IVPOL engine."""
    ip = next((p for p in image_policies if verdict.policy in (p.name, p.key)), None)
    enforce = "Deny" in ip.spec.effective_actions() if ip is not None else True
    name = ip.name if ip is not None else verdict.policy.rpartition("/")[2]
    return RuleFacts(
        policy=None,
        enforce=enforce,
        severity="",
        category="",
        scored=True,
        source=SOURCE_IMAGE_POLICY,
        rule=name,
        policy_source=ip.source if ip is not None else "",
        form=verdict.rule,
    )


def facts_for(
    verdict: RuleVerdict, policies: Sequence[Policy], image_policies: Sequence[ImagePolicy] = ()
) -> RuleFacts:
    if verdict.policy and verdict.rule in IMAGE_POLICY_KINDS:
        return image_policy_facts(verdict, image_policies)
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
        policy_source=policy.source,
    )


def outcome_verdicts(
    outcomes: Sequence[PolicyOutcome], image_policies: Sequence[ImagePolicy], *, image: str = ""
) -> list[RuleVerdict]:
    """ImageValidatingPolicy outcomes of one admission request as report rows (one per policy; the checked thing is
    the resource, so ``image`` is usually empty)."""
    from sigward.verify.results import RuleVerdict

    kinds = {p.name: p.kind for p in image_policies}
    return [
        RuleVerdict(
            image=image,
            reference=image,
            digest="",
            verdict=o.verdict,
            policy=o.policy,
            rule=kinds.get(o.policy, IMAGE_POLICY_KINDS[0]),
            message=o.message,
            # Kyverno's report names the exceptions (``exceptions: <name>[,<name>]``); the outcome carries their keys
            exceptions=tuple(key.rpartition("/")[2] for key in o.exceptions),
            properties=o.properties,
        )
        for o in outcomes
    ]

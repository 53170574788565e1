"""SARIF 2.1.0 (OASIS) for ``sigward verify --output sarif``: one result per (image, rule), one reporting rule per
policy rule (``ruleId`` ``<policy>/<rule>``, stable across runs, as GitHub code scanning requires).

Mapping (Kyverno has no SARIF of its own; this follows ../shared/spec/kyverno-operability.md's suggestion):
pass → ``kind: pass``, ``level: none``; fail → ``kind: fail``, ``level: error`` when the rule enforces, ``warning``
when it audits; error (registry/KMS unreachable) → ``kind: fail``, ``level: error``; skip → ``kind:
notApplicable``. The location is the image repository (an image has no source line; line 1 as Trivy does)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sigward import __version__
from sigward.errors import SigwardError
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.models import Policy
from sigward.references import parse_image_reference
from sigward.reports import SOURCE_CLUSTER_POLICY, facts_for
from sigward.verify.results import RuleVerdict, Verdict

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/sigward/sigward"
NO_RULE_ID = "sigward/no-matching-rule"


def rule_id(verdict: RuleVerdict) -> str:
    return f"{verdict.policy}/{verdict.rule}" if verdict.policy else NO_RULE_ID


def _artifact(image: str) -> str:
    try:
        return parse_image_reference(image).repository
    except SigwardError:
        return image


def _level_and_kind(verdict: RuleVerdict, enforce: bool) -> tuple[str, str]:
    if verdict.verdict == Verdict.PASS:
        return "none", "pass"
    if verdict.verdict == Verdict.SKIP:
        return "none", "notApplicable"
    if verdict.verdict == Verdict.ERROR:
        return "error", "fail"
    return ("error" if enforce else "warning"), "fail"


def render_sarif(
    verdicts: Sequence[RuleVerdict], policies: Sequence[Policy], image_policies: Sequence[ImagePolicy] = ()
) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for v in verdicts:
        facts = facts_for(v, policies, image_policies)
        rid = rule_id(v)
        level, kind = _level_and_kind(v, facts.enforce)
        if rid not in rules:
            if v.policy:
                action = "Enforce" if facts.enforce else "Audit"
                text = (
                    f"{facts.form} {v.policy} ({action})"
                    if facts.rule
                    else f"verifyImages rule {v.rule} of policy {v.policy} ({action})"
                )
            else:
                text = "no verifyImages rule matched the image"
            rule: dict[str, Any] = {
                "id": rid,
                "name": rid.replace("/", "-"),
                "shortDescription": {"text": text},
                "fullDescription": {"text": text},
                "help": {"text": "Sign the image so that it satisfies the rule's attestors, or fix the policy."},
                "defaultConfiguration": {"level": "error" if facts.enforce else "warning"},
            }
            properties = {k: val for k, val in (("category", facts.category), ("severity", facts.severity)) if val}
            if facts.policy_source:
                properties["policySource"] = facts.policy_source
            if facts.source != SOURCE_CLUSTER_POLICY:
                properties["engine"] = facts.source
            if properties:
                rule["properties"] = properties
            rules[rid] = rule
        results.append(
            {
                "ruleId": rid,
                "ruleIndex": list(rules).index(rid),
                "kind": kind,
                "level": level,
                # an IVPOL admission row is about the resource (no image): its message alone
                "message": {"text": f"{v.image}: {v.message}" if v.image and v.message else v.message or v.image},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _artifact(v.image)},
                            "region": {"startLine": 1},
                        }
                    }
                ],
                "properties": {"image": v.image, "digest": v.digest, "result": v.verdict.value},
            }
        )
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sigward",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": list(rules.values()),
                    }
                },
                "columnKind": "utf16CodeUnits",
                "results": results,
            }
        ],
    }

"""``sigward verify --output sarif|policyreport``: the documents validate against the upstream schemas (SARIF 2.1.0,
the PolicyReport CRD), map every verdict as documented, and the validators reject tampered documents."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sigward.policy.loader import load_policies
from sigward.reports.policyreport import render_policy_report
from sigward.reports.sarif import NO_RULE_ID, render_sarif
from sigward.verify.results import RuleVerdict, Verdict
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.report_schemas import errors, policy_report_validator, sarif_validator
from tests.support.signing import new_key

DIGEST = "sha256:" + "a" * 64


def _policies(tmp_path: Any, *, action: str, annotations: dict[str, str] | None = None) -> Any:
    verification = key_verification(
        ["ghcr.io/*"], [keys_entry(new_key().public_pem)], mutate_digest=False if action == "Audit" else None
    )
    doc = cluster_policy("require-signed", [verification], action=action)
    if annotations:
        doc["metadata"]["annotations"] = annotations
    path = tmp_path / "p.yaml"
    path.write_text(dump(doc))
    policies = load_policies([path]).policies
    return policies, policies[0].spec.rules[0].name


def _verdict(
    result: Verdict, rule: str, image: str = "ghcr.io/org/app:v1", policy: str = "require-signed"
) -> RuleVerdict:
    return RuleVerdict(
        image=image,
        reference=image,
        digest=DIGEST if result != Verdict.SKIP else "",
        verdict=result,
        policy=policy if result != Verdict.SKIP else "",
        rule=rule if result != Verdict.SKIP else "",
        message={Verdict.PASS: "verified", Verdict.FAIL: "no signatures found"}.get(result, "nothing matched"),
    )


# (verdict, failure action) -> SARIF (level, kind), PolicyReport result
CASES = [
    (Verdict.PASS, "Enforce", ("none", "pass"), "pass"),
    (Verdict.FAIL, "Enforce", ("error", "fail"), "fail"),
    (Verdict.FAIL, "Audit", ("warning", "fail"), "fail"),
    (Verdict.ERROR, "Audit", ("error", "fail"), "error"),
    (Verdict.SKIP, "Enforce", ("none", "notApplicable"), "skip"),
]


@pytest.mark.parametrize(("verdict", "action", "sarif", "report"), CASES)
def test_mapping_and_schemas(tmp_path: Any, verdict: Verdict, action: str, sarif: tuple[str, str], report: str) -> None:
    policies, rule = _policies(tmp_path, action=action)
    verdicts = [_verdict(verdict, rule)]
    doc = render_sarif(verdicts, policies)
    assert errors(sarif_validator(), doc) == []
    (result,) = doc["runs"][0]["results"]
    assert (result["level"], result["kind"]) == sarif
    assert result["ruleId"] == (f"require-signed/{rule}" if verdict != Verdict.SKIP else NO_RULE_ID)
    assert doc["runs"][0]["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "ghcr.io/org/app"

    polr = render_policy_report(verdicts, policies, now=1_700_000_000.25)
    assert errors(policy_report_validator(), polr) == []
    (entry,) = polr["results"]
    assert entry["result"] == report and entry["source"] == "sigward"
    assert entry["timestamp"] == {"seconds": 1_700_000_000, "nanos": 250_000_000}
    assert polr["summary"][report] == 1 and sum(polr["summary"].values()) == 1


def test_one_result_per_image_and_rule_and_stable_rule_ids(tmp_path: Any) -> None:
    policies, rule = _policies(tmp_path, action="Enforce")
    verdicts = [
        _verdict(Verdict.PASS, rule, "ghcr.io/org/a:v1"),
        _verdict(Verdict.FAIL, rule, "ghcr.io/org/b:v1"),
        _verdict(Verdict.SKIP, rule, "docker.io/library/nginx:1"),
    ]
    doc = render_sarif(verdicts, policies)
    assert errors(sarif_validator(), doc) == []
    run = doc["runs"][0]
    assert len(run["results"]) == 3
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [f"require-signed/{rule}", NO_RULE_ID]
    assert render_sarif(verdicts, policies)["runs"][0]["tool"] == run["tool"]  # same ids next run
    polr = render_policy_report(verdicts, policies)
    assert errors(policy_report_validator(), polr) == []
    assert polr["summary"] == {"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 1}
    assert [e["properties"]["image"] for e in polr["results"]] == [v.image for v in verdicts]


def test_kyverno_annotations_severity_category_unscored(tmp_path: Any) -> None:
    annotations = {
        "policies.kyverno.io/severity": "High",
        "policies.kyverno.io/category": "Supply Chain",
        "policies.kyverno.io/scored": "false",
    }
    policies, rule = _policies(tmp_path, action="Enforce", annotations=annotations)
    polr = render_policy_report([_verdict(Verdict.FAIL, rule)], policies)
    assert errors(policy_report_validator(), polr) == []
    (entry,) = polr["results"]
    assert (entry["severity"], entry["category"], entry["scored"], entry["result"]) == (
        "high",
        "Supply Chain",
        False,
        "warn",  # Kyverno: an unscored policy's failure is a warning
    )
    sarif = render_sarif([_verdict(Verdict.FAIL, rule)], policies)
    assert sarif["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["severity"] == "high"


def test_unknown_severity_is_left_out(tmp_path: Any) -> None:
    policies, rule = _policies(tmp_path, action="Enforce", annotations={"policies.kyverno.io/severity": "urgent"})
    polr = render_policy_report([_verdict(Verdict.FAIL, rule)], policies)
    assert errors(policy_report_validator(), polr) == []
    assert "severity" not in polr["results"][0]


def _tamper(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["version"], "2.0.0"),
        (["runs", 0, "results", 0, "level"], "fatal"),
        (["runs", 0, "results", 0, "kind"], "denied"),
        (["runs", 0, "results", 0, "message"], KeyError),
        (["runs", 0, "tool", "driver", "name"], KeyError),
    ],
)
def test_sarif_validator_rejects_tampered(tmp_path: Any, path: list[Any], value: Any) -> None:
    policies, rule = _policies(tmp_path, action="Enforce")
    doc = render_sarif([_verdict(Verdict.FAIL, rule)], policies)
    assert errors(sarif_validator(), _tamper(doc, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["results", 0, "result"], "deny"),
        (["results", 0, "policy"], KeyError),
        (["results", 0, "severity"], "urgent"),
        (["results", 0, "properties", "digest"], 7),
        (["results", 0, "timestamp", "nanos"], KeyError),
        (["results", 0, "image"], "not a field"),
        (["summary", "fail"], "1"),
        (["apiVersion"], "wgpolicyk8s.io/v1beta1"),
    ],
)
def test_policy_report_validator_rejects_tampered(tmp_path: Any, path: list[Any], value: Any) -> None:
    policies, rule = _policies(tmp_path, action="Enforce")
    doc = render_policy_report([_verdict(Verdict.FAIL, rule)], policies)
    assert errors(policy_report_validator(), _tamper(doc, path, value))


def _image_policies(tmp_path: Any, actions: list[str]) -> Any:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "check-signed-images"},
        "spec": {
            "validationActions": actions,
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                ]
            },
            "matchImageReferences": [{"glob": "ghcr.io/*"}],
            "attestors": [{"name": "k", "cosign": {"key": {"data": new_key().public_pem}}}],
            "attestations": [{"name": "sbom", "referrer": {"type": "sbom/cyclone-dx"}}],
            "validations": [{"expression": "true", "message": "failed to verify image with notary cert"}],
        },
    }
    path = tmp_path / "iv.yaml"
    path.write_text(dump(doc))
    return load_policies([path]).image_policies


@pytest.mark.parametrize(
    ("actions", "verdict", "level", "result"),
    [
        (["Deny"], Verdict.FAIL, "error", "fail"),
        (["Audit"], Verdict.FAIL, "warning", "fail"),
        (["Deny"], Verdict.PASS, "none", "pass"),
        (["Deny"], Verdict.SKIP, "none", "skip"),
    ],
)
def test_image_validating_policy_rows_as_kyverno_reports_them(
    tmp_path: Any, actions: list[str], verdict: Verdict, level: str, result: str
) -> None:
    """Kyverno's IVPOL report rows (report/admission, report/background vectors): ``source``
    KyvernoImageValidatingPolicy, the policy name as ``rule``; Deny enforces (SARIF error), Audit warns. A
    ClusterPolicy row beside it keeps sigward's source and its own rule name."""
    image_policies = _image_policies(tmp_path, actions)
    assert image_policies[0].kind == "ImageValidatingPolicy"
    cluster, rule = _policies(tmp_path, action="Enforce")
    row = RuleVerdict(
        "ghcr.io/org/app:v1",
        "ghcr.io/org/app:v1",
        DIGEST,
        verdict,
        "check-signed-images",
        "ImageValidatingPolicy",
        "failed to verify image with notary cert",
    )
    verdicts = [row, _verdict(Verdict.FAIL, rule)]
    report = render_policy_report(verdicts, cluster, image_policies=image_policies, now=0)
    assert errors(policy_report_validator(), report) == []
    ivpol, plain = report["results"]
    assert (ivpol["source"], ivpol["policy"], ivpol["rule"], ivpol["result"]) == (
        "KyvernoImageValidatingPolicy",
        "check-signed-images",
        "check-signed-images",
        result,
    )
    assert (plain["source"], plain["rule"]) == ("sigward", rule)
    sarif = render_sarif(verdicts, cluster, image_policies)
    assert errors(sarif_validator(), sarif) == []
    first = sarif["runs"][0]["results"][0]
    assert first["level"] == level
    described = sarif["runs"][0]["tool"]["driver"]["rules"][0]
    assert described["properties"]["engine"] == "KyvernoImageValidatingPolicy"
    assert described["shortDescription"]["text"].startswith("ImageValidatingPolicy check-signed-images")


def test_ivpol_audit_annotations_are_result_properties_and_cannot_replace_sigwards() -> None:
    """Kyverno's IVPOL report results carry the policy's auditAnnotations as ``properties`` (chainsaw report/admission:
    ``label: prod``); a key clashing with sigward's own (``process``) does not replace it."""
    from sigward.reports import outcome_verdicts
    from sigward.verify.ivpol import PolicyOutcome

    outcome = PolicyOutcome(
        policy="ivpol-report", verdict=Verdict.FAIL, message="m", properties=(("label", "prod"), ("process", "forged"))
    )
    polr = render_policy_report(outcome_verdicts([outcome], []), [], process="sigward review")
    assert errors(policy_report_validator(), polr) == []
    (result,) = polr["results"]
    assert result["properties"] == {"label": "prod", "process": "sigward review"}
    (plain,) = render_policy_report(outcome_verdicts([PolicyOutcome("p", Verdict.FAIL)], []), [])["results"]
    assert plain["properties"] == {"process": "sigward verify"}

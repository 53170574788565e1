"""The conditions of real policies (../shared/vectors/kyverno-policies) against real predicates
(../shared/vectors/cosign-testdata) and predicates shaped like the generators' output, with a fixed clock."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.policy.conditions import evaluate_any_all, evaluate_deny
from sigward.policy.models import AnyAllConditions, Condition
from tests.support.vectors import require_vectors

pytestmark = pytest.mark.vectors

SLSA_GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml"
)


@dataclass(frozen=True)
class PolicyConditions:
    type: str
    conditions: tuple[AnyAllConditions, ...]


def _documents(path: Path) -> Iterator[Mapping[str, Any]]:
    with path.open() as handle:
        for document in yaml.safe_load_all(handle):
            if isinstance(document, Mapping) and document.get("kind") in ("ClusterPolicy", "Policy"):
                yield document


def attestation_conditions(*parts: str) -> list[PolicyConditions]:
    """Every attestation's conditions in a policy file, parsed into the models as written."""
    out = []
    for document in _documents(require_vectors("kyverno-policies", *parts)):
        for rule in document["spec"]["rules"]:
            for entry in rule.get("verifyImages", ()):
                for attestation in entry.get("attestations", ()):
                    blocks = tuple(AnyAllConditions.model_validate(c) for c in attestation.get("conditions", ()))
                    kind = attestation.get("type") or attestation.get("predicateType", "")
                    out.append(PolicyConditions(kind, blocks))
    return out


def deny_of(*parts: str) -> tuple[Any, str]:
    for document in _documents(require_vectors("kyverno-policies", *parts)):
        for rule in document["spec"]["rules"]:
            for entry in rule.get("verifyImages", ()):
                validate = entry.get("validate")
                if validate:
                    return validate["deny"]["conditions"], validate.get("message", "")
    raise AssertionError("no validate.deny in the policy")


def predicate(name: str) -> dict[str, Any]:
    data = json.loads(require_vectors("cosign-testdata", name).read_text())
    assert isinstance(data, dict)
    return data


def slsa02(builder_id: str) -> dict[str, Any]:
    return {
        "builder": {"id": builder_id},
        "buildType": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
        "invocation": {"configSource": {"uri": "git+https://github.com/chipzoller/zulu@refs/heads/main"}},
        "materials": [],
    }


# --- SLSA v0.2: builder.id through regex_match with a nested {{ }}


@pytest.mark.parametrize(
    ("builder_id", "passes"),
    [
        (f"{SLSA_GENERATOR}@refs/tags/v1.4.0", True),
        (f"{SLSA_GENERATOR}@refs/tags/v1.10.0", False),  # the policy's regex allows one digit per part
        (f"{SLSA_GENERATOR}@refs/heads/main", False),
        ("https://example.com/builder@refs/tags/v1.4.0", False),
    ],
)
def test_slsa_v02_builder_id(builder_id: str, passes: bool) -> None:
    (entry,) = attestation_conditions("policies-library", "verify-image-slsa.yaml")
    assert entry.type == "https://slsa.dev/provenance/v0.2"
    outcome = evaluate_any_all(entry.conditions, slsa02(builder_id), now=datetime(2024, 1, 1, tzinfo=UTC))
    assert outcome.passed is passes
    if not passes:
        assert "Equals true" in outcome.message


def test_slsa_v02_builder_id_missing_fails() -> None:
    (entry,) = attestation_conditions("policies-library", "verify-image-slsa.yaml")
    outcome = evaluate_any_all(entry.conditions, {"buildType": "x"}, now=datetime(2024, 1, 1, tzinfo=UTC))
    assert not outcome.passed
    assert "= false" in outcome.message  # regex_match('...', 'null')


def test_kyverno_conformance_multiline_builder_key() -> None:
    # The YAML folds the key over two lines ('{{\n   builder.id}}'); it still resolves.
    entries = attestation_conditions(
        "kyverno-tests", "clusterpolicy__standard__keyless-attestations-multiple-subjects-1__policy.yaml"
    )
    conditions = entries[0].conditions
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert evaluate_any_all(conditions, slsa02(f"{SLSA_GENERATOR}@refs/heads/main"), now=now).passed
    assert not evaluate_any_all(conditions, slsa02(f"{SLSA_GENERATOR}@refs/tags/v1.4.0"), now=now).passed


# --- SLSA v1: buildDefinition.buildType


@pytest.mark.parametrize(
    "policy",
    [
        "clusterpolicy__standard__sigstore-attestation-verification-test__policy.yaml",
        "clusterpolicy__standard__sigstore-attestation-verification-regexp__policy.yaml",
    ],
)
def test_slsa_v1_build_type(policy: str) -> None:
    (entry,) = attestation_conditions("kyverno-tests", policy)
    assert entry.type == "https://slsa.dev/provenance/v1"
    github = {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"}}
    other = {"buildDefinition": {"buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"}}
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert evaluate_any_all(entry.conditions, github, now=now).passed
    assert not evaluate_any_all(entry.conditions, other, now=now).passed


# --- cosign vulnerability predicate: time_since on metadata.scanFinishedOn


def _scan_finished() -> datetime:
    finished = predicate("vuln-predicate.json")["metadata"]["scanFinishedOn"]
    return datetime.fromisoformat(finished)


@pytest.mark.parametrize(("age", "passes"), [(timedelta(hours=167), True), (timedelta(hours=169), False)])
def test_require_vulnerability_scan_policy(age: timedelta, passes: bool) -> None:
    (entry,) = attestation_conditions("policies-library", "require-vulnerability-scan.yaml")
    assert entry.type == "cosign.sigstore.dev/attestation/vuln/v1"
    outcome = evaluate_any_all(entry.conditions, predicate("vuln-predicate.json"), now=_scan_finished() + age)
    assert outcome.passed is passes


@pytest.mark.parametrize(
    ("age", "passes", "shown"),
    [(timedelta(hours=23), True, ""), (timedelta(hours=25), False, '"25h0m0s"'), (timedelta(hours=24), True, "")],
)
def test_scan_at_most_a_day_old(age: timedelta, passes: bool, shown: str) -> None:
    condition = Condition(key="{{ time_since('','{{metadata.scanFinishedOn}}','') }}", operator="LessThanOrEquals")
    block = AnyAllConditions(all=(condition.model_copy(update={"value": "24h"}),))
    outcome = evaluate_any_all([block], predicate("vuln-predicate.json"), now=_scan_finished() + age)
    assert outcome.passed is passes
    assert shown in outcome.message


def test_conformance_vuln_scanner_regex() -> None:
    entries = attestation_conditions(
        "kyverno-tests", "clusterpolicy__standard__keyless-attestations-multiple-subjects-2__policy.yaml"
    )
    now = datetime(2024, 1, 1, tzinfo=UTC)
    vuln = predicate("vuln-predicate.json")
    assert not evaluate_any_all(entries[0].conditions, vuln, now=now).passed  # fakescanner, not trivy
    trivy = {**vuln, "scanner": {**vuln["scanner"], "uri": "pkg:github/aquasecurity/trivy@0.34.0"}}
    assert evaluate_any_all(entries[0].conditions, trivy, now=now).passed


# --- SBOMs


@pytest.mark.parametrize(
    ("expression", "value", "source"),
    [
        ("{{ spdxVersion }}", "SPDX-2.2", "bom-go-mod.spdx.json"),
        ("{{ bomFormat }}", "CycloneDX", "bom-go-mod.cyclonedx.json"),
    ],
)
def test_sbom_format(expression: str, value: str, source: str) -> None:
    block = AnyAllConditions(all=(Condition(key=expression, operator="Equals", value=value),))
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert evaluate_any_all([block], predicate(source), now=now).passed
    other = "bom-go-mod.cyclonedx.json" if source.endswith("spdx.json") else "bom-go-mod.spdx.json"
    assert not evaluate_any_all([block], predicate(other), now=now).passed


def test_cyclonedx_policy_reads_the_cosign_data_wrapper() -> None:
    (entry,) = attestation_conditions("policies-library", "verify-sbom-cyclonedx.yaml")
    now = datetime(2024, 1, 1, tzinfo=UTC)
    sbom = predicate("bom-go-mod.cyclonedx.json")
    assert evaluate_any_all(entry.conditions, {"Data": sbom, "Timestamp": "2024-01-01T00:00:00Z"}, now=now).passed
    assert not evaluate_any_all(entry.conditions, sbom, now=now).passed  # no Data: null


def test_cve_2022_42889_policy() -> None:
    (entry,) = attestation_conditions("policies-library", "verify-image-cve-2022-42889.yaml")
    now = datetime(2024, 1, 1, tzinfo=UTC)
    sbom = predicate("bom-go-mod.cyclonedx.json")
    assert evaluate_any_all(entry.conditions, sbom, now=now).passed  # no commons-text: 'none'
    vulnerable = {**sbom, "components": [{"name": "commons-text", "version": "1.9"}]}
    assert not evaluate_any_all(entry.conditions, vulnerable, now=now).passed
    fixed = {**sbom, "components": [{"name": "commons-text", "version": "1.10.0"}]}
    assert evaluate_any_all(entry.conditions, fixed, now=now).passed


def test_notary_license_and_source_conditions() -> None:
    licenses, source = attestation_conditions(
        "kyverno-tests", "clusterpolicy__standard__notary-attestation-verification__policy.yaml"
    )
    now = datetime(2024, 1, 1, tzinfo=UTC)
    gpl = {"components": [{"licenses": [{"expression": "GPL-3.0"}]}, {"licenses": [{"expression": "GPL-3.0"}]}]}
    mixed = {"components": [{"licenses": [{"expression": "GPL-3.0"}]}, {"licenses": [{"expression": "MIT"}]}]}
    assert evaluate_any_all(licenses.conditions, gpl, now=now).passed
    assert not evaluate_any_all(licenses.conditions, mixed, now=now).passed
    assert evaluate_any_all(source.conditions, {"source": {"type": "image"}}, now=now).passed
    assert not evaluate_any_all(source.conditions, {"source": {"type": "repository"}}, now=now).passed


# --- validate.deny over named attestations


def _sbom_and_scan(sbom_time: str, scan_time: str, bom_format: str = "CycloneDX") -> dict[str, Any]:
    return {
        "sbom": {"bomFormat": bom_format, "metadata": {"timestamp": sbom_time}},
        "scan": {"descriptor": {"timestamp": scan_time}},
    }


def test_deny_sbom_and_scan_order() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    for policy, after_allowed in (("pass", True), ("fail", False)):
        conditions, message = deny_of(
            "kyverno-tests", f"clusterpolicy__standard__multiple-image-verification-attestations-{policy}__policy.yaml"
        )
        context = _sbom_and_scan("2023-06-02T00:00:00Z", "2023-06-01T00:00:00Z")
        outcome = evaluate_deny(conditions, context, now=now, message=message)
        assert outcome.passed is after_allowed
        if not after_allowed:
            assert outcome.message == "scan report should be created after sbom; test2"
    conditions, message = deny_of(
        "kyverno-tests", "clusterpolicy__standard__multiple-image-verification-attestations-pass__policy.yaml"
    )
    spdx = _sbom_and_scan("2023-06-02T00:00:00Z", "2023-06-01T00:00:00Z", bom_format="SPDX")
    assert evaluate_deny(conditions, spdx, now=now, message=message).message == (
        "scan report should be created after sbom; test1"
    )


def test_deny_trivy_vulnerabilities_missing_from_vex() -> None:
    conditions, message = deny_of(
        "kyverno-tests", "clusterpolicy__standard__multiple-image-verification-attestations-trivy-vex-fail__policy.yaml"
    )
    now = datetime(2024, 1, 1, tzinfo=UTC)
    trivy = {"Vulnerabilities": [{"VulnerabilityID": "CVE-2023-1"}, {"VulnerabilityID": "CVE-2023-2"}]}
    covered = {"trivy": trivy, "vex": {"vulnerabilities": [{"id": "CVE-2023-1"}, {"id": "CVE-2023-2"}]}}
    uncovered = {"trivy": trivy, "vex": {"vulnerabilities": [{"id": "CVE-2023-1"}]}}
    assert evaluate_deny(conditions, covered, now=now, message=message).passed
    outcome = evaluate_deny(conditions, uncovered, now=now, message=message)
    assert outcome.passed is False
    assert outcome.message == "All vulnerabilities in trivy and vex should be same"

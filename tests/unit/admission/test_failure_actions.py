"""Enforce or Audit per failed rule, as Kyverno decides it (kyverno/kyverno@111e07bb, pkg/engine/api/engineresponse.go
``failureActionForRule``/``ruleAction``/``matchOverride``): the rule's entries first, then the namespace overrides,
then the policy's action. Overrides were refused at load before (regression: they are honoured now)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sigward.admission.review import parse_review
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.errors import PolicyError
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.verify.engine import Verifier
from tests.support.admission import pod, pod_request, review
from tests.support.memory import MemorySignatureSource
from tests.support.policies import dump
from tests.support.signing import new_key

UNSIGNED = "registry.test/app/unsigned:v1"
DIGEST = "sha256:" + "2" * 64
PEM = new_key("p256", slot=43).public_pem


def entry(action: str | None) -> dict[str, Any]:
    iv: dict[str, Any] = {
        "imageReferences": ["registry.test/*"],
        "mutateDigest": False,
        "attestors": [{"entries": [{"keys": {"publicKeys": PEM, "rekor": {"ignoreTlog": True}}}]}],
    }
    if action is not None:
        iv["failureAction"] = action
    return iv


def policy(spec_action: str, entries: tuple[str | None, ...], overrides: list[dict[str, Any]] | None = None) -> Policy:
    spec: dict[str, Any] = {
        "validationFailureAction": spec_action,
        "rules": [
            {
                "name": "verify",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [entry(a) for a in entries],
            }
        ],
    }
    if overrides is not None:
        spec["validationFailureActionOverrides"] = overrides
    doc = {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"}, "spec": spec}
    (loaded,) = load_policy_text(dump(doc), "p.yaml").policies
    return loaded


@dataclass(frozen=True)
class Row:
    name: str
    spec_action: str
    entries: tuple[str | None, ...]
    overrides: list[dict[str, Any]] | None
    namespace: str
    expected: str


ROWS = [
    Row("spec-enforce", "Enforce", (None,), None, "default", "Enforce"),
    Row("spec-audit", "Audit", (None,), None, "default", "Audit"),
    Row("legacy-lowercase-spec", "enforce", (None,), None, "default", "Enforce"),
    Row("entry-enforce-beats-spec-audit", "Audit", ("Enforce",), None, "default", "Enforce"),
    Row("entry-audit-beats-spec-enforce", "Enforce", ("Audit",), None, "default", "Audit"),
    Row("any-entry-enforce-wins", "Audit", ("Audit", "Enforce"), None, "default", "Enforce"),
    # Kyverno: the first explicit entry action decides even when an earlier entry sets none and the spec enforces
    Row("first-explicit-audit-over-spec-enforce", "Enforce", (None, "Audit"), None, "default", "Audit"),
    Row("override-audit-in-dev", "Enforce", (None,), [{"action": "Audit", "namespaces": ["dev"]}], "dev", "Audit"),
    Row("override-not-for-prod", "Enforce", (None,), [{"action": "Audit", "namespaces": ["dev"]}], "prod", "Enforce"),
    Row("override-wildcard", "Enforce", (None,), [{"action": "Audit", "namespaces": ["dev-*"]}], "dev-1", "Audit"),
    Row(
        "override-enforce-in-prod", "Audit", (None,), [{"action": "Enforce", "namespaces": ["prod"]}], "prod", "Enforce"
    ),
    Row("override-lowercase", "Audit", (None,), [{"action": "enforce", "namespaces": ["prod"]}], "prod", "Enforce"),
    Row("override-without-namespaces-everywhere", "Enforce", (None,), [{"action": "Audit"}], "any", "Audit"),
    Row(
        "override-empty-namespaces-nowhere", "Enforce", (None,), [{"action": "Audit", "namespaces": []}], "x", "Enforce"
    ),
    Row(
        "first-matching-override-wins",
        "Audit",
        (None,),
        [{"action": "Enforce", "namespaces": ["dev"]}, {"action": "Audit", "namespaces": ["dev"]}],
        "dev",
        "Enforce",
    ),
    Row(
        "entry-action-beats-override",
        "Audit",
        ("Audit",),
        [{"action": "Enforce", "namespaces": ["prod"]}],
        "prod",
        "Audit",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_failure_action_table(row: Row) -> None:
    p = policy(row.spec_action, row.entries, row.overrides)
    assert p.spec.rule_failure_action(p.spec.rules[0], namespace=row.namespace) == row.expected


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_admission_blocks_exactly_when_the_failed_rule_enforces(row: Row) -> None:
    source = MemorySignatureSource()
    source.add_image(UNSIGNED, DIGEST)  # no signatures: the rule fails
    p = policy(row.spec_action, row.entries, row.overrides)
    svc = AdmissionService(
        policies=lambda: [p], verifier=Verifier(source=source), settings=AdmissionSettings(deadline_seconds=5)
    )
    try:
        decision = svc.decide(parse_review(review(pod_request(pod(UNSIGNED, namespace=row.namespace)))), mode="mutate")
    finally:
        svc.close()
    assert decision.allowed is (row.expected == "Audit")
    if decision.allowed:
        assert decision.warnings  # an audited failure is reported, not silent


SELECTOR_OVERRIDE = [{"action": "Audit", "namespaceSelector": {"matchLabels": {"env": "dev"}}}]
BOTH_OVERRIDE = [{"action": "Audit", "namespaces": ["team-*"], "namespaceSelector": {"matchLabels": {"env": "dev"}}}]
NAMESPACES = {"dev-ns": {"env": "dev"}, "prod-ns": {"env": "prod"}, "team-dev": {"env": "dev"}, "team-x": {}}


@pytest.mark.parametrize(
    ("overrides", "namespace", "expected"),
    [
        (SELECTOR_OVERRIDE, "dev-ns", "Audit"),  # labels match
        (SELECTOR_OVERRIDE, "prod-ns", "Enforce"),  # labels differ
        (SELECTOR_OVERRIDE, "unknown", "Enforce"),  # labels unreadable: never relaxed to Audit
        (BOTH_OVERRIDE, "team-dev", "Audit"),  # namespaces and selector both match
        (BOTH_OVERRIDE, "team-x", "Enforce"),  # namespace listed, labels do not match
        (BOTH_OVERRIDE, "dev-ns", "Enforce"),  # labels match, namespace not listed
    ],
)
def test_override_namespace_selector_uses_namespace_labels(
    overrides: list[dict[str, Any]], namespace: str, expected: str
) -> None:
    """validationFailureActionOverrides[].namespaceSelector (Kyverno chainsaw
    validation-failure-action-overrides/namespace-selector), labels from shipped Namespace manifests."""
    from sigward.cluster.data import ClusterData, ObjectRef
    from tests.support.kubeapi import namespace as namespace_doc

    cluster = ClusterData(
        manifests={ObjectRef("namespaces", "", n): namespace_doc(n, labels) for n, labels in NAMESPACES.items()}
    )
    p = policy("Enforce", (None,), overrides)
    labels = lambda: cluster.namespace_labels(namespace)  # noqa: E731
    assert p.spec.rule_failure_action(p.spec.rules[0], namespace=namespace, namespace_labels=labels) == expected
    # without cluster data a selector item never relaxes a failure
    assert p.spec.rule_failure_action(p.spec.rules[0], namespace=namespace) == "Enforce"
    source = MemorySignatureSource()
    source.add_image(UNSIGNED, DIGEST)  # no signatures: the rule fails
    svc = AdmissionService(
        policies=lambda: [p],
        verifier=Verifier(source=source),
        settings=AdmissionSettings(deadline_seconds=5),
        cluster=cluster,
    )
    try:
        decision = svc.decide(parse_review(review(pod_request(pod(UNSIGNED, namespace=namespace)))), mode="mutate")
    finally:
        svc.close()
    assert decision.allowed is (expected == "Audit")


def test_override_namespace_selector_refused_when_switched_off() -> None:
    from sigward.policy.capabilities import Capabilities

    doc = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "p"},
        "spec": {"validationFailureActionOverrides": SELECTOR_OVERRIDE, "rules": []},
    }
    with pytest.raises(PolicyError) as err:
        load_policy_text(dump(doc), "p.yaml", capabilities=Capabilities(override_namespace_selector=False))
    assert "spec.validationFailureActionOverrides[0].namespaceSelector" in str(err.value)

"""Background mode (``spec.background: true``, Kyverno's default) refuses request-only variables anywhere in the
policy, as Kyverno's ``containsUserVariables`` (pkg/validation/policy/background.go) does."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from sigward.errors import PolicyError
from sigward.policy.capabilities import Capabilities
from sigward.policy.loader import PolicySet, load_policy_text

ALL = Capabilities().with_all()
PREFIX = "only select variables are allowed in background mode. Set spec.background=false to disable background mode"


def base(**spec: Any) -> dict[str, Any]:
    rule = {
        "name": "verify",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "verifyImages": [
            {"imageReferences": ["ghcr.io/acme/*"], "attestors": [{"entries": [{"keys": {"publicKeys": "{{k}}"}}]}]}
        ],
        "context": [{"name": "k", "variable": {"value": "x"}}],
    }
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "p"},
        "spec": {"validationFailureAction": "Enforce", "rules": [rule], **spec},
    }


def load(doc: dict[str, Any]) -> PolicySet:
    return load_policy_text(yaml.safe_dump(doc), "t.yaml", capabilities=ALL)


def found(doc: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        load(doc)
    except PolicyError as err:
        return [(p.path, p.message) for p in err.problems]
    return []


def precondition(key: str) -> dict[str, Any]:
    doc = base()
    doc["spec"]["rules"][0]["preconditions"] = {"all": [{"key": key, "operator": "Equals", "value": "x"}]}
    return doc


def context_value(value: str) -> dict[str, Any]:
    doc = base()
    doc["spec"]["rules"][0]["context"] = [{"name": "k", "variable": {"value": value}}]
    return doc


def annotation(value: str) -> dict[str, Any]:
    doc = base()
    doc["metadata"]["annotations"] = {"note": value}
    return doc


PRE = "spec.rules[0].preconditions.all[0].key"
REFUSED = [
    ("serviceAccountName precondition", precondition("{{serviceAccountName}}"), PRE),
    ("serviceAccountNamespace", precondition("{{ serviceAccountNamespace }}"), PRE),
    ("userInfo", precondition("{{request.userInfo.username}}"), PRE),
    ("roles", precondition("{{ request.roles }}"), PRE),
    ("clusterRoles in context", context_value("{{request.clusterRoles}}"), "spec.rules[0].context[0].variable.value"),
    ("embedded in text", context_value("sa-{{ serviceAccountName }}"), "spec.rules[0].context[0].variable.value"),
    ("annotations count too", annotation("{{request.userInfo}}"), "metadata.annotations.note"),
]


@pytest.mark.parametrize(("doc", "path"), [(d, p) for _, d, p in REFUSED], ids=[n for n, _, _ in REFUSED])
def test_request_only_variable_refused_in_background_mode(doc: dict[str, Any], path: str) -> None:
    problems = found(doc)
    assert any(p == path and m.startswith(PREFIX) and "is not allowed" in m for p, m in problems), problems
    # The twin: the same policy with background scans off loads.
    off = copy.deepcopy(doc)
    off["spec"]["background"] = False
    assert load(off).policies


ALLOWED = [
    ("object field of the same name", precondition("{{request.object.spec.serviceAccountName}}")),
    ("escaped", precondition("\\{{serviceAccountName}}")),
    ("request.operation", precondition("{{request.operation}}")),
    ("last-applied annotation ignored", annotation("x")),
]


@pytest.mark.parametrize("doc", [d for _, d in ALLOWED], ids=[n for n, _ in ALLOWED])
def test_other_variables_load_in_background_mode(doc: dict[str, Any]) -> None:
    if doc["metadata"].get("annotations") == {"note": "x"}:
        doc["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{{request.userInfo}}"}
    assert load(doc).policies


def test_mutate_existing_rule_skips_the_variable_scan_as_kyverno_does() -> None:
    doc = precondition("{{serviceAccountName}}")
    doc["spec"]["rules"].append(
        {"name": "m", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "mutate": {"targets": []}}
    )
    assert not any(m.startswith(PREFIX) for _, m in found(doc))

"""Autogen eligibility and operations, pinned to Kyverno: ``CanAutoGen`` (pkg/cel/autogen/support.go: exactly one
resource rule ``[""]/["v1"]/["pods"]``, no resourceNames, no excludeResourceRules, no non-empty objectSelector) and the
controller rules' operations taken from the FIRST resource rule only (pkg/cel/policies/ivpol/autogen/autogen.go
``autogenIvPols``). Regression: sigward accepted an operation from any rule and autogen'ed multi-rule policies."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import yaml

from sigward.policy.ivpol.autogen import autogen_configs
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.verify.ivpol import autogen_match
from tests.unit.verify.test_ivpol_exceptions import policy_doc

PODS = {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}


def policy(**constraints: Any) -> ImagePolicy:
    doc = policy_doc()
    doc["spec"]["matchConstraints"] = constraints
    (loaded,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    return loaded


def deployment(operation: str, *, group: str = "apps", sub: str = "") -> dict[str, Any]:
    req: dict[str, Any] = {
        "operation": operation,
        "resource": {"group": group, "version": "v1", "resource": "deployments"},
    }
    if sub:
        req["subResource"] = sub
    return req


@pytest.mark.parametrize(
    ("case", "constraints", "eligible"),
    [
        ("one pods rule", {"resourceRules": [{**PODS, "operations": ["CREATE"]}]}, True),
        ("empty objectSelector", {"resourceRules": [{**PODS, "operations": ["CREATE"]}], "objectSelector": {}}, True),
        # negative twins: Kyverno's CanAutoGen refuses each
        (
            "two pods rules",
            {"resourceRules": [{**PODS, "operations": ["CREATE"]}, {**PODS, "operations": ["UPDATE"]}]},
            False,
        ),
        ("apiVersions *", {"resourceRules": [{**PODS, "apiVersions": ["*"], "operations": ["CREATE"]}]}, False),
        ("apiGroups missing", {"resourceRules": [{**PODS, "apiGroups": [], "operations": ["CREATE"]}]}, False),
        (
            "pods and pods/status",
            {"resourceRules": [{**PODS, "resources": ["pods", "pods/status"], "operations": ["CREATE"]}]},
            False,
        ),
        ("resourceNames", {"resourceRules": [{**PODS, "resourceNames": ["p"], "operations": ["CREATE"]}]}, False),
        (
            "excludeResourceRules",
            {
                "resourceRules": [{**PODS, "operations": ["CREATE"]}],
                "excludeResourceRules": [{**PODS, "operations": ["UPDATE"]}],
            },
            False,
        ),
        (
            "objectSelector with labels",
            {"resourceRules": [{**PODS, "operations": ["CREATE"]}], "objectSelector": {"matchLabels": {"a": "b"}}},
            False,
        ),
    ],
)
def test_autogen_eligibility_is_kyvernos_can_autogen(case: str, constraints: dict[str, Any], eligible: bool) -> None:
    loaded = policy(**constraints)
    assert bool(loaded.pod_controllers) == eligible, case
    assert bool(autogen_configs(loaded)) == eligible, case
    assert autogen_match(loaded, deployment("CREATE")) == eligible, case


@pytest.mark.parametrize(
    ("operations", "request_op", "selected"),
    [
        (["CREATE"], "CREATE", True),
        (["CREATE"], "UPDATE", False),
        (["*"], "DELETE", True),
        (["UPDATE", "CREATE"], "UPDATE", True),
        (["UPDATE"], "CREATE", False),
    ],
)
def test_controller_operations_are_the_rules(operations: list[str], request_op: str, selected: bool) -> None:
    loaded = policy(resourceRules=[{**PODS, "operations": operations}])
    assert autogen_match(loaded, deployment(request_op)) == selected
    # twins: a wrong group or a subresource is never an autogen match
    assert not autogen_match(loaded, deployment(request_op, group="extensions"))
    assert not autogen_match(loaded, deployment(request_op, sub="scale"))


def test_regression_only_the_first_rules_operations_count() -> None:
    """``ResourceRules[0].Operations``: a second rule's operation never selects a controller (reached only if the
    eligibility ever widens: pinned on the function itself)."""
    first = policy(resourceRules=[{**PODS, "operations": ["CREATE"]}])
    mc = first.spec.match_constraints
    assert mc is not None
    second = mc.resource_rules[0].model_copy(update={"operations": ("UPDATE",)})
    mc = mc.model_copy(update={"resource_rules": (*mc.resource_rules, second)})
    spec = first.spec.model_copy(update={"match_constraints": mc})
    widened = replace(first, spec=spec)
    assert autogen_match(widened, deployment("CREATE"))
    assert not autogen_match(widened, deployment("UPDATE"))
    assert tuple(r.operations for r in autogen_configs(widened)[0].resource_rules) == (("CREATE",),)

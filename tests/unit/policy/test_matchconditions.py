"""Kubernetes matchConditions semantics (k8s.io/apiserver matchconditions/matcher.go, validation.go) in the one
module shared by celPreconditions, webhookConfiguration.matchConditions and IVPOL matchConditions: false wins over
errors, an error alone is an error (failurePolicy decides), names unique and qualified, bool-typed at load."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.policy.ivpol.matchconditions import (
    MAX_MATCH_CONDITIONS,
    compile_conditions,
    evaluate_conditions,
    request_data,
)

NAME_IS_X = {"name": "name-is-x", "expression": "object.metadata.name == 'x'"}
USER_U = {"name": "user-u", "expression": "request.userInfo.username.startsWith('u')"}
REQ = {"object": {"metadata": {"name": "x"}}, "userInfo": {"username": "u1"}}


@pytest.mark.parametrize(
    ("case", "conditions", "req", "matched", "failed", "error"),
    [
        ("all true", [NAME_IS_X, USER_U], REQ, True, "", ""),
        ("one false", [NAME_IS_X, USER_U], {**REQ, "object": {"metadata": {"name": "y"}}}, False, "name-is-x", ""),
        ("error alone is an error", [NAME_IS_X, USER_U], {"object": {"metadata": {"name": "x"}}}, False, "", "user-u"),
        (
            "false wins over an error",
            [USER_U, NAME_IS_X],
            {"object": {"metadata": {"name": "y"}}},
            False,
            "name-is-x",
            "",
        ),
        ("none: matches", [], REQ, True, "", ""),
        ("null oldObject readable", [{"name": "n", "expression": "oldObject == null"}], REQ, True, "", ""),
        # the API server: only false fails a condition (a dyn field giving a string or null is met)
        ("non-bool string is met", [{"name": "d", "expression": "object.metadata.name"}], REQ, True, "", ""),
        (
            "null is met",
            [{"name": "d", "expression": "object.metadata.uid"}],
            {"object": {"metadata": {"uid": None}}},
            True,
            "",
            "",
        ),
    ],
)
def test_evaluation(case: str, conditions: list[Any], req: Any, matched: bool, failed: str, error: str) -> None:
    compiled = compile_conditions(conditions, "c")
    assert compiled.problems == ()
    result = evaluate_conditions(compiled, request_data(req))
    assert (result.matched, result.failed) == (matched, failed)
    assert (error in result.error) if error else result.error == ""


@pytest.mark.parametrize(
    ("case", "conditions", "path", "message"),
    [
        ("not a bool", [{"name": "a", "expression": "1"}], "c[0].expression", "must evaluate to a bool"),
        ("syntax", [{"name": "a", "expression": "object.x +"}], "c[0].expression", "Syntax error"),
        ("undeclared", [{"name": "a", "expression": "params.x == 1"}], "c[0].expression", "params"),
        ("duplicate name", [NAME_IS_X, NAME_IS_X], "c[1].name", "duplicate name"),
        ("missing name", [{"expression": "true"}], "c[0].name", "a name is required"),
        ("bad name", [{"name": "no spaces", "expression": "true"}], "c[0].name", "not a valid qualified name"),
        ("missing expression", [{"name": "a"}], "c[0].expression", "an expression is required"),
        (
            "authorizer",
            [{"name": "a", "expression": "authorizer.group('').resource('pods').check('get').allowed()"}],
            "c[0].expression",
            "SubjectAccessReview",
        ),
        (
            "too many",
            [{"name": f"n{i}", "expression": "true"} for i in range(MAX_MATCH_CONDITIONS + 1)],
            "c",
            "at most 64",
        ),
    ],
)
def test_load_problems_name_the_path(case: str, conditions: list[Any], path: str, message: str) -> None:
    problems = compile_conditions(conditions, "c").problems
    assert any(p == path and message in m for p, m in problems), problems


def test_qualified_name_with_prefix_is_valid() -> None:
    assert compile_conditions([{"name": "example.com/exclude-leases", "expression": "true"}], "c").problems == ()


@pytest.mark.parametrize(
    ("case", "expression", "webhook", "refused"),
    [
        ("namespaceObject in celPreconditions", "namespaceObject.metadata.name == 'a'", False, ""),
        ("namespaceObject in a webhook", "namespaceObject.metadata.name == 'a'", True, "namespaceObject"),
        ("IVPOL variables", "variables.x == 1", False, "variables"),
        ("IVPOL resource library", "resource.Get('v1', 'pods', 'a', 'b') != null", True, "resource"),
        ("field named like a variable", "object.metadata.resource == 'x'", True, ""),
    ],
)
def test_only_kubernetes_variables(case: str, expression: str, webhook: bool, refused: str) -> None:
    from sigward.policy.ivpol.matchconditions import rule_preconditions, webhook_match_conditions
    from sigward.policy.models import Rule, WebhookConfiguration

    entries = [{"name": "n", "expression": expression}]
    if webhook:
        found = webhook_match_conditions(WebhookConfiguration.model_validate({"matchConditions": entries})).problems
    else:
        rule = Rule.model_validate({"name": "r", "match": {"any": []}, "celPreconditions": entries})
        found = rule_preconditions(rule).problems
    assert any(refused in m for _, m in found) if refused else found == ()


@pytest.mark.parametrize(
    ("value", "error"),
    [("x", "d: evaluated to a string, not a bool"), (None, "d: evaluated to null, not a bool"), (3, "an int")],
)
def test_exempting_list_refuses_non_bool_values(value: Any, error: str) -> None:
    """Deciding an exemption, a non-bool is an error (failurePolicy decides), never a met condition."""
    compiled = compile_conditions([{"name": "d", "expression": "object.v"}], "c")
    result = evaluate_conditions(compiled, request_data({"object": {"v": value}}), exempting=True)
    assert not result.matched and error in result.error
    assert evaluate_conditions(compiled, request_data({"object": {"v": False}}), exempting=True).failed == "d"
    assert evaluate_conditions(compiled, request_data({"object": {"v": True}}), exempting=True).matched

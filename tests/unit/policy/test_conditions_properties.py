"""Property tests: conditions over arbitrary JSON keys and values only ever answer, or fail with sigward's own
error; and the relations Kyverno's operators keep."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sigward.errors import VerificationFailure
from sigward.policy.conditions import evaluate_any_all, evaluate_deny, evaluate_operator
from sigward.policy.models import AnyAllConditions, Condition

NOW = datetime(2024, 5, 1, tzinfo=UTC)
OPERATORS = [
    "Equals",
    "NotEquals",
    "In",
    "AnyIn",
    "AllIn",
    "NotIn",
    "AnyNotIn",
    "AllNotIn",
    "GreaterThan",
    "GreaterThanOrEquals",
    "LessThan",
    "LessThanOrEquals",
    "DurationGreaterThan",
    "DurationGreaterThanOrEquals",
    "DurationLessThan",
    "DurationLessThanOrEquals",
]
# Strings each of Kyverno's interpretations reacts to.
INTERESTING = st.sampled_from(
    [
        "",
        "0",
        "1",
        "1.5",
        "-2",
        "1e3",
        "168h",
        "1h30m",
        "-1.5s",
        "1Gi",
        "500m",
        "12e6",
        "1.2.3",
        "1.0.0-rc.1",
        "a*",
        "?",
        "*",
        "1-10",
        "5!-7",
        '["a", "b"]',
        "[1]",
        "null",
        '"s"',
        "{{",
        "true",
        "NaN",
        "Inf",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=12)
    | INTERESTING
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=600, deadline=None)
@given(operator=st.sampled_from(OPERATORS), key=JSON, value=JSON)
def test_operators_answer_or_fail_with_sigward_errors(operator: str, key: Any, value: Any) -> None:
    try:
        result = evaluate_operator(operator, key, value)
    except VerificationFailure:
        return
    assert isinstance(result, bool)


@settings(max_examples=300, deadline=None)
@given(key=JSON.filter(lambda k: k is not None), value=JSON)
def test_not_equals_is_the_negation_of_equals(key: Any, value: Any) -> None:
    assert evaluate_operator("NotEquals", key, value) is not evaluate_operator("Equals", key, value)


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=6) | INTERESTING, values=st.lists(st.text(max_size=6) | INTERESTING, max_size=4))
def test_any_not_in_is_the_negation_of_any_in_for_a_scalar_key(key: str, values: list[str]) -> None:
    assert evaluate_operator("AnyNotIn", key, values) is not evaluate_operator("AnyIn", key, values)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.text(max_size=4), max_size=4), values=st.lists(st.text(max_size=4), max_size=4))
def test_all_not_in_holds_exactly_when_any_in_does_not(keys: list[str], values: list[str]) -> None:
    assert evaluate_operator("AllNotIn", keys, values) is not evaluate_operator("AnyIn", keys, values)


TEMPLATES = st.text(alphabet="{}\\ab.-'|@`()[]0123456789 ", max_size=30) | st.sampled_from(
    ["{{ a }}", "{{ a.b }}", "x{{ a }}y", "{{ length(a) }}", "{{ time_since('', a, '') }}", "{{ {{ a }} }}"]
)


@settings(max_examples=400, deadline=None)
@given(
    key=TEMPLATES | JSON,
    value=TEMPLATES | JSON,
    operator=st.sampled_from([*OPERATORS, "equals", "Bogus"]),
    message=TEMPLATES,
    context=st.dictionaries(st.sampled_from(["a", "b", "c"]), JSON, max_size=3),
    use_any=st.booleans(),
)
def test_evaluation_answers_or_fails_with_sigward_errors(
    key: Any, value: Any, operator: str, message: str, context: dict[str, Any], use_any: bool
) -> None:
    condition = Condition(key=key, operator=operator, value=value, message=message)
    block = AnyAllConditions(any=(condition,)) if use_any else AnyAllConditions(all=(condition,))
    try:
        outcome = evaluate_any_all([block], context, now=NOW)
    except VerificationFailure:
        pass
    else:
        assert isinstance(outcome.message, str)
    try:
        deny = evaluate_deny({"any": [{"key": key, "operator": operator, "value": value}]}, context, now=NOW)
    except VerificationFailure:
        pass
    else:
        assert deny.passed or deny.message

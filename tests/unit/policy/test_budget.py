"""Bounded condition work (issue 20 §1): JMESPath/conditions evaluation charges a cost budget and fails closed when an
attestation blows it; runtime patterns RE2 refuses are condition errors, never handed to Python's ``re``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from sigward.errors import VerificationFailure
from sigward.policy.budget import MAX_EVALUATION_COST, BudgetExceeded, EvaluationBudget, budget, charge
from sigward.policy.conditions import evaluate_any_all, evaluate_deny
from sigward.policy.jmes import search
from sigward.policy.models import AnyAllConditions, Condition

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def conditions(key: str, operator: str, value: Any) -> list[AnyAllConditions]:
    return [AnyAllConditions(all=(Condition(key=key, operator=operator, value=value),))]


def test_budget_counts_and_refuses_past_its_limit() -> None:
    b = EvaluationBudget(limit=10)
    b.charge(10)
    with pytest.raises(BudgetExceeded):
        b.charge(1)
    assert issubclass(BudgetExceeded, VerificationFailure)  # a decided failure: Ignore cannot admit it


def test_nested_budgets_share_the_outermost() -> None:
    with budget(limit=100) as outer:
        with budget(limit=10**9) as inner:
            assert inner is outer
            charge(60)
        with pytest.raises(BudgetExceeded):
            charge(60)
    charge(10**12)  # outside any evaluation: no-op


# Hostile predicate values: each is cheap to send and expensive (or impossible) to evaluate without a budget.
HOSTILE: list[tuple[str, str, dict[str, Any]]] = [
    # replace multiplies its input: 200k * 200k characters
    ("{{ replace_all(a, 'x', a) }}", "Equals", {"a": "x" * 200_000}),
    # regex_replace_all: every empty match expands the template
    ("{{ regex_replace_all('', a, a) }}", "Equals", {"a": "y" * 200_000}),
    # a projection that visits every node of a wide predicate (checked against a smaller budget below)
    ("{{ length(a[].b[].c) }}", "Equals", {"a": [{"b": [{"c": 1}] * 1000}] * 20}),
]


@pytest.mark.parametrize(("key", "operator", "data"), HOSTILE)
def test_hostile_attestation_fails_closed_within_a_bounded_time(key: str, operator: str, data: dict[str, Any]) -> None:
    # CPU time of this thread, not wall time: the bound is on the work done, whatever else loads the machine.
    started = time.thread_time()
    with budget(limit=1_000_000), pytest.raises(BudgetExceeded, match="cost budget"):
        evaluate_any_all(conditions(key, operator, "anything"), data, now=NOW, missing="error")
    assert time.thread_time() - started < 2.0


def test_amplifying_replacement_fails_closed_at_the_real_budget_before_building_its_output() -> None:
    started = time.thread_time()
    with pytest.raises(BudgetExceeded):
        evaluate_any_all(conditions("{{ replace_all(a, 'x', a) }}", "Equals", "z"), {"a": "x" * 50_000}, now=NOW)
    assert time.thread_time() - started < 1.0


def test_wide_predicate_is_refused_by_conversion_cost() -> None:
    with budget(limit=100_000), pytest.raises(BudgetExceeded):
        evaluate_any_all(conditions("{{ a }}", "Equals", "z"), {"a": [{"c": 1}] * 20_000}, now=NOW)


def test_hostile_deny_block_fails_closed() -> None:
    with pytest.raises(BudgetExceeded):
        evaluate_deny(
            {"any": [{"key": "{{ replace_all(a, 'x', a) }}", "operator": "Equals", "value": "z"}]},
            {"a": "x" * 200_000},
            now=NOW,
        )


def test_ordinary_conditions_stay_far_below_the_budget() -> None:
    data = {
        "builder": {"id": "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1"},
        "scanner": {"result": {"summary": {"criticalCount": 0}}},
    }
    with budget() as b:
        outcome = evaluate_any_all(
            [
                AnyAllConditions(
                    all=(
                        Condition(
                            key="{{ regex_match('^https://github\\.com/org/', builder.id) }}",
                            operator="Equals",
                            value=True,
                        ),
                        Condition(key="{{ scanner.result.summary.criticalCount }}", operator="Equals", value=0),
                        Condition(key="{{ builder.id }}", operator="Equals", value="https://github.com/org/*"),
                    )
                )
            ],
            data,
            now=NOW,
        )
    assert outcome.passed
    assert b.used < MAX_EVALUATION_COST // 1000


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"(?=a)", r"(?<=a)b", r"a++", r"(?>a)", r"\C"],
)
def test_runtime_pattern_re2_refuses_is_a_condition_error(pattern: str) -> None:
    with pytest.raises(VerificationFailure, match="not a valid RE2"):
        evaluate_any_all(conditions("{{ regex_match(p, v) }}", "Equals", True), {"p": pattern, "v": "aa"}, now=NOW)


def test_pathological_value_against_nested_quantifier_is_linear() -> None:
    started = time.perf_counter()
    assert search("regex_match('^(a+)+$', v)", {"v": "a" * 100_000 + "!"}) is False
    assert search("regex_match('^(a|aa)+$', v)", {"v": "a" * 100_000}) is True
    assert time.perf_counter() - started < 0.5


def test_regex_replace_all_keeps_go_semantics() -> None:
    assert search("regex_replace_all('a*', 'baaac', '-')", {}) == "-b-c-"
    assert search("regex_replace_all('(?P<k>\\w+)=(\\w+)', 'a=1 b=2', '$2:${k}')", {}) == "1:a 2:b"
    assert search("regex_replace_all_literal('a', 'banana', '$1')", {}) == "b$1n$1n$1"

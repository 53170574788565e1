"""``spec.applyRules: One``: a policy's rules run in order and stop after the first rule that *applied*.

Kyverno's engine (pkg/engine, image verification and validation alike) walks a policy's rules in order, adds each
rule's responses to the policy response and, with ``applyRules: One``, stops as soon as the policy response counts an
applied rule. A rule response counts as applied when its status is ``pass`` or ``fail``; ``skip`` (not matched,
preconditions not met, every image skipped by ``skipImageReferences``, exempted by a PolicyException) and ``error``
do not, so the next rule runs after them. The count is per policy and per resource: once a rule applied to any image
of the resource, later rules run for none. A first rule that applies and fails therefore denies on its own and the
rules after it are never evaluated.

This module is the one place that rule lives: :func:`staged` runs any kind of unit (a CLI plan, an admission unit,
a push plan) in the waves the rule allows, and :func:`decidable_prefix` cuts a policy's rules where the outcome of
an earlier rule cannot be known without an admission request (push time).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, TypeVar

from sigward.verify.results import Verdict

if TYPE_CHECKING:
    from sigward.policy.models import Policy

_U = TypeVar("_U")
_R = TypeVar("_R")

#: The rule-response statuses Kyverno counts as an applied rule (``RulesAppliedCount``).
APPLIED = frozenset({Verdict.PASS, Verdict.FAIL})


def applies_one(policy: Policy) -> bool:
    """Whether the policy stops after its first applied rule."""
    return policy.spec.apply_rules == "One"


def staged(
    units: Sequence[_U],
    *,
    policy_of: Callable[[_U], Policy],
    rule_of: Callable[[_U], str],
    run: Callable[[Sequence[_U]], Sequence[_R]],
    verdict_of: Callable[[_U, _R], Verdict],
) -> list[tuple[_U, _R]]:
    """Run ``units`` (given in policy-rule order) and return (unit, result) for every unit that ran, in the given
    order. Units of ``applyRules: All`` policies and the first rule of each ``One`` policy run in the first wave
    (``run`` gets one call per wave, so it may run a wave concurrently); a ``One`` policy's next rule runs in the
    next wave only when no result of its current rule is applied (:data:`APPLIED`)."""
    # One policy → its rules' unit indexes, in order of first appearance.
    groups: dict[int, list[list[int]]] = {}
    names: dict[int, dict[Hashable, int]] = {}
    first_wave: list[int] = []
    for index, unit in enumerate(units):
        policy = policy_of(unit)
        if not applies_one(policy):
            first_wave.append(index)
            continue
        seen = names.setdefault(id(policy), {})
        rule = rule_of(unit)
        if rule not in seen:
            seen[rule] = len(groups.setdefault(id(policy), []))
            groups[id(policy)].append([])
        groups[id(policy)][seen[rule]].append(index)
    position = dict.fromkeys(groups, 0)
    wave = first_wave + [i for ordered in groups.values() for i in ordered[0]]
    results: dict[int, _R] = {}
    while wave:
        wave.sort()
        for index, result in zip(wave, run([units[i] for i in wave]), strict=True):
            results[index] = result
        wave = []
        for key, rules in groups.items():
            at = position[key]
            if at >= len(rules):
                continue
            if any(verdict_of(units[i], results[i]) in APPLIED for i in rules[at]):
                position[key] = len(rules)  # this rule applied: the policy is done
                continue
            position[key] = at + 1
            if at + 1 < len(rules):
                wave.extend(rules[at + 1])
    return [(units[i], results[i]) for i in sorted(results)]


def decidable_prefix(
    plans: Sequence[_U], *, policy_of: Callable[[_U], Policy], decidable: Callable[[_U], bool]
) -> tuple[list[_U], list[_U]]:
    """(plans that may be verified without an admission request, plans left to admission) for plans in
    policy-rule order. In a ``One`` policy a rule runs only when no earlier rule applied; once an earlier rule's
    outcome depends on the admission request (``decidable`` is false for it), whether a later rule runs does too,
    so the later rules are left to admission as well."""
    ready: list[_U] = []
    later: list[_U] = []
    cut: set[int] = set()
    for plan in plans:
        policy = policy_of(plan)
        if id(policy) in cut:
            later.append(plan)
        elif decidable(plan):
            ready.append(plan)
        else:
            later.append(plan)
            if applies_one(policy):
                cut.add(id(policy))
    return ready, later

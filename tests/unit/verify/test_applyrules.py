"""``applyRules: One`` (sigward.verify.applyrules) against Kyverno's engine loop: rules run in order and the policy
stops after the first rule whose response is pass or fail; skip and error do not count, ``All`` runs everything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.verify.applyrules import decidable_prefix, staged
from sigward.verify.results import Verdict
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

PEM = new_key("p256").public_pem


def policy(apply_rules: str, rules: int = 3, name: str = "p") -> Policy:
    doc = cluster_policy(name, [key_verification(["example.com/*"], [keys_entry(PEM)])])
    base = doc["spec"]["rules"][0]
    doc["spec"]["rules"] = [{**base, "name": f"r{i}"} for i in range(rules)]
    doc["spec"]["applyRules"] = apply_rules
    loaded = load_policy_text(dump(doc), "p.yaml").policies
    assert loaded[0].spec.apply_rules == apply_rules
    return loaded[0]


@dataclass(frozen=True)
class Unit:
    policy: Policy
    rule: str
    image: str


def run_all(units: Sequence[Unit], outcomes: dict[tuple[str, str], Verdict]) -> tuple[list[str], list[list[str]]]:
    """(rule/image pairs that ran, the waves)."""
    waves: list[list[str]] = []

    def run(wave: Sequence[Unit]) -> list[Verdict]:
        waves.append([f"{u.policy.name}/{u.rule}/{u.image}" for u in wave])
        return [outcomes.get((u.rule, u.image), Verdict.PASS) for u in wave]

    ran = staged(units, policy_of=lambda u: u.policy, rule_of=lambda u: u.rule, run=run, verdict_of=lambda _, v: v)
    return [f"{u.policy.name}/{u.rule}/{u.image}" for u, _ in ran], waves


P, F, S, E = Verdict.PASS, Verdict.FAIL, Verdict.SKIP, Verdict.ERROR

# (case, applyRules, outcomes per (rule, image), rules that run)
CASES: list[tuple[str, str, dict[tuple[str, str], Verdict], list[str]]] = [
    ("first passes: the rest never run", "One", {}, ["r0"]),
    ("first applies and fails: deny on it alone", "One", {("r0", "a"): F}, ["r0"]),
    ("first skipped (preconditions): second applies", "One", {("r0", "a"): S}, ["r0", "r1"]),
    ("error is not applied: next rule runs", "One", {("r0", "a"): E, ("r1", "a"): F}, ["r0", "r1"]),
    ("every rule skipped: every rule ran", "One", {("r0", "a"): S, ("r1", "a"): S, ("r2", "a"): S}, ["r0", "r1", "r2"]),
    ("All: every rule runs whatever the outcome", "All", {("r0", "a"): F}, ["r0", "r1", "r2"]),
    ("All: passes do not stop it", "All", {}, ["r0", "r1", "r2"]),
]


@pytest.mark.parametrize(("apply_rules", "outcomes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules_that_run(apply_rules: str, outcomes: dict[tuple[str, str], Verdict], expected: list[str]) -> None:
    pol = policy(apply_rules)
    units = [Unit(pol, f"r{i}", "a") for i in range(3)]
    ran, _ = run_all(units, outcomes)
    assert ran == [f"p/{r}/a" for r in expected]


def test_applied_counts_per_policy_across_images() -> None:
    """Kyverno's count is per resource: r0 applied to image b, so r1 runs for neither a nor b."""
    pol = policy("One")
    units = [Unit(pol, "r0", "a"), Unit(pol, "r0", "b"), Unit(pol, "r1", "a"), Unit(pol, "r1", "b")]
    ran, _ = run_all(units, {("r0", "a"): S, ("r0", "b"): P})
    assert ran == ["p/r0/a", "p/r0/b"]


def test_all_policies_and_first_rules_share_the_first_wave() -> None:
    one, every = policy("One", name="one"), policy("All", rules=2, name="all")
    units = [Unit(one, "r0", "a"), Unit(one, "r1", "a"), Unit(every, "r0", "a"), Unit(every, "r1", "a")]
    ran, waves = run_all(units, {("r0", "a"): S})
    assert waves == [["one/r0/a", "all/r0/a", "all/r1/a"], ["one/r1/a"]]
    assert ran == ["one/r0/a", "one/r1/a", "all/r0/a", "all/r1/a"]  # the given order


# (case, applyRules, which rules are decidable without a request, (ready, later))
PREFIX: list[tuple[str, str, set[str], tuple[list[str], list[str]]]] = [
    ("One: a rule decided at admission takes the later ones with it", "One", {"r0", "r2"}, (["r0"], ["r1", "r2"])),
    ("One: all decidable", "One", {"r0", "r1", "r2"}, (["r0", "r1", "r2"], [])),
    ("One: first undecidable", "One", {"r1", "r2"}, ([], ["r0", "r1", "r2"])),
    ("All: only the undecidable rule waits", "All", {"r0", "r2"}, (["r0", "r2"], ["r1"])),
]


@pytest.mark.parametrize(("apply_rules", "decidable", "expected"), [c[1:] for c in PREFIX], ids=[c[0] for c in PREFIX])
def test_decidable_prefix(apply_rules: str, decidable: set[str], expected: tuple[list[str], list[str]]) -> None:
    pol = policy(apply_rules)
    units = [Unit(pol, f"r{i}", "a") for i in range(3)]
    ready, later = decidable_prefix(units, policy_of=lambda u: u.policy, decidable=lambda u: u.rule in decidable)
    assert ([u.rule for u in ready], [u.rule for u in later]) == expected


def test_policy_loads_with_apply_rules_one() -> None:
    """Formerly refused (capabilities.apply_rules_one): now loaded."""
    doc: dict[str, Any] = cluster_policy("one", [key_verification(["example.com/*"], [keys_entry(PEM)])])
    doc["spec"]["applyRules"] = "One"
    assert load_policy_text(dump(doc), "one.yaml").policies[0].spec.apply_rules == "One"

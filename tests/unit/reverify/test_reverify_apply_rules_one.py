"""Re-verification of an ``applyRules: One`` policy: a stored verdict of a later rule exists only because its
earlier rules did not apply to the image then; it is re-checked only when that is still so now (the earlier rules
are verified again, in order, with sigward.verify.applyrules), else it is left alone with no finding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sigward.policy.models import Policy
from sigward.store import VerdictStore
from sigward.store.memory import MemoryStore
from tests.support.memory import MemorySignatureSource
from tests.support.policies import key_verification, keys_entry
from tests.unit.reverify.test_reverify_service import (
    DIGEST,
    HOST,
    IMAGE,
    KEY,
    OTHER_KEY,
    Clock,
    CountingStore,
    Recorder,
    World,
    load,
    sign,
)

ELSEWHERE = "elsewhere.test"


def rule(name: str, refs: str, pem: str, **iv: Any) -> dict[str, Any]:
    verification = key_verification([f"{refs}/*"], [keys_entry(pem)], mutate_digest=False)
    verification.update(iv)
    return {"name": name, "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "verifyImages": [verification]}


def policy(*rules: dict[str, Any], apply_rules: str = "One") -> list[Policy]:
    spec = {"validationFailureAction": "Enforce", "applyRules": apply_rules, "rules": list(rules)}
    return load({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "one"}, "spec": spec})


# At push time rule "a" does not concern the image (other registry), so "b" ran and recorded a pass.
AT_PUSH = (rule("a", ELSEWHERE, KEY.public_pem), rule("b", HOST, KEY.public_pem))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store: VerdictStore = MemoryStore()
    source = MemorySignatureSource()
    source.add_image(f"{IMAGE}:v1", DIGEST)
    sign(source)
    w = World(CountingStore(store), source, Clock(), Recorder(), policy(*AT_PUSH))
    assert w.push() == "recorded" and w.verdicts() == ["pass"]
    yield w
    store.close()


B_NOW = rule("b", HOST, OTHER_KEY.public_pem)

# (case, current rules, applyRules, flips of rule b). "b" now requires OTHER_KEY, which did not sign the image.
CASES: list[tuple[str, tuple[dict[str, Any], ...], str, int]] = [
    # "a" now concerns the image and passes: a One policy stops there, "b" would not run: no finding
    ("earlier rule now passes", (rule("a", HOST, KEY.public_pem), B_NOW), "One", 0),
    # "a" now applies and fails: it applied (fail counts), so "b" would not run either (admission denies on "a")
    ("earlier rule now fails", (rule("a", HOST, OTHER_KEY.public_pem), B_NOW), "One", 0),
    # twins where "b" does run now, so its failure is found
    ("earlier rule still elsewhere", (rule("a", ELSEWHERE, KEY.public_pem), B_NOW), "One", 1),
    (
        "earlier rule skips the image",
        (
            rule("a", HOST, KEY.public_pem, skipImageReferences=[f"{HOST}/*"]),
            B_NOW,
        ),
        "One",
        1,
    ),
    ("applyRules All", (rule("a", HOST, KEY.public_pem), B_NOW), "All", 1),
]


@pytest.mark.parametrize(("rules", "apply_rules", "flips"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_later_rule_of_a_one_policy_is_reported_only_when_it_would_run_now(
    world: World, rules: tuple[dict[str, Any], ...], apply_rules: str, flips: int
) -> None:
    world.policies = policy(*rules, apply_rules=apply_rules)
    report = world.reverify().run()
    assert [(f.policy, f.rule, f.after) for f in report.flips] == [("one", "b", "fail")] * flips
    assert len(world.recorder.findings) == flips


def test_the_rule_that_still_runs_and_passes_is_left_passing(world: World) -> None:
    """Nothing changed for "b": "a" still elsewhere, "b" verified again and still passes."""
    world.policies = policy(*AT_PUSH)
    report = world.reverify().run()
    assert report.verified >= 1 and report.flips == () and world.recorder.findings == []

"""Regression (stale-root race): the verdict key (its trust fingerprint) and the verification each read GitHub's
trusted root from its holder, so a refresh between the two stored a verdict made under the new root under the old
root's key. One :class:`RootSnapshot` per evaluation now feeds both. The holder double below returns a different
root on every call, as a background TUF refresh could between any two reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest

from sigward.admission.review import parse_review
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.references import parse_image_reference
from sigward.verify.bundles import BundleLayer
from sigward.verify.engine import Verifier
from sigward.verify.plan import plan_rule
from sigward.verify.results import Verdict
from sigward.verify.rootsnapshot import RootSnapshot
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.support.admission import pod, pod_request, review
from tests.support.github_attestations import GH_1, bundle_doc, bundle_entry, root_path
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump

HOST = "registry.example"
IMAGE = f"{HOST}/app@{GH_1.digest}"
PUBLIC_GOOD = parse_trusted_root(root_path("public-good.json").read_bytes(), source="public-good")
GITHUB = parse_trusted_root(root_path("github.json").read_bytes(), source="github")
# What GitHub's holder held before the refresh: a root that does not trust GH_1's CA (public-good's material under
# another fingerprint), so a verdict really decided under it is a failure.
GITHUB_BEFORE = replace(PUBLIC_GOOD, raw=PUBLIC_GOOD.raw + b"\n", source="github (before refresh)")


@dataclass
class RefreshingHolder:
    """GitHub's root holder: the first read sees the old root, every later read the refreshed one."""

    calls: int = 0

    def __call__(self) -> TrustedRoot:
        self.calls += 1
        return GITHUB_BEFORE if self.calls == 1 else GITHUB


@dataclass
class FlippingHolder:
    """A holder whose root changes on every read (``first`` at odd reads, the other one at even reads)."""

    first: TrustedRoot
    calls: int = 0

    def __call__(self) -> TrustedRoot:
        self.calls += 1
        other = GITHUB if self.first is GITHUB_BEFORE else GITHUB_BEFORE
        return self.first if self.calls % 2 else other


def policy() -> Policy:
    doc = cluster_policy("gh", [bundle_entry(f"{HOST}/*")])
    doc["metadata"]["annotations"] = {"sigward.dev/trusted-roots": "public-good,github"}
    (loaded,) = load_policy_text(dump(doc), "p.yaml").policies
    return loaded


def verifier(holder: RefreshingHolder | FlippingHolder) -> Verifier:
    source = MemorySignatureSource()
    source.add_bundles(f"{HOST}/app", GH_1.digest, (BundleLayer(raw=json.dumps(bundle_doc(GH_1)).encode()),))
    return Verifier(source=source, trusted_root=lambda: PUBLIC_GOOD, github_root=holder)


def key_fingerprint(github: TrustedRoot) -> str:
    return f"{PUBLIC_GOOD.fingerprint},{github.fingerprint}"


@pytest.mark.parametrize(
    ("first", "verified_under", "allowed"),
    [
        # admission reads: 1 = in-memory look-up (its own snapshot), 2 = the verification's snapshot (key + checks);
        # before the fix the checks read a 3rd time and got the other root.
        (GITHUB_BEFORE, GITHUB, True),  # was: a FAIL (old root) stored under the refreshed root's key
        (GITHUB, GITHUB_BEFORE, False),  # was: a PASS (new root) stored under the key of a root that refuses it
    ],
    ids=["refreshed-root-verifies", "old-root-refuses"],
)
def test_stale_root_race_admission_stores_the_verdict_under_the_roots_it_was_made_with(
    first: TrustedRoot, verified_under: TrustedRoot, allowed: bool
) -> None:
    holder = FlippingHolder(first)
    loaded = policy()
    service = AdmissionService(
        policies=lambda: [loaded], verifier=verifier(holder), settings=AdmissionSettings(deadline_seconds=10)
    )
    try:
        decision = service.decide(parse_review(review(pod_request(pod(IMAGE)))), mode="mutate")
    finally:
        service.close()
    plan = plan_rule(loaded, loaded.spec.rules[0], parse_image_reference(IMAGE))
    assert plan is not None
    assert decision.allowed is allowed, decision
    assert holder.calls == 2  # one read for the memory look-up, one for the key and every check
    stored = service.cache.get(plan.key(GH_1.digest, trust_fingerprint=key_fingerprint(verified_under)))
    assert stored is not None and (stored.verdict is Verdict.PASS) is allowed
    other = GITHUB if verified_under is GITHUB_BEFORE else GITHUB_BEFORE
    assert service.cache.get(plan.key(GH_1.digest, trust_fingerprint=key_fingerprint(other))) is None


def test_stale_root_race_next_snapshot_sees_the_refreshed_root() -> None:
    """The twin: the double really refreshes, and a new evaluation verifies (and keys) under the new root."""
    holder = RefreshingHolder()
    v, loaded = verifier(holder), policy()
    plan = plan_rule(loaded, loaded.spec.rules[0], parse_image_reference(IMAGE))
    assert plan is not None
    for expected_github, expected in ((GITHUB_BEFORE, Verdict.FAIL), (GITHUB, Verdict.PASS)):
        roots = v.roots()
        assert v.trust_fingerprint(loaded, roots) == key_fingerprint(expected_github)
        verdict = v.evaluate(plan, deadline=Deadline.after(10), digest=GH_1.digest, trusted_root=roots)
        assert verdict.verdict is expected, verdict.message
        assert v.trust_fingerprint(loaded, roots) == key_fingerprint(expected_github)  # still the same reading
    assert holder.calls == 2  # one read per snapshot


def test_snapshot_keeps_a_failed_read() -> None:
    """A GitHub root that could not be read for the key is not read again for the checks (which would let a
    refresh in between verify under a root the key does not name)."""
    calls: list[int] = []

    def flaky() -> TrustedRoot:
        calls.append(1)
        if len(calls) == 1:
            raise ExternalServiceError("no trusted root yet from TUF repository https://tuf-repo.github.com")
        return GITHUB

    v = Verifier(source=MemorySignatureSource(), trusted_root=lambda: PUBLIC_GOOD, github_root=flaky)
    roots, loaded = v.roots(), policy()
    assert v.trust_fingerprint(loaded, roots) == f"{PUBLIC_GOOD.fingerprint},unavailable"
    with pytest.raises(ExternalServiceError, match=r"tuf-repo\.github\.com"):
        roots.for_policy(loaded)
    assert len(calls) == 1
    assert RootSnapshot(PUBLIC_GOOD, flaky).for_policy(loaded) == (PUBLIC_GOOD, GITHUB)  # a new snapshot reads anew

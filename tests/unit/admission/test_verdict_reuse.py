"""A reused verdict answers only the question it answered (issue 12 §2, issue 13): rules whose conditions read the
tag or the admission request are not reused across tags or requests, push-time verdicts are recorded under the key
admission looks up (also for rules with skipped entries), and tag-independent rules keep reusing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from sigward.admission.review import AdmissionRequest, parse_review
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.events import PushEvent
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.push.service import PushService, PushSettings
from sigward.references import parse_image_reference
from sigward.store.memory import MemoryStore
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.plan import plan_rule
from tests.support.admission import pod, pod_request, review
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import SignedLayer, attestation_layer, in_toto_statement, new_key, signed_layer

HOST = "registry.test"
REPO = f"{HOST}/team/app"
DIGEST = "sha256:" + "7" * 64
KEY = new_key("p256", slot=41)
PREDICATE_TYPE = "https://example.com/checked/v1"
A = f"{REPO}:v1"
B = f"{REPO}:v2"


def _layer(s: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))


def make_source() -> MemorySignatureSource:
    source = MemorySignatureSource()
    for ref in (A, B):
        source.add_image(ref, DIGEST)
    source.add_signatures(REPO, DIGEST, (_layer(signed_layer(KEY, image_digest=DIGEST)),))
    statement = in_toto_statement(DIGEST, PREDICATE_TYPE, {"checked": True})
    source.add_attestations(REPO, DIGEST, (_layer(attestation_layer(KEY, statement)),))
    return source


def entry(**extra: Any) -> dict[str, Any]:
    iv = key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)], mutate_digest=False)
    iv.update(extra)
    return iv


def deny_unless(key: str, value: str) -> dict[str, Any]:
    """validate.deny: the image is denied unless ``key`` equals ``value``."""
    return {
        "validate": {
            "message": "wrong input",
            "deny": {"conditions": {"any": [{"key": key, "operator": "NotEquals", "value": value}]}},
        }
    }


def deny_if(key: str, value: str) -> dict[str, Any]:
    """validate.deny: the image is denied when ``key`` equals ``value``."""
    return {"validate": {"deny": {"conditions": {"any": [{"key": key, "operator": "Equals", "value": value}]}}}}


def attestation_requires(key: str, value: str) -> dict[str, Any]:
    """An attestation whose condition holds only when ``key`` equals ``value``."""
    return {
        "attestations": [
            {
                "type": PREDICATE_TYPE,
                "attestors": [{"entries": [keys_entry(KEY.public_pem)]}],
                "conditions": [{"all": [{"key": key, "operator": "Equals", "value": value}]}],
            }
        ]
    }


def load(*verify_images: Mapping[str, Any]) -> list[Policy]:
    return list(load_policy_text(dump(cluster_policy("p", verify_images)), "p.yaml").policies)


def admission(
    source: MemorySignatureSource, current: Sequence[Policy], store: MemoryStore | None = None
) -> AdmissionService:
    return AdmissionService(
        policies=lambda: current,
        verifier=Verifier(source=source),
        settings=AdmissionSettings(deadline_seconds=5),
        store=store,
    )


def request(image: str, labels: Mapping[str, str] | None = None) -> AdmissionRequest:
    return parse_review(review(pod_request(pod(image, labels=labels))))


@dataclass(frozen=True)
class Row:
    name: str
    verify_image: dict[str, Any]
    first: AdmissionRequest  # the condition holds for this one
    second: AdmissionRequest  # same digest; the condition fails for this one


ROWS = [
    Row("deny-reads-image.tag", entry(**deny_unless("{{ image.tag }}", "v1")), request(A), request(B)),
    Row(
        "deny-reads-referenceWithTag",
        entry(**deny_unless("{{ image.referenceWithTag }}", A)),
        request(A),
        request(B),
    ),
    Row(
        "deny-reads-pinned-tag",
        entry(**deny_unless("{{ image.tag }}", "v1")),
        request(f"{A}@{DIGEST}"),
        request(f"{B}@{DIGEST}"),
    ),
    Row("attestation-reads-image.tag", entry(**attestation_requires("{{ image.tag }}", "v1")), request(A), request(B)),
    Row(
        "deny-reads-request.object.metadata",
        entry(**deny_unless("{{ request.object.metadata.labels.team }}", "a")),
        request(A, {"team": "a"}),
        request(A, {"team": "b"}),
    ),
    Row(
        "attestation-reads-request.object.metadata",
        entry(**attestation_requires("{{ request.object.metadata.labels.team }}", "a")),
        request(A, {"team": "a"}),
        request(A, {"team": "b"}),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_cached_verdict_is_not_reused_for_another_tag_or_request(row: Row) -> None:
    svc = admission(make_source(), load(row.verify_image))
    try:
        first = svc.decide(row.first, mode="mutate")
        second = svc.decide(row.second, mode="mutate")
        again = svc.decide(row.first, mode="mutate")
    finally:
        svc.close()
    assert first.allowed, first.message
    assert not second.allowed, "a verdict reached for another tag/request was reused"
    assert not second.checks[0].cached
    assert again.allowed  # the failure for the second does not stand in for the first either


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_stored_verdict_is_not_reused_for_another_tag_or_request(row: Row) -> None:
    store = MemoryStore()
    current = load(row.verify_image)
    recorder = admission(make_source(), current, store)
    try:
        assert recorder.decide(row.first, mode="mutate").allowed
    finally:
        recorder.close()
    fresh = admission(make_source(), current, store)  # another instance: empty cache, same store
    try:
        second = fresh.decide(row.second, mode="mutate")
    finally:
        fresh.close()
    assert not second.allowed, "a stored verdict reached for another tag/request was reused"


def test_request_dependent_rule_is_never_cached_or_stored() -> None:
    store = MemoryStore()
    source = make_source()
    svc = admission(source, load(entry(**deny_unless("{{ request.object.metadata.labels.team }}", "a"))), store)
    try:
        for _ in range(2):
            decision = svc.decide(request(A, {"team": "a"}), mode="mutate")
            assert decision.allowed and not decision.checks[0].cached
    finally:
        svc.close()
    assert len(svc.cache) == 0
    assert store.for_digest(DIGEST) == []


def test_tag_independent_rule_still_reuses_across_tags() -> None:
    source = make_source()
    svc = admission(source, load(entry(**deny_unless("{{ image.digest }}", DIGEST))))
    try:
        assert svc.decide(request(f"{A}@{DIGEST}"), mode="mutate").allowed
        before = source.requests
        second = svc.decide(request(f"{B}@{DIGEST}"), mode="mutate")
    finally:
        svc.close()
    assert second.allowed and second.checks[0].cached
    assert source.requests == before


# --- push-time verdicts and admission


def push_event(tag: str) -> PushEvent:
    return PushEvent(
        source="distribution",
        event_id=f"e-{tag or 'digest'}",
        action="push",
        registry=HOST,
        repository="team/app",
        digest=DIGEST,
        tag=tag,
        media_type="application/vnd.oci.image.manifest.v1+json",
    )


def push(source: MemorySignatureSource, current: Sequence[Policy], store: MemoryStore, tag: str) -> str:
    svc = PushService(policies=lambda: current, verifier=Verifier(source=source), store=store, settings=PushSettings())
    return svc.handle(push_event(tag)).status


@pytest.mark.parametrize("tag", ["", "v1"], ids=["event-without-tag", "event-with-other-tag"])
def test_push_verdict_does_not_stand_in_for_a_tag_dependent_decision(tag: str) -> None:
    store = MemoryStore()
    current = load(entry(**deny_if("{{ image.tag }}", "v2")))  # passes for every form the event names
    assert push(make_source(), current, store, tag) == "recorded"
    assert {v.verdict for v in store.for_digest(DIGEST)} == {"pass"}
    assert len(store.for_digest(DIGEST)) == (2 if tag else 1)  # tag and digest forms read different tags
    source = make_source()
    svc = admission(source, current, store)
    try:
        decision = svc.decide(request(f"{B}@{DIGEST}"), mode="mutate")
    finally:
        svc.close()
    assert not decision.allowed
    assert source.requests > 0  # verified again, not taken from the store


def test_push_verdict_is_reused_by_admission_for_tag_independent_rules_without_registry_requests() -> None:
    store = MemoryStore()
    current = load(entry())
    assert push(make_source(), current, store, "") == "recorded"
    source = make_source()
    svc = admission(source, current, store)
    try:
        decision = svc.decide(request(f"{B}@{DIGEST}"), mode="mutate")
    finally:
        svc.close()
    assert decision.allowed and decision.checks[0].cached
    assert source.requests == 0


def test_push_skips_rules_reading_the_admission_request() -> None:
    store = MemoryStore()
    current = load(entry(**deny_unless("{{ request.object.metadata.labels.team }}", "a")))
    assert push(make_source(), current, store, "v1") == "ignored"
    assert store.for_digest(DIGEST) == []


def skipping_policy() -> list[Policy]:
    """Entry 0 applies; entry 1 matches the image too but skips its repository."""
    skipped = entry(skipImageReferences=[f"{REPO}*"])
    return load(entry(), skipped)


def test_regression_push_verdict_with_skipped_entries_is_found_by_admission() -> None:
    """Issue 13: push recorded entries "0" (skipped ones left out), admission looked up "0,1": never reused."""
    store = MemoryStore()
    current = skipping_policy()
    assert push(make_source(), current, store, "") == "recorded"
    source = make_source()
    svc = admission(source, current, store)
    try:
        decision = svc.decide(request(f"{A}@{DIGEST}"), mode="mutate")
        cache_keys = list(svc.cache._data)  # the cache's own keys are what is compared
    finally:
        svc.close()
    assert decision.allowed and decision.checks[0].cached
    assert source.requests == 0
    (stored,) = store.for_digest(DIGEST)
    assert [k.stored for k in cache_keys] == [stored.key]


@pytest.mark.parametrize("form", [A, f"{A}@{DIGEST}", f"{REPO}@{DIGEST}"])
def test_cache_store_and_lookup_keys_agree_for_rules_with_skipped_entries(form: str) -> None:
    (policy,) = skipping_policy()
    rule = policy.spec.rules[0]
    plan = plan_rule(policy, rule, parse_image_reference(form))
    assert plan is not None
    assert plan.matched == (0, 1) and plan.applied == (0,)
    digest_plan = plan_rule(policy, rule, parse_image_reference(f"{REPO}@{DIGEST}"))
    assert digest_plan is not None
    assert plan.key(DIGEST) == digest_plan.key(DIGEST)
    assert plan.key(DIGEST, trust_fingerprint="root-2") != plan.key(DIGEST)

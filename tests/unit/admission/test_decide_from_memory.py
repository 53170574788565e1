"""``decide_from_memory`` (issue 13: serve throughput): a decision whose verdicts are all in the process's cache is
answered without the registry, the store or a thread, and equals what ``decide`` answers; anything else is None
(then ``decide`` runs) — never a guess, never an allow made up from a partial cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from sigward.admission.http import answer_from_memory, handle_admission
from sigward.admission.review import AdmissionRequest, parse_review
from sigward.admission.service import AdmissionService, AdmissionSettings, Decision
from sigward.cache import TTLCache
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.store.memory import MemoryStore
from sigward.verify.caching import CachingSignatureSource
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from tests.support.admission import pod, pod_request, review
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import SignedLayer, new_key, signed_layer

HOST = "registry.test"
SIGNED = f"{HOST}/team/app"
UNSIGNED = f"{HOST}/team/unsigned"
DIGEST = "sha256:" + "5" * 64
OTHER = "sha256:" + "6" * 64
KEY = new_key("p256", slot=43)


def _layer(s: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))


def make_source() -> MemorySignatureSource:
    source = MemorySignatureSource()
    source.add_image(f"{SIGNED}:v1", DIGEST)
    source.add_image(f"{UNSIGNED}:v1", OTHER)
    source.add_signatures(SIGNED, DIGEST, (_layer(signed_layer(KEY, image_digest=DIGEST)),))
    return source


def load(**extra: Any) -> list[Policy]:
    iv = key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)])
    iv.update(extra)
    return list(load_policy_text(dump(cluster_policy("p", [iv])), "p.yaml").policies)


@dataclass
class Stack:
    source: MemorySignatureSource
    service: AdmissionService


def stack(policies: Sequence[Policy] | None = None, *, caching: bool = True, store: MemoryStore | None = None) -> Stack:
    source = make_source()
    current = list(policies) if policies is not None else load()
    verifier = Verifier(source=CachingSignatureSource(source) if caching else source)
    svc = AdmissionService(
        policies=lambda: current, verifier=verifier, settings=AdmissionSettings(deadline_seconds=5), store=store
    )
    return Stack(source, svc)


def request(*images: str, labels: dict[str, str] | None = None) -> AdmissionRequest:
    return parse_review(review(pod_request(pod(*images, labels=labels))))


def same(a: Decision, b: Decision) -> None:
    assert (a.allowed, a.message, a.patch, a.warnings, a.code) == (b.allowed, b.message, b.patch, b.warnings, b.code)
    assert [c.verdict.verdict for c in a.checks] == [c.verdict.verdict for c in b.checks]


HITS = [
    ("tag-signed-mutate", (f"{SIGNED}:v1",), "mutate", True),
    ("pinned-signed-validate", (f"{SIGNED}@{DIGEST}",), "validate", True),
    ("tag-validate-missing-digest", (f"{SIGNED}:v1",), "validate", False),
    ("pinned-signed", (f"{SIGNED}@{DIGEST}",), "mutate", True),
    ("unsigned-denied-from-cached-failure", (f"{UNSIGNED}:v1",), "mutate", False),
    ("signed-and-unsigned", (f"{SIGNED}:v1", f"{UNSIGNED}:v1"), "mutate", False),
]


@pytest.mark.parametrize(("name", "images", "mode", "allowed"), HITS, ids=[h[0] for h in HITS])
def test_cached_decision_from_memory_equals_decide_without_requests_or_threads(
    name: str, images: tuple[str, ...], mode: Any, allowed: bool
) -> None:
    s = stack()
    try:
        first = s.service.decide(request(*images), mode=mode)
        before = s.source.requests
        s.service._pool.close()  # a thread hop would now raise: the memory path must not need one
        remembered = s.service.decide_from_memory(request(*images), mode=mode)
        assert remembered is not None
        assert s.source.requests == before, "the memory path asked the registry"
        same(remembered, first)
        assert remembered.allowed is allowed
        assert all(c.cached or c.verdict.message.startswith("missing digest") for c in remembered.checks)
    finally:
        s.service.close()


def test_cold_cache_is_none_and_asks_nothing() -> None:
    s = stack()
    try:
        assert s.service.decide_from_memory(request(f"{SIGNED}:v1"), mode="mutate") is None
        assert s.source.requests == 0
        assert len(s.service.cache) == 0
    finally:
        s.service.close()


def test_one_image_missing_makes_the_whole_decision_none() -> None:
    """A partial cache never decides: the uncached image could be the one that denies."""
    s = stack()
    try:
        assert s.service.decide(request(f"{SIGNED}:v1"), mode="mutate").allowed
        assert s.service.decide_from_memory(request(f"{SIGNED}:v1", f"{UNSIGNED}:v1"), mode="mutate") is None
    finally:
        s.service.close()


def test_tag_whose_resolution_is_not_remembered_is_none() -> None:
    """The verdict is cached by digest, but which digest the tag names now is only known by asking the registry."""
    s = stack(caching=False)
    try:
        assert s.service.decide(request(f"{SIGNED}:v1"), mode="mutate").allowed
        assert s.service.decide_from_memory(request(f"{SIGNED}:v1"), mode="mutate") is None
        pinned = s.service.decide_from_memory(request(f"{SIGNED}@{DIGEST}"), mode="mutate")
        assert pinned is not None and pinned.allowed
    finally:
        s.service.close()


def test_expired_verdict_is_none() -> None:
    s = stack()
    clock = [0.0]
    s.service._cache = TTLCache(max_entries=10, ttl=600, clock=lambda: clock[0])
    try:
        assert s.service.decide(request(f"{SIGNED}@{DIGEST}"), mode="mutate").allowed
        assert s.service.decide_from_memory(request(f"{SIGNED}@{DIGEST}"), mode="mutate") is not None
        clock[0] = 601.0
        assert s.service.decide_from_memory(request(f"{SIGNED}@{DIGEST}"), mode="mutate") is None
    finally:
        s.service.close()


def test_request_dependent_rule_is_never_answered_from_memory() -> None:
    deny = {"conditions": {"any": [{"key": "{{ request.object.metadata.labels.team }}", "operator": "NotEquals"}]}}
    deny["conditions"]["any"][0]["value"] = "a"
    s = stack(load(validate={"message": "team", "deny": deny}))
    try:
        assert s.service.decide(request(f"{SIGNED}@{DIGEST}", labels={"team": "a"}), mode="mutate").allowed
        assert s.service.decide_from_memory(request(f"{SIGNED}@{DIGEST}", labels={"team": "a"}), mode="mutate") is None
        assert s.service.decide_from_memory(request(f"{SIGNED}@{DIGEST}", labels={"team": "b"}), mode="mutate") is None
    finally:
        s.service.close()


def test_stored_verdict_is_not_memory() -> None:
    """The store is I/O: a verdict only in the store is looked up by ``decide``, on a thread."""
    store = MemoryStore()
    recorder = stack(store=store)
    try:
        assert recorder.service.decide(request(f"{SIGNED}@{DIGEST}"), mode="mutate").allowed
    finally:
        recorder.service.close()
    fresh = stack(store=store)
    try:
        assert fresh.service.decide_from_memory(request(f"{SIGNED}@{DIGEST}"), mode="mutate") is None
        assert fresh.service.decide(request(f"{SIGNED}@{DIGEST}"), mode="mutate").checks[0].cached
    finally:
        fresh.service.close()


def test_second_decide_takes_cached_verdicts_without_the_pool() -> None:
    s = stack()
    try:
        s.service.decide(request(f"{SIGNED}:v1"), mode="mutate")
        s.service._pool.close()  # a pool hop would now fail: the hit must not need one
        again = s.service.decide(request(f"{SIGNED}:v1"), mode="mutate")
    finally:
        s.service.close()
    assert again.allowed and again.checks[0].cached


# -- the HTTP contract ---------------------------------------------------------------------------------------------


def body(*images: str) -> bytes:
    import json

    return json.dumps(review(pod_request(pod(*images)))).encode()


TOKEN_ENV = {"SIGWARD_ADMISSION_TOKEN": "c1=s3cret-token"}


@pytest.mark.parametrize(
    ("name", "path", "headers", "payload", "status"),
    [
        ("wrong-token", "/", {"Authorization": "Bearer nope"}, body(f"{SIGNED}:v1"), 401),
        ("no-token", "/mutate", {}, body(f"{SIGNED}:v1"), 401),
        ("malformed-review", "/s3cret-token/mutate", {}, b"{not json", 400),
        ("not-a-review", "/s3cret-token/mutate", {}, b'{"kind":"Pod"}', 400),
    ],
)
def test_refusals_answered_from_memory_as_handle_admission_does(
    name: str, path: str, headers: dict[str, str], payload: bytes, status: int
) -> None:
    s = stack()
    try:
        remembered = answer_from_memory(
            method="POST", path=path, headers=headers, body=payload, service=lambda: s.service, environ=TOKEN_ENV
        )
        handled = handle_admission(
            method="POST", path=path, headers=headers, body=payload, service=lambda: s.service, environ=TOKEN_ENV
        )
    finally:
        s.service.close()
    assert remembered is not None and remembered.status == status
    assert (remembered.status, remembered.body) == (handled.status, handled.body)
    assert b"s3cret-token" not in remembered.body


def test_http_cache_hit_from_memory_equals_handle_admission_and_miss_is_none() -> None:
    s = stack()
    path, payload = "/s3cret-token/mutate", body(f"{SIGNED}:v1")
    try:
        kwargs: dict[str, Any] = {"method": "POST", "path": path, "headers": {}, "body": payload}
        assert answer_from_memory(**kwargs, service=lambda: s.service, environ=TOKEN_ENV) is None
        handled = handle_admission(**kwargs, service=lambda: s.service, environ=TOKEN_ENV)
        remembered = answer_from_memory(**kwargs, service=lambda: s.service, environ=TOKEN_ENV)
    finally:
        s.service.close()
    assert remembered is not None
    assert (remembered.status, remembered.body) == (handled.status, handled.body)
    assert b'"allowed":true' in remembered.body


class CountingVerifier(Verifier):
    """Counts readings of the trusted roots."""

    roots_read = 0

    def roots(self) -> Any:
        self.roots_read += 1
        return super().roots()


def test_cache_hit_reads_the_trusted_roots_once_per_request_not_per_image() -> None:
    """Regression (serve cache-hit throughput): each image's cache lookup read the trusted roots (a settings lookup
    each); one reading now serves the whole request, and the answer is unchanged."""
    current = load()
    verifier = CountingVerifier(source=CachingSignatureSource(make_source()))
    svc = AdmissionService(policies=lambda: current, verifier=verifier, settings=AdmissionSettings(deadline_seconds=5))
    three = request(f"{SIGNED}:v1", f"{SIGNED}:v1", f"{SIGNED}@{DIGEST}")
    cold = svc.decide(three, mode="mutate")
    verifier.roots_read = 0
    hit = svc.decide_from_memory(three, mode="mutate")
    assert hit is not None and hit.allowed and verifier.roots_read == 1
    same(hit, cold)
    # negative twin: an unsigned image is not in memory as a pass, and nothing is made up
    verifier.roots_read = 0
    assert svc.decide_from_memory(request(f"{SIGNED}:v1", f"{UNSIGNED}:v1"), mode="mutate") is None
    assert verifier.roots_read <= 1
    svc.close()


def test_cache_hit_with_no_policy_exception_loaded_never_calls_the_exception_matcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression (serve cache-hit throughput): with no PolicyException loaded the matcher is not run at all."""
    import sigward.admission.service as service_module

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("matching_exceptions called with no PolicyException loaded")

    monkeypatch.setattr(service_module, "matching_exceptions", boom)
    s = stack()
    req = request(f"{SIGNED}:v1")
    assert s.service.decide(req, mode="mutate").allowed
    hit = s.service.decide_from_memory(req, mode="mutate")
    assert hit is not None and hit.allowed
    s.service.close()

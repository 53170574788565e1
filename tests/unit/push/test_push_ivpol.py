"""ImageValidatingPolicies at push time: a policy that reads no request data is evaluated for the pushed image and its
passing checks are recorded under the key admission looks up; a policy reading the request is left to admission;
failures wait out the grace period; registry outages retry; an IVPOL selecting nothing leaves the event ignored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from sigward.admission.ivpol_cache import CachedChecks
from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.push.ivpol import ADMISSION_ONLY
from sigward.push.service import PushService, PushSettings
from sigward.references import parse_image_reference
from sigward.store.memory import MemoryStore
from sigward.verify.engine import Verifier
from sigward.verify.results import Verdict
from tests.support.memory import MemorySignatureSource
from tests.support.signing import new_key
from tests.unit.push.test_push_service import DIGEST, HOST, KEY, REPO, Clock, Recorder, event, sign

OTHER = new_key("p256", slot=31)


def ivpol(*, validation: str | None = None, glob: str = f"{HOST}/*", key: str = KEY.public_pem) -> ImagePolicy:
    doc: dict[str, Any] = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "signed-at-push"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                ]
            },
            "matchImageReferences": [{"glob": glob}],
            "attestors": [{"name": "k", "cosign": {"key": {"data": key}, "ctlog": {"insecureIgnoreTlog": True}}}],
            "validations": [
                {
                    "expression": validation
                    or "images.containers.map(i, verifyImageSignatures(i, [attestors.k])).all(n, n > 0)",
                    "message": "not signed by the team key",
                }
            ],
        },
    }
    (policy,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    return policy


World = tuple[PushService, MemorySignatureSource, MemoryStore, Clock, Recorder]


def make(policy: ImagePolicy, source: Any = None) -> World:
    source = source or MemorySignatureSource()
    source.add_image(f"{HOST}/{REPO}:v1", DIGEST)
    store, clock, recorder = MemoryStore(), Clock(), Recorder()
    service = PushService(
        policies=lambda: (),
        image_policies=lambda: (policy,),
        verifier=Verifier(source=source),
        store=store,
        settings=PushSettings(grace_seconds=300),
        notifier=recorder,
        clock=clock,
    )
    return service, source, store, clock, recorder


@pytest.fixture
def world() -> Iterator[World]:
    yield make(ivpol())


def admission_sees_pass(policy: ImagePolicy, store: MemoryStore) -> bool:
    """Admission's cached checks over an EMPTY registry (a fresh verification would fail): a pass can only come
    from what push recorded."""
    from sigward.cache import TTLCache

    empty = MemorySignatureSource()
    checks = CachedChecks(
        verifier=Verifier(source=empty), cache=TTLCache(max_entries=10, ttl=60), store=store, pass_ttl=60
    )
    from sigward.verify.ivpol import evaluate_request, pod_request

    decision = evaluate_request(
        [policy], pod_request(f"{HOST}/{REPO}@{DIGEST}"), checks=checks, deadline=Deadline.after(5)
    )
    return decision.allowed


def test_signed_push_records_checks_admission_reuses(world: World) -> None:
    service, source, store, _clock, recorder = world
    sign(source)
    outcome = service.handle(event())
    assert outcome.status == "recorded", outcome
    assert [(r.policy, r.rule, r.verdict) for r in outcome.rules] == [
        ("signed-at-push", "ImageValidatingPolicy", "pass")
    ]
    assert recorder.findings == []
    assert admission_sees_pass(ivpol(), store)
    # negative twin: a policy with another key has another content hash and finds nothing recorded
    assert not admission_sees_pass(ivpol(key=OTHER.public_pem), store)


def test_unsigned_push_retries_then_records_failure(world: World) -> None:
    service, _source, store, clock, recorder = world
    first = service.handle(event())
    assert first.status == "retry" and "grace period" in first.reason
    clock.now += 400
    final = service.handle(event())
    assert final.status == "recorded"
    assert [r.verdict for r in final.rules] == ["fail"]
    (finding,) = recorder.findings
    assert finding.verdict == "fail" and "not signed by the team key" in finding.message
    assert not admission_sees_pass(ivpol(), store)


def test_wrong_key_fails(world: World) -> None:
    service, source, _store, clock, _recorder = make(ivpol(key=OTHER.public_pem))
    sign(source)
    clock.now += 0
    assert service.handle(event()).status == "retry"  # a failure inside the grace period


def test_request_reading_policy_is_left_to_admission() -> None:
    policy = ivpol(validation="object.metadata.name != '' && images.containers.size() > 0")
    service, source, store, _clock, _recorder = make(policy)
    sign(source)
    outcome = service.handle(event())
    assert outcome.status == "recorded"
    assert [(r.verdict, r.message) for r in outcome.rules] == [("skip", ADMISSION_ONLY)]
    assert source.requests == 0  # nothing verified
    assert not admission_sees_pass(policy, store)


def test_policy_selecting_other_images_ignores_the_event() -> None:
    service, source, _store, _clock, _recorder = make(ivpol(glob="elsewhere.test/*"))
    outcome = service.handle(event())
    assert outcome.status == "ignored"
    assert source.requests == 0


class DownSource(MemorySignatureSource):
    def signature_layers(self, repo: Any, image_digest: str, *, deadline: Deadline, tag_prefix: str = "") -> Any:
        raise ExternalServiceError("registry registry.test unreachable")

    def bundles(self, repo: Any, image_digest: str, *, deadline: Deadline) -> Any:
        raise ExternalServiceError("registry registry.test unreachable")


def test_registry_down_retries_and_records_nothing() -> None:
    service, _source, store, _clock, recorder = make(ivpol(), DownSource())
    outcome = service.handle(event())
    assert outcome.status == "retry" and "unreachable" in outcome.reason
    assert [r.verdict for r in outcome.rules] == [Verdict.ERROR.value]
    assert recorder.findings == []
    assert not store.event_done(event().idempotency_key, now=1e12)


def test_pinned_form_is_the_digest(world: World) -> None:
    service, source, _store, _clock, _recorder = world
    sign(source)
    (rule,) = service.handle(event()).rules
    assert parse_image_reference(rule.form).digest == DIGEST

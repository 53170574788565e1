"""Verification at push over an in-memory registry and store: verdicts recorded under admission's key, the
signature-after-image grace period, idempotent redelivery, deletes, signature pushes re-verifying their subject,
findings for failures, and the HTTP answers that make platforms redeliver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError
from sigward.events import PushEvent
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.push.findings import Finding
from sigward.push.http import handle_push_webhook
from sigward.push.service import PushService, PushSettings
from sigward.store.memory import MemoryStore
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from tests.support.memory import MemorySignatureSource, stored_verdict
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key, signed_layer

HOST = "registry.test"
REPO = "team/app"
DIGEST = "sha256:" + "1" * 64
KEY = new_key("p256", slot=30)


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    findings: list[Finding] = field(default_factory=list)

    def notify(self, finding: Finding, *, deadline: Deadline) -> bool:
        self.findings.append(finding)
        return True


def policies() -> list[Policy]:
    doc = cluster_policy("require-signed", [key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)])])
    return list(load_policy_text(dump(doc), "p.yaml").policies)


def sign(source: MemorySignatureSource) -> None:
    s = signed_layer(KEY, image_digest=DIGEST)
    layer = SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))
    source.add_signatures(f"{HOST}/{REPO}", DIGEST, (layer,))


def event(
    event_id: str = "e1", *, tag: str = "v1", action: Literal["push", "delete"] = "push", digest: str = DIGEST
) -> PushEvent:
    return PushEvent(
        source="distribution",
        event_id=event_id,
        action=action,
        registry=HOST,
        repository=REPO,
        digest=digest,
        tag=tag,
        media_type="application/vnd.oci.image.manifest.v1+json",
    )


World = tuple[PushService, MemorySignatureSource, MemoryStore, Clock, "Recorder"]


@pytest.fixture
def world() -> Iterator[World]:
    source = MemorySignatureSource()
    source.add_image(f"{HOST}/{REPO}:v1", DIGEST)
    store = MemoryStore()
    clock = Clock()
    recorder = Recorder()
    current = policies()
    service = PushService(
        policies=lambda: current,
        verifier=Verifier(source=source),
        store=store,
        settings=PushSettings(grace_seconds=300),
        notifier=recorder,
        clock=clock,
    )
    yield service, source, store, clock, recorder


def stored(store: MemoryStore, clock: Clock, policy: Policy) -> str | None:
    return stored_verdict(store, policy, f"{HOST}/{REPO}:v1", DIGEST, now=clock.now)


def test_signed_push_records_a_pass_under_the_admission_key(world: World) -> None:
    service, source, store, clock, recorder = world
    sign(source)
    outcome = service.handle(event())
    assert outcome.status == "recorded"
    assert {r.verdict for r in outcome.rules} == {"pass"}
    assert stored(store, clock, policies()[0]) == "pass"
    assert recorder.findings == []
    assert store.event_done(event("e1").idempotency_key, now=clock.now)


def test_image_before_signature_retries_then_records_unsigned(world: World) -> None:
    service, _source, store, clock, recorder = world
    first = service.handle(event("e1"))
    assert first.status == "retry" and "grace period" in first.reason
    assert stored(store, clock, policies()[0]) is None  # nothing recorded while the signature may still come
    assert not store.event_done(event("e1").idempotency_key, now=clock.now)  # the redelivery will be processed
    clock.now += 120
    assert service.handle(event("e1")).status == "retry"
    clock.now += 400  # past the grace period: the failure is final
    final = service.handle(event("e1"))
    assert final.status == "recorded"
    assert stored(store, clock, policies()[0]) == "unsigned"
    (finding,) = recorder.findings
    assert finding.verdict == "unsigned" and "no signatures found" in finding.message


def test_signature_push_reverifies_the_subject(world: World) -> None:
    service, source, store, clock, _recorder = world
    clock.now += 0
    service.handle(event("e1"))
    clock.now += 1000
    service.handle(event("e1"))  # recorded unsigned
    assert stored(store, clock, policies()[0]) == "unsigned"
    sign(source)
    sig_tag = DIGEST.replace(":", "-") + ".sig"
    outcome = service.handle(event("e2", tag=sig_tag, digest="sha256:" + "9" * 64))
    assert outcome.digest == DIGEST and outcome.status == "recorded"
    assert stored(store, clock, policies()[0]) == "pass"


def test_duplicate_delivery_is_idempotent(world: World) -> None:
    service, source, _store, _clock, _recorder = world
    sign(source)
    assert service.handle(event("e1")).status == "recorded"
    before = source.requests
    assert service.handle(event("e1")).status == "duplicate"
    assert source.requests == before


def test_delete_is_recorded_not_verified(world: World) -> None:
    service, source, store, clock, _recorder = world
    outcome = service.handle(event("d1", action="delete", tag=""))
    assert outcome.status == "deleted"
    assert source.requests == 0
    assert stored(store, clock, policies()[0]) == "deleted"


def test_unmatched_image_is_ignored(world: World) -> None:
    service, _source, _store, _clock, _recorder = world
    other = PushEvent(
        source="distribution",
        event_id="x",
        action="push",
        registry="elsewhere.test",
        repository="a",
        digest=DIGEST,
        tag="v1",
    )
    assert service.handle(other).status == "ignored"


def test_registry_outage_asks_for_redelivery(world: World) -> None:
    service, source, store, clock, _recorder = world

    def down(*args: object, **kwargs: object) -> tuple[SignatureLayer, ...]:
        raise ExternalServiceError("registry.test unreachable")

    source.signature_layers = down  # type: ignore[method-assign]
    outcome = service.handle(event())
    assert outcome.status == "retry" and "unreachable" in outcome.reason
    assert stored(store, clock, policies()[0]) is None


def test_http_answers(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    service, source, store, _clock, _recorder = world
    body = json.dumps(
        {
            "events": [
                {
                    "id": "n1",
                    "action": "push",
                    "target": {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": DIGEST,
                        "repository": REPO,
                        "url": f"http://{HOST}/v2/{REPO}/manifests/{DIGEST}",
                        "tag": "v1",
                    },
                    "request": {"host": HOST},
                }
            ]
        }
    ).encode()
    headers = {"Content-Type": "application/vnd.docker.distribution.events.v1+json", "Authorization": "Bearer s3cret"}
    env = {"SIGWARD_PUSH_SECRET": "s3cret"}
    # not yet signed: 503 so the registry redelivers
    resp = handle_push_webhook(method="POST", headers=headers, body=body, service=lambda: service, environ=env)
    assert resp.status == 503
    sign(source)
    resp = handle_push_webhook(method="POST", headers=headers, body=body, service=lambda: service, environ=env)
    assert resp.status == 200
    assert json.loads(resp.body)["results"][0]["status"] == "recorded"
    # wrong secret: 401 before any parsing; malformed: 400; store down: 503
    bad = handle_push_webhook(
        method="POST",
        headers={**headers, "Authorization": "Bearer nope"},
        body=b"{",
        service=lambda: service,
        environ=env,
    )
    assert bad.status == 401 and b"s3cret" not in bad.body
    malformed = handle_push_webhook(
        method="POST", headers=headers, body=b'{"events": [{"action": 1}]}', service=lambda: service, environ=env
    )
    assert malformed.status == 400 and b"events[0]" in malformed.body
    store.available = False
    body2 = body.replace(b'"n1"', b'"n2"')
    down = handle_push_webhook(method="POST", headers=headers, body=body2, service=lambda: service, environ=env)
    assert down.status == 503


def test_context_rule_is_decided_at_admission_and_the_push_verdict_says_so() -> None:
    """Issue 15: a rule prepared per admission request (here a ConfigMap-supplied key) is not verified at push; the
    push outcome names it as decided at admission, next to the rules push did decide."""
    source = MemorySignatureSource()
    source.add_image(f"{HOST}/{REPO}:v1", DIGEST)
    sign(source)
    ctx = cluster_policy("ctx", [key_verification([f"{HOST}/*"], [keys_entry("{{ keys.data.org }}")])])
    ctx["spec"]["rules"][0]["context"] = [{"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}]
    both = [*policies(), *load_policy_text(dump(ctx), "ctx.yaml").policies]
    store, clock = MemoryStore(), Clock()
    service = PushService(
        policies=lambda: both, verifier=Verifier(source=source), store=store, settings=PushSettings(), clock=clock
    )
    outcome = service.handle(event())
    assert outcome.status == "recorded"
    verdicts = {(r.policy, r.verdict) for r in outcome.rules}
    assert verdicts == {("require-signed", "pass"), ("ctx", "skip")}
    assert "decided at admission" in next(r.message for r in outcome.rules if r.policy == "ctx")
    only_ctx = PushService(
        policies=lambda: both[1:], verifier=Verifier(source=source), store=store, settings=PushSettings(), clock=clock
    )
    ignored = only_ctx.handle(event("e2"))
    assert ignored.status == "ignored" and "decided at admission" in ignored.reason


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        ("celPreconditions", {"celPreconditions": [{"name": "prod", "expression": "request.namespace == 'prod'"}]}),
        (
            "match subjects",
            {"match": {"any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "User", "name": "ci"}]}]}},
        ),
        (
            "exclude subjects",
            {"exclude": {"any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "Group", "name": "ops"}]}]}},
        ),
    ],
)
def test_request_only_rules_are_decided_at_admission(case: str, rule: dict[str, Any]) -> None:
    """celPreconditions and user-info rules read the admission request: push never decides them (a push verdict
    could otherwise record a pass or fail for a rule that may not apply), and says so."""
    source = MemorySignatureSource()
    source.add_image(f"{HOST}/{REPO}:v1", DIGEST)
    sign(source)
    doc = cluster_policy("req", [key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)])])
    doc["spec"]["background"] = False
    doc["spec"]["rules"][0].update(rule)
    loaded = load_policy_text(dump(doc), "req.yaml").policies
    service = PushService(
        policies=lambda: loaded,
        verifier=Verifier(source=source),
        store=MemoryStore(),
        settings=PushSettings(),
        clock=Clock(),
    )
    outcome = service.handle(event())
    assert outcome.status == "ignored" and "decided at admission" in outcome.reason

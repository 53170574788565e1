"""Event identity (issue 20 §3): the idempotency key covers source, action, registry, repository, digest and the
source's delivery id, so only a redelivery of the same event is a duplicate."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from sigward.events import PushEvent, from_distribution, from_harbor
from sigward.push.service import PushService, PushSettings
from sigward.store.memory import MemoryStore
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from tests.support.memory import MemorySignatureSource
from tests.support.signing import signed_layer
from tests.unit.push.test_push_service import DIGEST, HOST, KEY, REPO, Clock, Recorder, policies

BASE = PushEvent(
    source="harbor",
    event_id="1700000000:PUSH_ARTIFACT:" + DIGEST,
    action="push",
    registry=HOST,
    repository=REPO,
    digest=DIGEST,
    tag="v1",
    media_type="application/vnd.oci.image.manifest.v1+json",
)

DIFFERENT = [
    ("another repository", {"repository": "team/other"}),
    ("another registry", {"registry": "mirror.test"}),
    ("another source", {"source": "distribution"}),
    ("another action", {"action": "delete"}),
    ("another digest", {"digest": "sha256:" + "2" * 64}),
    ("another delivery id", {"event_id": "1700000001:PUSH_ARTIFACT:" + DIGEST}),
]


@pytest.mark.parametrize(("why", "change"), DIFFERENT, ids=[d[0] for d in DIFFERENT])
def test_key_differs_when_any_identity_field_differs(why: str, change: dict[str, Any]) -> None:
    assert dataclasses.replace(BASE, **change).idempotency_key != BASE.idempotency_key, why


def test_redelivery_has_the_same_key_and_tag_or_media_type_do_not_matter() -> None:
    assert dataclasses.replace(BASE).idempotency_key == BASE.idempotency_key
    assert dataclasses.replace(BASE, tag="v2", media_type="").idempotency_key == BASE.idempotency_key


def test_fields_cannot_be_shifted_into_each_other() -> None:
    a = dataclasses.replace(BASE, repository="team/app", event_id="x")
    b = dataclasses.replace(BASE, repository="team/ap", event_id="px")
    assert a.idempotency_key != b.idempotency_key


def harbor_body(repository: str, occur_at: int = 1700000000) -> bytes:
    namespace, _, name = repository.partition("/")
    return json.dumps(
        {
            "type": "PUSH_ARTIFACT",
            "occur_at": occur_at,
            "operator": "admin",
            "event_data": {
                "resources": [{"digest": DIGEST, "tag": "v1", "resource_url": f"{HOST}/{repository}:v1"}],
                "repository": {
                    "name": name,
                    "namespace": namespace,
                    "repo_full_name": repository,
                    "repo_type": "private",
                },
            },
        }
    ).encode()


def distribution_body(repository: str, event_id: str) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "id": event_id,
                    "timestamp": "2024-05-01T12:00:00Z",
                    "action": "push",
                    "target": {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": DIGEST,
                        "size": 10,
                        "repository": repository,
                        "url": f"https://{HOST}/v2/{repository}/manifests/{DIGEST}",
                        "tag": "v1",
                    },
                    "request": {"id": "r", "addr": "10.0.0.1", "host": HOST, "method": "PUT", "useragent": "docker"},
                }
            ]
        }
    ).encode()


def service() -> tuple[PushService, MemorySignatureSource]:
    source = MemorySignatureSource()
    signed = signed_layer(KEY, image_digest=DIGEST)
    layer = SignatureLayer(media_type=signed.media_type, payload=signed.payload, annotations=dict(signed.annotations))
    for repo in (REPO, "team/other"):
        source.add_image(f"{HOST}/{repo}:v1", DIGEST)
        source.add_signatures(f"{HOST}/{repo}", DIGEST, (layer,))
    current = policies()
    return PushService(
        policies=lambda: current,
        verifier=Verifier(source=source),
        store=MemoryStore(),
        settings=PushSettings(grace_seconds=300),
        notifier=Recorder(),
        clock=Clock(),
    ), source


def test_harbor_same_digest_two_repositories_same_second_are_both_handled() -> None:
    svc, _ = service()
    [first] = from_harbor(harbor_body(REPO)).pushes
    [second] = from_harbor(harbor_body("team/other")).pushes
    assert first.event_id == second.event_id  # Harbor sends no id: the synthesized one cannot tell them apart
    assert svc.handle(first).status == "recorded"
    assert svc.handle(second).status == "recorded"  # not "duplicate"
    assert svc.handle(first).status == "duplicate"  # redelivery stays idempotent


def test_crafted_event_from_another_source_cannot_suppress_a_push() -> None:
    svc, _ = service()
    [harbor] = from_harbor(harbor_body(REPO)).pushes
    # A distribution event carrying Harbor's delivery id for the same repository and digest.
    [crafted] = from_distribution(distribution_body(REPO, harbor.event_id)).pushes
    assert crafted.event_id == harbor.event_id
    assert svc.handle(crafted).status == "recorded"
    assert svc.handle(harbor).status == "recorded"


def test_distribution_redelivery_is_a_duplicate_and_other_repository_is_not() -> None:
    svc, _ = service()
    [push] = from_distribution(distribution_body(REPO, "abc")).pushes
    [other] = from_distribution(distribution_body("team/other", "abc")).pushes
    assert svc.handle(push).status == "recorded"
    assert svc.handle(push).status == "duplicate"
    assert svc.handle(other).status == "recorded"

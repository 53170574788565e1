"""PushEvent invariants and helpers, and the limits every adapter enforces (sizes, list lengths)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sigward.errors import BadRequestError
from sigward.events import (
    MAX_EVENTS,
    MAX_WEBHOOK_BYTES,
    PushEvent,
    from_distribution,
    from_event_grid,
    from_eventbridge,
    from_github,
    from_harbor,
    from_pubsub_cloudevent,
    from_pubsub_push,
    parse_webhook,
)
from sigward.events.ecr import ecr_registry_host
from sigward.events.gcr import MAX_PUBSUB_DATA_BYTES
from sigward.events.models import is_manifest_media_type
from sigward.registry.hints import subject_digest_of_tag

HEX = "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
DIGEST = f"sha256:{HEX}"
OTHER = "sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5"


def _push(**kw: Any) -> PushEvent:
    fields: dict[str, Any] = {
        "source": "distribution",
        "event_id": "e1",
        "action": "push",
        "registry": "registry.example.com:5000",
        "repository": "team/app",
        "digest": OTHER,
    }
    fields.update(kw)
    return PushEvent(**fields)


@pytest.mark.parametrize(
    ("tag", "subject"),
    [
        (f"sha256-{HEX}.sig", DIGEST),
        (f"sha256-{HEX}.att", DIGEST),
        (f"sha256-{HEX}.sbom", DIGEST),
        (f"sha256-{HEX}", DIGEST),  # OCI referrers tag schema (fallback index)
        (f"sha256-{HEX}.txt", ""),
        (f"sha256-{HEX[:-1]}.sig", ""),
        (f"sha512-{HEX}.sig", ""),  # sha512 needs 128 hex characters
        ("v1.2.3", ""),
        ("", ""),
    ],
)
def test_subject_digest_from_cosign_tags(tag: str, subject: str) -> None:
    assert subject_digest_of_tag(tag) == subject
    assert _push(tag=tag).subject_digest == subject


def test_image_is_registry_repository_at_digest() -> None:
    push = _push(tag="1.0")
    assert push.image.reference == f"registry.example.com:5000/team/app@{OTHER}"
    assert push.image.registry == "registry.example.com:5000"
    assert push.image.path == "team/app"
    assert push.json()["image"] == push.image.reference


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"source": "quay"}, "source 'quay'"),
        ({"action": "pull"}, "action 'pull'"),
        ({"event_id": ""}, "event_id"),
        ({"digest": "sha256:abc"}, "invalid digest"),
        ({"tag": "bad tag"}, "invalid tag"),
        ({"registry": "registry"}, "not a registry host"),
        ({"repository": "Team/App"}, "lowercase"),
    ],
)
def test_push_event_refuses_invalid_fields(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        _push(**kw)


def test_media_types() -> None:
    assert is_manifest_media_type("application/vnd.oci.image.index.v1+json")
    assert is_manifest_media_type("Application/vnd.docker.distribution.manifest.v2+json; charset=utf-8")
    assert not is_manifest_media_type("application/vnd.oci.image.layer.v1.tar+gzip")
    assert not is_manifest_media_type("")


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("eu-west-1", "123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
        ("cn-northwest-1", "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn"),
        ("us-gov-west-1", "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com"),
        ("us-iso-east-1", "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov"),
    ],
)
def test_ecr_registry_host(region: str, host: str) -> None:
    assert ecr_registry_host("123456789012", region) == host


# --- limits -----------------------------------------------------------------------------------------------------


def _oversized() -> bytes:
    return b'{"pad": "' + b"x" * MAX_WEBHOOK_BYTES + b'"}'


@pytest.mark.parametrize(
    "call",
    [
        lambda body: parse_webhook("POST", {"Content-Type": "application/json"}, body),
        lambda body: from_eventbridge(body),
        lambda body: from_distribution(body),
        lambda body: from_harbor(body),
        lambda body: from_github({"X-GitHub-Event": "registry_package"}, body),
        lambda body: from_event_grid("POST", {"aeg-event-type": "Notification"}, body),
        lambda body: from_pubsub_push(body),
    ],
    ids=["webhook", "ecr", "distribution", "harbor", "github", "event-grid", "pubsub-push"],
)
def test_oversized_body_is_refused_before_parsing(call: Any) -> None:
    with pytest.raises(BadRequestError, match=f"exceeds the limit of {MAX_WEBHOOK_BYTES} bytes"):
        call(_oversized())


def _distribution_event(i: int) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "repository": "a"},
        "request": {"host": "localhost:5000"},
    }


def test_too_many_distribution_events() -> None:
    ok = json.dumps({"events": [_distribution_event(i) for i in range(MAX_EVENTS)]}).encode()
    assert len(parse_webhook("POST", {}, ok).pushes) == MAX_EVENTS
    too_many = json.dumps({"events": [_distribution_event(i) for i in range(MAX_EVENTS + 1)]}).encode()
    with pytest.raises(BadRequestError) as err:
        parse_webhook("POST", {}, too_many)
    assert str(err.value) == (
        f"distribution notification: events has {MAX_EVENTS + 1} entries, more than the limit of {MAX_EVENTS}"
    )


def test_too_many_event_grid_events() -> None:
    event = {"id": "x", "eventType": "Microsoft.ContainerRegistry.ChartPushed", "data": {}}
    body = json.dumps([event] * (MAX_EVENTS + 1)).encode()
    with pytest.raises(BadRequestError, match="more than the limit of 100"):
        parse_webhook("POST", {"aeg-event-type": "Notification"}, body)


def test_too_many_harbor_resources() -> None:
    resource = {"digest": DIGEST, "tag": "1", "resource_url": "harbor.example.com/p/r:1"}
    doc = {
        "type": "PUSH_ARTIFACT",
        "occur_at": 1,
        "event_data": {"resources": [resource] * (MAX_EVENTS + 1), "repository": {"repo_full_name": "p/r"}},
    }
    with pytest.raises(BadRequestError, match=r"event_data\.resources has 101 entries"):
        from_harbor(json.dumps(doc).encode())


def test_oversized_pubsub_data_is_refused() -> None:
    data = base64.b64encode(b"{" + b" " * (MAX_PUBSUB_DATA_BYTES + 10) + b"}").decode()
    with pytest.raises(BadRequestError, match=f"data.message.data decodes to more than {MAX_PUBSUB_DATA_BYTES}"):
        from_pubsub_cloudevent({"message": {"data": data, "messageId": "1"}})


def test_deeply_nested_json_is_refused() -> None:
    body = b"[" * 5000 + b"]" * 5000
    with pytest.raises(BadRequestError, match="nested deeper"):
        parse_webhook("POST", {}, body)


def test_pubsub_cloudevent_data_may_arrive_as_json_bytes() -> None:
    message = {"action": "INSERT", "digest": f"gcr.io/p/app@{DIGEST}"}
    data = json.dumps({"message": {"data": base64.b64encode(json.dumps(message).encode()).decode(), "messageId": "9"}})
    (push,) = from_pubsub_cloudevent(data.encode(), {"id": "9"})
    assert (push.registry, push.repository, push.digest, push.event_id) == ("gcr.io", "p/app", DIGEST, "9")


def test_pubsub_cloudevent_id_falls_back_to_the_cloudevent_id() -> None:
    message = {"action": "INSERT", "digest": f"gcr.io/p/app@{DIGEST}"}
    data = {"message": {"data": base64.b64encode(json.dumps(message).encode()).decode()}}
    (push,) = from_pubsub_cloudevent(data, {"id": "ce-7", "type": "google.cloud.pubsub.topic.v1.messagePublished"})
    assert push.event_id == "ce-7"


def test_headers_are_case_insensitive() -> None:
    body = b"[]"
    upper = parse_webhook("OPTIONS", {"WEBHOOK-REQUEST-ORIGIN": "eventgrid.azure.net"}, body)
    assert upper.handshake is not None
    assert dict(upper.handshake.headers)["WebHook-Allowed-Origin"] == "eventgrid.azure.net"

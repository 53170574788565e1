"""Google Artifact Registry / Container Registry notifications, delivered by Pub/Sub (topic ``gcr``).

The message data is base64 JSON: ``{"action":"INSERT","digest":"HOST/PATH@sha256:…","tag":"HOST/PATH:TAG"}``.
``INSERT`` (an upload, or a new tag on an image) always names the digest; ``tag`` only when a tag was set.
``DELETE`` names the digest when an image was deleted, but only the tag when a tag was removed
(``{"action":"DELETE","tag":"HOST/PATH:TAG"}``): that untagging is not an image deletion and is ignored.
Hosts are ``gcr.io``/``*.gcr.io`` and ``*-docker.pkg.dev``; any valid registry host is accepted (a local emulator
test publishes messages about a loopback registry), since what may be contacted is the registry client's decision.

Two envelopes carry it:

- the Eventarc CloudEvent ``google.cloud.pubsub.topic.v1.messagePublished`` (what functions-framework hands a
  ``cloud_event`` function, also when it converted a raw push itself): ``data = {"message": {"data", "messageId",
  "attributes", "publishTime"}, "subscription": …}``;
- a raw Pub/Sub push body ``{"message": {…}, "subscription": …}``, or, for a subscription with payload unwrapping,
  the bare message data with the id in the ``x-goog-pubsub-message-id`` header.

``event_id`` is the Pub/Sub ``messageId``: redeliveries of one message keep it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from sigward.errors import BadRequestError
from sigward.events._fields import Fields, clip, lower_headers
from sigward.events.models import MAX_WEBHOOK_BYTES, PushEvent, WebhookResult
from sigward.jsonbody import parse_json_body
from sigward.references import ImageReference, parse_image_reference

PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
# GCR/AR messages are ~200 bytes; Pub/Sub allows 10 MB, which is nothing we want to decode.
MAX_PUBSUB_DATA_BYTES = 64 * 1024

_ACTIONS = {"INSERT": "push", "DELETE": "delete"}


def from_pubsub_cloudevent(data: Any, attributes: Mapping[str, Any] | None = None) -> tuple[PushEvent, ...]:
    """The pushes in an Eventarc Pub/Sub CloudEvent (``event.data``, ``event.get_attributes()``)."""
    return pubsub_cloudevent_result(data, attributes or {}).pushes


def pubsub_cloudevent_result(data: Any, attributes: Mapping[str, Any]) -> WebhookResult:
    f = Fields("Pub/Sub CloudEvent")
    event_type = attributes.get("type")
    if event_type is not None and event_type != PUBSUB_EVENT_TYPE:
        raise f.error("type", f"is {clip(str(event_type))}, not {PUBSUB_EVENT_TYPE!r}")
    if isinstance(data, bytes | str):
        raw = data.encode() if isinstance(data, str) else data
        data = parse_json_body(raw, what="Pub/Sub CloudEvent data", max_bytes=MAX_WEBHOOK_BYTES)
    envelope = f.obj(data, "data")
    message = f.child_obj(envelope, "message", "data")
    fallback = attributes.get("id")
    return _message_result(f, message, "data.message", fallback_id=fallback if isinstance(fallback, str) else "")


def from_pubsub_push(body: bytes, headers: Mapping[str, str] | None = None) -> tuple[PushEvent, ...]:
    """The pushes in a Pub/Sub push request body (wrapped envelope, or unwrapped data with ``headers``)."""
    return pubsub_push_result(body, headers).pushes


def pubsub_push_result(body: bytes, headers: Mapping[str, str] | None = None) -> WebhookResult:
    doc = parse_json_body(body, what="Pub/Sub push", max_bytes=MAX_WEBHOOK_BYTES)
    return pubsub_push_document(doc, headers)


def pubsub_push_document(doc: Any, headers: Mapping[str, str] | None = None) -> WebhookResult:
    f = Fields("Pub/Sub push")
    envelope = f.obj(doc, "")
    if "message" not in envelope and "action" in envelope:
        # Payload unwrapping: the body is the message data itself; the message id travels in a header.
        folded = lower_headers(headers or {})
        message_id = folded.get("x-goog-pubsub-message-id", "")
        if not message_id:
            raise f.error("", "unwrapped message without an x-goog-pubsub-message-id header")
        f.check_event_id(message_id, "header x-goog-pubsub-message-id")
        return _data_result(Fields("Pub/Sub message"), envelope, "", message_id)
    message = f.child_obj(envelope, "message", "")
    return _message_result(f, message, "message", fallback_id="")


def _message_result(f: Fields, message: Mapping[str, Any], path: str, *, fallback_id: str) -> WebhookResult:
    if message.get("messageId") is not None:
        message_id = f.event_id(message, "messageId", path)
    elif message.get("message_id") is not None:
        message_id = f.event_id(message, "message_id", path)
    elif fallback_id:
        message_id = f.check_event_id(fallback_id, "id")
    else:
        raise f.error(f"{path}.messageId", "is missing")
    encoded = f.string(message, "data", path, max_chars=MAX_WEBHOOK_BYTES)
    data_path = f"{path}.data"
    if len(encoded) > (MAX_PUBSUB_DATA_BYTES * 4) // 3 + 4:
        raise f.error(data_path, f"decodes to more than {MAX_PUBSUB_DATA_BYTES} bytes")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise f.error(data_path, "is not valid base64") from None
    inner = Fields(f"{f.what}: {data_path}")
    doc = parse_json_body(raw, what=inner.what, max_bytes=MAX_PUBSUB_DATA_BYTES)
    return _data_result(inner, inner.obj(doc, ""), "", message_id)


def _reference(f: Fields, doc: Mapping[str, Any], key: str) -> ImageReference | None:
    value = f.string(doc, key, "", required=False)
    if not value:
        return None
    try:
        return parse_image_reference(value)
    except BadRequestError as exc:
        raise f.error(key, f"is not an image reference: {exc}") from None


def _data_result(f: Fields, doc: Mapping[str, Any], path: str, message_id: str) -> WebhookResult:
    action = f.string(doc, "action", path)
    if action not in _ACTIONS:
        return WebhookResult(source="gcr", ignored=(f"{f.what}: action {clip(action)} ignored",))
    digest_ref = _reference(f, doc, "digest")
    tag_ref = _reference(f, doc, "tag")
    if digest_ref is not None and not digest_ref.digest:
        raise f.error("digest", f"has no @sha256:… digest: {clip(digest_ref.original)}")
    if tag_ref is not None and (tag_ref.digest or ":" not in tag_ref.original.rsplit("/", 1)[-1]):
        raise f.error("tag", f"is not a HOST/PATH:TAG reference: {clip(tag_ref.original)}")
    if digest_ref is None:
        if action == "DELETE" and tag_ref is not None:
            return WebhookResult(source="gcr", ignored=(f"{f.what}: tag {tag_ref.original} removed (no digest)",))
        raise f.error("digest", "is missing")
    if tag_ref is not None and tag_ref.repository != digest_ref.repository:
        raise f.error("tag", f"names repository {tag_ref.repository}, but digest names {digest_ref.repository}")
    push = f.push(
        source="gcr",
        event_id=message_id,
        action="push" if _ACTIONS[action] == "push" else "delete",
        registry=digest_ref.registry,
        repository=digest_ref.path,
        digest=digest_ref.digest,
        tag=tag_ref.tag if tag_ref is not None else "",
        registry_path="digest",
        repository_path="digest",
    )
    return WebhookResult(source="gcr", pushes=(push,))

"""The ``push_webhook`` target's parser: recognize which platform sent a delivery and normalize it.

Recognition, first match wins (headers are trusted only to pick a parser, never to skip validation):

1. ``OPTIONS`` → the CloudEvents webhook validation handshake (Event Grid, CloudEvents schema);
2. header ``X-GitHub-Event`` → GitHub packages;
3. header ``aeg-event-type`` → Azure Event Grid (either schema, or its ``SubscriptionValidation`` handshake);
4. header ``ce-specversion`` → a binary-mode CloudEvent, routed by ``ce-type``;
5. content type ``application/vnd.docker.distribution.events.v1+json`` / ``v2`` → CNCF distribution;
6. the JSON body: a CloudEvent (``specversion``) or batch, routed by ``type`` (``Microsoft.ContainerRegistry.*`` →
   ACR, ``harbor.*`` → Harbor, ``google.cloud.pubsub.topic.v1.messagePublished`` → GCR); an array of
   ``eventType`` objects → Event Grid; ``events`` → distribution; ``detail-type`` or ``source: aws.ecr`` →
   EventBridge; ``type`` + ``event_data`` → Harbor; ``message`` + ``subscription`` → a Pub/Sub push.

Authenticate first (:func:`sigward.events.auth.authenticate`), then call :func:`parse_webhook`. It raises
:class:`~sigward.errors.BadRequestError` (400) for anything malformed or unrecognized; a delivery that is well formed
but
of no interest (a pull, a blob push, a failed ECR action, an npm package) yields no pushes and a reason in
``ignored`` — answer it 2xx so the sender does not retry it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sigward.errors import BadRequestError
from sigward.events import acr, distribution, ecr, gcr, github, harbor
from sigward.events._fields import clip, lower_headers, media_type_of
from sigward.events.cloudevents import CloudEvent, binary_event, looks_structured, structured_events
from sigward.events.models import MAX_WEBHOOK_BYTES, Source, WebhookResult, combine
from sigward.jsonbody import parse_json_body

WHAT = "push webhook"


def parse_webhook(method: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
    """Normalize one delivery to the push webhook: pushes (maybe none), or a handshake to answer verbatim."""
    folded = lower_headers(headers)
    verb = method.upper()
    if verb == "OPTIONS":
        return WebhookResult(source="acr", handshake=acr.cloudevents_handshake(folded))
    if verb != "POST":
        raise BadRequestError(f"{WHAT}: method {clip(method)} is not allowed (POST, or OPTIONS for a handshake)")
    if len(body) > MAX_WEBHOOK_BYTES:
        raise BadRequestError(f"{WHAT}: body of {len(body)} bytes exceeds the limit of {MAX_WEBHOOK_BYTES} bytes")
    if "x-github-event" in folded:
        return github.from_github(folded, body)
    if "ce-specversion" in folded:
        return route_cloudevents([binary_event(folded, body)])
    if "aeg-event-type" in folded:
        doc = parse_json_body(body, what="Event Grid delivery", max_bytes=MAX_WEBHOOK_BYTES)
        return acr.event_grid_document(doc, folded)
    content_type = media_type_of(folded.get("content-type", ""))
    if content_type in distribution.CONTENT_TYPES:
        doc = parse_json_body(body, what="distribution notification", max_bytes=MAX_WEBHOOK_BYTES)
        return distribution.distribution_document(doc)
    doc = parse_json_body(body, what=WHAT, max_bytes=MAX_WEBHOOK_BYTES)
    return _by_body(doc, folded)


def _by_body(doc: Any, headers: Mapping[str, str]) -> WebhookResult:
    if looks_structured(doc):
        return route_cloudevents(structured_events(doc))
    if isinstance(doc, list):
        if doc and isinstance(doc[0], dict) and "eventType" in doc[0]:
            return acr.event_grid_document(doc, headers)
        raise BadRequestError(f"{WHAT}: a JSON array that is neither Event Grid events nor a CloudEvents batch")
    if not isinstance(doc, dict):
        raise BadRequestError(f"{WHAT}: expected a JSON object or array, not {type(doc).__name__}")
    if "events" in doc:
        return distribution.distribution_document(doc)
    if "detail-type" in doc or doc.get("source") == ecr.ECR_EVENT_SOURCE:
        return ecr.eventbridge_document(doc)
    if harbor.looks_like_harbor(doc):
        return harbor.harbor_document(doc)
    if "message" in doc and "subscription" in doc:
        return gcr.pubsub_push_document(doc, headers)
    raise BadRequestError(
        f"{WHAT}: unrecognized delivery (expected an EventBridge ECR event, Event Grid events, a CloudEvent, a "
        "distribution notification, a Harbor or GitHub webhook, or a Pub/Sub push)"
    )


def _route(event: CloudEvent) -> WebhookResult:
    if event.type.startswith(acr.ACR_TYPE_PREFIX):
        return acr.acr_cloudevent(event)
    if event.type.startswith(harbor.HARBOR_TYPE_PREFIX):
        return harbor.harbor_cloudevent(event)
    if event.type == gcr.PUBSUB_EVENT_TYPE:
        return gcr.pubsub_cloudevent_result(event.data, {"type": event.type, "id": event.id})
    raise BadRequestError(
        f"{WHAT}: {event.where('type')} {clip(event.type)} is not a CloudEvent type sigward handles "
        f"({acr.ACR_TYPE_PREFIX}*, {harbor.HARBOR_TYPE_PREFIX}*, {gcr.PUBSUB_EVENT_TYPE})"
    )


def route_cloudevents(events: list[CloudEvent]) -> WebhookResult:
    results = [_route(e) for e in events]
    source: Source = results[0].source if results else "acr"
    return combine(source, results)

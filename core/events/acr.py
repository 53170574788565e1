"""Azure Container Registry events delivered by Event Grid, in either delivery schema, with both validation
handshakes.

Event Grid schema (a JSON array; header ``aeg-event-type: Notification``)::

    [{"id": "831e1650-…", "topic": "/subscriptions/…/providers/Microsoft.ContainerRegistry/registries/<name>",
      "subject": "aci-helloworld:v1", "eventType": "Microsoft.ContainerRegistry.ImagePushed", "eventTime": …,
      "data": {"id": …, "timestamp": …, "action": "push",
               "target": {"mediaType": …, "size": 3023, "digest": "sha256:…", "length": 3023,
                          "repository": "aci-helloworld", "tag": "v1"},
               "request": {"id": …, "host": "demo.azurecr.io", "method": "PUT", "useragent": …}},
      "dataVersion": "1.0", "metadataVersion": "1"}]

CloudEvents 1.0 schema: the same ``data`` under ``type``/``source``/``id``/``specversion`` (the ACR docs' sample is
a batch array; a single object is accepted too). ``ImageDeleted`` carries no tag. ``ChartPushed``/``ChartDeleted``
(Helm) are ignored. The registry host is ``data.request.host``; when absent it is derived from the registry's
resource id in ``topic``/``source`` (``<name>.azurecr.io``).

Handshakes (answered only after the caller authenticated the request, see :mod:`sigward.events.auth`):

- Event Grid schema: header ``aeg-event-type: SubscriptionValidation`` and a
  ``Microsoft.EventGrid.SubscriptionValidationEvent`` whose ``data.validationCode`` is echoed as
  ``200 {"validationResponse": code}``;
- CloudEvents schema: ``OPTIONS`` with ``WebHook-Request-Origin`` is answered ``200`` with
  ``WebHook-Allowed-Origin: <origin>`` and ``WebHook-Allowed-Rate: *`` (CloudEvents HTTP webhook abuse protection).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sigward.events._fields import Fields, clip, join, lower_headers
from sigward.events.cloudevents import CloudEvent, binary_event, looks_structured, structured_events
from sigward.events.models import MAX_EVENTS, MAX_WEBHOOK_BYTES, HandshakeReply, WebhookResult, combine
from sigward.jsonbody import parse_json_body

IMAGE_PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
IMAGE_DELETED = "Microsoft.ContainerRegistry.ImageDeleted"
ACR_TYPE_PREFIX = "Microsoft.ContainerRegistry."
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
AEG_EVENT_TYPE = "aeg-event-type"
_ACTIONS = {IMAGE_PUSHED: "push", IMAGE_DELETED: "delete"}
_REGISTRY_ID_RE = re.compile(r"/providers/Microsoft\.ContainerRegistry/registries/([A-Za-z0-9]{5,50})/?$", re.I)
# A validation code is a GUID; anything far longer is not one Event Grid made.
MAX_VALIDATION_CODE_CHARS = 256
# WebHook-Request-Origin is a DNS expression (e.g. eventgrid.azure.net); echoed into a header, so kept strict.
_ORIGIN_RE = re.compile(r"^[A-Za-z0-9*](?:[A-Za-z0-9.*:-]{0,252})$")


def from_event_grid(method: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
    """An Event Grid delivery of ACR events (either schema) or one of its handshakes."""
    folded = lower_headers(headers)
    if method.upper() == "OPTIONS":
        return WebhookResult(source="acr", handshake=cloudevents_handshake(folded))
    if "ce-specversion" in folded:
        return acr_cloudevent(binary_event(folded, body, what="ACR CloudEvent"))
    doc = parse_json_body(body, what="Event Grid delivery", max_bytes=MAX_WEBHOOK_BYTES)
    return event_grid_document(doc, folded)


def event_grid_document(doc: Any, headers: Mapping[str, str]) -> WebhookResult:
    """A decoded Event Grid POST body; ``headers`` lower-cased."""
    validation = headers.get(AEG_EVENT_TYPE, "").lower() == "subscriptionvalidation"
    if looks_structured(doc):
        if validation:
            raise Fields("Event Grid delivery").error(
                "", "aeg-event-type is SubscriptionValidation but the body is a CloudEvent"
            )
        return combine("acr", [acr_cloudevent(e) for e in structured_events(doc, what="ACR CloudEvent")])
    f = Fields("Event Grid event")
    events = f.array(doc, "", max_items=MAX_EVENTS)
    if not events:
        raise f.error("", "the event array is empty")
    first = f.obj(events[0], "[0]")
    if validation or first.get("eventType") == VALIDATION_EVENT:
        return WebhookResult(source="acr", handshake=event_grid_handshake(f, first, "[0]"))
    results = []
    for i, item in enumerate(events):
        path = f"[{i}]"
        event = f.obj(item, path)
        event_type = f.string(event, "eventType", path, max_chars=256)
        if event_type not in _ACTIONS:
            results.append(
                WebhookResult(source="acr", ignored=(f"Event Grid event {path}: {clip(event_type)} ignored",))
            )
            continue
        event_id = f.event_id(event, "id", path)
        topic = f.string(event, "topic", path, required=False)
        data = f.child_obj(event, "data", path)
        results.append(_image_event(f, data, join(path, "data"), event_id, event_type, topic, join(path, "topic")))
    return combine("acr", results)


def acr_cloudevent(event: CloudEvent) -> WebhookResult:
    f = Fields("ACR CloudEvent")
    if not event.type.startswith(ACR_TYPE_PREFIX):
        raise f.error(event.where("type"), f"is {clip(event.type)}, not a {ACR_TYPE_PREFIX}* event")
    if event.type not in _ACTIONS:
        return WebhookResult(source="acr", ignored=(f"ACR CloudEvent {event.id}: {clip(event.type)} ignored",))
    data = f.obj(event.data, event.where("data"))
    return _image_event(f, data, event.where("data"), event.id, event.type, event.source, event.where("source"))


def _image_event(
    f: Fields,
    data: Mapping[str, Any],
    path: str,
    event_id: str,
    event_type: str,
    registry_id: str,
    registry_id_path: str,
) -> WebhookResult:
    target = f.child_obj(data, "target", path)
    target_path = join(path, "target")
    repository = f.string(target, "repository", target_path, max_chars=256)
    digest = f.digest(target, "digest", target_path)
    tag = f.tag(target, "tag", target_path)
    media_type = f.string(target, "mediaType", target_path, required=False, max_chars=256)
    request = f.opt_obj(data, "request", path)
    host = f.string(request, "host", join(path, "request"), required=False, max_chars=256) if request else ""
    host_path = join(path, "request.host")
    if not host:
        match = _REGISTRY_ID_RE.search(registry_id)
        if match is None:
            raise f.error(host_path, f"is missing (and {registry_id_path} names no container registry)")
        host = f"{match.group(1).lower()}.azurecr.io"
        host_path = registry_id_path
    push = f.push(
        source="acr",
        event_id=event_id,
        action="push" if _ACTIONS[event_type] == "push" else "delete",
        registry=host,
        repository=repository,
        digest=digest,
        tag=tag,
        media_type=media_type,
        registry_path=host_path,
        repository_path=join(target_path, "repository"),
    )
    return WebhookResult(source="acr", pushes=(push,))


def event_grid_handshake(f: Fields, event: Mapping[str, Any], path: str) -> HandshakeReply:
    event_type = f.string(event, "eventType", path, max_chars=256)
    if event_type != VALIDATION_EVENT:
        raise f.error(join(path, "eventType"), f"is {clip(event_type)}, not {VALIDATION_EVENT} (validation request)")
    data = f.child_obj(event, "data", path)
    code = f.string(data, "validationCode", join(path, "data"), max_chars=MAX_VALIDATION_CODE_CHARS)
    return HandshakeReply.json_reply({"validationResponse": code})


def cloudevents_handshake(headers: Mapping[str, str]) -> HandshakeReply:
    """Answer the CloudEvents webhook validation request (``OPTIONS``); ``headers`` lower-cased."""
    f = Fields("CloudEvents validation request")
    origin = headers.get("webhook-request-origin", "").strip()
    if not origin:
        raise f.error("", "OPTIONS without a WebHook-Request-Origin header")
    if not _ORIGIN_RE.match(origin):
        raise f.error("header WebHook-Request-Origin", f"is not a DNS name: {clip(origin)}")
    return HandshakeReply(
        status=200,
        headers=(("WebHook-Allowed-Origin", origin), ("WebHook-Allowed-Rate", "*"), ("Allow", "POST, OPTIONS")),
        body=b"",
    )

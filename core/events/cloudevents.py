"""CloudEvents 1.0 over HTTP (structured single, structured batch, and binary mode) — only the envelope; what the
``data`` means is up to the adapter the ``type`` routes to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sigward.events._fields import Fields, clip, join, type_name
from sigward.events.models import MAX_EVENTS, MAX_WEBHOOK_BYTES
from sigward.jsonbody import parse_json_body

SPEC_VERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


@dataclass(frozen=True, slots=True)
class CloudEvent:
    id: str
    type: str
    source: str
    data: Any
    path: str  # where this event sits in the body ("" for a single event, "[3]" in a batch, "headers" in binary mode)

    def where(self, field: str) -> str:
        return join(self.path, field) if self.path else field


def looks_structured(doc: Any) -> bool:
    """Whether a decoded body is a structured CloudEvent or a batch of them."""
    if isinstance(doc, dict):
        return "specversion" in doc
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        return "specversion" in doc[0]
    return False


def structured_events(doc: Any, *, what: str = "CloudEvent") -> list[CloudEvent]:
    f = Fields(what)
    if isinstance(doc, list):
        items = f.array(doc, "", max_items=MAX_EVENTS)
        if not items:
            raise f.error("", "the batch is empty")
        return [_event(f, f.obj(item, f"[{i}]"), f"[{i}]") for i, item in enumerate(items)]
    return [_event(f, f.obj(doc, ""), "")]


def _event(f: Fields, event: Mapping[str, Any], path: str) -> CloudEvent:
    version = event.get("specversion")
    if version != SPEC_VERSION:
        if version is None:
            raise f.error(join(path, "specversion"), "is missing")
        shown = clip(version) if isinstance(version, str) else f"a {type_name(version)}"
        raise f.error(join(path, "specversion"), f"is {shown}, not {SPEC_VERSION!r}")
    return CloudEvent(
        id=f.event_id(event, "id", path),
        type=f.string(event, "type", path, max_chars=256),
        source=f.string(event, "source", path),
        data=event.get("data"),
        path=path,
    )


def binary_event(headers: Mapping[str, str], body: bytes, *, what: str = "CloudEvent") -> CloudEvent:
    """A binary-mode event: attributes in ``ce-*`` headers (already lower-cased), the data as the JSON body."""
    f = Fields(what)
    attrs = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    version = attrs.get("specversion", "")
    if version != SPEC_VERSION:
        raise f.error("header ce-specversion", f"is {clip(version)}, not {SPEC_VERSION!r}")
    data = parse_json_body(body, what=what, max_bytes=MAX_WEBHOOK_BYTES) if body.strip() else None
    return CloudEvent(
        id=f.check_event_id(attrs.get("id", ""), "header ce-id"),
        type=_header(f, attrs, "type"),
        source=_header(f, attrs, "source"),
        data=data,
        path="",
    )


def _header(f: Fields, attrs: Mapping[str, str], name: str) -> str:
    value = attrs.get(name, "")
    if not value:
        raise f.error(f"header ce-{name}", "is missing")
    if len(value) > 1024:
        raise f.error(f"header ce-{name}", "is longer than 1024 characters")
    return value

"""CNCF distribution (``registry``, Debian's ``docker-registry``) notifications.

Envelope ``{"events": [event, …]}`` with content type ``application/vnd.docker.distribution.events.v1+json``
(distribution v3 sends ``…events.v2+json``). An event (distribution ``notifications/bridge.go``)::

    {"id": UUID, "timestamp": …, "action": "push" | "pull" | "delete" | "mount",
     "target": {"mediaType", "digest", "size", "length", "repository", "url", "tag", "references"?},
     "request": {"id", "addr", "host", "method", "useragent"}, "actor": {…}, "source": {"addr", "instanceID"}}

A manifest push sets ``mediaType``, ``digest``, ``url`` (``…/v2/<repo>/manifests/<digest>``) and ``tag`` when pushed
by tag. Blob pushes arrive too (``url`` ``…/blobs/…``, a layer or config media type): only manifest and index media
types are kept. A manifest delete carries only ``repository`` and ``digest`` — exactly like a blob delete, so every
delete with a digest becomes a delete event (a blob digest simply matches no stored verdict); tag and repository
deletes (no digest) are ignored, as are pulls and mounts.

The registry host is ``request.host`` (the Host the client used, port included), else the host of ``target.url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sigward.events._fields import Fields, clip, join
from sigward.events.models import MAX_EVENTS, MAX_WEBHOOK_BYTES, WebhookResult, combine, is_manifest_media_type
from sigward.jsonbody import parse_json_body

CONTENT_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.events.v1+json",
        "application/vnd.docker.distribution.events.v2+json",
    }
)


def from_distribution(body: bytes) -> WebhookResult:
    """The pushes in a distribution notification envelope."""
    return distribution_document(parse_json_body(body, what="distribution notification", max_bytes=MAX_WEBHOOK_BYTES))


def distribution_document(doc: Any) -> WebhookResult:
    f = Fields("distribution notification")
    envelope = f.obj(doc, "")
    events = f.child_array(envelope, "events", "", max_items=MAX_EVENTS)
    results = []
    for i, item in enumerate(events):
        path = f"events[{i}]"
        event = f.obj(item, path)
        results.append(_event(f, event, path))
    return combine("distribution", results)


def _ignored(reason: str) -> WebhookResult:
    return WebhookResult(source="distribution", ignored=(reason,))


def _event(f: Fields, event: Mapping[str, Any], path: str) -> WebhookResult:
    action = f.string(event, "action", path, max_chars=32)
    if action not in ("push", "delete"):
        return _ignored(f"{path}: action {clip(action)} ignored")
    target = f.child_obj(event, "target", path)
    target_path = join(path, "target")
    repository = f.string(target, "repository", target_path, max_chars=256)
    if action == "delete" and target.get("digest") in (None, ""):
        return _ignored(f"{path}: delete of a tag or repository (no digest) ignored")
    digest = f.digest(target, "digest", target_path)
    media_type = f.string(target, "mediaType", target_path, required=False, max_chars=256)
    url = f.string(target, "url", target_path, required=False, max_chars=2048)
    if action == "push" and (not is_manifest_media_type(media_type) or "/blobs/" in url):
        return _ignored(f"{path}: push of a blob ({clip(media_type or 'no media type')}) ignored")
    tag = f.tag(target, "tag", target_path)
    event_id = f.event_id(event, "id", path)
    request = f.opt_obj(event, "request", path)
    host = f.string(request, "host", join(path, "request"), required=False, max_chars=256) if request else ""
    host_path = join(path, "request.host")
    if not host:
        host_path = join(target_path, "url")
        try:
            host = urlsplit(url).netloc.rpartition("@")[2] if url else ""
        except ValueError:
            host = ""
        if not host:
            raise f.error(host_path, "gives no registry host (and request.host is missing)")
    push = f.push(
        source="distribution",
        event_id=event_id,
        action="push" if action == "push" else "delete",
        registry=host,
        repository=repository,
        digest=digest,
        tag=tag,
        media_type=media_type,
        registry_path=host_path,
        repository_path=join(target_path, "repository"),
    )
    return WebhookResult(source="distribution", pushes=(push,))

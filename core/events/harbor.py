"""Harbor project webhooks, in the "Default" and the "CloudEvents" payload format (Harbor docs, "Configure Webhook
Notifications").

Default::

    {"type": "PUSH_ARTIFACT", "occur_at": 1680501893, "operator": "admin",
     "event_data": {"resources": [{"digest": "sha256:…", "tag": "3.8",
                                   "resource_url": "harbor.example.com/library/alpine:3.8"}],
                    "repository": {"date_created": …, "name": "alpine", "namespace": "library",
                                   "repo_full_name": "library/alpine", "repo_type": "private"}}}

CloudEvents: ``{"specversion": "1.0", "id", "requestid", "source": "/projects/2/webhook/policies/15",
"type": "harbor.artifact.pushed" | "harbor.artifact.deleted" | …, "time", "data": <event_data>, "operator"}``.

A push by digest reports the digest as the ``tag`` and a ``resource_url`` ending ``@sha256:…``: that is no tag.
The registry host is the first segment of ``resource_url`` (Harbor's configured external hostname, port included);
``repo_full_name`` is the repository path. ``PUSH_ARTIFACT``/``harbor.artifact.pushed`` → push,
``DELETE_ARTIFACT``/``harbor.artifact.deleted`` → delete; pulls, scans, quota, replication and retention events are
ignored. ``event_id`` is ``<occur_at>:<type>:<digest>`` for the default format (Harbor sends no id; redeliveries
keep ``occur_at``), the CloudEvent ``id`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sigward.events._fields import Fields, clip, join, type_name
from sigward.events.cloudevents import CloudEvent
from sigward.events.models import MAX_EVENTS, MAX_WEBHOOK_BYTES, WebhookResult, is_valid_tag
from sigward.jsonbody import parse_json_body

_DEFAULT_ACTIONS = {"PUSH_ARTIFACT": "push", "DELETE_ARTIFACT": "delete"}
_CLOUDEVENT_ACTIONS = {"harbor.artifact.pushed": "push", "harbor.artifact.deleted": "delete"}
HARBOR_TYPE_PREFIX = "harbor."


def from_harbor(body: bytes) -> WebhookResult:
    """The pushes in a Harbor webhook body in the Default format."""
    return harbor_document(parse_json_body(body, what="Harbor event", max_bytes=MAX_WEBHOOK_BYTES))


def looks_like_harbor(doc: Any) -> bool:
    return isinstance(doc, dict) and "type" in doc and "event_data" in doc


def harbor_document(doc: Any) -> WebhookResult:
    f = Fields("Harbor event")
    event = f.obj(doc, "")
    event_type = f.string(event, "type", "", max_chars=64)
    if event_type not in _DEFAULT_ACTIONS:
        return WebhookResult(source="harbor", ignored=(f"Harbor event: type {clip(event_type)} ignored",))
    occur_at = event.get("occur_at")
    if occur_at is None:
        raise f.error("occur_at", "is missing")
    if isinstance(occur_at, bool) or not isinstance(occur_at, int):
        raise f.error("occur_at", f"must be an integer (Unix seconds), not {type_name(occur_at)}")
    if occur_at < 0:
        raise f.error("occur_at", "must not be negative")
    event_data = f.child_obj(event, "event_data", "")

    def event_id(digest: str, _: int) -> str:
        return f"{occur_at}:{event_type}:{digest}"

    return _resources(f, event_data, "event_data", _DEFAULT_ACTIONS[event_type], event_id)


def harbor_cloudevent(event: CloudEvent) -> WebhookResult:
    f = Fields("Harbor CloudEvent")
    action = _CLOUDEVENT_ACTIONS.get(event.type)
    if action is None:
        return WebhookResult(source="harbor", ignored=(f"Harbor CloudEvent {event.id}: {clip(event.type)} ignored",))
    data = f.obj(event.data, event.where("data"))

    def event_id(digest: str, total: int) -> str:
        return event.id if total == 1 else f"{event.id}:{digest}"

    return _resources(f, data, event.where("data"), action, event_id)


def _resources(
    f: Fields,
    event_data: Mapping[str, Any],
    path: str,
    action: str,
    event_id_for: Callable[[str, int], str],
) -> WebhookResult:
    repository_doc = f.child_obj(event_data, "repository", path)
    repository = f.string(repository_doc, "repo_full_name", join(path, "repository"), max_chars=256)
    resources = f.child_array(event_data, "resources", path, max_items=MAX_EVENTS)
    if not resources:
        raise f.error(join(path, "resources"), "is empty")
    pushes = []
    for i, item in enumerate(resources):
        res_path = f"{join(path, 'resources')}[{i}]"
        resource = f.obj(item, res_path)
        digest = f.digest(resource, "digest", res_path)
        tag = f.string(resource, "tag", res_path, required=False, max_chars=256)
        if not is_valid_tag(tag):
            tag = ""  # a push by digest reports the digest as its "tag"
        url_path = join(res_path, "resource_url")
        url = f.string(resource, "resource_url", res_path, max_chars=2048)
        host = url.split("://", 1)[-1].split("/", 1)[0]
        rest = url.split("://", 1)[-1][len(host) + 1 :]
        if not rest.startswith(repository + ":") and not rest.startswith(repository + "@") and rest != repository:
            raise f.error(url_path, f"does not name repository {clip(repository)}: {clip(url)}")
        pushes.append(
            f.push(
                source="harbor",
                event_id=f.check_event_id(event_id_for(digest, len(resources)), res_path),
                action="push" if action == "push" else "delete",
                registry=host,
                repository=repository,
                digest=digest,
                tag=tag,
                registry_path=url_path,
                repository_path=join(path, "repository.repo_full_name"),
            )
        )
    return WebhookResult(source="harbor", pushes=tuple(pushes))

"""GitHub Packages webhooks for the container registry (``ghcr.io``).

Header ``X-GitHub-Event: registry_package`` (or the older ``package``, same payload under the key ``package``),
``X-GitHub-Delivery: <GUID>`` (kept across redeliveries: the event id), ``X-Hub-Signature-256`` (see
:mod:`sigward.events.auth`). Body (a real delivery, as posted in JRoy/disgit#3, and octokit/webhooks'
``registry_package/published`` example)::

    {"action": "published" | "updated",
     "registry_package": {"name": "repositoryname/frontend", "namespace": "noahvdaa",
                          "ecosystem": "CONTAINER", "package_type": "CONTAINER",
                          "owner": {"login": "NoahvdAa", …},
                          "package_version": {"version": "sha256:…", "name": "sha256:…",
                                              "container_metadata": {"tag": {"name": "v1", "digest": …},
                                                                     "manifest": {"media_type": …, …}, …},
                                              "package_url": "ghcr.io/noahvdaa/repositoryname/frontend:v1", …},
                          "registry": {"type": "CONTAINER", …}, …},
     "repository": {…}, "sender": {…}}

The package name may contain ``/``; the image is ``ghcr.io/<owner login, lower-cased>/<name, lower-cased>``.
``container_metadata.tag.name`` is ``""`` for an untagged version (a platform manifest of a multi-arch push, a
digest push); ``container_metadata.tag.digest`` is not reliable (octokit's example has a truncated one), so the
digest is ``package_version.version``. Packages of other types (npm, maven, …), other actions and other events
(``ping`` when the hook is created) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sigward.events._fields import Fields, clip, join, lower_headers
from sigward.events.models import MAX_WEBHOOK_BYTES, WebhookResult
from sigward.jsonbody import parse_json_body

GHCR_HOST = "ghcr.io"
EVENTS = {"registry_package": "registry_package", "package": "package"}
_ACTIONS = ("published", "updated")


def from_github(headers: Mapping[str, str], body: bytes) -> WebhookResult:
    """The pushes in a GitHub ``registry_package``/``package`` webhook delivery."""
    folded = lower_headers(headers)
    event = folded.get("x-github-event", "")
    if event not in EVENTS:
        return WebhookResult(
            source="github", ignored=(f"GitHub event {clip(event or 'without X-GitHub-Event')} ignored",)
        )
    doc = parse_json_body(body, what="GitHub event", max_bytes=MAX_WEBHOOK_BYTES)
    return github_document(doc, folded)


def github_document(doc: Any, headers: Mapping[str, str]) -> WebhookResult:
    """A decoded GitHub delivery; ``headers`` lower-cased."""
    f = Fields("GitHub event")
    event_name = headers.get("x-github-event", "")
    if event_name not in EVENTS:
        return WebhookResult(source="github", ignored=(f"GitHub event {clip(event_name)} ignored",))
    payload = f.obj(doc, "")
    action = f.string(payload, "action", "", max_chars=64)
    key = EVENTS[event_name]
    package = f.child_obj(payload, key, "")
    package_type = f.string(package, "package_type", key, max_chars=64)
    if package_type.lower() != "container":
        return WebhookResult(source="github", ignored=(f"GitHub package of type {clip(package_type)} ignored",))
    if action not in _ACTIONS:
        return WebhookResult(source="github", ignored=(f"GitHub {event_name} action {clip(action)} ignored",))
    delivery = headers.get("x-github-delivery", "")
    if not delivery:
        raise f.error("header X-GitHub-Delivery", "is missing")
    event_id = f.check_event_id(delivery, "header X-GitHub-Delivery")
    owner = f.child_obj(package, "owner", key)
    login = f.string(owner, "login", join(key, "owner"), max_chars=64)
    name = f.string(package, "name", key, max_chars=200)
    version_path = join(key, "package_version")
    version = f.child_obj(package, "package_version", key)
    digest = f.digest(version, "version", version_path)
    tag = ""
    media_type = ""
    metadata = f.opt_obj(version, "container_metadata", version_path)
    metadata_path = join(version_path, "container_metadata")
    if metadata is not None:
        tag_doc = f.opt_obj(metadata, "tag", metadata_path)
        if tag_doc is not None:
            tag = f.tag(tag_doc, "name", join(metadata_path, "tag"))
        manifest = f.opt_obj(metadata, "manifest", metadata_path)
        if manifest is not None:
            media_type = f.string(
                manifest, "media_type", join(metadata_path, "manifest"), required=False, max_chars=256
            )
    push = f.push(
        source="github",
        event_id=event_id,
        action="push",
        registry=GHCR_HOST,
        repository=f"{login.lower()}/{name.lower()}",
        digest=digest,
        tag=tag,
        media_type=media_type,
        registry_path="",
        repository_path=f"{join(key, 'owner.login')}/{join(key, 'name')}",
    )
    return WebhookResult(source="github", pushes=(push,))

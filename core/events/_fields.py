"""Typed reads of decoded JSON whose errors name the field path (``ECR event: detail.image-digest is missing``), and
the one place a :class:`PushEvent` is assembled from adapter fields."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sigward.errors import BadRequestError
from sigward.events.models import (
    MAX_EVENT_ID_CHARS,
    MAX_FIELD_CHARS,
    Action,
    PushEvent,
    Source,
    is_valid_tag,
)
from sigward.references import parse_image_reference, validate_digest

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def clip(value: str, limit: int = 80) -> str:
    """A value quoted for an error message, cut so a hostile payload cannot flood the log."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names folded to lower case (the first of several spellings wins)."""
    folded: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(name, str) and isinstance(value, str):
            folded.setdefault(name.lower(), value)
    return folded


def media_type_of(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class Fields:
    """Field reads for one kind of payload; ``what`` starts every message (``"ECR event"``)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def error(self, path: str, problem: str) -> BadRequestError:
        return BadRequestError(f"{self.what}: {path} {problem}" if path else f"{self.what}: {problem}")

    def obj(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            if not path:
                raise self.error("", f"expected a JSON object, not {type_name(value)}")
            raise self.error(path, f"must be an object, not {type_name(value)}")
        return value

    def array(self, value: Any, path: str, *, max_items: int) -> Sequence[Any]:
        if not isinstance(value, list):
            if not path:
                raise self.error("", f"expected a JSON array, not {type_name(value)}")
            raise self.error(path, f"must be an array, not {type_name(value)}")
        if len(value) > max_items:
            where = path or "the body"
            raise BadRequestError(f"{self.what}: {where} has {len(value)} entries, more than the limit of {max_items}")
        return value

    def child_obj(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        here = join(path, key)
        if key not in parent or parent[key] is None:
            raise self.error(here, "is missing")
        return self.obj(parent[key], here)

    def opt_obj(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        if parent.get(key) is None:
            return None
        return self.obj(parent[key], join(path, key))

    def child_array(self, parent: Mapping[str, Any], key: str, path: str, *, max_items: int) -> Sequence[Any]:
        here = join(path, key)
        if key not in parent or parent[key] is None:
            raise self.error(here, "is missing")
        return self.array(parent[key], here, max_items=max_items)

    def string(
        self,
        parent: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        max_chars: int = MAX_FIELD_CHARS,
    ) -> str:
        """A string field; a required one must be present and non-empty, an optional one reads ``""`` when absent
        or null."""
        here = join(path, key)
        value = parent.get(key)
        if value is None:
            if required:
                raise self.error(here, "is missing")
            return ""
        if not isinstance(value, str):
            raise self.error(here, f"must be a string, not {type_name(value)}")
        if required and not value:
            raise self.error(here, "is empty")
        if len(value) > max_chars:
            raise self.error(here, f"is longer than {max_chars} characters")
        return value

    def event_id(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value = self.string(parent, key, path, max_chars=MAX_EVENT_ID_CHARS)
        self.check_event_id(value, join(path, key))
        return value

    def check_event_id(self, value: str, path: str) -> str:
        if not value:
            raise self.error(path, "is empty")
        if len(value) > MAX_EVENT_ID_CHARS:
            raise self.error(path, f"is longer than {MAX_EVENT_ID_CHARS} characters")
        if _CONTROL_RE.search(value):
            raise self.error(path, "contains control characters")
        return value

    def digest(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        here = join(path, key)
        value = self.string(parent, key, path, max_chars=200)
        return self.check_digest(value, here)

    def check_digest(self, value: str, path: str) -> str:
        try:
            return validate_digest(value)
        except BadRequestError:
            raise self.error(path, f"is not a valid digest: {clip(value)} (expected sha256:<64 hex>)") from None

    def tag(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value = self.string(parent, key, path, required=False, max_chars=200)
        return self.check_tag(value, join(path, key))

    def check_tag(self, value: str, path: str) -> str:
        if value and not is_valid_tag(value):
            raise self.error(path, f"is not a valid tag: {clip(value)}")
        return value

    def push(
        self,
        *,
        source: Source,
        event_id: str,
        action: Action,
        registry: str,
        repository: str,
        digest: str,
        tag: str = "",
        media_type: str = "",
        referrer: bool = False,
        registry_path: str,
        repository_path: str,
    ) -> PushEvent:
        """Assemble a push after checking the registry host and repository path with the reference grammar, naming
        the field that is wrong."""
        registry = registry.lower()
        try:
            host_ref = parse_image_reference(f"{registry}/x")
        except BadRequestError:
            host_ref = None
        if host_ref is None or host_ref.registry != registry:
            raise self.error(
                registry_path,
                f"gives {clip(registry)}, not a registry host (a DNS name or IP with an optional port; a single-label "
                "name needs a port or must be 'localhost')",
            )
        try:
            repo_ref = parse_image_reference(f"{registry}/{repository}")
        except BadRequestError as exc:
            raise self.error(repository_path, f"is not a valid repository path: {exc}") from None
        if repo_ref.path != repository or repo_ref.tag != "latest" or repo_ref.digest:
            raise self.error(repository_path, f"is not a valid repository path: {clip(repository)}")
        try:
            return PushEvent(
                source=source,
                event_id=event_id,
                action=action,
                registry=registry,
                repository=repository,
                digest=digest,
                tag=tag,
                media_type=media_type,
                referrer=referrer,
            )
        except BadRequestError as exc:  # pragma: no cover - every field was checked above
            raise self.error("", str(exc)) from None

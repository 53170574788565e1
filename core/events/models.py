"""The normalized shape of a registry push (or delete) notification, whatever platform sent it.

Every adapter in :mod:`sigward.events` turns a platform's payload into :class:`PushEvent` values; the HTTP entry point
gets a :class:`WebhookResult` that carries either those pushes (possibly none: ignored events are listed with their
reason) or a :class:`HandshakeReply` to send back verbatim (Azure Event Grid's subscription validation).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sigward.errors import BadRequestError
from sigward.references import ImageReference, parse_image_reference, validate_digest
from sigward.registry.hints import subject_digest_of_tag

Source = Literal["gcr", "ecr", "acr", "distribution", "harbor", "github"]
Action = Literal["push", "delete"]
SOURCES: tuple[str, ...] = get_args(Source)
ACTIONS: tuple[str, ...] = get_args(Action)

# A webhook body larger than this is refused before parsing. Event Grid caps a delivery at 1 MB, EventBridge an
# event at 256 KB; a GitHub registry_package payload (the largest of the ones we take) is tens of KB.
MAX_WEBHOOK_BYTES = 1024 * 1024
# More events than this in one delivery are refused (a distribution envelope or an Event Grid batch; configure
# Event Grid's "max events per batch" at or below it). Harbor resources per event count against it too.
MAX_EVENTS = 100
# An event id longer than this is not one a platform generated.
MAX_EVENT_ID_CHARS = 256
# Any other string field longer than this is refused (repository names are <= 255, tags <= 128).
MAX_FIELD_CHARS = 1024

# Manifest and index media types: a push of one of these is an image (or a signature/attestation artifact) that can
# be verified; anything else a registry reports (layers, configs, blobs) is ignored.
MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.artifact.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.cncf.oras.artifact.manifest.v1+json",
    }
)

_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def is_manifest_media_type(media_type: str) -> bool:
    """Whether ``media_type`` (parameters ignored) names a manifest or index."""
    return media_type.split(";", 1)[0].strip().lower() in MANIFEST_MEDIA_TYPES


def is_valid_tag(tag: str) -> bool:
    return _TAG_RE.match(tag) is not None


def event_key(*, source: str, action: str, registry: str, repository: str, digest: str, delivery_id: str) -> str:
    """The one idempotency key of a push event (see :attr:`PushEvent.idempotency_key`); fields are joined with NUL,
    which none of them can contain, so no two field tuples share a key."""
    raw = "\x00".join(("sigward-event-v2", source, action, registry, repository, digest, delivery_id))
    return "ev2-" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class PushEvent:
    """One manifest pushed to (or deleted from) a registry.

    ``event_id`` is stable for one delivery and its redeliveries (the platform's own id), so a consumer can
    de-duplicate. ``referrer`` is set when the platform says the manifest refers to another one (an ECR Referrer
    Action): its subject is in the manifest's ``subject`` field, which the event itself does not carry.
    """

    source: Source
    event_id: str
    action: Action
    registry: str
    repository: str
    digest: str
    tag: str = ""
    media_type: str = ""
    referrer: bool = False

    def __post_init__(self) -> None:
        # A backstop for values built outside the adapters (which validate with precise field paths first).
        if self.source not in SOURCES:
            raise BadRequestError(f"push event: source {self.source!r} is not one of {list(SOURCES)}")
        if self.action not in ACTIONS:
            raise BadRequestError(f"push event: action {self.action!r} is not one of {list(ACTIONS)}")
        if not self.event_id or len(self.event_id) > MAX_EVENT_ID_CHARS:
            raise BadRequestError(f"push event: event_id must have 1 to {MAX_EVENT_ID_CHARS} characters")
        validate_digest(self.digest)
        if self.tag and not is_valid_tag(self.tag):
            raise BadRequestError(f"push event: invalid tag {self.tag!r}")
        ref = parse_image_reference(f"{self.registry}/{self.repository}@{self.digest}")
        if ref.registry != self.registry or ref.path != self.repository:
            raise BadRequestError(
                f"push event: {self.registry!r} / {self.repository!r} is not a registry host and repository path"
            )

    @property
    def idempotency_key(self) -> str:
        """What marks this event handled: source, action, registry, repository, digest and the source's own delivery
        id, hashed. An event about another repository, or a crafted one from another source reusing a delivery id,
        has another key and can never mark this push as already handled; a redelivery has the same key."""
        return event_key(
            source=self.source,
            action=self.action,
            registry=self.registry,
            repository=self.repository,
            digest=self.digest,
            delivery_id=self.event_id,
        )

    @property
    def image(self) -> ImageReference:
        """``registry/repository@digest``: what gets verified (the tag is informational)."""
        return parse_image_reference(f"{self.registry}/{self.repository}@{self.digest}")

    @property
    def subject_digest(self) -> str:
        """For a cosign ``sha256-<hex>.sig``/``.att``/``.sbom`` tag push: the digest of the image it is about. A
        ``cosign.source.tagPrefix`` tag is recognised by the push service, which knows the loaded policies."""
        return subject_digest_of_tag(self.tag)

    def json(self) -> dict[str, Any]:
        """A JSON-ready dict (golden tests, logs)."""
        return {
            "source": self.source,
            "event_id": self.event_id,
            "action": self.action,
            "registry": self.registry,
            "repository": self.repository,
            "digest": self.digest,
            "tag": self.tag,
            "media_type": self.media_type,
            "referrer": self.referrer,
            "image": self.image.reference,
            "subject_digest": self.subject_digest,
        }


@dataclass(frozen=True, slots=True)
class HandshakeReply:
    """An HTTP answer the sender requires verbatim before it delivers events (Event Grid subscription validation)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def json_reply(cls, doc: Any, status: int = 200) -> HandshakeReply:
        return cls(
            status=status,
            headers=(("Content-Type", "application/json"),),
            body=json.dumps(doc, separators=(",", ":")).encode(),
        )

    def json(self) -> dict[str, Any]:
        return {"status": self.status, "headers": dict(self.headers), "body": self.body.decode("utf-8", "replace")}


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What one webhook delivery meant: pushes to act on (maybe none), or a handshake to answer.

    ``ignored`` explains, one line per skipped event, why it was not turned into a push (a blob push, a pull, a
    failed ECR action, a package that is not a container, ...): for logs, never for the HTTP answer.
    """

    source: Source
    pushes: tuple[PushEvent, ...] = ()
    handshake: HandshakeReply | None = None
    ignored: tuple[str, ...] = ()

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"source": self.source, "pushes": [p.json() for p in self.pushes]}
        if self.handshake is not None:
            doc["handshake"] = self.handshake.json()
        if self.ignored:
            doc["ignored"] = list(self.ignored)
        return doc


def combine(source: Source, results: list[WebhookResult]) -> WebhookResult:
    """One result for a delivery that carried several events."""
    pushes = tuple(p for r in results for p in r.pushes)
    ignored = tuple(i for r in results for i in r.ignored)
    return WebhookResult(source=source, pushes=pushes, ignored=ignored)

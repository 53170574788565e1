"""OCI descriptors and manifests, parsed strictly from bytes whose digest has already been checked."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sigward.errors import BadRequestError, VerificationFailure
from sigward.references import validate_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
# What we ask for, most preferred first; schema 1 is deliberately absent (unsigned-digest, deprecated).
ACCEPTED_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
ACCEPT_HEADER = ", ".join(ACCEPTED_MEDIA_TYPES)

# A descriptor list longer than this is not an image or a signature manifest (images stay below 128 layers,
# indexes list a few platforms); refusing it bounds the work one hostile manifest can cause.
MAX_DESCRIPTORS = 4096
# Media types, artifact types and annotation keys are short tokens; a megabyte-long one is an attack on logs.
MAX_MEDIA_TYPE_LENGTH = 255
# A blob or manifest cannot be larger than this (2^53: JSON numbers beyond it lose precision).
MAX_DESCRIPTOR_SIZE = 2**53

_EMPTY: Mapping[str, str] = MappingProxyType({})


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def digests_equal(a: str, b: str) -> bool:
    """Digest comparison in constant time (cheap, and it removes one class of question)."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor. ``size`` is 0 when unknown (a digest given by the caller, not looked up)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    artifact_type: str = ""


def _fail(where: str, problem: str) -> VerificationFailure:
    return VerificationFailure(f"malformed manifest {where}: {problem}")


def _string(value: Any, where: str, name: str, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _fail(where, f"{name} must be a non-empty string" if required else f"{name} must be a string")
    if len(value) > MAX_MEDIA_TYPE_LENGTH:
        raise _fail(where, f"{name} is longer than {MAX_MEDIA_TYPE_LENGTH} characters")
    return value


def _annotations(value: Any, where: str) -> Mapping[str, str]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail(where, "annotations must map strings to strings")
    return MappingProxyType(dict(value))


def parse_descriptor(value: Any, where: str) -> Descriptor:
    """One descriptor from manifest JSON; raises :class:`VerificationFailure` naming ``where``."""
    if not isinstance(value, dict):
        raise _fail(where, "descriptor must be an object")
    media_type = _string(value.get("mediaType"), where, "mediaType", required=True)
    digest = value.get("digest")
    if not isinstance(digest, str):
        raise _fail(where, "digest must be a string")
    try:
        validate_digest(digest)
    except BadRequestError as exc:
        raise _fail(where, str(exc)) from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > MAX_DESCRIPTOR_SIZE:
        raise _fail(where, "size must be a non-negative integer")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        annotations=_annotations(value.get("annotations"), where),
        artifact_type=_string(value.get("artifactType"), where, "artifactType", required=False),
    )


@dataclass(frozen=True, slots=True)
class Manifest:
    """A fetched image manifest or index; ``raw`` hashes to ``digest`` (checked before parsing)."""

    media_type: str
    digest: str
    raw: bytes = field(repr=False)
    data: Mapping[str, Any] = field(repr=False, hash=False, compare=False)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def config(self) -> Descriptor | None:
        if self.is_index:
            return None
        return parse_descriptor(self.data.get("config"), f"{self.digest} config")

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        if self.is_index:
            return ()
        return self._descriptors("layers")

    @property
    def manifests(self) -> tuple[Descriptor, ...]:
        if not self.is_index:
            return ()
        return self._descriptors("manifests")

    @property
    def subject(self) -> Descriptor | None:
        value = self.data.get("subject")
        return None if value is None else parse_descriptor(value, f"{self.digest} subject")

    @property
    def annotations(self) -> Mapping[str, str]:
        return _annotations(self.data.get("annotations"), self.digest)

    @property
    def artifact_type(self) -> str:
        return _string(self.data.get("artifactType"), self.digest, "artifactType", required=False)

    def _descriptors(self, key: str) -> tuple[Descriptor, ...]:
        items = self.data.get(key)
        if items is None and key == "manifests":
            items = []
        if not isinstance(items, list):
            raise _fail(self.digest, f"{key} must be a list")
        if len(items) > MAX_DESCRIPTORS:
            raise _fail(self.digest, f"more than {MAX_DESCRIPTORS} {key}")
        return tuple(parse_descriptor(item, f"{self.digest} {key}[{i}]") for i, item in enumerate(items))

    def validate(self) -> None:
        """Parse every part once so later property access cannot fail; raises :class:`VerificationFailure`."""
        _ = (self.config, self.layers, self.manifests, self.subject, self.annotations, self.artifact_type)

    @classmethod
    def parse(cls, raw: bytes, *, digest: str, content_type: str, where: str) -> Manifest:
        """Build a manifest from verified bytes. ``where`` names the registry/repo/reference for messages."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            # ValueError covers bad UTF-8 and bad JSON; the message is position-only, never the content.
            raise VerificationFailure(f"malformed manifest {where}: not valid JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise VerificationFailure(f"malformed manifest {where}: not a JSON object")
        media_type = _media_type(data, content_type, where)
        schema = data.get("schemaVersion")
        if schema != 2 or isinstance(schema, bool):
            raise VerificationFailure(f"unsupported manifest {where}: schemaVersion must be 2")
        manifest = cls(media_type=media_type, digest=digest, raw=raw, data=MappingProxyType(data))
        try:
            manifest.validate()
        except VerificationFailure as exc:
            raise VerificationFailure(f"{exc} (in {where})") from None
        return manifest


def base_content_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _media_type(data: Mapping[str, Any], content_type: str, where: str) -> str:
    declared = data.get("mediaType")
    header = base_content_type(content_type)
    if declared is not None and not isinstance(declared, str):
        raise VerificationFailure(f"malformed manifest {where}: mediaType must be a string")
    if declared in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or header in (
        DOCKER_SCHEMA1,
        DOCKER_SCHEMA1_SIGNED,
    ):
        raise VerificationFailure(f"unsupported manifest {where}: Docker schema 1 manifests are not supported")
    if declared:
        if header in ACCEPTED_MEDIA_TYPES and header != declared:
            raise VerificationFailure(
                f"manifest {where} is served as {header} but declares mediaType {declared[:MAX_MEDIA_TYPE_LENGTH]}"
            )
        media_type = declared
    elif header in ACCEPTED_MEDIA_TYPES:
        media_type = header
    elif "manifests" in data:
        media_type = OCI_INDEX
    elif "config" in data or "layers" in data:
        media_type = OCI_MANIFEST
    else:
        media_type = header
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise VerificationFailure(
            f"unsupported manifest {where}: media type {media_type[:MAX_MEDIA_TYPE_LENGTH]!r} "
            "is not an OCI or Docker v2 image manifest or index"
        )
    if media_type in INDEX_MEDIA_TYPES and "layers" in data and "manifests" not in data:
        raise VerificationFailure(f"malformed manifest {where}: an index without manifests")
    return media_type

"""Container image references, parsed and normalized exactly as Kyverno does, and Kyverno's wildcard match.

Kyverno (``pkg/utils/image/infos.go``) prefixes ``docker.io/`` when the first path segment has no ``.`` or ``:``, is
not ``localhost`` and is all lower case, parses with the distribution reference grammar, defaults the tag to
``latest`` when there is neither tag nor digest, and renders ``registry/path@digest`` (the tag dropped) or
``registry/path:tag``. It does *not* insert ``library/``; that is only how Docker Hub's API spells official images, so
it lives in :meth:`ImageReference.api_repository`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from core.errors import BadRequestError
from core.patterns import wildcard_match as wildcard_match  # noqa: PLC0414 - explicit re-export of the one implementation

DEFAULT_REGISTRY = "docker.io"
# Docker Hub's API host; `docker.io` itself only redirects.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
# distribution/reference: a repository name may not exceed 255 characters.
MAX_NAME_LENGTH = 255
# A reference longer than this is not an image a human or a controller wrote; refuse before running any regex.
MAX_REFERENCE_LENGTH = 1024

# The grammar of github.com/distribution/reference (regexp.go).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN_AND_PORT = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN_AND_PORT})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$",
    re.ASCII,
)
# Digest algorithms go-digest knows, with the length of their lower-case hex encoding.
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX_RE = re.compile(r"^[a-f0-9]+$")


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed ``algorithm:hex`` digest that go-digest accepts."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep:
        raise BadRequestError(f"invalid digest {digest!r}: expected algorithm:hex")
    length = _DIGEST_HEX_LENGTH.get(algorithm)
    if length is None:
        raise BadRequestError(f"invalid digest {digest!r}: unsupported digest algorithm {algorithm!r}")
    if len(encoded) != length or not _HEX_RE.fullmatch(encoded):
        raise BadRequestError(f"invalid digest {digest!r}: {algorithm} needs {length} lower-case hex characters")
    return digest


def _api_host(registry: str) -> str:
    return DOCKER_HUB_API_HOST if registry in ("docker.io", "index.docker.io") else registry


@dataclass(frozen=True, slots=True)
class Repository:
    """A repository in a registry, e.g. where signatures are looked up (``repository`` in a policy)."""

    registry: str
    path: str

    @property
    def api_host(self) -> str:
        """The host that serves the registry API (Docker Hub's differs from its name)."""
        return _api_host(self.registry)

    @property
    def api_repository(self) -> str:
        """The repository name as the registry API spells it (``library/`` for Docker Hub official images)."""
        if self.api_host == DOCKER_HUB_API_HOST and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference. ``tag`` is ``""`` when only a digest was given."""

    registry: str
    path: str
    tag: str
    digest: str
    original: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def repository(self) -> str:
        """``registry/path``: the repository, as policies and signatures name it."""
        return f"{self.registry}/{self.path}"

    @property
    def reference(self) -> str:
        """Kyverno's ``ImageInfo.String()``: what ``imageReferences`` patterns are matched against."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"

    @property
    def reference_with_tag(self) -> str:
        return f"{self.repository}:{self.tag}"

    def with_digest(self, digest: str) -> ImageReference:
        return replace(self, digest=validate_digest(digest))

    def pinned(self, digest: str) -> str:
        """The value ``mutateDigest`` writes: ``registry/path:tag@digest`` (``registry/path@digest`` without tag)."""
        validate_digest(digest)
        if self.tag:
            return f"{self.repository}:{self.tag}@{digest}"
        return f"{self.repository}@{digest}"

    @property
    def repo(self) -> Repository:
        return Repository(registry=self.registry, path=self.path)

    def __str__(self) -> str:
        return self.reference


def _add_default_registry(image: str) -> str:
    slash = image.find("/")
    if slash == -1:
        return f"{DEFAULT_REGISTRY}/{image}"
    first = image[:slash]
    if not any(c in first for c in ".:") and first != "localhost" and first.lower() == first:
        return f"{DEFAULT_REGISTRY}/{image}"
    return image


def parse_image_reference(image: str) -> ImageReference:
    """Parse ``image`` as Kyverno does; raise :class:`BadRequestError` naming what is wrong."""
    if not isinstance(image, str) or not image:
        raise BadRequestError("invalid image reference: empty")
    if len(image) > MAX_REFERENCE_LENGTH:
        raise BadRequestError(f"invalid image reference: longer than {MAX_REFERENCE_LENGTH} characters")
    full = _add_default_registry(image)
    match = _REFERENCE_RE.fullmatch(full)
    if match is None:
        if _REFERENCE_RE.fullmatch(full.lower()) is not None:
            raise BadRequestError(f"invalid image reference {image!r}: repository name must be lowercase")
        raise BadRequestError(f"invalid image reference {image!r}: invalid reference format")
    domain = match.group("domain") or ""
    path = match.group("path")
    if not domain:
        # Only a first segment with "_" and "." gets here (a valid path component but not a valid domain);
        # Kyverno then takes that segment as the registry anyway.
        domain, _, path = path.partition("/")
    if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
        raise BadRequestError(
            f"invalid image reference {image!r}: repository name must not be more than {MAX_NAME_LENGTH} characters"
        )
    digest = match.group("digest") or ""
    if digest:
        try:
            validate_digest(digest)
        except BadRequestError as exc:
            raise BadRequestError(f"invalid image reference {image!r}: {exc}") from None
    tag = match.group("tag") or ""
    if not tag and not digest:
        tag = "latest"
    return ImageReference(registry=domain, path=path, tag=tag, digest=digest, original=image)


def parse_repository(value: str) -> Repository:
    """Parse a policy's ``repository`` (``registry/path``, no tag or digest) with the same rules as images."""
    ref = parse_image_reference(value)
    if ref.digest or ":" in value.rsplit("/", 1)[-1]:
        raise BadRequestError(f"invalid repository {value!r}: must not carry a tag or digest")
    return ref.repo


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern

"""Container image references, parsed as Kyverno does but with one spelling per registry, and Kyverno's wildcard match.

Kyverno (``pkg/utils/image/infos.go``) prefixes ``docker.io/`` when the first path segment has no ``.`` or ``:``, is
not ``localhost`` and is all lower case, parses with the distribution reference grammar, defaults the tag to
``latest`` when there is neither tag nor digest, and renders ``registry/path@digest`` (the tag dropped) or
``registry/path:tag``. It does *not* insert ``library/``; that is only how Docker Hub's API spells official images, so
it lives in :meth:`ImageReference.api_repository`.

Kyverno then compares patterns with that string as written, so ``Registry.Example.com/app``, ``host:443/app``,
``index.docker.io/library/nginx`` escape a pattern written for ``registry.example.com/*`` or ``docker.io/nginx*``.
sigward is stricter: the registry is normalized (lower case, no default ``:443``, Docker Hub's aliases are
``docker.io``, ``docker.io/library/x`` is ``docker.io/x``) before anything matches, patterns are normalized the same
way (:func:`normalize_pattern`), and :func:`image_covered` / :func:`image_skipped_by` decide with every spelling of
the image in mind. ``127.0.0.1`` and ``localhost`` stay different registries: only spelling is normalized, never
name resolution.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from sigward.errors import BadRequestError
from sigward.patterns import has_wildcard as has_wildcard  # noqa: PLC0414 - explicit re-export of the one implementation
from sigward.patterns import wildcard_match as wildcard_match  # noqa: PLC0414 - explicit re-export of the one implementation

DEFAULT_REGISTRY = "docker.io"
# Docker Hub's API host; `docker.io` itself only redirects.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
# Other names of Docker Hub a runtime pulls the same images from: the legacy index name and the API host.
DOCKER_HUB_ALIASES = frozenset({"index.docker.io", DOCKER_HUB_API_HOST})
# The port HTTPS implies: `host:443` and `host` are one registry endpoint.
DEFAULT_HTTPS_PORT_SUFFIX = ":443"
# How Docker Hub's API spells official images (`nginx` is `library/nginx`).
OFFICIAL_NAMESPACE = "library/"
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
# The distribution spec's tag grammar, ASCII only: ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``.
MAX_TAG_LENGTH = 128
_TAG_PREFIX_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# cosign's longest tag for a sha256 subject (``sha256-<64 hex>.sbom``): a prefix longer than the rest of the budget
# names tags no registry accepts.
MAX_TAG_PREFIX_LENGTH = MAX_TAG_LENGTH - len("sha256-") - 64 - len(".sbom")


def tag_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot start a cosign signature tag (cosign's ``WithPrefix``), or None when it can."""
    if len(prefix) > MAX_TAG_PREFIX_LENGTH:
        return f"must be at most {MAX_TAG_PREFIX_LENGTH} characters (a tag is at most {MAX_TAG_LENGTH})"
    if not _TAG_PREFIX_RE.fullmatch(prefix):
        return "must be a tag-name prefix: ASCII letters, digits, '_', '.', '-', not starting with '.' or '-'"
    return None


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
    return DOCKER_HUB_API_HOST if registry == DEFAULT_REGISTRY or registry in DOCKER_HUB_ALIASES else registry


def normalize_registry(registry: str) -> str:
    """One spelling per registry: lower case (host names are case-insensitive), no explicit default HTTPS port,
    Docker Hub's aliases as ``docker.io``. A dot-less host that is a registry only by its capitals keeps them (its
    lower-case spelling would name a Docker Hub namespace). Total: also applied to the registry part of patterns."""
    host = registry.lower()
    if not _is_registry_segment(host):
        # `MyHost/app` names host MyHost only because of its capitals; `myhost/app` would be Docker Hub's.
        return registry
    if host.endswith(DEFAULT_HTTPS_PORT_SUFFIX):
        host = host[: -len(DEFAULT_HTTPS_PORT_SUFFIX)]
    return DEFAULT_REGISTRY if host in DOCKER_HUB_ALIASES else host


def normalize_registry_host(host: str) -> str:
    """A registry named on its own (an operator's ``SIGWARD_*_REGISTRIES`` entry, a connection's ``host[:port]``)
    spelled as :func:`normalize_registry` spells an image's registry, so ``Host:443`` and ``host`` are one registry.
    Unlike an image's first segment, a name given as a host is a host whatever its case."""
    host = host.strip().lower().rstrip(".")
    if host.count(":") > 1 and not host.startswith("["):
        return host  # a bare IPv6 literal: its last group is not a port
    if host.endswith(DEFAULT_HTTPS_PORT_SUFFIX):
        host = host[: -len(DEFAULT_HTTPS_PORT_SUFFIX)].rstrip(".")
    return DEFAULT_REGISTRY if host in DOCKER_HUB_ALIASES else host


def _normalize_path(registry: str, path: str) -> str:
    """``docker.io/library/nginx`` is ``docker.io/nginx``: the short form is what Kyverno renders for ``nginx``."""
    if registry == DEFAULT_REGISTRY and path.startswith(OFFICIAL_NAMESPACE):
        rest = path[len(OFFICIAL_NAMESPACE) :]
        if rest and "/" not in rest:
            return rest
    return path


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
    """A parsed image reference, registry and path normalized. ``tag`` is ``""`` when only a digest was given;
    ``written`` is the repository as the resource spelled it (Kyverno's form, ``docker.io/`` added), which is what
    a digest patch keeps so that the runtime and its pull secrets see the same name."""

    registry: str
    path: str
    tag: str
    digest: str
    original: str
    written: str = ""

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
        """The value ``mutateDigest`` writes: ``registry/path:tag@digest`` (``registry/path@digest`` without tag),
        in the resource's own spelling of the repository (as Kyverno does): the digest pins the content, and a
        rewritten host could change which pull secret the kubelet picks."""
        validate_digest(digest)
        repository = self.written or self.repository
        if self.tag:
            return f"{repository}:{self.tag}@{digest}"
        return f"{repository}@{digest}"

    @property
    def aliases(self) -> tuple[str, ...]:
        """The normalized reference and, for a Docker Hub official image, its ``library/`` form: the same image
        under every name a runtime pulls it by (a tag beside a digest is not part of it)."""
        if self.registry == DEFAULT_REGISTRY and "/" not in self.path:
            return (
                self.reference,
                f"{DEFAULT_REGISTRY}/{OFFICIAL_NAMESPACE}{self.reference[len(DEFAULT_REGISTRY) + 1 :]}",
            )
        return (self.reference,)

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every string this image is matched as: the normalized reference first, then the same with the tag
        written beside a digest (``r/p:t@d``, ``r/p:t``), each also in Docker Hub's ``library/`` form."""
        forms = [self.reference]
        if self.digest and self.tag:
            forms += [f"{self.repository}:{self.tag}@{self.digest}", self.reference_with_tag]
        if self.registry == DEFAULT_REGISTRY and "/" not in self.path:
            prefix = f"{DEFAULT_REGISTRY}/"
            forms += [f"{prefix}{OFFICIAL_NAMESPACE}{f[len(prefix) :]}" for f in forms]
        return tuple(forms)

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
    registry = normalize_registry(domain)
    return ImageReference(
        registry=registry,
        path=_normalize_path(registry, path),
        tag=tag,
        digest=digest,
        original=image,
        written=f"{domain}/{path}",
    )


def parse_repository(value: str) -> Repository:
    """Parse a policy's ``repository`` (``registry/path``, no tag or digest) with the same rules as images."""
    ref = parse_image_reference(value)
    if ref.digest or ":" in value.rsplit("/", 1)[-1]:
        raise BadRequestError(f"invalid repository {value!r}: must not carry a tag or digest")
    return ref.repo


# Distinct patterns whose normalized forms are remembered; policies hold a few dozen, so this is never reached in
# practice and only bounds memory if something feeds patterns from elsewhere.
MAX_CACHED_PATTERNS = 4096
_BARE_NAME_RE = re.compile(rf"{_PATH_COMPONENT}", re.ASCII)


def _is_registry_segment(first: str) -> bool:
    """Kyverno's test of a first path segment (see ``_add_default_registry``)."""
    return any(c in first for c in ".:") or first == "localhost" or first.lower() != first


def normalize_pattern(pattern: str, *, short_names: bool = True) -> str:
    """An image pattern with its registry part spelled as :func:`normalize_registry` spells images.

    A wildcard-free registry segment is normalized; a first segment with a wildcard and a ``.`` or ``:`` (a host
    pattern such as ``*.Example.com``) is only lower-cased (what its literal characters match lies before a ``/``,
    where normalized references are lower case). A pattern
    without a registry (``nginx:*``, ``team/*``) names Docker Hub: with ``short_names`` it gets ``docker.io/`` (Kyverno
    never matches such a pattern, since images are compared in full form); without, it is left as is, which keeps
    ``skipImageReferences`` as narrow as in Kyverno. Total: never raises."""
    slash = pattern.find("/")
    if slash == -1:
        name = re.split(r"[:@]", pattern, maxsplit=1)[0]
        if short_names and name and _BARE_NAME_RE.fullmatch(name):
            return f"{DEFAULT_REGISTRY}/{pattern}"
        return pattern
    first, rest = pattern[:slash], pattern[slash:]
    if has_wildcard(first):
        return (first.lower() if any(c in first for c in ".:") else first) + rest
    if _is_registry_segment(first):
        return normalize_registry(first) + rest
    if short_names and _BARE_NAME_RE.fullmatch(first):
        return f"{DEFAULT_REGISTRY}/{pattern}"
    return pattern


@lru_cache(maxsize=MAX_CACHED_PATTERNS)
def _covering_forms(pattern: str) -> tuple[str, ...]:
    normal = normalize_pattern(pattern, short_names=True)
    if normal.endswith(":*"):  # "any tag" also covers the same repository pinned by digest alone
        return (normal, normal[:-2] + "@*")
    return (normal,)


@lru_cache(maxsize=MAX_CACHED_PATTERNS)
def _skipping_form(pattern: str) -> str:
    return normalize_pattern(pattern, short_names=False)


def image_covered(patterns: Iterable[str], ref: ImageReference) -> bool:
    """Does an ``imageReferences`` list select ``ref``? Yes when any pattern matches any spelling of the image (the
    normalized reference, the tag written beside its digest, Docker Hub's ``library/`` form): however the resource
    spells an image, it is verified whenever some spelling of it is named."""
    spellings = ref.spellings
    return any(wildcard_match(form, s) for p in patterns for form in _covering_forms(p) for s in spellings)


def image_skipped_by(patterns: Iterable[str], ref: ImageReference) -> bool:
    """Does a ``skipImageReferences`` list exempt ``ref``? Only by what the runtime pulls (the normalized reference
    or its ``library/`` alias), never by a tag written beside a digest, which nothing verifies."""
    aliases = ref.aliases
    return any(wildcard_match(_skipping_form(p), a) for p in patterns for a in aliases)

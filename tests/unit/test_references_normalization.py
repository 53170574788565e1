"""One registry, one spelling: image references and policy patterns are normalized before they are matched, so a
pattern cannot be escaped by spelling the same registry differently (issue 12 §1). Regression tests for that bug
class are named ``test_spelling_bypass_*``."""

from __future__ import annotations

import pytest

from sigward.references import (
    image_covered,
    image_skipped_by,
    normalize_pattern,
    normalize_registry,
    parse_image_reference,
)

DIGEST = "sha256:" + "ab" * 32

# image as written, normalized reference, what a digest patch keeps as the repository
NORMALIZE_CASES = [
    ("Registry.Example.com/team/app:v1", "registry.example.com/team/app:v1", "Registry.Example.com/team/app"),
    ("registry.example.com:443/team/app:v1", "registry.example.com/team/app:v1", "registry.example.com:443/team/app"),
    ("REGISTRY.example.com:443/team/app", "registry.example.com/team/app:latest", None),
    ("LOCALHOST:5000/team/app:v1", "localhost:5000/team/app:v1", "LOCALHOST:5000/team/app"),
    ("index.docker.io/nginx:1", "docker.io/nginx:1", "index.docker.io/nginx"),
    ("registry-1.docker.io/library/nginx:1", "docker.io/nginx:1", "registry-1.docker.io/library/nginx"),
    ("docker.io/library/nginx", "docker.io/nginx:latest", "docker.io/library/nginx"),
    ("library/nginx:1", "docker.io/nginx:1", "docker.io/library/nginx"),
    ("nginx:1", "docker.io/nginx:1", "docker.io/nginx"),
    (f"nginx:1@{DIGEST}", f"docker.io/nginx@{DIGEST}", "docker.io/nginx"),
    ("index.docker.io:443/team/app:v1", "docker.io/team/app:v1", None),
    # Not spelling: other ports, other hosts, deeper library paths stay what they are.
    ("registry.example.com:5000/app", "registry.example.com:5000/app:latest", None),
    ("registry.example.com:80/app", "registry.example.com:80/app:latest", None),
    ("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app:latest", None),
    ("docker.io/library/x/y", "docker.io/library/x/y:latest", None),
    ("quay.io/library/nginx", "quay.io/library/nginx:latest", None),
    ("docker.io.example.com/app", "docker.io.example.com/app:latest", None),
]


@pytest.mark.parametrize(("image", "reference", "written"), NORMALIZE_CASES)
def test_reference_is_normalized(image: str, reference: str, written: str | None) -> None:
    ref = parse_image_reference(image)
    assert ref.reference == reference
    assert ref.original == image
    if written is not None:
        assert ref.written == written
    again = parse_image_reference(ref.reference)
    assert again.reference == ref.reference  # idempotent


def test_docker_hub_aliases_resolve_at_docker_hub_api_host() -> None:
    for image in ("index.docker.io/nginx", "registry-1.docker.io/library/nginx", "nginx", "docker.io:443/nginx"):
        ref = parse_image_reference(image)
        assert ref.repo.api_host == "registry-1.docker.io"
        assert ref.repo.api_repository == "library/nginx"


PIN_CASES = [
    # The patch keeps the resource's own spelling of the repository (pull secrets are keyed by it); Kyverno's
    # docker.io/ prefix for short names is kept as before.
    ("LOCALHOST:5000/team/app:v1", f"LOCALHOST:5000/team/app:v1@{DIGEST}"),
    ("registry.example.com:443/app", f"registry.example.com:443/app:latest@{DIGEST}"),
    ("index.docker.io/library/nginx:1", f"index.docker.io/library/nginx:1@{DIGEST}"),
    ("nginx:1", f"docker.io/nginx:1@{DIGEST}"),
]


@pytest.mark.parametrize(("image", "pinned"), PIN_CASES)
def test_pinned_keeps_the_resource_spelling(image: str, pinned: str) -> None:
    ref = parse_image_reference(image)
    assert ref.pinned(DIGEST) == pinned
    assert parse_image_reference(pinned).repository == ref.repository


PATTERN_CASES = [
    # pattern, normalized for imageReferences, normalized for skipImageReferences
    ("Registry.Example.com/*", "registry.example.com/*", "registry.example.com/*"),
    ("registry.example.com:443/team/*", "registry.example.com/team/*", "registry.example.com/team/*"),
    ("index.docker.io/nginx:*", "docker.io/nginx:*", "docker.io/nginx:*"),
    ("registry-1.docker.io/library/*", "docker.io/library/*", "docker.io/library/*"),
    ("LOCALHOST:5000/*", "localhost:5000/*", "localhost:5000/*"),
    ("*.Example.COM/*", "*.example.com/*", "*.example.com/*"),
    ("nginx:*", "docker.io/nginx:*", "nginx:*"),
    ("nginx", "docker.io/nginx", "nginx"),
    ("team/*", "docker.io/team/*", "team/*"),
    # already normal, or nothing to normalize
    ("*", "*", "*"),
    ("ghcr.io/org/*", "ghcr.io/org/*", "ghcr.io/org/*"),
    ("docker.io/nginx:*", "docker.io/nginx:*", "docker.io/nginx:*"),
    ("registry.example.com:5000/*", "registry.example.com:5000/*", "registry.example.com:5000/*"),
    ("ngin*", "ngin*", "ngin*"),
    ("", "", ""),
]


@pytest.mark.parametrize(("pattern", "covering", "skipping"), PATTERN_CASES)
def test_pattern_normalization(pattern: str, covering: str, skipping: str) -> None:
    assert normalize_pattern(pattern) == covering
    assert normalize_pattern(pattern, short_names=False) == skipping
    assert normalize_pattern(covering) == covering  # idempotent


def test_normalize_registry_only_normalizes_spelling() -> None:
    assert normalize_registry("Docker.IO") == "docker.io"
    assert normalize_registry("index.docker.io:443") == "docker.io"
    assert normalize_registry("localhost:443") == "localhost"
    assert normalize_registry("127.0.0.1") == "127.0.0.1"  # never resolved or merged with localhost
    assert normalize_registry("localhost:4430") == "localhost:4430"


# pattern, image spellings that must all be selected by it
BYPASS_CASES = [
    ("registry.example.com/team/*", ["Registry.Example.com/team/app:v1", "REGISTRY.EXAMPLE.COM:443/team/app"]),
    ("Registry.Example.com/team/*", ["registry.example.com/team/app:v1", "registry.example.com:443/team/app"]),
    ("registry.example.com:443/team/*", ["registry.example.com/team/app", "Registry.example.com/team/app"]),
    (
        "docker.io/nginx:*",
        ["nginx:1", "index.docker.io/nginx:1", "registry-1.docker.io/library/nginx:1", "docker.io/library/nginx"],
    ),
    ("docker.io/library/nginx:*", ["nginx:1", "index.docker.io/nginx:1", "docker.io/nginx"]),
    ("index.docker.io/library/*", ["nginx", "docker.io/busybox:1"]),
    ("nginx:*", ["nginx:1", "docker.io/library/nginx:1"]),
    # "any tag" also covers the same repository pinned by digest, with or without a tag beside it
    ("ghcr.io/org/app:*", [f"ghcr.io/org/app@{DIGEST}", f"ghcr.io/org/app:v1@{DIGEST}", "ghcr.io/org/app:v1"]),
    # a tag written beside a digest is one more spelling to cover
    ("ghcr.io/org/app:v1", [f"ghcr.io/org/app:v1@{DIGEST}"]),
    ("ghcr.io/org/app:v1@*", [f"ghcr.io/org/app:v1@{DIGEST}"]),
]


@pytest.mark.parametrize(("pattern", "images"), BYPASS_CASES)
def test_spelling_bypass_image_references(pattern: str, images: list[str]) -> None:
    for image in images:
        assert image_covered([pattern], parse_image_reference(image)), image


# pattern, images it must NOT select (other registries, not other spellings)
NOT_COVERED_CASES = [
    ("localhost:5000/team/*", ["127.0.0.1:5000/team/app", "localhost:5001/team/app", "localhost/team/app"]),
    ("registry.example.com/team/*", ["registry.example.com:5000/team/app", "registry.example.co/team/app"]),
    ("docker.io/nginx:*", ["quay.io/nginx:1", "docker.io/team/nginx:1", "docker.io/library/x/nginx:1"]),
    ("ghcr.io/org/app:v1", [f"ghcr.io/org/app:v2@{DIGEST}", f"ghcr.io/org/app@{DIGEST}"]),
]


@pytest.mark.parametrize(("pattern", "images"), NOT_COVERED_CASES)
def test_spelling_bypass_other_registries_stay_other(pattern: str, images: list[str]) -> None:
    for image in images:
        assert not image_covered([pattern], parse_image_reference(image)), image


SKIP_CASES = [
    # pattern, image, skipped
    ("registry.example.com/team/debug-*", "Registry.Example.com:443/team/debug-app:v1", True),
    ("docker.io/library/busybox:*", "busybox:1", True),
    ("index.docker.io/busybox:*", "docker.io/library/busybox:1", True),
    # the tag beside a digest is the requester's text, not what runs: it never earns a skip
    ("ghcr.io/org/app:debug*", f"ghcr.io/org/app:debug@{DIGEST}", False),
    ("ghcr.io/org/app:*", f"ghcr.io/org/app@{DIGEST}", False),
    # a skip pattern without registry matches nothing, as in Kyverno
    ("busybox:*", "busybox:1", False),
    ("localhost:5000/*", "127.0.0.1:5000/app", False),
]


@pytest.mark.parametrize(("pattern", "image", "skipped"), SKIP_CASES)
def test_spelling_bypass_skip_image_references(pattern: str, image: str, skipped: bool) -> None:
    assert image_skipped_by([pattern], parse_image_reference(image)) is skipped


def test_normalize_pattern_is_total_on_hostile_text() -> None:
    for pattern in ("/", "//", ":443/", "@", "*/*/*", "A" * 5000 + "/x", "\x00/x", "é.COM:443/x"):
        normal = normalize_pattern(pattern)
        assert normalize_pattern(normal) == normal

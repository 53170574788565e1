"""Image references parsed and rendered as Kyverno does (pkg/utils/image/infos_test.go cases) and its wildcard
match (ext/wildcard/match_test.go cases)."""

from __future__ import annotations

import pytest

from sigward.errors import BadRequestError
from sigward.references import parse_image_reference, parse_repository, validate_digest, wildcard_match

DIGEST = "sha256:dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f"

# input, registry, path, tag, digest, reference (ImageInfo.String()), reference_with_tag
PARSE_CASES = [
    ("nginx", "docker.io", "nginx", "latest", "", "docker.io/nginx:latest", "docker.io/nginx:latest"),
    ("nginx:v10.3", "docker.io", "nginx", "v10.3", "", "docker.io/nginx:v10.3", "docker.io/nginx:v10.3"),
    (
        "docker.io/test/nginx:v10.3",
        "docker.io",
        "test/nginx",
        "v10.3",
        "",
        "docker.io/test/nginx:v10.3",
        None,
    ),
    ("test/nginx", "docker.io", "test/nginx", "latest", "", "docker.io/test/nginx:latest", None),
    (
        "localhost:4443/test/nginx",
        "localhost:4443",
        "test/nginx",
        "latest",
        "",
        "localhost:4443/test/nginx:latest",
        None,
    ),
    (
        f"docker.io/test/centos@{DIGEST}",
        "docker.io",
        "test/centos",
        "",
        DIGEST,
        f"docker.io/test/centos@{DIGEST}",
        "docker.io/test/centos:",
    ),
    (
        "localhost/netd:v0.4.4-gke.0",
        "localhost",
        "netd",
        "v0.4.4-gke.0",
        "",
        "localhost/netd:v0.4.4-gke.0",
        None,
    ),
    # A tag and a digest: the digest wins in the rendered reference (the tag is kept for mutateDigest).
    (f"ghcr.io/org/app:1.2@{DIGEST}", "ghcr.io", "org/app", "1.2", DIGEST, f"ghcr.io/org/app@{DIGEST}", None),
    # Ports and IP registries.
    ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000", "a/b", "c", "", "127.0.0.1:5000/a/b:c", None),
    ("[::1]:5000/a/b", "[::1]:5000", "a/b", "latest", "", "[::1]:5000/a/b:latest", None),
    # An upper-case first segment is a registry host, not a Docker Hub namespace; sigward lower-cases hosts
    # (except a dot-less one, whose lower-case spelling would be a Docker Hub namespace).
    ("Registry.Example/app", "registry.example", "app", "latest", "", "registry.example/app:latest", None),
    ("MyHost/app", "MyHost", "app", "latest", "", "MyHost/app:latest", None),
    ("gcr.io/project/sub/app:v1", "gcr.io", "project/sub/app", "v1", "", "gcr.io/project/sub/app:v1", None),
    # "_" is no valid domain character, but Kyverno still takes such a first segment as the registry.
    ("a-b.c_d/e__f/g-h:V_1.0", "a-b.c_d", "e__f/g-h", "V_1.0", "", "a-b.c_d/e__f/g-h:V_1.0", None),
]


@pytest.mark.parametrize(("image", "registry", "path", "tag", "digest", "reference", "with_tag"), PARSE_CASES)
def test_parse_like_kyverno(
    image: str, registry: str, path: str, tag: str, digest: str, reference: str | None, with_tag: str | None
) -> None:
    ref = parse_image_reference(image)
    assert (ref.registry, ref.path, ref.tag, ref.digest) == (registry, path, tag, digest)
    if reference is not None:
        assert ref.reference == reference
        assert str(ref) == reference
    if with_tag is not None:
        assert ref.reference_with_tag == with_tag
    assert ref.original == image


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("++", "invalid reference format"),
        ("", "empty"),
        ("Nginx", "must be lowercase"),
        ("docker.io/Test/nginx", "must be lowercase"),
        ("nginx:", "invalid reference format"),
        ("nginx@sha256:abc", "invalid reference format"),
        (f"nginx@sha256:{'A' * 64}", "lower-case hex"),
        (f"nginx@md5:{'a' * 32}", "unsupported digest algorithm"),
        (f"nginx@sha256:{'a' * 63}", "needs 64 lower-case hex"),
        (f"nginx@sha256:{'a' * 31}", "invalid reference format"),
        ("nginx:" + "t" * 129, "invalid reference format"),
        ("a/" + "b" * 260, "not be more than 255"),
        ("x" * 2000, "longer than"),
        ("ghcr.io//app", "invalid reference format"),
        ("ghcr.io/app/", "invalid reference format"),
        ("ghcr.io/app:tag with space", "invalid reference format"),
    ],
)
def test_parse_errors_are_precise(image: str, message: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_image_reference(image)
    assert message in str(info.value)


def test_docker_hub_api_location() -> None:
    official = parse_image_reference("nginx")
    assert official.repo.api_host == "registry-1.docker.io"
    assert official.repo.api_repository == "library/nginx"
    user = parse_image_reference("test/nginx")
    assert user.repo.api_repository == "test/nginx"
    other = parse_image_reference("ghcr.io/nginx")
    assert (other.repo.api_host, other.repo.api_repository) == ("ghcr.io", "nginx")


def test_pinned_keeps_tag() -> None:
    ref = parse_image_reference("ghcr.io/org/app:1.2")
    assert ref.pinned(DIGEST) == f"ghcr.io/org/app:1.2@{DIGEST}"
    assert parse_image_reference(f"ghcr.io/org/app@{DIGEST}").pinned(DIGEST) == f"ghcr.io/org/app@{DIGEST}"
    with pytest.raises(BadRequestError):
        ref.pinned("sha256:nothex")


def test_repository_parsing() -> None:
    assert str(parse_repository("ghcr.io/org/signatures")) == "ghcr.io/org/signatures"
    assert str(parse_repository("org/signatures")) == "docker.io/org/signatures"
    for bad in ("ghcr.io/org/sigs:v1", f"ghcr.io/org/sigs@{DIGEST}"):
        with pytest.raises(BadRequestError):
            parse_repository(bad)


def test_validate_digest() -> None:
    assert validate_digest(DIGEST) == DIGEST
    for bad in ("sha256", "sha256:", "sha512:" + "a" * 64, "foo:bar"):
        with pytest.raises(BadRequestError):
            validate_digest(bad)


# Kyverno's ext/wildcard test table: `*` any run, `?` exactly one character, anchored.
WILDCARD_CASES = [
    ("*", "s3:GetObject", True),
    ("", "s3:GetObject", False),
    ("", "", True),
    ("s3:*", "s3:ListMultipartUploadParts", True),
    ("s3:ListBucketMultipartUploads", "s3:ListBucket", False),
    ("s3:ListBucket", "s3:ListBucket", True),
    ("my-bucket/oo*", "my-bucket/oo", True),
    ("my-bucket/In*", "my-bucket/India/Karnataka/", True),
    ("my-bucket/In*", "my-bucket/Karnataka/India/", False),
    ("my-bucket/In*/Ka*/Ban", "my-bucket/India/Karnataka/Ban", True),
    ("my-bucket/In*/Ka*/Ban", "my-bucket/India/Karnataka/Ban/Ban/Ban/Ban/Ban", True),
    ("my-bucket/In*/Ka*/Ban", "my-bucket/India/Karnataka/Area1/Area2/Area3/Ban", True),
    ("my-bucket/In*/Ka*/Ban", "my-bucket/India/Karnataka/Bangalore", False),
    ("my-bucket/In*/Ka*/Ban*", "my-bucket/India/Karnataka/Bangalore", True),
    ("my-bucket/oo*", "my-bucket/odo", False),
    ("my-bucket?/abc*", "mybucket/abc", False),
    ("my-bucket?/abc*", "my-bucket1/abc", True),
    ("my-?-bucket/abc*", "my--bucket/abc", False),
    ("my-?-bucket/abc*", "my-1-bucket/abc", True),
    ("my??bucket/abc*", "mybucket/abc", False),
    ("my??bucket/abc*", "my4abucket/abc", True),
    ("my-bucket?abc*", "my-bucket/abc", True),
    ("my-bucket/abc?efg", "my-bucket/abc/efg", True),
    ("my-bucket/abc????", "my-bucket/abc", False),
    ("my-bucket/abc????", "my-bucket/abcdefg", True),
    ("my-bucket/abc?", "my-bucket/abcde", False),
    ("my-bucket/mnop*?", "my-bucket/mnop", False),
    ("my-bucket/mnop*?and", "my-bucket/mnopqand", True),
    ("my-bucket/mnop*?and", "my-bucket/mnopand", False),
    ("my-bucket/mnop*?and?", "my-bucket/mnopqanda", True),
    # Image patterns: `*` spans `/`, `:` and `@`; a tag pattern does not match a digest-pinned reference.
    ("ghcr.io/kyverno/*", "ghcr.io/kyverno/test-verify-image:signed", True),
    ("ghcr.io/x/app:*", f"ghcr.io/x/app@{DIGEST}", False),
    ("ghcr.io/x/app*", f"ghcr.io/x/app@{DIGEST}", True),
    ("*", f"docker.io/nginx@{DIGEST}", True),
    ("docker.io/nginx:*", "docker.io/nginx:latest", True),
    ("nginx:*", "docker.io/nginx:latest", False),
    ("ghcr.io/x/app.*", "ghcr.io/x/appXv1", False),  # `.` is literal
    ("GHCR.io/*", "ghcr.io/a:b", False),  # case-sensitive
]


@pytest.mark.parametrize(("pattern", "text", "expected"), WILDCARD_CASES)
def test_wildcard_match(pattern: str, text: str, expected: bool) -> None:
    assert wildcard_match(pattern, text) is expected


def test_image_covered_answers_repeated_questions_from_memory_with_the_same_answer() -> None:
    """Regression (serve cache-hit throughput): a cache-hit admission asks whether a pattern list covers an image
    several times per image; the answers are remembered (bounded) and stay exactly those of the matcher."""
    from sigward.references import _covered, image_covered, image_skipped_by, parse_image_reference

    cases = [
        (("registry.test/team/*",), "registry.test/team/app:v1", True),
        (("registry.test/team/*",), "registry.test/other/app:v1", False),
        (("nginx:*",), "nginx@sha256:" + "a" * 64, True),
        (("ghcr.io/x/*", "registry.test/team/app:v?"), "registry.test/team/app:v1", True),
        (("registry.test/team/app:v?",), "registry.test/team/app:v10", False),
    ]
    for _round in range(2):
        for patterns, image, want in cases:
            assert image_covered(list(patterns), parse_image_reference(image)) is want, (patterns, image)
    assert _covered.cache_info().hits >= len(cases)
    ref = parse_image_reference("docker.io/library/nginx:1")
    assert image_skipped_by(["docker.io/library/nginx:*"], ref) is True
    assert image_skipped_by(("docker.io/library/redis:*",), ref) is False

"""Tag hints name only the tags sigward reads for a subject, in one repository (spelled any way), and nothing else."""

from __future__ import annotations

import pytest

from sigward.references import Repository
from sigward.registry.hints import (
    NO_HINTS,
    TagHint,
    TagHints,
    cosign_tag,
    referrers_tag,
    subject_digest_of_tag,
    subject_tags,
)

SUBJECT = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
PUSHED = "sha256:" + "c" * 64
REPO = Repository("registry.example", "team/app")


@pytest.mark.parametrize(
    ("tag", "hinted"),
    [
        ("sha256-" + "a" * 64 + ".sig", True),
        ("sha256-" + "a" * 64 + ".att", True),
        ("sha256-" + "a" * 64, True),  # referrers tag schema index
        ("sha256-" + "a" * 64 + ".sbom", False),  # never read by sigward
        ("sha256-" + "b" * 64 + ".sig", False),  # another subject's tag
        ("v1", False),
        ("latest", False),
    ],
)
def test_a_hint_names_only_a_tag_sigward_reads_for_the_subject(tag: str, hinted: bool) -> None:
    hint = TagHint.for_subject(REPO, tag, PUSHED, SUBJECT)
    assert (hint is not None) is hinted
    if hint is not None:
        assert (hint.repository, hint.tag, hint.digest) == (REPO, tag, PUSHED)


@pytest.mark.parametrize(("digest", "subject"), [("sha256:short", SUBJECT), (PUSHED, "sha256:zz"), ("", SUBJECT)])
def test_a_malformed_digest_gives_no_hint(digest: str, subject: str) -> None:
    assert TagHint.for_subject(REPO, "sha256-" + "a" * 64 + ".sig", digest, subject) is None


@pytest.mark.parametrize(
    ("repo", "tag", "found"),
    [
        (REPO, "sha256-" + "a" * 64 + ".sig", PUSHED),
        (Repository("REGISTRY.example", "team/app"), "sha256-" + "a" * 64 + ".sig", PUSHED),  # host case
        (Repository("registry.example", "team/other"), "sha256-" + "a" * 64 + ".sig", None),
        (Repository("other.example", "team/app"), "sha256-" + "a" * 64 + ".sig", None),
        (REPO, "sha256-" + "a" * 64 + ".att", None),  # hinted .sig only
        (REPO, "sha256-" + "a" * 64, None),
    ],
)
def test_a_hint_applies_to_its_repository_and_tag_only(repo: Repository, tag: str, found: str | None) -> None:
    hints = TagHints((TagHint(REPO, "sha256-" + "a" * 64 + ".sig", PUSHED),))
    assert hints.digest_for(repo, tag) == found


def test_docker_hub_spellings_are_one_repository() -> None:
    hints = TagHints((TagHint(Repository("docker.io", "library/nginx"), "t", PUSHED),))
    assert hints.digest_for(Repository("docker.io", "nginx"), "t") == PUSHED


def test_no_hints_is_empty() -> None:
    assert not NO_HINTS
    assert NO_HINTS.digest_for(REPO, "sha256-" + "a" * 64 + ".sig") is None


def test_subject_tags_and_referrers_tag() -> None:
    assert referrers_tag(SUBJECT) == "sha256-" + "a" * 64
    assert subject_tags(SUBJECT) == {"sha256-" + "a" * 64 + s for s in ("", ".sig", ".att")}
    assert subject_tags(OTHER).isdisjoint(subject_tags(SUBJECT))


HEX = "a" * 64
PREFIXES = ("team-", "sigs.")


@pytest.mark.parametrize(
    ("tag", "prefixes", "subject"),
    [
        # unprefixed: cosign's three suffixes and the referrers tag schema, whatever the prefixes
        (f"sha256-{HEX}.sig", (), SUBJECT),
        (f"sha256-{HEX}.att", PREFIXES, SUBJECT),
        (f"sha256-{HEX}.sbom", (), SUBJECT),
        (f"sha256-{HEX}", (), SUBJECT),
        # a loaded policy's prefix: .sig and .att only (what sigward reads under a prefix)
        (f"team-sha256-{HEX}.sig", PREFIXES, SUBJECT),
        (f"sigs.sha256-{HEX}.att", PREFIXES, SUBJECT),
        (f"team-sha256-{HEX}.sbom", PREFIXES, ""),
        (f"team-sha256-{HEX}", PREFIXES, ""),  # the referrers tag schema never carries a prefix
        # a prefix no policy uses, or none loaded: an ordinary tag
        (f"other-sha256-{HEX}.sig", PREFIXES, ""),
        (f"team-sha256-{HEX}.sig", (), ""),
        (f"team-sha256-{HEX}.sig", ("", "tea"), ""),  # prefixes match whole, never a part of one
        (f"teamteam-sha256-{HEX}.sig", PREFIXES, ""),
        # garbage around a known prefix
        (f"team-sha256-{HEX[:-1]}.sig", PREFIXES, ""),
        (f"team-sha256-{HEX.upper()}.sig", PREFIXES, ""),
        (f"team-sha512-{HEX}.sig", PREFIXES, ""),  # sha512 needs 128 hex characters
        (f"team-sha256-{HEX}.sig.sig", PREFIXES, ""),
        (f"team-md5-{HEX}.sig", PREFIXES, ""),
        (f"team-sha256:{HEX}.sig", PREFIXES, ""),
        ("team-", PREFIXES, ""),
        ("v1.2.3", PREFIXES, ""),
        ("", PREFIXES, ""),
    ],
)
def test_subject_digest_of_tag_recognises_only_loaded_prefixes(
    tag: str, prefixes: tuple[str, ...], subject: str
) -> None:
    assert subject_digest_of_tag(tag, prefixes) == subject


@pytest.mark.parametrize("suffix", ["sig", "att"])
def test_parse_is_the_inverse_of_cosign_tag(suffix: str) -> None:
    for prefix in ("", *PREFIXES):
        assert subject_digest_of_tag(cosign_tag(SUBJECT, suffix, prefix), PREFIXES) == SUBJECT


@pytest.mark.parametrize(
    ("tag", "prefixes", "hinted"),
    [
        (f"team-sha256-{HEX}.sig", PREFIXES, True),
        (f"sigs.sha256-{HEX}.att", PREFIXES, True),
        (f"team-sha256-{HEX}.sig", (), False),  # no policy reads that prefix
        (f"other-sha256-{HEX}.sig", PREFIXES, False),
        (f"team-sha256-{'b' * 64}.sig", PREFIXES, False),  # another subject's tag
        (f"team-sha256-{HEX}.sbom", PREFIXES, False),
    ],
)
def test_a_prefixed_hint_needs_a_loaded_prefix(tag: str, prefixes: tuple[str, ...], hinted: bool) -> None:
    hint = TagHint.for_subject(REPO, tag, PUSHED, SUBJECT, prefixes)
    assert (hint is not None) is hinted
    assert (tag in subject_tags(SUBJECT, prefixes)) is hinted

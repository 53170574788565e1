"""Tag hints: "the manifest for tag T in repository R is digest D", taken from a push event, for one evaluation.

Why: CNCF distribution stores a pushed manifest (which fires the notification) *before* it links the tag
(``registry/handlers/manifests.go`` PutManifest: ``manifests.Put`` then ``Tags().Tag()``), so a signature push's
notification can arrive while ``sha256-<hex>.sig`` still answers 404. The event itself names the pushed manifest's
digest; a hint lets the one re-verification it triggers read that manifest by digest when the tag is not linked yet.

A hint only removes the race, it never vouches for anything: the manifest is fetched by digest (its bytes checked
against it) and then verified exactly like one found under the tag. A hint names only a tag sigward looks up for a
subject (cosign ``.sig``/``.att``, the referrers tag schema's index) in one repository, and lives as long as the
verification it is given to (nothing hinted is cached).
"""

from __future__ import annotations

from dataclasses import dataclass

from sigward.errors import BadRequestError
from sigward.references import Repository, validate_digest

# cosign's suffixes of the tags sigward reads for a subject (``.sbom`` is never read, so never hinted).
SUBJECT_TAG_SUFFIXES = ("sig", "att")


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``digest`` (distribution-spec: the algorithm, at most 32 characters, and
    the hex value, at most 64 — ``sha256-<hex>``), under which clients keep the index of its referrers."""
    algorithm, _, hex_value = digest.partition(":")
    return f"{algorithm[:32]}-{hex_value[:64]}"


def cosign_tag(digest: str, suffix: str, prefix: str = "") -> str:
    """cosign's tag scheme: ``sha256:abc…`` → ``[prefix]sha256-abc….sig`` (``.att``, ``.sbom``). The prefix is
    cosign's ``ociremote.WithPrefix`` (Kyverno's IVPOL ``cosign.source.tagPrefix``): it goes before the algorithm,
    for every suffix; the referrers tag schema (:func:`referrers_tag`) never carries it."""
    return f"{prefix}{digest.replace(':', '-')}.{suffix}"


def subject_tags(subject_digest: str) -> frozenset[str]:
    """Every tag sigward may look up for the image ``subject_digest``: what a hint may name."""
    return frozenset({referrers_tag(subject_digest), *(cosign_tag(subject_digest, s) for s in SUBJECT_TAG_SUFFIXES)})


def _same_repository(a: Repository, b: Repository) -> bool:
    """Normalised comparison: the host and repository name the registry API is asked with."""
    return (a.api_host.lower(), a.api_repository) == (b.api_host.lower(), b.api_repository)


@dataclass(frozen=True, slots=True)
class TagHint:
    """The manifest for ``tag`` in ``repository`` is ``digest`` (as a push event said)."""

    repository: Repository
    tag: str
    digest: str

    @classmethod
    def for_subject(cls, repository: Repository, tag: str, digest: str, subject_digest: str) -> TagHint | None:
        """A hint for ``tag`` → ``digest`` when ``tag`` is one sigward looks up for ``subject_digest``; None for
        any other tag (an image tag, ``.sbom``, another subject's tag) or a malformed digest."""
        try:
            validate_digest(digest)
            validate_digest(subject_digest)
        except BadRequestError:
            return None
        if tag not in subject_tags(subject_digest):
            return None
        return cls(repository=repository, tag=tag, digest=digest)


@dataclass(frozen=True, slots=True)
class TagHints:
    """The hints of one evaluation (usually one: the pushed signature, attestation or referrers index)."""

    hints: tuple[TagHint, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hints)

    def digest_for(self, repository: Repository, tag: str) -> str | None:
        """The hinted digest of ``tag`` in ``repository``, or None: a hint for another repository or tag never
        applies."""
        for hint in self.hints:
            if hint.tag == tag and _same_repository(hint.repository, repository):
                return hint.digest
        return None


NO_HINTS = TagHints()

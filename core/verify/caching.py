"""A :class:`~sigward.verify.engine.SignatureSource` that remembers tag → digest resolutions and signature manifests
for a short time, with single flight, so concurrent admissions of the same image send one set of requests."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.errors import DeadlineExceededError
from sigward.references import ImageReference, Repository
from sigward.registry.hints import TagHints
from sigward.verify.bundles import BundleLayer
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import SignatureSource, with_tag_hints
from sigward.verify.notation.discovery import NotaryReferrer
from sigward.verify.notation.policy import notation_source
from sigward.verify.notation.verify import NotationLayer, Target

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Tags move; a resolution is trusted this long (the signature still binds the digest that was verified).
DEFAULT_DIGEST_TTL_SECONDS = 30.0
# New signatures appended to a `.sig` manifest become visible after this long.
DEFAULT_LAYERS_TTL_SECONDS = 30.0
# Enough distinct images for a large cluster's working set; each entry is small.
MAX_ENTRIES = 10_000


class CachingSignatureSource:
    def __init__(
        self,
        inner: SignatureSource,
        *,
        digest_ttl: float = DEFAULT_DIGEST_TTL_SECONDS,
        layers_ttl: float = DEFAULT_LAYERS_TTL_SECONDS,
    ) -> None:
        self.inner = inner
        self._digests: TTLCache[str, str] = TTLCache(max_entries=MAX_ENTRIES, ttl=digest_ttl)
        self._layers: TTLCache[tuple[str, str], tuple[SignatureLayer, ...]] = TTLCache(
            max_entries=MAX_ENTRIES, ttl=layers_ttl
        )
        self._bundles: TTLCache[tuple[str, str], tuple[BundleLayer, ...]] = TTLCache(
            max_entries=MAX_ENTRIES, ttl=layers_ttl
        )

    def resolve_digest(self, ref: ImageReference, *, deadline: Deadline) -> str:
        if ref.digest:
            return ref.digest
        return _shared(
            self._digests,
            ref.reference,
            lambda: self.inner.resolve_digest(ref, deadline=deadline),
            deadline,
            f"resolving {ref.reference}",
        )

    def with_tag_hints(self, hints: TagHints) -> SignatureSource:
        """The uncached inner source with ``hints``: what a hint led to must never outlive its evaluation, nor may a
        cached "no signature yet" hide the hinted manifest."""
        return with_tag_hints(self.inner, hints) if hints else self

    def cached_digest(self, ref: ImageReference) -> str | None:
        """The fresh resolution of ``ref`` already held, without asking the registry."""
        return ref.digest or self._digests.get(ref.reference)

    def signature_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        return _shared(
            self._layers,
            (f"{tag_prefix}|{repo}", image_digest),
            lambda: self.inner.signature_layers(repo, image_digest, deadline=deadline, tag_prefix=tag_prefix),
            deadline,
            f"fetching signatures from {repo}",
        )

    def attestation_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        return _shared(
            self._layers,
            (f"att:{tag_prefix}|{repo}", image_digest),
            lambda: self.inner.attestation_layers(repo, image_digest, deadline=deadline, tag_prefix=tag_prefix),
            deadline,
            f"fetching attestations from {repo}",
        )

    def bundles(self, repo: Repository, image_digest: str, *, deadline: Deadline) -> tuple[BundleLayer, ...]:
        return _shared(
            self._bundles,
            (str(repo), image_digest),
            lambda: self.inner.bundles(repo, image_digest, deadline=deadline),
            deadline,
            f"fetching referrers from {repo}",
        )

    # type: Notary: passed through uncached (referrer listings are read once per verification anyway)
    def notation_target(self, repo: Repository, digest: str, *, deadline: Deadline) -> Target:
        return notation_source(self.inner).notation_target(repo, digest, deadline=deadline)

    def notation_signatures(
        self, repo: Repository, subject_digest: str, *, deadline: Deadline
    ) -> tuple[NotationLayer, ...]:
        return notation_source(self.inner).notation_signatures(repo, subject_digest, deadline=deadline)

    def notary_referrers(
        self, repo: Repository, subject_digest: str, artifact_type: str, *, deadline: Deadline
    ) -> tuple[NotaryReferrer, ...]:
        return notation_source(self.inner).notary_referrers(repo, subject_digest, artifact_type, deadline=deadline)

    def clear(self) -> None:
        self._digests.clear()
        self._layers.clear()
        self._bundles.clear()


def _shared(cache: TTLCache[K, V], key: K, compute: Callable[[], V], deadline: Deadline, what: str) -> V:
    """One computation per key across concurrent callers; a waiter gives up with the deadline, not later."""
    try:
        return cache.get_or_compute(key, compute, timeout=max(deadline.remaining(), 0.001))
    except TimeoutError:
        raise DeadlineExceededError(f"deadline exceeded {what}") from None

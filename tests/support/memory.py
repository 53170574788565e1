"""An in-memory :class:`~sigward.verify.engine.SignatureSource`: the engine's exact code path, fed with bytes
(used for vectors whose images cannot be re-pushed to a registry because their blobs are not published)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigward.deadline import Deadline
from sigward.errors import NotFoundError
from sigward.references import ImageReference, Repository
from sigward.verify.bundles import BundleLayer
from sigward.verify.cosign import SignatureLayer

if TYPE_CHECKING:
    from sigward.policy.models import Policy
    from sigward.store import VerdictStore
    from sigward.verify.plan import VerdictKey
    from sigward.verify.trust import TrustedRoot


class MemorySignatureSource:
    def __init__(self) -> None:
        self.digests: dict[str, str] = {}
        self.layers: dict[tuple[str, str], tuple[SignatureLayer, ...]] = {}
        self.attestations: dict[tuple[str, str], tuple[SignatureLayer, ...]] = {}
        self.bundle_layers: dict[tuple[str, str], tuple[BundleLayer, ...]] = {}
        self.requests = 0

    def add_image(self, reference: str, digest: str) -> None:
        self.digests[reference] = digest

    def add_signatures(
        self, repo: str, digest: str, layers: tuple[SignatureLayer, ...], *, tag_prefix: str = ""
    ) -> None:
        self.layers[(repo, tag_prefix + digest)] = layers

    def add_attestations(
        self, repo: str, digest: str, layers: tuple[SignatureLayer, ...], *, tag_prefix: str = ""
    ) -> None:
        self.attestations[(repo, tag_prefix + digest)] = layers

    def resolve_digest(self, ref: ImageReference, *, deadline: Deadline) -> str:
        self.requests += 1
        try:
            return self.digests[ref.reference]
        except KeyError:
            raise NotFoundError(f"manifest {ref.tag or ref.digest} not found in {ref.repository}") from None

    # Keyed (repository, tag prefix + digest): the prefix (cosign.source.tagPrefix) names other tags.
    def signature_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        self.requests += 1
        return self.layers.get((str(repo), tag_prefix + image_digest), ())

    def attestation_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        self.requests += 1
        return self.attestations.get((str(repo), tag_prefix + image_digest), ())

    def add_bundles(self, repo: str, digest: str, layers: tuple[BundleLayer, ...]) -> None:
        self.bundle_layers[(repo, digest)] = layers

    def bundles(self, repo: Repository, image_digest: str, *, deadline: Deadline) -> tuple[BundleLayer, ...]:
        self.requests += 1
        return self.bundle_layers.get((str(repo), image_digest), ())


def stored_verdict(
    store: VerdictStore, policy: Policy, image: str, digest: str, *, now: float, root: TrustedRoot | None = None
) -> str | None:
    """What ``store`` holds for ``image`` at ``digest`` under ``policy``'s first rule, looked up with the key
    admission uses (:mod:`sigward.verify.plan`), trusted-root fingerprint included (the process's root by default)."""
    from sigward.references import parse_image_reference
    from sigward.verify.plan import plan_rule
    from sigward.verify.trust import load_trusted_root

    plan = plan_rule(policy, policy.spec.rules[0], parse_image_reference(image))
    assert plan is not None, f"{policy.name} does not match {image}"
    key = plan.key(digest, trust_fingerprint=(root or load_trusted_root()).fingerprint)
    found = store.lookup(key, now=now)
    return found.verdict if found else None


def stored_key(
    *, digest: str, repository: str, policy_hash: str, rule: str, entries: str, inputs: str = ""
) -> VerdictKey:
    """A verdict key spelled as the store's columns are (``entries`` as ``"0,2"``)."""
    from sigward.verify.plan import VerdictKey, parse_entries_key

    return VerdictKey(
        policy_hash=policy_hash,
        rule=rule,
        repository=repository,
        digest=digest,
        entries=parse_entries_key(entries),
        inputs=inputs,
    )

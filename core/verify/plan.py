"""Which rules and ``verifyImages`` entries apply to an image, and the key under which their verdict may be reused.

One function answers this for the admission cache, the admission store lookup and the push-time store write, so a
verdict recorded by one is found by the others exactly when it answers the same question. A key holds everything
the decision read: the policy's content hash, the rule, the normalized repository, the digest, the entries applied
(matched and not skipped), the trust-root fingerprint, and the request-specific values the rule's conditions read
(``image.tag``, ``image.referenceWithTag``, ...). A rule whose conditions read admission request data
(``request.*``) is decided per request: its verdict is never reused (:attr:`RulePlan.reusable`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigward.references import ImageReference, image_covered, image_skipped_by, validate_digest

if TYPE_CHECKING:
    from sigward.policy.conditions import ConditionInputs
    from sigward.policy.models import ImageVerification, Policy, Rule


def image_matches(verification: ImageVerification, ref: ImageReference) -> bool:
    """Every spelling of the image is considered (see :func:`sigward.references.image_covered`)."""
    return image_covered(verification.image_references, ref)


def image_skipped(verification: ImageVerification, ref: ImageReference) -> bool:
    """Only what the runtime pulls can be skipped (see :func:`sigward.references.image_skipped_by`)."""
    return image_skipped_by(verification.skip_image_references, ref)


def image_values(ref: ImageReference, digest: str) -> dict[str, str]:
    """The ``image`` object conditions see (Kyverno's ``ImageInfo``) for ``ref`` at ``digest``; verdict keys take
    the values a rule reads from here too."""
    return {
        "registry": ref.registry,
        "path": ref.path,
        "name": ref.name,
        "tag": ref.tag,
        "digest": digest,
        "reference": ref.reference,
        "referenceWithTag": ref.reference_with_tag,
    }


def verdict_key(*, digest: str, repository: str, policy_hash: str, rule: str, entries: str, inputs: str = "") -> str:
    """The store's form of a key. Without ``inputs`` it is the key earlier versions wrote, so their verdicts stay
    usable."""
    parts = (digest, repository, policy_hash, rule, entries, *((inputs,) if inputs else ()))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def entries_key(indexes: Sequence[int]) -> str:
    """The applied entries as stored: ``"0,2"``."""
    return ",".join(str(i) for i in indexes)


def parse_entries_key(text: str) -> tuple[int, ...]:
    """The inverse of :func:`entries_key` (a stored row's entries)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class VerdictKey:
    """The reuse key of one (policy, rule, image) verdict; ``stored`` is the store's form of the same key."""

    policy_hash: str
    rule: str
    repository: str
    digest: str
    entries: tuple[int, ...]
    inputs: str = ""

    @property
    def entries_text(self) -> str:
        return entries_key(self.entries)

    @property
    def stored(self) -> str:
        return verdict_key(
            digest=self.digest,
            repository=self.repository,
            policy_hash=self.policy_hash,
            rule=self.rule,
            entries=self.entries_text,
            inputs=self.inputs,
        )


@dataclass(frozen=True)
class RulePlan:
    """One rule of one policy for one image: the entries whose ``imageReferences`` match (``matched``), those of
    them not skipped by ``skipImageReferences`` (``applied``, what is verified and keyed), and what the applied
    entries' conditions read."""

    policy: Policy
    rule: Rule
    ref: ImageReference
    matched: tuple[int, ...]
    applied: tuple[int, ...]
    inputs: ConditionInputs
    # Hash of the rule as prepared for this request (context, variables, cluster keys; sigward.verify.rulecontext).
    resolved: str = ""

    @property
    def all_skipped(self) -> bool:
        return not self.applied

    @property
    def request_dependent(self) -> bool:
        return self.inputs.request

    @property
    def reusable(self) -> bool:
        """A verdict may be cached or looked up: every applied entry allows caching (``useCache``) and no
        condition reads request data."""
        return (
            bool(self.applied)
            and not self.inputs.request
            and all(self.rule.verify_images[i].use_cache for i in self.applied)
        )

    def key(self, digest: str, *, trust_fingerprint: str = "") -> VerdictKey:
        """The reuse key for this plan's image at ``digest``. Image values are read from the pinned form the
        verification context uses, so a tag and its pinned ``tag@digest`` spelling agree."""
        if self.ref.digest:
            pinned = self.ref
        elif self.inputs.image:
            pinned = self.ref.with_digest(digest)
        else:  # no image value is read: checked as with_digest checks it, without building a copy (hot path)
            validate_digest(digest)
            pinned = self.ref
        return VerdictKey(
            policy_hash=self.policy.content_hash,
            rule=self.rule.name,
            repository=self.ref.repository,
            digest=digest,
            entries=self.applied,
            inputs=inputs_text(pinned, self.inputs, trust_fingerprint=trust_fingerprint, resolved=self.resolved),
        )


def inputs_text(
    ref: ImageReference, inputs: ConditionInputs, *, trust_fingerprint: str = "", resolved: str = ""
) -> str:
    """Canonical text of the request-specific values ``inputs`` names (the digest is in the key already) and the
    trust-root fingerprint; ``""`` when there are none, which keeps the key earlier versions stored."""
    read: dict[str, str] = {}
    if inputs.image:
        values = image_values(ref, ref.digest)
        read = {f"image.{name}": values[name] for name in sorted(inputs.image) if name != "digest"}
    if trust_fingerprint:
        read["trust"] = trust_fingerprint
    if resolved:
        read["resolved"] = resolved  # context values, substituted variables and cluster keys the rule read
    if inputs.request:
        read["request"] = "*"  # never reused (RulePlan.reusable); marked so such a key can match nothing else
    return json.dumps(read, sort_keys=True, separators=(",", ":")) if read else ""


def plan_rule(policy: Policy, rule: Rule, ref: ImageReference, *, resolved: str = "") -> RulePlan | None:
    """The plan of ``rule`` for ``ref``, or None when no entry's ``imageReferences`` match."""
    matched = tuple(i for i, iv in enumerate(rule.verify_images) if image_matches(iv, ref))
    if not matched:
        return None
    applied = tuple(i for i in matched if not image_skipped(rule.verify_images[i], ref))
    return RulePlan(
        policy=policy,
        rule=rule,
        ref=ref,
        matched=matched,
        applied=applied,
        inputs=rule.condition_inputs(applied),
        resolved=resolved,
    )


def plan_image(policies: Iterable[Policy], ref: ImageReference) -> list[RulePlan]:
    """The plans of every rule of ``policies`` that matches ``ref``."""
    out: list[RulePlan] = []
    for policy in policies:
        for rule in policy.spec.rules:
            found = plan_rule(policy, rule, ref)
            if found is not None:
                out.append(found)
    return out


# The rule column of every ImageValidatingPolicy check key ("ivpol/signature:A", "ivpol/policy", …): the one place
# that says how such a stored verdict is told apart from a ClusterPolicy rule's.
IVPOL_CHECK_PREFIX = "ivpol/"


def image_policy_key(
    policy_hash: str, check: str, ref: ImageReference, digest: str, *, trust_fingerprint: str = ""
) -> VerdictKey:
    """The reuse key of one ImageValidatingPolicy signature or attestation check (``check`` names the attestor and,
    for an attestation, its type) of ``ref`` at ``digest``. What a check verifies depends only on the policy's
    attestors (covered by its content hash, CEL included), the image and the trust root, never on the request: the
    expression that reads the request is evaluated again for every request, only the signature check is reused."""
    return VerdictKey(
        policy_hash=policy_hash,
        rule=IVPOL_CHECK_PREFIX + check,
        repository=ref.repository,
        digest=digest,
        entries=(),
        inputs=_trust_inputs(trust_fingerprint) if trust_fingerprint else "",
    )


@functools.lru_cache(maxsize=64)
def _trust_inputs(trust_fingerprint: str) -> str:
    """The ``inputs`` text of an IVPOL check key (a handful of roots per process: serialised once each)."""
    return json.dumps({"trust": trust_fingerprint}, sort_keys=True, separators=(",", ":"))

"""Re-verification of ImageValidatingPolicy checks: a stored ``ivpol/<check>`` verdict (a signature or attestation
check, recorded by admission or push under :func:`sigward.verify.plan.image_policy_key`) is re-verified by evaluating
its policy again for the image at the recorded digest, exactly as push does (a Pod running the image), and taking
the verdict of the check with the same name.

Why the whole evaluation and not the one check rebuilt from its name: the check's material — a ``tagPrefix``, a
``cosign.tuf`` repository's root, key or certificate expressions, a ``trustedRoot`` expression — is resolved by that
evaluation, the same code admission and push use, so a re-verification reads the same tags under the same roots and
keys the verdict the same way (the trust fingerprint, the material's fingerprint in the check name). A check the
evaluation does not reach (a request-dependent key expression, a validation that short-circuits, a namespaced
policy outside ``default``) cannot be reproduced outside admission and is left alone, as a ClusterPolicy rule that
reads the request is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sigward.admission.ivpol_cache import CachedChecks
from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.errors import BadRequestError
from sigward.policy.ivpol.load import ImagePolicy
from sigward.references import parse_image_reference
from sigward.store import StoredVerdict
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import evaluate_image
from sigward.verify.plan import IVPOL_CHECK_PREFIX, VerdictKey
from sigward.verify.results import RuleVerdict, Verdict

# One evaluation's checks stay well under this (a policy names a handful of attestors); bounds the throwaway cache,
# which lives for one evaluation only (the TTL just outlasts any run).
_EVALUATION_CACHE_ENTRIES = 256
_EVALUATION_CACHE_SECONDS = 3600.0


def is_check_record(record: StoredVerdict) -> bool:
    """An IVPOL check's stored verdict ("ivpol/policy", the policy-level failure push records, is one too; only
    passes and pending pushes are ever re-verified)."""
    return record.rule.startswith(IVPOL_CHECK_PREFIX)


@dataclass
class Rechecks:
    """One run's IVPOL re-evaluations, each (policy, image at digest) evaluated once: its signature and attestation
    check records are usually several."""

    verifier: Verifier
    _done: dict[tuple[str, str], tuple[dict[str, tuple[VerdictKey, RuleVerdict]], bool]] = field(default_factory=dict)

    def verdict(
        self, record: StoredVerdict, policies: Sequence[ImagePolicy], deadline: Deadline
    ) -> tuple[VerdictKey | None, RuleVerdict] | None:
        """The key and the fresh verdict of ``record``'s check, or None when no loaded policy has that name or its
        evaluation no longer reaches the check. An evaluation that failed on infrastructure before reaching it gives
        an ERROR verdict and no key (nothing decided)."""
        policy = next((p for p in policies if p.key == record.policy), None)
        if policy is None:
            return None
        try:
            image = str(parse_image_reference(record.image).with_digest(record.digest))
        except BadRequestError:
            return None
        memo = self._done.get((policy.key, image))
        if memo is None:
            memo = self._done[(policy.key, image)] = self._evaluate(policy, image, deadline)
        seen, errored = memo
        found = seen.get(record.rule)
        if found is not None:
            return found
        if not errored:
            return None
        error = RuleVerdict(
            image=record.image,
            reference=image,
            digest=record.digest,
            verdict=Verdict.ERROR,
            policy=policy.key,
            rule=record.rule,
            message=f"{policy.key}: could not be evaluated again",
        )
        return None, error

    def _evaluate(
        self, policy: ImagePolicy, image: str, deadline: Deadline
    ) -> tuple[dict[str, tuple[VerdictKey, RuleVerdict]], bool]:
        """Every check the policy's evaluation of ``image`` verified (nothing reused: no store, a fresh cache),
        by stored rule name, and whether the evaluation ended in an error."""
        seen: dict[str, tuple[VerdictKey, RuleVerdict]] = {}

        def observe(key: VerdictKey, verdict: RuleVerdict) -> None:
            seen[key.rule] = (key, verdict)

        checks = CachedChecks(
            verifier=self.verifier,
            cache=TTLCache[VerdictKey, RuleVerdict](
                max_entries=_EVALUATION_CACHE_ENTRIES, ttl=_EVALUATION_CACHE_SECONDS
            ),
            store=None,
            pass_ttl=_EVALUATION_CACHE_SECONDS,
            record=False,
            source="reverify",
            observe=observe,
        )
        verdicts = evaluate_image([policy], image, checks=checks, deadline=deadline)
        return seen, any(v.verdict == Verdict.ERROR for v in verdicts)

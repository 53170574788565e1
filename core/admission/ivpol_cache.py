"""ImageValidatingPolicy signature and attestation checks reused across requests: cached in memory and in the
verdict store under :func:`sigward.verify.plan.image_policy_key` (the policy's content hash, CEL included, the check,
the image digest and the trust root). Admission reads and writes them; push events write them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sigward import logs
from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.errors import BadRequestError, ExternalServiceError, SigwardError
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.ivpol.models import InlineTrustedRoot
from sigward.policy.models import ImageVerification, Policy, Rule
from sigward.references import ImageReference
from sigward.store import StoredStatus, StoredVerdict, VerdictStore
from sigward.verify.engine import Verifier
from sigward.verify.plan import VerdictKey, image_policy_key
from sigward.verify.results import RuleVerdict, Verdict
from sigward.verify.trust import TrustedRoot, inline_trusted_roots


class NotInMemory(Exception):
    """Internal: a verdict or digest the decision needs is not in this process's memory."""


@dataclass
class CachedChecks:
    """:class:`sigward.verify.ivpol.ImageChecks` for admission: a passing check is reused (memory, then the verdict
    store) for the pass TTL; failures briefly, errors never (the cache's TTL policy). ``memory_only`` raises
    :class:`NotInMemory` instead of waiting on a registry or the store."""

    verifier: Verifier
    cache: TTLCache[VerdictKey, RuleVerdict]
    store: VerdictStore | None
    pass_ttl: float
    memory_only: bool = False
    record: bool = True
    source: str = "admission"  # where a recorded pass came from (push records under the same keys)
    _root: TrustedRoot | None = field(default=None, repr=False)

    def digest(self, ref: ImageReference, deadline: Deadline, providers: tuple[str, ...] | None = None) -> str:
        known = self.verifier.known_digest(ref)
        if known:
            return known
        if self.memory_only:
            raise NotInMemory
        return self.verifier.resolve_digest(ref, deadline=deadline, providers=providers)

    def verify(
        self,
        policy: ImagePolicy,
        check: str,
        ref: ImageReference,
        build: Callable[[], tuple[Policy, Rule]],
        deadline: Deadline,
        inline_root: InlineTrustedRoot | None = None,
    ) -> RuleVerdict | None:
        digest = self.digest(ref, deadline)
        if inline_root is None:
            root = self._trusted_root()
            fingerprint = root.fingerprint
        else:  # the attestor's own root is its only one: no TUF read, and its fingerprint keys the verdict
            roots = inline_trusted_roots(inline_root.value, inline_root.path)
            root, fingerprint = roots[0], ",".join(r.fingerprint for r in roots)
        key = image_policy_key(policy.content_hash, check, ref, digest, trust_fingerprint=fingerprint)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if self.memory_only:
            raise NotInMemory
        stored = self._stored_pass(key, ref, policy)
        if stored is not None:
            self.cache.put(key, stored)
            return stored

        def compute() -> RuleVerdict:
            shell, rule = build()
            pinned = ref if ref.digest else ref.with_digest(digest)
            context = self.verifier.new_context(pinned, deadline=deadline, trusted_root=root)
            verdict = self.verifier.verify_image_rule(ref, policy=shell, rule=rule, deadline=deadline, context=context)
            if verdict is None:  # cannot happen: the check's entry matches every image
                raise BadRequestError(f"no attestor check applies to {ref.reference}")
            if self.record and verdict.verdict == Verdict.PASS:
                self._record_pass(key, ref, policy, verdict)
            return verdict

        try:
            return self.cache.get_or_compute(key, compute, timeout=max(deadline.remaining(), 0.001))
        except TimeoutError:
            raise ExternalServiceError("deadline exceeded before verification finished") from None

    def predicates(
        self, policy: ImagePolicy, ref: ImageReference, iv: ImageVerification, deadline: Deadline
    ) -> tuple[Any, ...]:
        """Verified predicates for ``extractPayload``: not cached (the verdict store holds verdicts, not attestation
        content), so read from the registry again under this evaluation's root snapshot."""
        if self.memory_only:
            raise NotInMemory
        digest = self.digest(ref, deadline)
        pinned = ref if ref.digest else ref.with_digest(digest)
        context = self.verifier.new_context(pinned, deadline=deadline, trusted_root=self._trusted_root())
        return self.verifier.attestation_predicates(pinned, iv, deadline=deadline, context=context)

    def lookup(self, fetch: Callable[[], Any]) -> Any:
        """A cluster or image-data lookup (``resource.Get``, ``imagedata.Get``, a ConfigMap-held root): the
        memory-only pass runs on the event loop and must not wait on the cluster API or a registry."""
        if self.memory_only:
            raise NotInMemory
        return fetch()

    def _trusted_root(self) -> TrustedRoot:
        """One root snapshot for every check of this evaluation (as one ClusterPolicy verification takes one)."""
        if self._root is None:
            try:
                self._root = self.verifier.trusted_root()
            except SigwardError:
                if self.memory_only:
                    raise NotInMemory from None
                raise
        return self._root

    def _stored_pass(self, key: VerdictKey, ref: ImageReference, policy: ImagePolicy) -> RuleVerdict | None:
        if self.store is None:
            return None
        try:
            found = self.store.lookup(key, now=time.time())
        except SigwardError as exc:
            logs.emit("WARNING", "verdict store lookup failed; verifying instead", error=exc.message)
            return None
        if found is None or found.verdict is not StoredStatus.PASS:
            return None
        return RuleVerdict(
            image=ref.reference,
            reference=ref.reference,
            digest=key.digest,
            verdict=Verdict.PASS,
            policy=policy.name,
            rule=key.rule,
            message=f"verified {ref.reference} (verdict recorded at {found.source})",
        )

    def _record_pass(self, key: VerdictKey, ref: ImageReference, policy: ImagePolicy, verdict: RuleVerdict) -> None:
        if self.store is None:
            return
        try:
            self.store.record(
                StoredVerdict.of(
                    key,
                    policy=policy.key,
                    verdict=StoredStatus.PASS,
                    message=verdict.message,
                    verified_at=time.time(),
                    ttl=self.pass_ttl,
                    source=self.source,
                    image=ref.reference,
                )
            )
        except SigwardError as exc:
            logs.emit("WARNING", "verdict store write failed", error=exc.message)

"""The push handler's decision: for a pushed image (or the image a pushed signature is about), verify every
matching verifyImages rule and record the verdict; ask the platform to redeliver while a signature may still be on
its way (grace period), then record the failure for good.

Verdicts are recorded under the key admission looks up (:mod:`sigward.verify.plan`: digest, repository, policy content
hash, rule, applied entries, trust root, and the image values the rule's conditions read) — for both the tag form and
the digest form of the image when their keys differ. An event without a tag records only the digest form, which a
rule reading the tag never finds; a rule whose conditions read the admission request is left to admission.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sigward import logs
from sigward.deadline import Deadline
from sigward.errors import BadRequestError, ExternalServiceError, SigwardError, failure_kind_of
from sigward.policy.dynamic import is_dynamic
from sigward.push import ivpol as push_ivpol
from sigward.push.findings import Finding, FindingSink, emit_finding
from sigward.references import ImageReference, Repository, parse_image_reference
from sigward.registry.hints import NO_HINTS, TagHint, TagHints, subject_digest_of_tag
from sigward.store import DEFAULT_VERDICT_TTL_SECONDS, StoredStatus, StoredVerdict, VerdictStore, entries_key
from sigward.verify.applyrules import decidable_prefix, staged
from sigward.verify.engine import Verifier
from sigward.verify.plan import RulePlan, VerdictKey, image_matches, image_policy_key, plan_image
from sigward.verify.results import RuleVerdict, Verdict

if TYPE_CHECKING:
    from sigward.events import PushEvent
    from sigward.policy.ivpol.load import ImagePolicy
    from sigward.policy.models import Policy
    from sigward.verify.rootsnapshot import RootSnapshot
    from sigward.verify.trust import TrustedRoot

# A signature is usually pushed seconds after its image; a failure inside this window is retried, not recorded.
DEFAULT_GRACE_SECONDS = 300.0
# Push handlers must answer quickly (EventBridge API destinations give 5 s).
DEFAULT_PUSH_DEADLINE_SECONDS = 4.5

Status = Literal["recorded", "retry", "duplicate", "ignored", "deleted"]
# Sources whose deliveries are better acknowledged as pending than redelivered: CNCF distribution delivers serially
# per endpoint (a 503 blocks every later push behind it), Harbor gives up after a few tries and GitHub never
# redelivers. Pub/Sub (gcr), EventBridge (ecr) and Event Grid (acr) redeliver cheaply with backoff, in parallel.
DEFAULT_PENDING_SOURCES = frozenset({"distribution", "harbor", "github"})


@dataclass(frozen=True)
class PushSettings:
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    verdict_ttl: float = DEFAULT_VERDICT_TTL_SECONDS
    deadline_seconds: float = DEFAULT_PUSH_DEADLINE_SECONDS
    # Sources recorded ``pending`` within the grace period instead of redelivered (see DEFAULT_PENDING_SOURCES);
    # empty by default so a service built without re-verification keeps redelivery everywhere.
    pending_sources: frozenset[str] = frozenset()


def decidable_without_admission(plan: RulePlan) -> bool:
    """Whether a verdict of ``plan`` can be made outside an admission request (push, re-verification): not when
    every entry is skipped, when it reads the request, or when it uses rule context, preconditions, variables or
    cluster keys (prepared per admission request; its stored key carries the prepared rule's hash)."""
    return not (plan.all_skipped or plan.request_dependent or is_dynamic(plan.rule))


def verify_plan(
    verifier: Verifier,
    plan: RulePlan,
    digest: str,
    root: TrustedRoot | RootSnapshot,
    deadline: Deadline,
    *,
    tag_hints: TagHints = NO_HINTS,
) -> RuleVerdict:
    """The verdict of one rule plan for the image at ``digest`` under ``root`` (the key's). An error is a verdict
    too: ``Verdict.ERROR`` for infrastructure (nothing decided), ``Verdict.FAIL`` otherwise; push and
    re-verification share this. ``tag_hints``: see :func:`event_tag_hints`."""
    ref = plan.ref
    try:
        return verifier.evaluate(plan, deadline=deadline, digest=digest, trusted_root=root, tag_hints=tag_hints)
    except SigwardError as exc:
        return RuleVerdict(
            image=ref.original,
            reference=ref.reference,
            digest=digest,
            verdict=Verdict.ERROR if isinstance(exc, ExternalServiceError) else Verdict.FAIL,
            policy=plan.policy.name,
            rule=plan.rule.name,
            message=exc.message,
            failure=failure_kind_of(exc),
        )


def event_tag_hints(event: PushEvent, subject_digest: str, prefixes: Iterable[str] = ()) -> TagHints:
    """What a signature, attestation or referrers-index push tells the re-verification of its subject: "the
    manifest for this tag is the one just pushed". CNCF distribution notifies before it links the tag, so the
    tag may still answer 404 (:mod:`sigward.registry.hints`). Only a push by tag, about another image, of a tag
    sigward reads for that image (``prefixes``: the loaded policies' ``tagPrefix`` values), in the event's own
    repository, gives a hint."""
    if event.action != "push" or not event.tag or subject_digest == event.digest:
        return NO_HINTS
    repository = Repository(registry=event.registry, path=event.repository)
    hint = TagHint.for_subject(repository, event.tag, event.digest, subject_digest, prefixes)
    return TagHints((hint,)) if hint is not None else NO_HINTS


@dataclass(frozen=True)
class RuleOutcome:
    policy: str
    rule: str
    verdict: str
    message: str
    entries: str
    form: str  # the image reference form that was verified


@dataclass(frozen=True)
class PushOutcome:
    event_id: str
    image: str
    digest: str
    status: Status
    rules: tuple[RuleOutcome, ...] = field(default_factory=tuple)
    reason: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "image": self.image,
            "digest": self.digest,
            "status": self.status,
            "reason": self.reason,
            "rules": [r.__dict__ for r in self.rules],
        }


class PushService:
    def __init__(
        self,
        *,
        policies: Callable[[], Sequence[Policy]],
        verifier: Verifier,
        store: VerdictStore,
        settings: PushSettings | None = None,
        notifier: FindingSink | None = None,
        clock: Callable[[], float] = time.time,
        subject_of: Callable[[PushEvent, Deadline], str] | None = None,
        image_policies: Callable[[], Sequence[ImagePolicy]] | None = None,
    ) -> None:
        self._subject_of = subject_of
        self._image_policies = image_policies or (lambda: ())
        self._policies = policies
        self._verifier = verifier
        self._store = store
        self.settings = settings or PushSettings()
        self._notifier = notifier
        self._clock = clock

    def delivery_deadline(self) -> Deadline:
        """The one deadline every event of a delivery (one HTTP request or Pub/Sub message) shares."""
        return Deadline.after(self.settings.deadline_seconds)

    def handle(self, event: PushEvent, *, deadline: Deadline | None = None) -> PushOutcome:
        """Policy first: an event whose registry and repository no rule matches is acknowledged before any network
        call (store included) — a push event must not make sigward contact a host no policy names. An event reached
        after its delivery's deadline is left for redelivery untouched."""
        deadline = deadline or self.delivery_deadline()
        repository = f"{event.registry}/{event.repository}"
        if not self._policy_names(event):
            return PushOutcome(
                event_id=event.event_id,
                image=repository,
                digest=event.digest,
                status="ignored",
                reason="no verifyImages rule matches this registry and repository",
            )
        if deadline.expired():
            return PushOutcome(
                event_id=event.event_id,
                image=repository,
                digest=event.digest,
                status="retry",
                reason="the delivery's deadline was reached before this event was handled",
            )
        now = self._clock()
        if self._store.event_done(event.idempotency_key, now=now):
            return PushOutcome(event_id=event.event_id, image=repository, digest=event.digest, status="duplicate")
        # A signature, attestation or referrer push (or delete) means: (re-)verify the image it is about. Prefixed
        # cosign tags count only with a prefix a loaded policy selecting this repository reads (subject_digest_of_tag).
        prefixes = push_ivpol.tag_prefixes(self._image_policies(), self._forms(event, event.digest))
        tag_subject = subject_digest_of_tag(event.tag, prefixes)
        digest = tag_subject or event.digest
        if not tag_subject and self._subject_of is not None and (event.referrer or _maybe_referrer(event)):
            subject = self._subject_of(event, deadline)
            if subject:
                digest = subject
        about_other_image = digest != event.digest
        forms = self._forms(event, digest)
        # One snapshot of the trusted roots for the whole event: their fingerprints are in every key recorded and
        # every check uses them.
        root = self._verifier.roots()
        if event.action == "delete" and not about_other_image:
            self._record_deleted(event, forms, digest, root, now)
            self._store.mark_event(event.idempotency_key, now=now)
            return PushOutcome(event_id=event.event_id, image=repository, digest=digest, status="deleted")
        work = self._work(forms, digest, root)
        hints = event_tag_hints(event, digest, prefixes)
        image_results = self._image_policy_results(event, forms, digest, deadline, hints)
        if not work and not image_results:
            self._store.mark_event(event.idempotency_key, now=now)
            return PushOutcome(
                event_id=event.event_id,
                image=repository,
                digest=digest,
                status="ignored",
                rules=tuple(self._admission_only(forms)),
                reason=(
                    "no verifyImages rule decidable at push matches this image "
                    "(rules reading the admission request, rule context, preconditions, variables or cluster keys "
                    "are decided at admission)"
                ),
            )
        outcomes: list[RuleOutcome] = self._admission_only(forms)
        retry_reasons: list[str] = []
        to_record: list[StoredVerdict] = []
        ran = staged(
            work,
            policy_of=lambda item: item[0].policy,
            rule_of=lambda item: item[0].rule.name,
            run=lambda wave: [self._verify(event, plan, key, root, deadline, now, hints) for plan, key in wave],
            verdict_of=lambda _, result: Verdict(result[0].verdict),
        )
        outcomes.extend(_not_run(work, [item for item, _ in ran]))
        results = [result for _, result in ran]
        results += [self._image_policy_outcome(event, r, digest, root.default, now) for r in image_results]
        for outcome, stored, retry in results:
            outcomes.append(outcome)
            if retry:
                retry_reasons.append(retry)
            elif stored is not None:
                to_record.append(stored)
        for stored in to_record:
            self._store.record(stored)
            if stored.verdict not in (StoredStatus.PASS, StoredStatus.PENDING):
                self._report(stored, deadline)
        if retry_reasons:
            return PushOutcome(
                event_id=event.event_id,
                image=repository,
                digest=digest,
                status="retry",
                rules=tuple(outcomes),
                reason="; ".join(dict.fromkeys(retry_reasons)),
            )
        self._store.mark_event(event.idempotency_key, now=now)
        return PushOutcome(
            event_id=event.event_id, image=repository, digest=digest, status="recorded", rules=tuple(outcomes)
        )

    # -- internals ---------------------------------------------------------------------------------------------

    def _policy_names(self, event: PushEvent) -> bool:
        """Whether any rule's imageReferences match the event's own image (tag or digest form). A signature or
        referrer lives in its subject's repository, so this also decides whether its subject may be looked up."""
        try:
            forms = self._forms(event, event.digest)
        except BadRequestError:
            return False
        return any(
            image_matches(iv, ref)
            for policy in self._policies()
            for rule in policy.spec.rules
            for iv in rule.verify_images
            for ref in forms
        ) or push_ivpol.selects(self._image_policies(), forms)

    def _image_policy_results(
        self,
        event: PushEvent,
        forms: Sequence[ImageReference],
        digest: str,
        deadline: Deadline,
        hints: TagHints = NO_HINTS,
    ) -> list[push_ivpol.ImagePolicyResult]:
        """ImageValidatingPolicies selecting the image, evaluated on its digest form (:mod:`sigward.push.ivpol`),
        reading the tags ``hints`` name by digest while they are not linked yet."""
        policies = self._image_policies()
        if not policies or not push_ivpol.selects(policies, forms):
            return []
        pinned = forms[-1] if forms[-1].digest == digest else forms[-1].with_digest(digest)
        return push_ivpol.evaluate_pushed(
            policies,
            pinned,
            verifier=self._verifier.with_tag_hints(hints),
            store=self._store,
            source=event.source,
            pass_ttl=self.settings.verdict_ttl,
            deadline=deadline,
        )

    def _image_policy_outcome(
        self, event: PushEvent, result: push_ivpol.ImagePolicyResult, digest: str, root: TrustedRoot, now: float
    ) -> tuple[RuleOutcome, StoredVerdict | None, str]:
        """As :meth:`_verify` for one IVPOL verdict: errors retry, failures wait out the grace period and are then
        recorded and reported; passes were recorded per check already; admission-only policies record nothing."""
        outcome = RuleOutcome(
            policy=result.policy,
            rule="ImageValidatingPolicy",
            verdict=result.verdict.value,
            message=result.message,
            entries="",
            form=result.form,
        )
        if result.verdict == Verdict.ERROR:
            return outcome, None, f"{result.policy}: {result.message}"
        if result.verdict != Verdict.FAIL:
            return outcome, None, ""
        ref = parse_image_reference(result.form)
        key = image_policy_key(result.policy_hash, "policy", ref, digest, trust_fingerprint=root.fingerprint)
        first = self._store.first_seen(key.stored, now=now)
        if now - first < self.settings.grace_seconds:
            wait = int(first + self.settings.grace_seconds - now)
            return outcome, None, f"{result.policy} not satisfied yet (grace period until {wait} s from now)"
        stored = StoredVerdict.of(
            key,
            policy=result.policy,
            verdict=StoredStatus.FAIL,
            message=result.message,
            verified_at=now,
            ttl=self.settings.verdict_ttl,
            source=event.source,
            event_id=event.event_id,
            image=result.form,
        )
        return outcome, stored, ""

    def _forms(self, event: PushEvent, digest: str) -> list[ImageReference]:
        base = f"{event.registry}/{event.repository}"
        forms = [parse_image_reference(f"{base}@{digest}")]
        tag = event.tag
        if tag and digest == event.digest:
            forms.insert(0, parse_image_reference(f"{base}:{tag}"))
        return forms

    def _work(
        self, forms: Sequence[ImageReference], digest: str, root: RootSnapshot
    ) -> list[tuple[RulePlan, VerdictKey]]:
        """One verification per distinct verdict key over the image's forms; rules whose entries are all skipped
        decide nothing, and rules reading the admission request cannot be decided here."""
        seen: set[VerdictKey] = set()
        work = []
        ready, _ = self._split(forms)
        for plan in ready:
            key = plan.key(digest, trust_fingerprint=self._verifier.trust_fingerprint(plan.policy, root))
            if key not in seen:
                seen.add(key)
                work.append((plan, key))
        return work

    def _split(self, forms: Sequence[ImageReference]) -> tuple[list[RulePlan], list[RulePlan]]:
        """(plans decidable at push, plans left to admission) over the image's forms, in policy-rule order; a rule
        whose entries are all skipped decides nothing (nor counts as applied for ``applyRules: One``). In a ``One``
        policy, the rules after one decided at admission are left to admission too (sigward.verify.applyrules)."""
        policies = self._policies()
        order = {
            id(policy): (p, {id(rule): r for r, rule in enumerate(policy.spec.rules)})
            for p, policy in enumerate(policies)
        }
        plans = [
            (order[id(plan.policy)][0], order[id(plan.policy)][1].get(id(plan.rule), 0), f, plan)
            for f, ref in enumerate(forms)
            for plan in plan_image(policies, ref)
            if not plan.all_skipped
        ]
        plans.sort(key=lambda item: item[:3])
        return decidable_prefix(
            [plan for *_, plan in plans], policy_of=lambda plan: plan.policy, decidable=decidable_without_admission
        )

    def _admission_only(self, forms: Sequence[ImageReference]) -> list[RuleOutcome]:
        """A ``skip`` outcome per rule matching the image that is prepared per admission request (context,
        preconditions, variables, cluster keys), and per rule of an ``applyRules: One`` policy after such a rule:
        the push verdict says it is decided at admission."""
        out: dict[tuple[str, str], RuleOutcome] = {}
        _, later = self._split(forms)
        undecided: dict[int, str] = {}
        for plan in later:
            if is_dynamic(plan.rule) or plan.request_dependent:
                message = "uses rule context, preconditions, variables or cluster keys: decided at admission"
                undecided.setdefault(id(plan.policy), plan.rule.name)
            else:
                message = (
                    f"applyRules: One: whether this rule runs depends on rule {undecided.get(id(plan.policy), '')} "
                    "before it, which is decided at admission: decided at admission"
                )
            out.setdefault(
                (plan.policy.key, plan.rule.name),
                RuleOutcome(
                    policy=plan.policy.name,
                    rule=plan.rule.name,
                    verdict=Verdict.SKIP.value,
                    message=message,
                    entries=entries_key(plan.applied),
                    form=str(plan.ref),
                ),
            )
        return list(out.values())

    def _verify(
        self,
        event: PushEvent,
        plan: RulePlan,
        key: VerdictKey,
        root: RootSnapshot,
        deadline: Deadline,
        now: float,
        hints: TagHints = NO_HINTS,
    ) -> tuple[RuleOutcome, StoredVerdict | None, str]:
        """(outcome, verdict to record or None, retry reason or ""), verified under ``root`` (the key's), reading
        the tags ``hints`` name by digest while they are not linked yet."""
        policy, rule, ref = plan.policy, plan.rule, plan.ref
        verdict = verify_plan(self._verifier, plan, key.digest, root, deadline, tag_hints=hints)
        status, message = verdict.verdict, verdict.message
        entries = key.entries_text
        outcome = RuleOutcome(
            policy=policy.name, rule=rule.name, verdict=status.value, message=message, entries=entries, form=str(ref)
        )
        if status == Verdict.ERROR:
            return outcome, None, f"{policy.name}/{rule.name}: {message}"
        if status == Verdict.SKIP:
            return outcome, None, ""
        recorded = StoredStatus.of(verdict)
        if status == Verdict.FAIL:
            sighting = key.stored
            first = self._store.first_seen(sighting, now=now)
            if now - first < self.settings.grace_seconds and event.source in self.settings.pending_sources:
                # Acknowledge and let re-verification wait for the signature: no head-of-line blocking of a
                # source that delivers serially (CNCF distribution) or never redelivers (GitHub).
                recorded = StoredStatus.PENDING
            elif now - first < self.settings.grace_seconds:
                return (
                    outcome,
                    None,
                    (
                        f"{policy.name}/{rule.name} not satisfied yet (grace period until "
                        f"{int(first + self.settings.grace_seconds - now)} s from now): {message}"
                    ),
                )
        stored = StoredVerdict.of(
            key,
            policy=policy.name,
            verdict=recorded,
            message=message,
            verified_at=now,
            ttl=self.settings.verdict_ttl,
            source=event.source,
            event_id=event.event_id,
            image=str(ref),
        )
        return outcome, stored, ""

    def _record_deleted(
        self, event: PushEvent, forms: Sequence[ImageReference], digest: str, root: RootSnapshot, now: float
    ) -> None:
        for plan, key in self._work(forms, digest, root):
            self._store.record(
                StoredVerdict.of(
                    key,
                    policy=plan.policy.name,
                    verdict=StoredStatus.DELETED,
                    message=f"image deleted from {event.source}",
                    verified_at=now,
                    ttl=self.settings.verdict_ttl,
                    source=event.source,
                    event_id=event.event_id,
                    image=str(plan.ref),
                )
            )

    def _report(self, stored: StoredVerdict, deadline: Deadline) -> None:
        finding = Finding(
            image=stored.image,
            digest=stored.digest,
            policy=stored.policy,
            rule=stored.rule,
            verdict=stored.verdict,
            message=stored.message,
            source=stored.source,
            event_id=stored.event_id,
        )
        emit_finding(finding)
        if self._notifier is not None:
            self._notifier.notify(finding, deadline=deadline)
        logs.emit("INFO", "push verdict recorded", verdict=stored.verdict, digest=stored.digest, rule=stored.rule)


# OCI image manifests pushed by digest alone are how referrers (cosign v3 bundles, attestations) arrive.
_REFERRER_CANDIDATE_TYPES = frozenset({"application/vnd.oci.image.manifest.v1+json", ""})


def _not_run(
    work: Sequence[tuple[RulePlan, VerdictKey]], ran: Sequence[tuple[RulePlan, VerdictKey]]
) -> list[RuleOutcome]:
    """A ``skip`` outcome per rule of an ``applyRules: One`` policy not run because an earlier rule applied."""
    done = {(id(plan.policy), plan.rule.name) for plan, _ in ran}
    out: dict[tuple[int, str], RuleOutcome] = {}
    for plan, key in work:
        if (id(plan.policy), plan.rule.name) in done:
            continue
        out.setdefault(
            (id(plan.policy), plan.rule.name),
            RuleOutcome(
                policy=plan.policy.name,
                rule=plan.rule.name,
                verdict=Verdict.SKIP.value,
                message="applyRules: One: not run, an earlier rule of the policy applied",
                entries=key.entries_text,
                form=str(plan.ref),
            ),
        )
    return list(out.values())


def _maybe_referrer(event: PushEvent) -> bool:
    return event.action == "push" and not event.tag and event.media_type in _REFERRER_CANDIDATE_TYPES

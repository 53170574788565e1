"""Re-verification: walk the verdicts the store recorded (push and admission), verify them again against the current
policies, record what changed, and report every verdict that stopped passing.

A run is bounded: batches of records in (digest, key) order — one digest's records together, so the per-run
signature cache answers all but the first —, a deadline, and a cursor persisted in the store so the next run
resumes where this one stopped. When the loaded policies differ from those the cursor was made under, the run first
walks the records made under policies that are no longer loaded ("stale" phase), then everything ("all" phase).

Concurrency: a lease (a compare-and-set store value) keeps one run working at a time; every verdict change is a
compare-and-set on the record that was read (:meth:`VerdictStore.replace`), so a verdict that admission, push or
another run rewrote meanwhile is left alone, and a flip is reported by exactly the one writer that made it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sigward import logs
from sigward.deadline import Deadline
from sigward.errors import BadRequestError, ConfigurationError, FailureKind
from sigward.push.findings import Finding, FindingSink
from sigward.push.service import decidable_without_admission, verify_plan
from sigward.references import parse_image_reference
from sigward.reverify.ivpol import Rechecks, is_check_record
from sigward.store import (
    DEFAULT_EVENT_TTL_SECONDS,
    DEFAULT_VERDICT_TTL_SECONDS,
    StoredStatus,
    StoredVerdict,
    VerdictStore,
    parse_scan_position,
)
from sigward.verify.applyrules import applies_one, decidable_prefix, staged
from sigward.verify.plan import RulePlan, VerdictKey, plan_image
from sigward.verify.results import RuleVerdict, Verdict

if TYPE_CHECKING:
    from sigward.policy.ivpol.load import ImagePolicy
    from sigward.policy.models import Policy
    from sigward.verify.engine import Verifier
    from sigward.verify.plan import VerdictKey
    from sigward.verify.results import RuleVerdict
    from sigward.verify.rootsnapshot import RootSnapshot

# A scheduled run fits well inside Cloud Scheduler's default 3-minute HTTP attempt deadline.
DEFAULT_RUN_SECONDS = 150.0
# Records read per store query: one Firestore page, small enough to persist the cursor often.
DEFAULT_BATCH_SIZE = 100
# A pending push waits this long for its signature before it is recorded unsigned (SIGWARD_PENDING_GRACE_SECONDS).
DEFAULT_PENDING_GRACE_SECONDS = 3600.0
# A verification is not started with less time left than this: it would only be cut short.
MIN_VERIFY_SECONDS = 1.0
# A lease outlives its run by this margin, so a crashed run blocks the next one for at most one cycle.
LEASE_MARGIN_SECONDS = 30.0
# Only these stored verdicts are re-verified: what admission may reuse (pass) and what waits for a signature.
REVERIFIED = frozenset({StoredStatus.PASS, StoredStatus.PENDING})
CURSOR_STATE = "reverify/cursor"
LEASE_STATE = "reverify/lease"


@dataclass(frozen=True)
class ReverifySettings:
    run_seconds: float = DEFAULT_RUN_SECONDS
    batch_size: int = DEFAULT_BATCH_SIZE
    pending_grace_seconds: float = DEFAULT_PENDING_GRACE_SECONDS
    verdict_ttl: float = DEFAULT_VERDICT_TTL_SECONDS
    since_seconds: float | None = None  # only records verified within this many seconds
    dry_run: bool = False  # report what would flip; write nothing, notify nobody, keep no cursor or lease


@dataclass(frozen=True)
class Flip:
    """One verdict that stopped passing (or a pending push that settled as a failure)."""

    image: str
    digest: str
    policy: str
    rule: str
    before: str
    after: str
    reason: FailureKind
    message: str

    def as_json(self) -> dict[str, str]:
        return {
            "image": self.image,
            "digest": self.digest,
            "policy": self.policy,
            "rule": self.rule,
            "before": self.before,
            "after": self.after,
            "reason": self.reason.name,
            "message": self.message,
        }


@dataclass(frozen=True)
class ReverifyReport:
    examined: int = 0
    verified: int = 0
    updated: int = 0
    errors: int = 0
    flips: tuple[Flip, ...] = ()
    cycle_complete: bool = False  # the walk reached the end of the store (the next run starts over)
    busy: bool = False  # another run holds the lease: this one did nothing
    phase: str = ""
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "verified": self.verified,
            "updated": self.updated,
            "errors": self.errors,
            "flipped": [f.as_json() for f in self.flips],
            "cycle_complete": self.cycle_complete,
            "busy": self.busy,
            "phase": self.phase,
            "dry_run": self.dry_run,
        }


@dataclass
class _Tally:
    examined: int = 0
    verified: int = 0
    updated: int = 0
    errors: int = 0
    flips: list[Flip] = field(default_factory=list)


@dataclass(frozen=True)
class _Cursor:
    policies: str  # fingerprint of the policies the walk is made under
    phase: str  # "stale" (records under other policies first) or "all"
    after: str  # the scan position (StoredVerdict.scan_position) of the last record handled

    def text(self) -> str:
        return json.dumps({"policies": self.policies, "phase": self.phase, "after": self.after}, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> _Cursor | None:
        try:
            doc: dict[str, Any] = json.loads(text) if text else {}
            cursor = cls(policies=str(doc["policies"]), phase=str(doc["phase"]), after=str(doc["after"]))
        except (ValueError, TypeError, KeyError):
            return None
        if parse_scan_position(cursor.after) is None:
            # Written when scans ran in bare key order: that position means nothing now, so the phase starts over.
            return replace(cursor, after="")
        return cursor


def policies_fingerprint(policies: Sequence[Policy], image_policies: Sequence[ImagePolicy] = ()) -> str:
    return ",".join(sorted({p.content_hash for p in policies} | {p.content_hash for p in image_policies}))


class ReverifyService:
    def __init__(
        self,
        *,
        policies: Callable[[], Sequence[Policy]],
        verifier: Verifier,
        store: VerdictStore,
        settings: ReverifySettings | None = None,
        notifier: FindingSink | None = None,
        clock: Callable[[], float] = time.time,
        image_policies: Callable[[], Sequence[ImagePolicy]] | None = None,
    ) -> None:
        self._policies = policies
        self._image_policies = image_policies or (lambda: ())
        self._verifier = verifier
        self._store = store
        self.settings = settings or ReverifySettings()
        self._notifier = notifier
        self._clock = clock
        self._holder = uuid.uuid4().hex

    def run(self) -> ReverifyReport:
        """One bounded run. Store failures raise :class:`sigward.errors.ExternalServiceError` (retry the run)."""
        settings = self.settings
        deadline = Deadline.after(settings.run_seconds)
        lease = "" if settings.dry_run else self._acquire_lease()
        if lease is None:
            return ReverifyReport(busy=True)
        try:
            return self._walk(deadline)
        finally:
            if lease:
                self._store.set_state(LEASE_STATE, "", expected=lease)

    # -- the walk ------------------------------------------------------------------------------------------------

    def _walk(self, deadline: Deadline) -> ReverifyReport:
        policies = list(self._policies())
        image_policies = list(self._image_policies())
        current = policies_fingerprint(policies, image_policies)
        hashes = {p.content_hash for p in policies} | {p.content_hash for p in image_policies}
        rechecks = Rechecks(self._verifier)
        stored_text = "" if self.settings.dry_run else self._store.get_state(CURSOR_STATE)
        cursor = _Cursor.parse(stored_text)
        if cursor is None or cursor.policies != current:
            # New (or first) policies: what was recorded under the old ones comes first. A dry run walks all.
            cursor = _Cursor(policies=current, phase="all" if self.settings.dry_run else "stale", after="")
        tally = _Tally()
        complete = False
        # One snapshot of the trusted roots for the run: the same fingerprints admission and push key verdicts by.
        root = self._verifier.roots()
        while deadline.remaining() > MIN_VERIFY_SECONDS:
            batch = self._store.scan(after=cursor.after, limit=self.settings.batch_size)
            handled = ""
            for record in batch:
                if deadline.remaining() <= MIN_VERIFY_SECONDS:
                    break
                if cursor.phase == "all" or record.policy_hash not in hashes:
                    self._examine(record, policies, root, deadline, tally, (image_policies, rechecks))
                handled = record.scan_position
            if handled and handled != batch[-1].scan_position:  # the deadline cut the batch short
                cursor = replace(cursor, after=handled)
            elif len(batch) < self.settings.batch_size:
                if cursor.phase == "stale":
                    cursor = replace(cursor, phase="all", after="")
                else:
                    cursor = replace(cursor, after="")
                    complete = True
            else:
                cursor = replace(cursor, after=batch[-1].scan_position)
            if not self.settings.dry_run:
                if not self._store.set_state(CURSOR_STATE, cursor.text(), expected=stored_text):
                    logs.emit("WARNING", "re-verification cursor moved by another run; stopping this one")
                    break
                stored_text = cursor.text()
            if complete or (handled and deadline.remaining() <= MIN_VERIFY_SECONDS):
                break
        return ReverifyReport(
            examined=tally.examined,
            verified=tally.verified,
            updated=tally.updated,
            errors=tally.errors,
            flips=tuple(tally.flips),
            cycle_complete=complete,
            phase=cursor.phase,
            dry_run=self.settings.dry_run,
        )

    def _rerun(
        self, record: StoredVerdict, policies: Sequence[Policy], root: RootSnapshot, deadline: Deadline
    ) -> tuple[RulePlan, RuleVerdict] | None:
        """The record's rule verified again as the current policies would run it for the image form it was
        verified as; None when it would not run now: the rule no longer applies to the image, it is decided per
        admission request only, or (``applyRules: One``) an earlier rule of its policy applies to the image now,
        so the policy stops before it (:mod:`sigward.verify.applyrules`: earlier rules are verified again in
        order; whether they ran is decided per image here, as reverify has no resource)."""
        try:
            ref = parse_image_reference(record.image)
        except BadRequestError:
            return None
        plans = plan_image(policies, ref)
        position = next(
            (i for i, p in enumerate(plans) if p.policy.name == record.policy and p.rule.name == record.rule), None
        )
        if position is None:
            return None
        target = plans[position]
        if not applies_one(target.policy):
            if not decidable_without_admission(target):
                return None
            return target, verify_plan(self._verifier, target, record.digest, root, deadline)
        if target.all_skipped:
            return None
        # The policy's rules up to this one, in order: each runs only when none before it applied. A rule whose
        # every entry skips the image is a known skip (never applied): it cannot stop the policy.
        chain = [p for p in plans[: position + 1] if p.policy is target.policy and not p.all_skipped]
        ready, _ = decidable_prefix(chain, policy_of=lambda p: p.policy, decidable=decidable_without_admission)
        if target not in ready:
            return None  # this rule, or whether an earlier one applies, is known only at admission
        ran = staged(
            ready,
            policy_of=lambda p: p.policy,
            rule_of=lambda p: p.rule.name,
            run=lambda wave: [verify_plan(self._verifier, p, record.digest, root, deadline) for p in wave],
            verdict_of=lambda _, v: v.verdict,
        )
        return next(((p, v) for p, v in ran if p is target), None)

    def _examine(
        self,
        record: StoredVerdict,
        policies: Sequence[Policy],
        root: RootSnapshot,
        deadline: Deadline,
        tally: _Tally,
        ivpol: tuple[Sequence[ImagePolicy], Rechecks],
    ) -> None:
        settings = self.settings
        now = self._clock()
        if record.verdict not in REVERIFIED:
            return
        if settings.since_seconds is not None and record.verified_at < now - settings.since_seconds:
            return
        tally.examined += 1
        found = self._reverified(record, policies, root, deadline, ivpol)
        if found is None:
            return  # the rule no longer applies to this image (or is decided per admission request only)
        policy_name, key, verdict = found
        status, message = verdict.verdict, verdict.message
        tally.verified += 1
        if status == Verdict.ERROR or key is None:
            tally.errors += 1
            logs.emit("WARNING", "re-verification could not decide", digest=record.digest, error=message)
            return
        if status == Verdict.SKIP:
            return
        same_key = key.stored == record.key
        reason: FailureKind | None = None
        if status == Verdict.PASS:
            if record.verdict is StoredStatus.PASS and same_key:
                return  # unchanged world: no write
        else:
            reason = verdict.failure or FailureKind.NOT_SATISFIED
            if record.verdict is StoredStatus.PENDING and not self._pending_over(record, now):
                return  # still waiting for its signature
        after = StoredStatus.of(verdict)
        new = StoredVerdict.of(
            key,
            policy=policy_name,
            verdict=after,
            message=message,
            verified_at=now,
            ttl=settings.verdict_ttl,
            source="reverify",
            event_id=record.event_id,
            image=record.image,
        )
        flip = None
        if reason is not None:
            flip = Flip(
                image=record.image,
                digest=record.digest,
                policy=record.policy,
                rule=record.rule,
                before=record.verdict.value,
                after=after.value,
                reason=reason,
                message=message,
            )
        if settings.dry_run:
            if flip is not None:
                tally.flips.append(flip)
            return
        if not self._write(record, new, same_key=same_key):
            return  # admission, push or another run changed this record meanwhile: its verdict stands
        tally.updated += 1
        if flip is not None:
            tally.flips.append(flip)
            self._report(flip, deadline)

    def _reverified(
        self,
        record: StoredVerdict,
        policies: Sequence[Policy],
        root: RootSnapshot,
        deadline: Deadline,
        ivpol: tuple[Sequence[ImagePolicy], Rechecks],
    ) -> tuple[str, VerdictKey | None, RuleVerdict] | None:
        """The record's policy name, current key and fresh verdict: a ClusterPolicy rule's plan verified again, or an
        ImageValidatingPolicy check re-evaluated (:mod:`sigward.reverify.ivpol`); None when neither applies."""
        if is_check_record(record):
            image_policies, rechecks = ivpol
            again = rechecks.verdict(record, image_policies, deadline)
            if again is not None:
                return (record.policy, *again)
        found = self._rerun(record, policies, root, deadline)
        if found is None:
            return None  # the rule would not run for this image now (see _rerun): nothing to report
        plan, verdict = found
        key = plan.key(record.digest, trust_fingerprint=self._verifier.trust_fingerprint(plan.policy, root))
        return plan.policy.name, key, verdict

    def _pending_over(self, record: StoredVerdict, now: float) -> bool:
        """Whether a pending push's grace period has ended, counted from its first sighting (or its record)."""
        grace = self.settings.pending_grace_seconds
        first = self._store.first_seen(record.key, now=now, ttl=max(DEFAULT_EVENT_TTL_SECONDS, 2 * grace))
        return now - min(first, record.verified_at) >= grace

    def _write(self, record: StoredVerdict, new: StoredVerdict, *, same_key: bool) -> bool:
        """Compare-and-set on the record read; a re-keyed verdict (other policy or trust root) supersedes it."""
        if same_key:
            return self._store.replace(record, new)
        retired = replace(
            record, verdict=StoredStatus.SUPERSEDED, message=f"re-verified under policy hash {new.policy_hash[:12]}"
        )
        if not self._store.replace(record, retired):
            return False
        self._store.record(new)
        return True

    def _report(self, flip: Flip, deadline: Deadline) -> None:
        finding = Finding(
            image=flip.image,
            digest=flip.digest,
            policy=flip.policy,
            rule=flip.rule,
            verdict=flip.after,
            message=flip.message,
            source="reverify",
            event_id="",
            reason=flip.reason.name,
        )
        logs.emit(
            "WARNING", "sigward finding: a recorded verdict no longer holds", finding=finding.as_json(), was=flip.before
        )
        if self._notifier is not None:
            self._notifier.notify(finding, deadline=Deadline.after(max(deadline.remaining(), MIN_VERIFY_SECONDS)))

    # -- the lease -----------------------------------------------------------------------------------------------

    def _acquire_lease(self) -> str | None:
        """Take the run lease (compare-and-set ``holder|expiry``); None when another run holds an unexpired one."""
        now = self._clock()
        found = self._store.get_state(LEASE_STATE)
        if found:
            _, _, expiry = found.partition("|")
            try:
                if float(expiry) > now:
                    return None
            except ValueError:
                pass  # an unreadable lease is taken over
        mine = f"{self._holder}|{now + self.settings.run_seconds + LEASE_MARGIN_SECONDS}"
        return mine if self._store.set_state(LEASE_STATE, mine, expected=found) else None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name}={text[:40]!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigurationError(f"{name}={text[:40]!r} must be a finite number of seconds >= 0")
    return value


def settings_from_env(
    env: Mapping[str, str], *, since_seconds: float | None = None, dry_run: bool = False
) -> ReverifySettings:
    """``SIGWARD_REVERIFY_SECONDS`` (a run's time budget) and ``SIGWARD_PENDING_GRACE_SECONDS``."""
    run_seconds = _seconds(env, "SIGWARD_REVERIFY_SECONDS", DEFAULT_RUN_SECONDS)
    if run_seconds <= MIN_VERIFY_SECONDS:
        raise ConfigurationError(f"SIGWARD_REVERIFY_SECONDS must be more than {MIN_VERIFY_SECONDS:g}")
    return ReverifySettings(
        run_seconds=run_seconds,
        pending_grace_seconds=_seconds(env, "SIGWARD_PENDING_GRACE_SECONDS", DEFAULT_PENDING_GRACE_SECONDS),
        since_seconds=since_seconds,
        dry_run=dry_run,
    )


def build_service(
    env: Mapping[str, str],
    *,
    policies: Callable[[], Sequence[Policy]],
    verifier: Verifier,
    store: VerdictStore,
    since_seconds: float | None = None,
    dry_run: bool = False,
    image_policies: Callable[[], Sequence[ImagePolicy]] | None = None,
) -> ReverifyService:
    """The one place a re-verification service is put together from the environment (function target and CLI)."""
    from sigward.push.findings import Notifier

    return ReverifyService(
        policies=policies,
        image_policies=image_policies,
        verifier=verifier,
        store=store,
        settings=settings_from_env(env, since_seconds=since_seconds, dry_run=dry_run),
        notifier=None if dry_run else Notifier.from_env(env),
    )

"""The admission decision: which rules apply, which images they cover, verification of all of them at once under
one deadline, and Kyverno's way of turning verdicts into allow / deny / warnings / digest patches.

Verdicts are cached and looked up in the store under the key :mod:`sigward.verify.plan` computes (policy content hash,
rule, repository, digest, applied entries, trust root, and the request-specific values the rule's conditions read):
a changed policy has another hash, so it can never reuse an old verdict, and a rule whose conditions read the request
is verified for every request. Failures are cached briefly, infrastructure errors not at all.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sigward import logs, metrics, tracing
from sigward.admission.exceptions import matching_exceptions, skip_message
from sigward.admission.images import ResourceImage, extract_images
from sigward.admission.ivpol import merge
from sigward.admission.ivpol_cache import CachedChecks, NotInMemory
from sigward.admission.match import RequestInfo, RuleMatch, UserInfo, request_info, rule_applies, webhook_covers
from sigward.admission.review import AdmissionRequest, review_response
from sigward.admission.scheduling import DEFAULT_MAX_THREADS, DEFAULT_PER_BATCH, Done, FairPool, NotStarted, Raised
from sigward.admission.selectors import SelectorRoute, image_policy_route, rule_route
from sigward.cache import TTLCache
from sigward.cluster.data import EMPTY as EMPTY_CLUSTER
from sigward.cluster.data import ClusterData
from sigward.cluster.rbac import BoundRoles, RolesLookupError, bound_roles
from sigward.deadline import Deadline
from sigward.errors import BadRequestError, ExternalServiceError, SigwardError
from sigward.policy.dynamic import is_dynamic, reads_roles
from sigward.policy.exceptions import PolicyException
from sigward.policy.ivpol.matchconditions import (
    MatchResult,
    evaluate_conditions,
    request_data,
    webhook_match_conditions,
)
from sigward.policy.models import NamespaceLabels, Policy, Rule
from sigward.store import StoredStatus, StoredVerdict, VerdictStore
from sigward.verify.applyrules import staged
from sigward.verify.engine import Verifier, rule_credential_providers
from sigward.verify.plan import RulePlan, VerdictKey, image_matches, plan_rule
from sigward.verify.results import RuleVerdict, Verdict
from sigward.verify.rulecontext import images_context, resolve_rule

if TYPE_CHECKING:
    from sigward.policy.ivpol.load import ImagePolicy
    from sigward.verify.ivpol import PolicyOutcome
    from sigward.verify.rootsnapshot import RootSnapshot

Mode = Literal["mutate", "validate"]

# Kubernetes' default webhook timeout is 10 s; deciding within 8 s leaves room for the network both ways.
DEFAULT_DEADLINE_SECONDS = 8.0
# A verified image stays verified this long (Kyverno: 60 min); a failure is re-checked soon after (negative cache).
DEFAULT_PASS_TTL_SECONDS = 600.0
DEFAULT_FAIL_TTL_SECONDS = 30.0
# Bounded so a cluster churning through images cannot grow memory without limit (~1 KiB per entry).
DEFAULT_CACHE_ENTRIES = 100_000
# Verifications run concurrently across images, rules and requests (each mostly waits on the network), shared fairly:
# one request holds at most PER_REQUEST threads at once (sigward.admission.scheduling).
DEFAULT_WORKERS = DEFAULT_MAX_THREADS
PER_REQUEST = DEFAULT_PER_BATCH


@dataclass(frozen=True)
class AdmissionSettings:
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    pass_ttl: float = DEFAULT_PASS_TTL_SECONDS
    fail_ttl: float = DEFAULT_FAIL_TTL_SECONDS
    cache_entries: int = DEFAULT_CACHE_ENTRIES
    workers: int = DEFAULT_WORKERS
    # SIGWARD_NAMESPACE_SELECTORS=webhook: namespaceSelector rules are decided on their selector webhook's path
    # only (sigward.admission.selectors), not on the plain path.
    selector_webhooks: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AdmissionSettings:
        from sigward.admission.selectors import selector_webhooks_enabled

        selector_webhooks = selector_webhooks_enabled(environ)
        raw = environ.get("SIGWARD_DEADLINE_SECONDS", "").strip()
        if not raw:
            return cls(selector_webhooks=selector_webhooks)
        try:
            seconds = float(raw)
        except ValueError:
            from sigward.errors import ConfigurationError

            raise ConfigurationError(f"SIGWARD_DEADLINE_SECONDS={raw!r} is not a number of seconds") from None
        if not 0.1 <= seconds <= 29:
            from sigward.errors import ConfigurationError

            raise ConfigurationError(
                "SIGWARD_DEADLINE_SECONDS must be between 0.1 and 29 (below the webhook timeoutSeconds, max 30)"
            )
        return cls(deadline_seconds=seconds, selector_webhooks=selector_webhooks)


@dataclass(frozen=True)
class ImageCheck:
    """One (policy, rule, image) outcome inside a decision."""

    policy: Policy
    rule: Rule
    rule_name: str  # as Kyverno reports it (autogen-… for controllers)
    image: ResourceImage
    verdict: RuleVerdict
    blocking: bool  # this outcome denies the request
    cached: bool = False
    exceptions: tuple[str, ...] = ()  # the PolicyExceptions that exempted the request from this rule (a skip)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    message: str = ""
    patch: tuple[Mapping[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    checks: tuple[ImageCheck, ...] = ()
    code: int = 200
    elapsed_ms: float = 0.0
    image_policies: tuple[PolicyOutcome, ...] = ()  # ImageValidatingPolicy outcomes (logged)
    audit_annotations: tuple[tuple[str, str], ...] = ()  # ImageValidatingPolicy auditAnnotations

    def review(self, uid: str) -> dict[str, Any]:
        """This decision as the AdmissionReview v1 response for request ``uid`` (webhook and ``sigward review``)."""
        return review_response(
            uid,
            allowed=self.allowed,
            message=self.message,
            code=self.code if not self.allowed else None,
            patch=self.patch,
            warnings=self.warnings,
            audit_annotations=dict(self.audit_annotations),
        )


_NotInMemory = NotInMemory  # a verdict the decision needs is not in this process's memory


@dataclass
class _Unit:
    """One verification to run: a rule of a policy for one image of the resource."""

    policy: Policy
    rule: Rule
    rule_name: str
    image: ResourceImage
    plan: RulePlan
    request: Mapping[str, Any] | None = field(default=None, repr=False)
    namespace: str = ""  # the resource's namespace (validationFailureActionOverrides)
    # its labels, read only when an override's namespaceSelector needs them (sigward.cluster)
    namespace_labels: NamespaceLabels | None = field(default=None, repr=False)
    # Decided before verification (preconditions not met, context/substitution error): sigward.verify.rulecontext.
    preset: RuleVerdict | None = None
    result: RuleVerdict | None = None
    cached: bool = False
    exceptions: tuple[str, ...] = ()  # PolicyExceptions exempting the request from this rule: not verified

    @property
    def matched(self) -> tuple[int, ...]:
        return self.plan.matched


class AdmissionService:
    """Decides AdmissionReviews. Thread-safe; one instance per process serves every request."""

    def __init__(
        self,
        *,
        policies: Callable[[], Sequence[Policy]],
        verifier: Verifier,
        settings: AdmissionSettings | None = None,
        resolve_digest: Callable[[ResourceImage, Deadline], str] | None = None,
        store: VerdictStore | None = None,
        jmespath_search: Callable[[str, str], Any] | None = None,
        exceptions: Callable[[], Sequence[PolicyException]] | None = None,
        cluster: ClusterData | None = None,
        image_policies: Callable[[], Sequence[ImagePolicy]] | None = None,
    ) -> None:
        self._policies = policies
        self._exceptions = exceptions or (lambda: ())
        self._cluster = cluster if cluster is not None else EMPTY_CLUSTER
        self._image_policies = image_policies or (lambda: ())
        self._verifier = verifier
        self.settings = settings or AdmissionSettings()
        self._resolve_digest = resolve_digest
        self._store = store
        self._jmespath_search = jmespath_search
        self._cache: TTLCache[VerdictKey, RuleVerdict] = TTLCache(
            max_entries=self.settings.cache_entries, ttl=self.settings.pass_ttl, ttl_for=self._ttl_for
        )
        self._pool = FairPool(per_batch=PER_REQUEST, max_threads=self.settings.workers, name="sigward-admission")

    @property
    def cache(self) -> TTLCache[VerdictKey, RuleVerdict]:
        return self._cache

    def _ttl_for(self, verdict: RuleVerdict) -> float:
        if verdict.verdict in (Verdict.PASS, Verdict.SKIP):
            return self.settings.pass_ttl
        if verdict.verdict == Verdict.FAIL:
            return self.settings.fail_ttl
        return 0.0

    def close(self) -> None:
        self._pool.close()

    # -- the decision ----------------------------------------------------------------------------------------------

    def decide(self, request: AdmissionRequest, *, mode: Mode, route: str = "") -> Decision:
        """``route``: the selector key of the webhook path the request came through ("" for the plain path)."""
        return self._decide(request, mode=mode, memory_only=False, route=route)

    def decide_from_memory(self, request: AdmissionRequest, *, mode: Mode, route: str = "") -> Decision | None:
        """The decision when every verdict it needs is already in this process's cache; None when one is not
        (then :meth:`decide` it). Waits on no registry, store or thread, so an event loop may call it: a cache hit
        is answered without handing the request to another thread."""
        try:
            return self._decide(request, mode=mode, memory_only=True, route=route)
        except _NotInMemory:
            return None

    def _decide(self, request: AdmissionRequest, *, mode: Mode, memory_only: bool, route: str = "") -> Decision:
        started = time.monotonic()
        deadline = Deadline.after(self.settings.deadline_seconds)
        if request.operation not in ("CREATE", "UPDATE") or request.object is None:
            return Decision(allowed=True, elapsed_ms=_ms(started))
        refused = self._condition_errors(request, route=route)
        if refused:
            # The API server rejects the request before any webhook call: no rule is evaluated.
            return Decision(allowed=False, message=refused, code=500, elapsed_ms=_ms(started))
        units = self._units(request, memory_only=memory_only, route=route)
        image_policies = self._routed_image_policies(route)
        if not units and not image_policies:
            return Decision(allowed=True, elapsed_ms=_ms(started))
        record = not request.dry_run

        def run(wave: Sequence[_Unit]) -> list[ImageCheck | None]:
            """The wave's checks in its order: exempted units skip, the rest are validated or verified."""
            todo = [unit for unit in wave if not unit.exceptions]
            found = iter(
                self._validate(todo, deadline, record=record, memory_only=memory_only)
                if mode == "validate"
                else self._verify_all(todo, deadline, record=record, memory_only=memory_only)
            )
            return [self._exempted(unit) if unit.exceptions else next(found) for unit in wave]

        ran = staged(units, policy_of=lambda u: u.policy, rule_of=lambda u: u.rule_name, run=run, verdict_of=_outcome)
        exempted = [check for _, check in ran if check is not None and check.exceptions]
        checks = [check for _, check in ran if check is not None and not check.exceptions]
        decision = self._shape(request, [*exempted, *checks], mode=mode)
        if image_policies:
            decision = self._with_image_policies(
                decision,
                request,
                image_policies,
                deadline,
                mode=mode,
                record=record,
                memory_only=memory_only,
                namespace_decided=bool(route),
            )
        return replace(decision, elapsed_ms=_ms(started))

    def _with_image_policies(
        self,
        decision: Decision,
        request: AdmissionRequest,
        image_policies: Sequence[ImagePolicy],
        deadline: Deadline,
        *,
        mode: Mode,
        record: bool,
        memory_only: bool,
        namespace_decided: bool = False,
    ) -> Decision:
        """The ImageValidatingPolicies' decision on the same request, merged into the ClusterPolicy one
        (:func:`sigward.admission.ivpol.merge`)."""
        from sigward.verify.ivpol import evaluate_request

        checks = CachedChecks(
            verifier=self._verifier,
            cache=self._cache,
            store=self._store,
            pass_ttl=self.settings.pass_ttl,
            memory_only=memory_only,
            record=record,
        )
        found = evaluate_request(
            image_policies,
            request.raw,
            checks=checks,
            deadline=deadline,
            mutate=mode == "mutate",
            namespace_decided=namespace_decided,
        )
        merged = merge(
            allowed=decision.allowed,
            message=decision.message,
            patch=decision.patch,
            warnings=decision.warnings,
            image=found,
            mutate=mode == "mutate",
            uid=request.uid,
        )
        return replace(
            decision,
            allowed=merged.allowed,
            message=merged.message,
            patch=merged.patch,
            warnings=merged.warnings,
            code=200 if merged.allowed else 403,
            image_policies=found.outcomes,
            audit_annotations=tuple(found.audit_annotations.items()),
        )

    def _routed_image_policies(self, route: str) -> Sequence[ImagePolicy]:
        """The ImageValidatingPolicies decided on this path: with selector webhooks (or on a selector path), those
        whose selector route (:func:`sigward.admission.selectors.image_policy_route`) is this path's; else all."""
        policies = self._image_policies()
        if not route and not self.settings.selector_webhooks:
            return policies
        return [p for p in policies if (r.key if (r := image_policy_route(p)) is not None else "") == route]

    def _units(self, request: AdmissionRequest, *, memory_only: bool = False, route: str = "") -> list[_Unit]:
        if not self._policies():
            return []  # ImageValidatingPolicies only: nothing of the request's match data is read here
        obj = request.object or {}
        kind = request.kind.kind
        info: RequestInfo = _request_info(
            request,
            namespace_labels=functools.partial(self._namespace_labels, request.namespace, memory_only),
            user=UserInfo.of(request.raw.get("userInfo")),
            roles=functools.partial(self._bound_roles, request.raw.get("userInfo"), request.namespace, memory_only),
        )
        units: list[_Unit] = []
        exceptions = self._exceptions()
        for policy in self._policies():
            if not policy.spec.admission:
                continue  # Kyverno applies such a policy only in background scans
            conditions = webhook_conditions(policy, request.raw)
            if conditions is not None and (conditions.error or not conditions.matched):
                # Not matched: the API server would not have called Kyverno for this policy. An error: the API
                # server applies the policy's webhook failurePolicy; Fail refused the request in _decide, so this
                # is Ignore, which skips the webhook: the policy does not apply.
                continue
            for rule in policy.spec.rules:
                failed: RuleVerdict | None = None
                rule_info = info
                here, routed = self._on_path(policy, rule, route)
                if not here:
                    continue  # decided on another webhook's path (or not at all on this selector's path)
                if routed is not None:
                    rule_info = replace(info, known_selectors=routed.known())
                try:
                    matched_rule = rule_applies(policy, rule, rule_info)
                except SigwardError as exc:  # namespace labels or bound roles unreadable: failurePolicy decides
                    matched_rule = RuleMatch(rule=rule, name=rule.name)
                    what = "roles" if isinstance(exc, RolesLookupError) else "namespaceSelector"
                    failed = _rule_verdict(policy, rule, Verdict.ERROR, f"failed to match {what}: {exc.message}")
                if matched_rule is None:
                    continue
                exempt = (
                    matching_exceptions(
                        exceptions, policy_key=policy.key, rule_name=matched_rule.name, info=info, request=request.raw
                    )
                    if exceptions
                    else ()
                )
                images = extract_images(
                    obj, kind=kind, extractors=rule.image_extractors, jmespath_search=self._jmespath_search
                )
                all_images = images
                if request.operation == "UPDATE" and request.old_object is not None:
                    images = _changed_images(images, request.old_object, kind, rule, self._jmespath_search)
                prepared, preset, resolved = rule, failed, ""
                if images and failed is None and not exempt and is_dynamic(rule):
                    if memory_only:
                        raise _NotInMemory  # preparing the rule may read the cluster: not for the event loop
                    prepared, preset, resolved = self._prepare(policy, rule, request, all_images)
                for image in images:
                    plan = plan_rule(policy, prepared, image.ref, resolved=resolved)
                    if plan is not None:
                        unit = _Unit(
                            policy=policy,
                            rule=prepared,
                            rule_name=matched_rule.name,
                            image=image,
                            plan=plan,
                            request=request.raw,
                            namespace=info.namespace,
                            exceptions=exempt,
                            namespace_labels=info.namespace_labels,
                        )
                        if preset is not None:
                            unit.preset = replace(
                                preset, image=image.image, reference=image.ref.reference, rule=matched_rule.name
                            )
                        units.append(unit)
        return units

    def _on_path(self, policy: Policy, rule: Rule, route: str) -> tuple[bool, SelectorRoute | None]:
        """Whether the rule is decided on this webhook path, and its route (None: the plain path, or decided
        here with cluster labels because the API server cannot express it)."""
        if not route and not self.settings.selector_webhooks:
            return True, None
        try:
            routed = rule_route(policy, rule)
        except SigwardError:
            routed = None  # not expressible at the API server: decided here, with cluster labels
        return (routed.key if routed is not None else "") == route, routed

    def _condition_errors(self, request: AdmissionRequest, *, route: str) -> str:
        """Why the API server would reject the request outright (empty: it would not): a policy's
        ``webhookConfiguration.matchConditions`` sit on that policy's own webhook, and when evaluating them errs
        the API server applies that webhook's failurePolicy to the whole request; Fail rejects it."""
        info: RequestInfo | None = None
        reasons: list[str] = []
        for policy in self._policies():
            if not policy.spec.admission or policy.spec.failure_policy != "Fail":
                continue
            conditions = webhook_conditions(policy, request.raw)
            if conditions is None or not conditions.error:
                continue
            info = info if info is not None else _request_info(request)
            if any(self._on_path(policy, r, route)[0] and webhook_covers(policy, r, info) for r in policy.spec.rules):
                reasons.append(
                    f"policy {policy.key}: failed to evaluate webhookConfiguration.matchConditions: "
                    f"{conditions.error}; failurePolicy Fail rejects the request"
                )
        return "; ".join(reasons)

    def _bound_roles(self, user_info: Any, namespace: str, memory_only: bool) -> BoundRoles:
        if memory_only:
            raise _NotInMemory  # listing RoleBindings may wait on the cluster API: not for the event loop
        user = UserInfo.of(user_info) or UserInfo(username="")
        try:
            return bound_roles(self._cluster, username=user.username, groups=user.groups, namespace=namespace)
        except SigwardError as exc:
            raise RolesLookupError(f"failed to list role bindings: {exc.message}") from None

    def _namespace_labels(self, namespace: str, memory_only: bool) -> Mapping[str, str]:
        if memory_only:
            raise _NotInMemory  # reading labels may wait on the cluster API: not for the event loop
        return self._cluster.namespace_labels(namespace)

    def _prepare(
        self, policy: Policy, rule: Rule, request: AdmissionRequest, images: Sequence[ResourceImage]
    ) -> tuple[Rule, RuleVerdict | None, str]:
        """The rule prepared for this request (context, preconditions, variables, cluster keys), or the verdict
        that decides it without verification: ``skip`` (preconditions not met) or ``error`` (failurePolicy)."""
        raw = request.raw
        if self._cluster.connected and reads_roles(rule):  # Kyverno's AddUserInfo: request.roles, clusterRoles
            try:
                bound = self._bound_roles(raw.get("userInfo"), request.namespace, False)
            except SigwardError as exc:
                return rule, _rule_verdict(policy, rule, Verdict.ERROR, exc.message), ""
            raw = {**raw, "roles": list(bound.roles), "clusterRoles": list(bound.cluster_roles)}
        try:
            resolution = resolve_rule(
                policy,
                rule,
                request=raw,
                images=images_context(images),
                cluster=self._cluster,
                now=datetime.now(UTC),
                image_data=self._verifier.image_data,
                global_context=self._verifier.global_context,
            )
        except SigwardError as exc:
            return rule, _rule_verdict(policy, rule, Verdict.ERROR, exc.message), ""
        if resolution.rule is None:
            return rule, _rule_verdict(policy, rule, Verdict.SKIP, resolution.skip), ""
        return resolution.rule, None, resolution.fingerprint

    def _verify_all(
        self, units: Sequence[_Unit], deadline: Deadline, *, record: bool, memory_only: bool = False
    ) -> list[ImageCheck]:
        """Every unit's outcome by the deadline. A unit that never started (every thread busy with other work) is
        not an outage of its registry: it blocks whatever the failurePolicy, so exhaustion never admits. Verdicts
        already in memory are taken here, without a thread; ``memory_only`` raises :class:`_NotInMemory` when one
        is not."""
        roots = _OnceRoots(self._verifier)  # one reading of the trusted roots for every unit of the request
        remembered = [self._from_memory(unit, roots) for unit in units]
        missing = [unit for unit, hit in zip(units, remembered, strict=True) if hit is None]
        if missing and memory_only:
            raise _NotInMemory
        parent = tracing.capture()  # the pool's threads do not inherit the request's trace context
        outcomes = iter(
            self._pool.run(
                [functools.partial(self._verify_unit, unit, deadline, record, parent) for unit in missing], deadline
            )
            if missing
            else ()
        )
        checks = []
        metrics.record_memory_hits(len(units) - len(missing))
        for unit, hit in zip(units, remembered, strict=True):
            if hit is not None:
                checks.append(self._check(unit, hit, True))
                continue
            outcome = next(outcomes)
            not_started = False
            if isinstance(outcome, Done):
                verdict, cached = outcome.value
            elif isinstance(outcome, Raised):
                if not isinstance(outcome.error, SigwardError):
                    raise outcome.error
                verdict, cached = (
                    _error_verdict(unit, outcome.error.message, failed=not _is_infra(outcome.error)),
                    False,
                )
            elif isinstance(outcome, NotStarted):
                not_started, cached = True, False
                metrics.record_deadline_exhausted(metrics.DeadlineScope.NOT_STARTED)
                verdict = _error_verdict(unit, "not verified: sigward was too busy to start before the deadline")
            else:
                metrics.record_deadline_exhausted(metrics.DeadlineScope.ADMISSION)
                verdict, cached = _error_verdict(unit, "deadline exceeded before verification finished"), False
            checks.append(self._check(unit, verdict, cached, not_started=not_started))
        return checks

    def _exempted(self, unit: _Unit) -> ImageCheck:
        """Kyverno's outcome for a rule a PolicyException exempts: skip, unverified, never blocking, no patch."""
        verdict = RuleVerdict(
            image=unit.image.image,
            reference=unit.image.ref.reference,
            digest=unit.image.ref.digest or "",
            verdict=Verdict.SKIP,
            policy=unit.policy.name,
            rule=unit.rule_name,
            message=skip_message(unit.exceptions),
        )
        return ImageCheck(
            policy=unit.policy,
            rule=unit.rule,
            rule_name=unit.rule_name,
            image=unit.image,
            verdict=verdict,
            blocking=False,
            exceptions=unit.exceptions,
        )

    def _from_memory(self, unit: _Unit, once: _OnceRoots | None = None) -> RuleVerdict | None:
        """The unit's cached verdict when its digest and verdict are both in memory (the same key
        :meth:`_verify_unit` looks up); None when finding out would need the registry, the store or the verifier."""
        plan = unit.plan
        if unit.preset is not None:
            return unit.preset
        if not plan.reusable or plan.all_skipped:
            return None
        ref = unit.image.ref
        if not ref.digest and rule_credential_providers(unit.rule, ref) is not None:
            return None  # the remembered resolution may have used other credentials than this rule's providers
        digest = ref.digest or (self._verifier.known_digest(ref) if self._resolve_digest is None else None)
        if not digest:
            return None
        roots = (once or _OnceRoots(self._verifier)).get()
        if roots is None:
            return None
        return self._cache.get(plan.key(digest, trust_fingerprint=self._verifier.trust_fingerprint(plan.policy, roots)))

    def _verify_unit(
        self, unit: _Unit, deadline: Deadline, record: bool, parent: Any = None
    ) -> tuple[RuleVerdict, bool]:
        """(verdict, whether it was reused), timed by where it came from."""
        started = time.monotonic()
        with tracing.span(
            "sigward.verify", parent, policy=unit.policy.key, rule=unit.rule_name, image=unit.image.image
        ) as current:
            verdict, source = self._verdict_for(unit, deadline, record)
            tracing.set_attributes(current, verdict=verdict.verdict.value, source=source.value)
        metrics.record_verification(source, time.monotonic() - started)
        return verdict, source is not metrics.VerificationSource.COLD

    def _verdict_for(
        self, unit: _Unit, deadline: Deadline, record: bool
    ) -> tuple[RuleVerdict, metrics.VerificationSource]:
        cold = metrics.VerificationSource.COLD
        ref = unit.image.ref
        plan = unit.plan
        if unit.preset is not None:
            return unit.preset, cold
        if plan.all_skipped:
            return self._verifier.evaluate(plan, deadline=deadline), cold
        try:
            digest = ref.digest or self._digest(unit.image, unit.rule, deadline)
            # One snapshot of every root for this verification: the key says which roots a verdict was made under,
            # and the checks use exactly those roots even when a background refresh swaps one meanwhile.
            roots = self._verifier.roots()
        except SigwardError as exc:
            return _error_verdict(unit, exc.message, failed=not _is_infra(exc)), cold
        key = plan.key(digest, trust_fingerprint=self._verifier.trust_fingerprint(plan.policy, roots))
        if plan.reusable:
            hit = self._cache.get(key)
            metrics.record_cache(hit=hit is not None)
            if hit is not None:
                return hit, metrics.VerificationSource.CACHE
            stored = self._stored_pass(unit, key)
            if stored is not None:
                self._cache.put(key, stored)
                return stored, metrics.VerificationSource.STORE

        def compute() -> RuleVerdict:
            verdict = self._verifier.evaluate(
                plan, deadline=deadline, digest=digest, trusted_root=roots, request=unit.request
            )
            if record and verdict.verdict == Verdict.PASS and not plan.request_dependent:
                self._record_pass(unit, verdict, key)
            return verdict

        if not plan.reusable:
            return compute(), cold
        try:
            return self._cache.get_or_compute(key, compute, timeout=max(deadline.remaining(), 0.001)), cold
        except TimeoutError:
            metrics.record_deadline_exhausted(metrics.DeadlineScope.ADMISSION)
            return _error_verdict(unit, "deadline exceeded before verification finished"), cold

    def _stored_pass(self, unit: _Unit, key: VerdictKey) -> RuleVerdict | None:
        """A fresh push-time (or other instance's) pass for exactly this key; the store is an optimisation, so an
        outage only costs a verification."""
        if self._store is None:
            return None
        try:
            found = self._store.lookup(key, now=time.time())
        except SigwardError as exc:
            metrics.record_store_request("lookup", metrics.Outcome.ERROR)
            logs.emit("WARNING", "verdict store lookup failed; verifying instead", error=exc.message)
            return None
        metrics.record_store_request("lookup", metrics.Outcome.OK)
        if found is None or found.verdict is not StoredStatus.PASS:
            return None
        return RuleVerdict(
            image=unit.image.image,
            reference=unit.image.ref.reference,
            digest=key.digest,
            verdict=Verdict.PASS,
            policy=unit.policy.name,
            rule=unit.rule_name,
            message=f"verified image signatures for {unit.image.ref.reference} (verdict recorded at {found.source})",
        )

    def _record_pass(self, unit: _Unit, verdict: RuleVerdict, key: VerdictKey) -> None:
        if self._store is None:
            return
        now = time.time()
        try:
            self._store.record(
                StoredVerdict.of(
                    key,
                    policy=unit.policy.name,
                    verdict=StoredStatus.of(verdict),
                    message=verdict.message,
                    verified_at=now,
                    ttl=self.settings.pass_ttl,
                    source="admission",
                    image=unit.image.image,
                )
            )
        except SigwardError as exc:
            metrics.record_store_request("record", metrics.Outcome.ERROR)
            logs.emit("WARNING", "verdict store write failed", error=exc.message)
            return
        metrics.record_store_request("record", metrics.Outcome.OK)

    def _digest(self, image: ResourceImage, rule: Rule, deadline: Deadline) -> str:
        """The tag's digest, looked up with the rule's credential providers only."""
        if self._resolve_digest is not None:
            return self._resolve_digest(image, deadline)
        providers = rule_credential_providers(rule, image.ref)
        return self._verifier.resolve_digest(image.ref, deadline=deadline, providers=providers)

    def _validate(
        self, units: Sequence[_Unit], deadline: Deadline, *, record: bool, memory_only: bool = False
    ) -> list[ImageCheck | None]:
        """``verifyDigest`` → "missing digest for X"; ``required`` → the image must have verified under the policy,
        from the cache or by verifying again — never from an annotation the requester could have written."""
        to_verify: list[_Unit] = []
        checks: list[ImageCheck | Literal["verify", "nothing"]] = []
        for unit in units:
            ivs = [unit.rule.verify_images[i] for i in unit.matched]
            if unit.preset is not None:  # decided before verification (preconditions not met, rule error)
                to_verify.append(unit)
                checks.append("verify")
            elif any(iv.verify_digest for iv in ivs) and not unit.image.ref.digest:
                verdict = RuleVerdict(
                    image=unit.image.image,
                    reference=unit.image.ref.reference,
                    digest="",
                    verdict=Verdict.FAIL,
                    policy=unit.policy.name,
                    rule=unit.rule_name,
                    message=f"missing digest for {unit.image.ref.reference}",
                )
                checks.append(self._check(unit, verdict, False))
            elif any(iv.required for iv in ivs):
                to_verify.append(unit)
                checks.append("verify")
            else:
                checks.append("nothing")
        verified = iter(self._verify_all(to_verify, deadline, record=record, memory_only=memory_only))
        out: list[ImageCheck | None] = []
        for slot in checks:
            if slot == "nothing":
                out.append(None)  # matched, nothing to validate: applied (a pass) when an entry applied
                continue
            check = next(verified) if slot == "verify" else slot
            if slot == "verify" and check.verdict.verdict == Verdict.FAIL:
                verdict = _replace_message(check.verdict, f"unverified image {check.image.ref.reference}")
                check = self._check_from(check, verdict)
            out.append(check)
        return out

    # -- shaping ---------------------------------------------------------------------------------------------------

    def _check(self, unit: _Unit, verdict: RuleVerdict, cached: bool, *, not_started: bool = False) -> ImageCheck:
        verdict = _replace_rule(verdict, unit.rule_name)
        blocking = False
        if verdict.verdict == Verdict.FAIL:
            blocking = unit.policy.spec.enforces(
                unit.rule, namespace=unit.namespace, namespace_labels=unit.namespace_labels
            )
        elif verdict.verdict == Verdict.ERROR:
            blocking = unit.policy.spec.failure_policy == "Fail" or (
                not_started
                and unit.policy.spec.enforces(
                    unit.rule, namespace=unit.namespace, namespace_labels=unit.namespace_labels
                )
            )
        return ImageCheck(
            policy=unit.policy,
            rule=unit.rule,
            rule_name=unit.rule_name,
            image=unit.image,
            verdict=verdict,
            blocking=blocking,
            cached=cached,
        )

    def _check_from(self, check: ImageCheck, verdict: RuleVerdict) -> ImageCheck:
        return replace(check, verdict=verdict)

    def _shape(self, request: AdmissionRequest, checks: Sequence[ImageCheck], *, mode: Mode) -> Decision:
        blocking = [c for c in checks if c.blocking]
        warnings: list[str] = []
        for c in checks:
            if c.blocking:
                continue
            if c.verdict.verdict in (Verdict.FAIL, Verdict.ERROR, Verdict.SKIP):
                warnings.append(f"policy {c.policy.name}.{c.rule_name}: {c.verdict.message}")
        if blocking:
            return Decision(
                allowed=False,
                message=denial_message(request, blocking),
                warnings=tuple(warnings),
                checks=tuple(checks),
                code=403,
            )
        patch = _digest_patches(checks) if mode == "mutate" else ()
        return Decision(allowed=True, patch=tuple(patch), warnings=tuple(warnings), checks=tuple(checks))


def _outcome(unit: _Unit, check: ImageCheck | None) -> Verdict:
    """What ``applyRules: One`` counts (sigward.verify.applyrules): a unit validate mode had nothing to check for
    passed when an entry applied to its image (Kyverno's validate handler passes it), else skipped."""
    if check is not None:
        return check.verdict.verdict
    return Verdict.PASS if unit.plan.applied and unit.preset is None else Verdict.SKIP


def webhook_conditions(policy: Policy, request: Mapping[str, Any]) -> MatchResult | None:
    """The policy's ``spec.webhookConfiguration.matchConditions`` on this request (None: it has none), evaluated as
    the API server would before calling the webhook: not matched -> the policy does not apply; an error -> the
    policy's failurePolicy for the whole request (Fail: :meth:`AdmissionService._condition_errors` rejects it;
    Ignore: the policy does not apply)."""
    wc = policy.spec.webhook_configuration
    if wc is None or not wc.match_conditions:
        return None
    return evaluate_conditions(webhook_match_conditions(wc), request_data(request))


class _OnceRoots:
    """The verifier's trusted roots read at most once, when a unit first needs them (None: unreadable, so nothing
    is taken from memory); reading them per unit cost a settings lookup each on the cache-hit path."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier
        self._read = False
        self._roots: RootSnapshot | None = None

    def get(self) -> RootSnapshot | None:
        if not self._read:
            self._read = True
            try:
                self._roots = self._verifier.roots()
            except SigwardError:
                self._roots = None
        return self._roots


def denial_message(request: AdmissionRequest, blocking: Sequence[ImageCheck]) -> str:
    """Kyverno's shape: ``resource Kind/ns/name was blocked due to the following policies`` + per policy/rule."""
    ns = request.namespace
    resource = (
        f"{request.kind.kind}/{ns}/{request.object_name}" if ns else f"{request.kind.kind}//{request.object_name}"
    )
    by_policy: dict[str, dict[str, list[str]]] = {}
    for c in blocking:
        rules = by_policy.setdefault(c.policy.name, {})
        messages = rules.setdefault(c.rule_name, [])
        if c.verdict.message not in messages:
            messages.append(c.verdict.message)
    lines = [f"\n\nresource {resource} was blocked due to the following policies \n"]
    for policy_name, rules in by_policy.items():
        lines.append(f"{policy_name}:")
        for rule_name, messages in rules.items():
            lines.append(f"  {rule_name}: {'; '.join(messages)}")
    return "\n".join(lines) + "\n"


def _digest_patches(checks: Sequence[ImageCheck]) -> list[dict[str, str]]:
    """Pin tags to digests, only for images a passing entry with ``mutateDigest`` matched, once per pointer."""
    by_pointer: dict[str, list[ImageCheck]] = {}
    for c in checks:
        by_pointer.setdefault(c.image.pointer, []).append(c)
    patches = []
    for pointer, group in by_pointer.items():
        image = group[0].image
        if image.ref.digest:
            continue
        if any(c.verdict.verdict not in (Verdict.PASS,) for c in group):
            continue
        wants = [c for c in group if any(c.rule.verify_images[i].mutate_digest for i in _matched(c.rule, c.image))]
        digests = {c.verdict.digest for c in wants if c.verdict.digest}
        if not wants or len(digests) != 1:
            continue
        patches.append({"op": "replace", "path": pointer, "value": image.ref.pinned(digests.pop())})
    return patches


def _matched(rule: Rule, image: ResourceImage) -> list[int]:
    return [i for i, iv in enumerate(rule.verify_images) if image_matches(iv, image.ref)]


def _changed_images(
    images: list[ResourceImage],
    old_object: Mapping[str, Any],
    kind: str,
    rule: Rule,
    search: Callable[[str, str], Any] | None,
) -> list[ResourceImage]:
    """On UPDATE, only images that are new or changed at their pointer are checked (Kyverno's HasChanged): a running
    Pod is not re-denied for images it already had (kubectl debug adds ephemeral containers this way)."""
    try:
        old = extract_images(old_object, kind=kind, extractors=rule.image_extractors, jmespath_search=search)
    except BadRequestError:
        return images
    before = {(i.pointer, i.image) for i in old}
    return [i for i in images if (i.pointer, i.image) not in before]


def _is_infra(exc: SigwardError) -> bool:
    return isinstance(exc, ExternalServiceError)


def _rule_verdict(policy: Policy, rule: Rule, verdict: Verdict, message: str) -> RuleVerdict:
    """A verdict of the whole rule before any image is verified (the unit fills in its image)."""
    return RuleVerdict(
        image="", reference="", digest="", verdict=verdict, policy=policy.name, rule=rule.name, message=message
    )


def _request_info(
    request: AdmissionRequest,
    *,
    namespace_labels: Callable[[], Mapping[str, str]] | None = None,
    user: UserInfo | None = None,
    roles: Callable[[], BoundRoles] | None = None,
) -> RequestInfo:
    """What match/exclude blocks read of an admission request (one mapping, so every reader sees the same)."""
    return request_info(
        kind=request.kind.kind,
        group=request.kind.group,
        version=request.kind.version,
        sub_resource=request.sub_resource,
        namespace=request.namespace,
        name=request.object_name,
        operation=request.operation,
        obj=request.object or {},
        namespace_labels=namespace_labels,
        user=user,
        roles=roles,
    )


def _error_verdict(unit: _Unit, message: str, *, failed: bool = False) -> RuleVerdict:
    return RuleVerdict(
        image=unit.image.image,
        reference=unit.image.ref.reference,
        digest="",
        verdict=Verdict.FAIL if failed else Verdict.ERROR,
        policy=unit.policy.name,
        rule=unit.rule_name,
        message=f"failed to verify image {unit.image.ref.reference}: {message}",
    )


def _replace_rule(verdict: RuleVerdict, rule_name: str) -> RuleVerdict:
    return verdict if verdict.rule == rule_name else replace(verdict, rule=rule_name)


def _replace_message(verdict: RuleVerdict, message: str) -> RuleVerdict:
    return replace(verdict, message=message)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)

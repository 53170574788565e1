"""The verification service: for each image and each matching ``verifyImages`` entry, fetch what the attestors
need through a :class:`SignatureSource` and decide with the pure checks in :mod:`sigward.verify.cosign`.

Semantics follow Kyverno's ``imageverifier.go``: every AttestorSet must pass (AND); inside a set, entries are tried
in order until ``count`` of them verify (nil/0 = all); a nested ``attestor`` recurses; several PEM keys in one
``publicKeys`` string are separate entries. Messages carry Kyverno's paths (``.attestors[0].entries[1].keys: …``).
Unlike Kyverno, an entry that could not be checked because a registry or KMS was unreachable makes the rule an
infrastructure *error* (failurePolicy decides) only when the other entries did not already satisfy ``count``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from sigward.deadline import Deadline
from sigward.errors import (
    BadRequestError,
    ConfigurationError,
    ExternalServiceError,
    FailureKind,
    SigwardError,
    VerificationFailure,
    combined_kind,
    evidence_kind,
    failure_kind_of,
    no_signatures_found,
)
from sigward.references import ImageReference, Repository, parse_image_reference, parse_repository
from sigward.registry.hints import NO_HINTS, TagHints
from sigward.registry.secretcreds import SECRET_MARKER
from sigward.verify.applyrules import staged
from sigward.verify.attestations import verify_attestations_with_key
from sigward.verify.bundles import BundleLayer
from sigward.verify.cosign import SignatureLayer, TlogOptions, VerifiedSignature, verify_signatures_with_key
from sigward.verify.dsse import Statement
from sigward.verify.keys import PublicKeyVerifier, split_pem_public_keys
from sigward.verify.plan import RulePlan, image_matches, image_skipped, image_values, plan_image, plan_rule
from sigward.verify.results import EntryFailure, RuleVerdict, Verdict, worst
from sigward.verify.rootsnapshot import RootSnapshot
from sigward.verify.trust import TrustedRoot, load_github_trusted_root, load_trusted_root

if TYPE_CHECKING:
    from sigward.cluster.data import ClusterData
    from sigward.cluster.globalcontext import GlobalContext
    from sigward.policy.models import (
        AnyAllConditions,
        Attestation,
        Attestor,
        AttestorSet,
        CertificateAttestor,
        ImageVerification,
        KeylessAttestor,
        Policy,
        Rule,
        StaticKeyAttestor,
    )
    from sigward.verify.rulecontext import ImageData

_R = TypeVar("_R")

# Images of one request or command verified at once; each mostly waits on the network.
MAX_PARALLEL_IMAGES = 16

#: A signature source fetching with only the given credential providers (``imageRegistryCredentials.providers``).
SourceForProviders = Callable[[tuple[str, ...]], "SignatureSource"]


def rule_credential_providers(rule: Rule, ref: ImageReference) -> tuple[str, ...] | None:
    """The providers that resolve ``ref``'s tag for ``rule``: those of its first entry that matches the image and
    fetches anything (every entry re-resolves with its own providers when they differ, see ``_with_entry_source``)."""
    for iv in rule.verify_images:
        if image_matches(iv, ref) and not image_skipped(iv, ref) and (iv.attestors or iv.attestations):
            return credential_providers(iv)
    return None


def credential_providers(iv: ImageVerification) -> tuple[str, ...] | None:
    """The providers a verifyImages entry's registry requests may use, Kyverno's way: no
    ``imageRegistryCredentials`` → the process-wide setting (``None``); given without providers → the docker
    config only (Kyverno's default keychain); else exactly those providers."""
    creds = iv.image_registry_credentials
    if creds is None:
        return None
    # Secrets ride along as markers, read by the source factory (sigward.registry.secretcreds).
    return (tuple(creds.providers) or ("default",)) + tuple(SECRET_MARKER + name for name in creds.secrets)


@runtime_checkable
class RemembersDigests(Protocol):
    """A source that can say, without a request, which digest it last resolved for a tag (still fresh)."""

    def cached_digest(self, ref: ImageReference) -> str | None: ...


class SignatureSource(Protocol):
    """Where digests and signatures come from: a registry in production, bytes in tests."""

    def resolve_digest(self, ref: ImageReference, *, deadline: Deadline) -> str: ...

    # ``tag_prefix``: cosign's signature tag prefix (IVPOL ``cosign.source.tagPrefix``; "" = none).
    def signature_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]: ...

    def attestation_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]: ...

    def bundles(self, repo: Repository, image_digest: str, *, deadline: Deadline) -> tuple[BundleLayer, ...]: ...


@runtime_checkable
class TakesTagHints(Protocol):
    """A source that can read the tags a push event named by digest while the registry has not linked them yet."""

    def with_tag_hints(self, hints: TagHints) -> SignatureSource: ...


def with_tag_hints(source: SignatureSource, hints: TagHints) -> SignatureSource:
    """``source`` for one evaluation with ``hints``; a source that cannot take hints is used as it is (unchanged
    behaviour: the tag lookup decides)."""
    if hints and isinstance(source, TakesTagHints):
        return source.with_tag_hints(hints)
    return source


class KeyResolver(Protocol):
    """Turns a ``keys`` attestor (one PEM or key URI) into a verifier."""

    def verifier(self, keys: StaticKeyAttestor, *, deadline: Deadline) -> PublicKeyVerifier: ...

    def refreshed(
        self, keys: StaticKeyAttestor, stale: PublicKeyVerifier, *, deadline: Deadline
    ) -> PublicKeyVerifier | None:
        """A re-fetched key after a failed verification (KMS key rotation), or None."""
        ...


@dataclass
class _ImageContext:
    """What one image's checks share: its resolved digest, the signature manifests already fetched, and the one
    trusted root every check of this image uses (a root refreshed in the background mid-verification must not mix
    with the old one: a chain checked under one root and a log key taken from another would prove nothing)."""

    ref: ImageReference
    digest: str
    deadline: Deadline
    trusted_root: TrustedRoot
    # Further roots this rule's policy allows (``sigward.dev/trusted-roots``); bundles pick among them by leaf issuer.
    also_trusted: tuple[TrustedRoot, ...] = ()
    # The evaluation's one reading of every root (the verdict key's): policy roots are chosen from it.
    snapshot: RootSnapshot | None = None
    request: Mapping[str, Any] | None = None  # the admission request, for conditions that read ``request.*``
    source: SignatureSource | None = None  # this entry's credential providers; None = the verifier's own source
    # The credential providers the tag was resolved with (None = the process-wide setting); meaningless when the
    # reference carried its digest.
    resolved_with: tuple[str, ...] | None = None
    layers: dict[tuple[str, str], tuple[SignatureLayer, ...]] = field(default_factory=dict)
    bundles: dict[tuple[str, str], tuple[BundleLayer, ...]] = field(default_factory=dict)
    # What a push event said about tags not linked yet (:mod:`sigward.registry.hints`): this evaluation only.
    tag_hints: TagHints = NO_HINTS


@dataclass(frozen=True)
class _EntryOutcome:
    signatures: tuple[VerifiedSignature, ...]


@dataclass(frozen=True)
class _EntryVerdict:
    """What one verifyImages entry decided for an image; ``failure`` is set on a FAIL."""

    verdict: Verdict
    message: str
    digest: str = ""
    failure: FailureKind | None = None
    path: str = ""  # the entry's YAML path within its rule, on a FAIL


def expand_static_keys(attestor_set: AttestorSet) -> tuple[Attestor, ...]:
    """Split entries whose ``publicKeys`` hold several PEMs into one entry each, keeping their other settings."""
    out: list[Attestor] = []
    for entry in attestor_set.entries:
        keys = entry.keys
        if keys is not None and keys.public_keys:
            pems = split_pem_public_keys(keys.public_keys)
            if len(pems) > 1:
                out.extend(entry.model_copy(update={"keys": keys.model_copy(update={"public_keys": p})}) for p in pems)
                continue
        out.append(entry)
    return tuple(out)


class Verifier:
    """Verifies images against policies; thread-safe, shared by every request of a process."""

    def __init__(
        self,
        *,
        source: SignatureSource,
        keys: KeyResolver | None = None,
        trusted_root: Callable[[], TrustedRoot] = load_trusted_root,
        clock: Callable[[], datetime] | None = None,
        source_for_providers: SourceForProviders | None = None,
        cluster: ClusterData | None = None,
        image_data: ImageData | None = None,
        github_root: Callable[[], TrustedRoot] = load_github_trusted_root,
        global_context: GlobalContext | None = None,
    ) -> None:
        """``source_for_providers``: how entries with ``imageRegistryCredentials`` get their own source; without
        it such entries are refused (verifying with credentials the policy excluded would be wrong)."""
        self._clock = clock or (lambda: datetime.now(UTC))
        self._source = source
        self._remembers = source if isinstance(source, RemembersDigests) else None
        self._source_for_providers = source_for_providers
        if keys is None:
            from sigward.kms.resolver import KeyResolver as DefaultKeyResolver

            keys = DefaultKeyResolver()
        self._keys: KeyResolver = keys
        self._trusted_root = trusted_root
        self._cluster = cluster  # rule context, cluster keys (sigward.verify.rulecontext); None = nothing shipped
        self.image_data = image_data  # imageRegistry context entries (sigward.registry.imagedata)
        self._github_root = github_root
        self._global_context = global_context  # GlobalContextEntries (sigward.cluster.globalcontext); None = none

    @property
    def global_context(self) -> GlobalContext:
        """What ``globalReference`` and CEL ``globalContext.Get`` read (no entries when none were loaded)."""
        from sigward.cluster.globalcontext import EMPTY

        return self._global_context or EMPTY

    @property
    def cluster_data(self) -> ClusterData:
        """Where cluster lookups go (``resource.Get`` of ImageValidatingPolicies, rule context): nothing shipped and
        no connection means every lookup is an infrastructure error."""
        from sigward.cluster.data import EMPTY

        return self._cluster or EMPTY

    def with_source(
        self, source: SignatureSource, *, source_for_providers: SourceForProviders | None = None
    ) -> Verifier:
        """A verifier reading signatures from ``source`` that shares this one's keys (parsed and KMS-fetched public
        keys stay warm), trusted roots, clock and cluster data: push and re-verification must not see admission's
        cached "no signature yet"."""
        return self._sharing(source, source_for_providers)

    def with_tag_hints(self, hints: TagHints) -> Verifier:
        """A verifier for one push event's evaluation whose every source reads the tags ``hints`` name by digest
        while they are not linked yet (:mod:`sigward.registry.hints`); for checks that build their own contexts
        (ImageValidatingPolicies). Drop it with the evaluation."""
        if not hints:
            return self
        for_providers = self._source_for_providers
        return self._sharing(
            with_tag_hints(self._source, hints),
            None if for_providers is None else (lambda providers: with_tag_hints(for_providers(providers), hints)),
        )

    def _sharing(self, source: SignatureSource, source_for_providers: SourceForProviders | None) -> Verifier:
        """A verifier on other sources sharing everything else of this one (keys, roots, clock, cluster data): the
        one place a derived verifier is built, so none loses a collaborator."""
        return Verifier(
            source=source,
            keys=self._keys,
            trusted_root=self._trusted_root,
            clock=self._clock,
            source_for_providers=source_for_providers,
            cluster=self._cluster,
            image_data=self.image_data,
            github_root=self._github_root,
            global_context=self._global_context,
        )

    # -- one image ---------------------------------------------------------------------------------------------

    def evaluate(
        self,
        plan: RulePlan,
        *,
        deadline: Deadline,
        digest: str = "",
        trusted_root: TrustedRoot | RootSnapshot | None = None,
        request: Mapping[str, Any] | None = None,
        context: _ImageContext | None = None,
        tag_hints: TagHints = NO_HINTS,
    ) -> RuleVerdict:
        """The verdict of one planned rule (:mod:`sigward.verify.plan`) for its image: the one entry point of the
        CLI, admission and push. With ``digest`` (the one the verdict key names) the image is verified pinned to
        it under ``trusted_root`` (the key's snapshot: :meth:`roots`); ``context`` shares one image's fetches
        across its rules instead. ``tag_hints`` (push, with ``digest``): tags the event named, read by digest while
        not linked yet."""
        ref = plan.ref
        if context is None and digest and plan.applied:
            pinned = ref if ref.digest else ref.with_digest(digest)
            context = self.new_context(pinned, deadline=deadline, request=request, trusted_root=trusted_root)
            context.tag_hints = tag_hints
        rule = plan.rule
        verdicts: list[_EntryVerdict] = []
        for i in plan.matched:
            iv = rule.verify_images[i]
            if i not in plan.applied:
                verdicts.append(
                    _EntryVerdict(Verdict.SKIP, f"skipping image reference {ref.reference} (skipImageReferences)")
                )
                continue
            verdicts.append(
                self._verify_entry_for_image(ref, iv, deadline=deadline, context=context, index=i, policy=plan.policy)
            )
        final = worst(v.verdict for v in verdicts)
        message = "; ".join(dict.fromkeys(v.message for v in verdicts if v.verdict == final))
        digest = next((v.digest for v in verdicts if v.digest), context.digest if context else ref.digest)
        failures = tuple(
            EntryFailure(path=v.path, kind=v.failure or FailureKind.NOT_SATISFIED)
            for v in verdicts
            if v.verdict == Verdict.FAIL
        )
        return RuleVerdict(
            image=ref.original,
            reference=ref.reference,
            digest=digest,
            verdict=final,
            policy=plan.policy.name,
            rule=rule.name,
            message=message,
            mutate_digest=any(rule.verify_images[i].mutate_digest for i in plan.matched),
            failure=combined_kind(f.kind for f in failures) if final == Verdict.FAIL else None,
            failures=failures if final == Verdict.FAIL else (),
        )

    def verify_image_rule(
        self,
        image: str | ImageReference,
        *,
        policy: Policy,
        rule: Rule,
        deadline: Deadline,
        context: _ImageContext | None = None,
    ) -> RuleVerdict | None:
        """The verdict of one rule for one image, or None when no entry of the rule matches the image."""
        ref = image if isinstance(image, ImageReference) else parse_image_reference(image)
        plan = plan_rule(policy, rule, ref)
        return None if plan is None else self.evaluate(plan, deadline=deadline, context=context)

    def _verify_entry_for_image(
        self,
        ref: ImageReference,
        iv: ImageVerification,
        *,
        deadline: Deadline,
        context: _ImageContext | None,
        index: int,
        policy: Policy | None = None,
    ) -> _EntryVerdict:
        """The outcome of one verifyImages entry (``verifyImages[index]``, the path its failure carries), under the
        trusted roots ``policy`` allows."""
        verdict = self._entry_verdict(ref, iv, deadline=deadline, context=context, policy=policy)
        return replace(verdict, path=f"verifyImages[{index}]") if verdict.verdict == Verdict.FAIL else verdict

    def _entry_verdict(
        self,
        ref: ImageReference,
        iv: ImageVerification,
        *,
        deadline: Deadline,
        context: _ImageContext | None,
        policy: Policy | None = None,
    ) -> _EntryVerdict:
        if not iv.attestors and not iv.attestations:
            return _EntryVerdict(Verdict.PASS, f"no attestors or attestations to verify for {ref.reference}")
        image = ref.reference
        try:
            ctx = context or self.new_context(ref, deadline=deadline)
            ctx = self._with_entry_source(ctx, iv)
            if policy is not None:
                ctx = self._with_policy_roots(ctx, policy)
            ctx = self._with_inline_root(ctx, iv)
        except ConfigurationError:
            raise  # e.g. the image's registry refused by the network guard: configuration, not an unsigned image
        except VerificationFailure as exc:
            return _EntryVerdict(Verdict.FAIL, f"failed to verify image {image}: {exc.message}", failure=exc.kind)
        except ExternalServiceError as exc:
            return _EntryVerdict(Verdict.ERROR, f"failed to verify image {image}: {exc.message}")
        # Every attestor set and the attestations are evaluated even after an outage in one of them: a decided
        # failure anywhere must decide (FAIL), or failurePolicy Ignore would admit what a later check refuses.
        outage: ExternalServiceError | None = None
        outcome: _EntryOutcome | None = None
        for i, attestor_set in enumerate(iv.attestors):
            try:
                outcome = self._verify_attestor_set(ctx, iv, attestor_set, f".attestors[{i}]")
            except VerificationFailure as exc:
                return _EntryVerdict(Verdict.FAIL, f"failed to verify image {image}: {exc.message}", failure=exc.kind)
            except ExternalServiceError as exc:
                outage = outage or exc
        message = f"verified image signatures for {image}"
        if iv.attestations:
            try:
                self._verify_attestations(ctx, iv)
            except VerificationFailure as exc:
                return _EntryVerdict(Verdict.FAIL, exc.message, failure=exc.kind)
            except ExternalServiceError as exc:
                outage = outage or exc
            message = f"verified image attestations for {image}"
        if iv.validate is not None and iv.validate.deny is not None:
            denied = self._deny(ctx, iv)
            if denied:
                return _EntryVerdict(Verdict.FAIL, denied, failure=FailureKind.NOT_SATISFIED)
        if outage is not None:
            return _EntryVerdict(Verdict.ERROR, f"failed to verify image {image}: {outage.message}")
        digest = ctx.digest
        if outcome is not None and outcome.signatures:
            digest = outcome.signatures[0].payload.manifest_digest
        return _EntryVerdict(Verdict.PASS, message, digest)

    def _with_entry_source(self, ctx: _ImageContext, iv: ImageVerification) -> _ImageContext:
        """A context whose fetches use the entry's credential providers, with its own fetched-layer memo (layers
        fetched with other credentials must not stand in for these)."""
        providers = credential_providers(iv)
        reresolve = not ctx.ref.digest and providers != ctx.resolved_with
        if providers is None and not reresolve:
            return ctx
        source = self._source_for(providers)
        # A tag is resolved with this entry's credentials only: a rule that excludes a provider must not have its
        # image looked up with it (Kyverno builds each entry's client from its imageRegistryCredentials).
        digest = source.resolve_digest(ctx.ref, deadline=ctx.deadline) if reresolve else ctx.digest
        return _ImageContext(
            ref=ctx.ref,
            digest=digest,
            deadline=ctx.deadline,
            trusted_root=ctx.trusted_root,
            also_trusted=ctx.also_trusted,
            snapshot=ctx.snapshot,
            request=ctx.request,
            source=None if providers is None else source,
            resolved_with=providers,
            tag_hints=ctx.tag_hints,
        )

    def _source_for(self, providers: tuple[str, ...] | None) -> SignatureSource:
        if providers is None:
            return self._source
        if self._source_for_providers is None:
            raise BadRequestError("imageRegistryCredentials.providers is not supported by this verifier")
        return self._source_for_providers(providers)

    def _source_of(self, ctx: _ImageContext) -> SignatureSource:
        return with_tag_hints(ctx.source if ctx.source is not None else self._source, ctx.tag_hints)

    def trusted_root(self) -> TrustedRoot:
        """A snapshot of the public-good trusted root in use now."""
        return self._trusted_root()

    def roots(self) -> RootSnapshot:
        """One reading of every trusted root for one evaluation: take it once, make the verdict key with it
        (:meth:`trust_fingerprint`) and verify under it (``evaluate(trusted_root=...)``), so a refresh of any root
        between the two never stores a verdict under another root's key."""
        return RootSnapshot(self._trusted_root(), self._github_root)

    def _snapshot(self, roots: TrustedRoot | RootSnapshot) -> RootSnapshot:
        return roots if isinstance(roots, RootSnapshot) else RootSnapshot(roots, self._github_root)

    def policy_roots(self, policy: Policy, default: TrustedRoot | RootSnapshot) -> tuple[TrustedRoot, ...]:
        """The roots ``policy`` allows (see :meth:`RootSnapshot.for_policy`); a bare root reads GitHub's anew."""
        return self._snapshot(default).for_policy(policy)

    def trust_fingerprint(self, policy: Policy, default: TrustedRoot | RootSnapshot) -> str:
        """What a verdict key records of the roots ``policy`` allows (see :meth:`RootSnapshot.fingerprint`)."""
        return self._snapshot(default).fingerprint(policy)

    def _with_policy_roots(self, ctx: _ImageContext, policy: Policy) -> _ImageContext:
        from sigward.policy.trustroots import TRUSTED_ROOTS_ANNOTATION

        if TRUSTED_ROOTS_ANNOTATION not in policy.annotations:
            return ctx
        roots = (ctx.snapshot or self._snapshot(ctx.trusted_root)).for_policy(policy)
        # A copy sharing the fetched-layer memo: the layers are the same, only the roots differ per policy.
        return replace(ctx, trusted_root=roots[0], also_trusted=roots[1:])

    def _with_inline_root(self, ctx: _ImageContext, iv: ImageVerification) -> _ImageContext:
        """An ImageValidatingPolicy attestor's ``cosign.trustedRoot``: the ONLY roots its checks use (never the TUF
        or GitHub root besides); a root that does not parse fails the check closed, naming the policy field."""
        from sigward.policy.ivpol.models import inline_root_of
        from sigward.verify.trust import inline_trusted_roots

        try:
            inline = inline_root_of(iv)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if inline is None:
            return ctx
        roots = inline_trusted_roots(inline.value, inline.path)
        return replace(ctx, trusted_root=roots[0], also_trusted=roots[1:])

    def resolve_digest(
        self, ref: ImageReference, *, deadline: Deadline, providers: tuple[str, ...] | None = None
    ) -> str:
        """The digest ``ref`` names, a tag looked up with ``providers``' credentials only (None = process-wide)."""
        return ref.digest or self._source_for(providers).resolve_digest(ref, deadline=deadline)

    def known_digest(self, ref: ImageReference) -> str | None:
        """The digest of ``ref`` when it is known without a network request (pinned, or a fresh resolution the
        source remembers); None otherwise. Lets a cache hit be answered without waiting on anything."""
        if ref.digest:
            return ref.digest
        return self._remembers.cached_digest(ref) if self._remembers is not None else None

    def new_context(
        self,
        ref: ImageReference,
        *,
        deadline: Deadline,
        request: Mapping[str, Any] | None = None,
        providers: tuple[str, ...] | None = None,
        trusted_root: TrustedRoot | RootSnapshot | None = None,
    ) -> _ImageContext:
        """The shared state of one image's verification. ``providers``: the credential providers to resolve a tag
        with (``rule_credential_providers``; None = the process-wide setting); ``trusted_root``: the snapshot a
        verdict key was made with (taken now when not given; a bare root is the public-good one)."""
        digest = self.resolve_digest(ref, deadline=deadline, providers=providers)
        snapshot = self.roots() if trusted_root is None else self._snapshot(trusted_root)
        return _ImageContext(
            ref=ref,
            digest=digest,
            deadline=deadline,
            trusted_root=snapshot.default,
            snapshot=snapshot,
            request=request,
            resolved_with=providers,
        )

    def attestation_predicates(
        self,
        ref: ImageReference,
        iv: ImageVerification,
        *,
        deadline: Deadline,
        context: _ImageContext | None = None,
    ) -> tuple[Any, ...]:
        """The predicates of ``iv``'s first attestation, from the first entry of its first attestor set whose
        statements verify (ImageValidatingPolicy ``extractPayload``: a policy reads only what was verified, never an
        unverified referrer as Kyverno's fallback does); a :class:`VerificationFailure` when none does."""
        from sigward.policy.models import Attestor, AttestorSet

        ctx = self._with_inline_root(context if context is not None else self.new_context(ref, deadline=deadline), iv)
        attestation = iv.attestations[0]
        predicate_type = attestation.type or attestation.predicate_type
        sets = attestation.attestors or (AttestorSet(entries=(Attestor(),)),)
        failures: list[str] = []
        for entry in expand_static_keys(sets[0]):
            try:
                statements = self._attestation_statements(ctx, iv, entry, predicate_type)
            except VerificationFailure as exc:
                failures.append(exc.message)
                continue
            found = tuple(s.predicate for s in statements if s.predicate_type == predicate_type)
            if found:
                return found
        raise VerificationFailure(
            "; ".join(failures) or f"attestions not found for predicate type {predicate_type}",
            kind=FailureKind.NO_ATTESTATIONS,
        )

    def _verify_attestor_set(
        self, ctx: _ImageContext, iv: ImageVerification, attestor_set: AttestorSet, path: str
    ) -> _EntryOutcome:
        entries = expand_static_keys(attestor_set)
        required = attestor_set.count or len(entries)
        verified = 0
        failures: list[str] = []
        kinds: list[FailureKind] = []
        outages: list[str] = []
        last: _EntryOutcome | None = None
        for i, entry in enumerate(entries):
            entry_path = f"{path}.entries[{i}]"
            try:
                if entry.attestor is not None:
                    last = self._verify_attestor_set(ctx, iv, entry.attestor, entry_path + ".attestor")
                else:
                    last = self._verify_entry(ctx, iv, entry, entry_path)
            except VerificationFailure as exc:
                failures.append(exc.message if entry.attestor is not None else f"{entry_path}{_sub(entry)}: {exc}")
                kinds.append(exc.kind)
                continue
            except ExternalServiceError as exc:
                outages.append(f"{entry_path}{_sub(entry)}: {exc.message}")
                continue
            verified += 1
            if verified >= required:
                return last
        if outages:
            raise ExternalServiceError("; ".join(outages + failures))
        if not failures:
            failures.append(f"{path}: verified {verified} of {required} required entries")
            kinds.append(FailureKind.NOT_SATISFIED)
        raise VerificationFailure("; ".join(failures), kind=combined_kind(kinds))

    def _verify_entry(self, ctx: _ImageContext, iv: ImageVerification, entry: Attestor, path: str) -> _EntryOutcome:
        """Legacy ``.sig`` signatures first (type Cosign), then Sigstore bundles attached as OCI referrers (cosign
        v3's default, and the only place ``type: SigstoreBundle`` looks)."""
        if iv.type == "Notary":
            return self._verify_entry_notary(ctx, iv, entry)
        legacy: VerificationFailure | None = None
        if iv.type != "SigstoreBundle":
            try:
                return self._verify_entry_legacy(ctx, iv, entry)
            except VerificationFailure as exc:
                legacy = exc
        try:
            self._verify_entry_bundles(ctx, iv, entry)
        except VerificationFailure as exc:
            raise _standing_failure(legacy, exc, nothing=FailureKind.NO_SIGNATURES) from None
        return _EntryOutcome(signatures=())

    def _verify_entry_notary(self, ctx: _ImageContext, iv: ImageVerification, entry: Attestor) -> _EntryOutcome:
        """Notation signatures (see :mod:`sigward.verify.notation`); the verified digest is the image's."""
        from sigward.verify.notation.policy import verify_notary_image

        verify_notary_image(
            self._source_of(ctx),
            repo=ctx.ref.repo,
            signature_repo=self._signature_repository(ctx, iv, entry),
            digest=ctx.digest,
            reference=f"{ctx.ref.repository}@{ctx.digest}",
            entry=entry,
            now=self._clock(),
            deadline=ctx.deadline,
        )
        return _EntryOutcome(signatures=())

    def _verify_entry_bundles(self, ctx: _ImageContext, iv: ImageVerification, entry: Attestor) -> None:
        from sigward.verify.bundles import verified_bundles, verify_bundle_signatures

        bundles = self._bundle_layers(ctx, self._signature_repository(ctx, iv, entry))
        kwargs = self._bundle_trust(ctx, entry)
        if iv.type != "SigstoreBundle":
            verify_bundle_signatures(bundles, image_digest=ctx.digest, **kwargs)
            return
        # type SigstoreBundle: any verified bundle about this image (signature or attestation) satisfies the entry
        if not bundles:
            raise no_signatures_found()
        errors: list[str] = []
        kinds: list[FailureKind] = []
        if next(verified_bundles(bundles, errors, kinds, image_digest=ctx.digest, **kwargs), None) is None:
            raise VerificationFailure("no matching signatures: " + "; ".join(errors), kind=evidence_kind(kinds))

    def _bundle_trust(self, ctx: _ImageContext, entry: Attestor) -> dict[str, Any]:
        """verify_bundle's keyword arguments for an attestor entry (key, identity or certificates, trust roots)."""
        from sigward.policy.models import KeylessAttestor

        root = ctx.trusted_root
        if entry.keys is not None:
            rekor = entry.keys.rekor  # its log keys are chosen by rekor.tlog_options, as for legacy layers
            return {
                "key": self._keys.verifier(entry.keys, deadline=ctx.deadline),
                "keyless": None,
                "certificates": None,
                "trusted_root": root,
                "rekor": rekor,
                "ignore_tlog": bool(rekor is not None and rekor.ignore_tlog),
                "ignore_sct": bool(entry.keys.ctlog is not None and entry.keys.ctlog.ignore_sct),
            }
        if entry.certificates is not None:
            certs = entry.certificates
            return {
                "key": None,
                "keyless": None,
                "certificates": certs,
                "trusted_root": root,
                "also_trusted": ctx.also_trusted,
                "ignore_tlog": bool(certs.rekor is not None and certs.rekor.ignore_tlog),
                "ignore_sct": bool(certs.ctlog is not None and certs.ctlog.ignore_sct),
            }
        keyless = entry.keyless or KeylessAttestor()
        return {
            "key": None,
            "keyless": keyless,
            "certificates": None,
            "trusted_root": root,
            "also_trusted": ctx.also_trusted,
            "ignore_tlog": bool(keyless.rekor is not None and keyless.rekor.ignore_tlog),
            "ignore_sct": bool(keyless.ctlog is not None and keyless.ctlog.ignore_sct),
        }

    def _verify_entry_legacy(self, ctx: _ImageContext, iv: ImageVerification, entry: Attestor) -> _EntryOutcome:
        if entry.keys is None:
            return self._verify_entry_certificates(ctx, iv, entry)
        layers = self._layers(ctx, self._signature_repository(ctx, iv, entry), entry.signature_tag_prefix)
        tlog = self._tlog_options(ctx, entry.keys)
        from sigward.verify.certificates import policy_tsa_chain

        tsa = policy_tsa_chain(entry.keys.ctlog)
        annotations = dict(entry.annotations)
        signatures = self._with_key(
            ctx,
            entry.keys,
            bool(layers),
            lambda verifier: verify_signatures_with_key(
                layers, image_digest=ctx.digest, verifier=verifier, annotations=annotations, tlog=tlog, tsa=tsa
            ),
        )
        return _EntryOutcome(signatures=signatures)

    # -- attestations -------------------------------------------------------------------------------------------

    def _verify_attestations(self, ctx: _ImageContext, iv: ImageVerification) -> None:
        """Kyverno's verifyAttestations: per attestation, every attestor set must have ``count`` entries whose
        verified statements of the predicate type all satisfy the conditions. An outage in one set or attestation
        does not stop the others from being checked: a decided failure anywhere wins."""
        from sigward.policy.models import Attestor, AttestorSet

        image = ctx.ref.reference
        outage: ExternalServiceError | None = None
        for i, attestation in enumerate(iv.attestations):
            path = f".attestations[{i}]"
            predicate_type = attestation.type or attestation.predicate_type
            if not predicate_type:
                raise VerificationFailure(f"{path}: missing predicateType")
            sets = attestation.attestors or (AttestorSet(entries=(Attestor(),)),)
            for j, attestor_set in enumerate(sets):
                try:
                    self._verify_attestation_set(ctx, iv, attestation, attestor_set, f"{path}.attestors[{j}]", image)
                except ExternalServiceError as exc:
                    outage = outage or exc
        if outage is not None:
            raise outage

    def _verify_attestation_set(
        self,
        ctx: _ImageContext,
        iv: ImageVerification,
        attestation: Attestation,
        attestor_set: AttestorSet,
        path: str,
        image: str,
    ) -> None:
        predicate_type = attestation.type or attestation.predicate_type
        entries = expand_static_keys(attestor_set)
        required = attestor_set.count or len(entries)
        verified = 0
        errors: list[str] = []
        kinds: list[FailureKind] = []
        outages: list[str] = []
        for k, entry in enumerate(entries):
            entry_path = f"{path}.entries[{k}]{_sub(entry)}"
            try:
                statements = self._attestation_statements(ctx, iv, entry, predicate_type)
                self._check_statements(ctx, iv, statements, predicate_type, attestation.conditions)
            except VerificationFailure as exc:
                errors.append(f"{entry_path}: {exc.message}")
                kinds.append(exc.kind)
                continue
            except ExternalServiceError as exc:
                outages.append(f"{entry_path}: {exc.message}")
                continue
            verified += 1
            if verified >= required:
                return
        if verified >= required:
            return
        if outages:
            raise ExternalServiceError("; ".join(outages + errors))
        detail = "; ".join(errors)
        raise VerificationFailure(
            f"image attestations verification failed, verifiedCount: {verified}, "
            f"requiredCount: {required}, error: {detail}"
            if errors and required > 1
            else detail or f"image attestations verification failed for {image}",
            kind=combined_kind(kinds) if kinds else FailureKind.NOT_SATISFIED,
        )

    def _attestation_statements(
        self, ctx: _ImageContext, iv: ImageVerification, entry: Attestor, predicate_type: str
    ) -> tuple[Statement, ...]:
        repo = self._signature_repository(ctx, iv, entry)
        if iv.type == "Notary":
            from sigward.verify.notation.policy import notary_statements

            return notary_statements(
                self._source_of(ctx),
                signature_repo=repo,
                digest=ctx.digest,
                reference=f"{ctx.ref.repository}@{ctx.digest}",
                artifact_type=predicate_type,
                entry=entry,
                now=self._clock(),
                deadline=ctx.deadline,
            )
        legacy: VerificationFailure | None = None
        if iv.type != "SigstoreBundle":
            try:
                return self._legacy_attestations(ctx, iv, entry, repo)
            except VerificationFailure as exc:
                legacy = exc
        from sigward.verify.bundles import verify_bundle_attestations

        try:
            return verify_bundle_attestations(
                self._bundle_layers(ctx, repo),
                image_digest=ctx.digest,
                predicate_type=predicate_type,
                **self._bundle_trust(ctx, entry),
            )
        except VerificationFailure as exc:
            raise _standing_failure(legacy, exc, nothing=FailureKind.NO_ATTESTATIONS) from None

    def _legacy_attestations(
        self, ctx: _ImageContext, iv: ImageVerification, entry: Attestor, repo: Repository
    ) -> tuple[Statement, ...]:
        layers = self._att_layers(ctx, repo, entry.signature_tag_prefix)
        if entry.keys is None:
            from sigward.verify.keyless import verify_attestations_by_certificate

            return verify_attestations_by_certificate(
                layers,
                attestor=_certificate_attestor(entry),
                image_digest=ctx.digest,
                trusted_root=ctx.trusted_root,
                signature_algorithm=entry.signature_algorithm,
                now=self._clock(),
            )
        tlog = self._tlog_options(ctx, entry.keys)
        from sigward.verify.certificates import policy_tsa_chain

        tsa = policy_tsa_chain(entry.keys.ctlog)
        return self._with_key(
            ctx,
            entry.keys,
            bool(layers),
            lambda verifier: verify_attestations_with_key(
                layers, image_digest=ctx.digest, verifier=verifier, tlog=tlog, tsa=tsa
            ),
        )

    def _with_key(
        self, ctx: _ImageContext, keys: StaticKeyAttestor, found: bool, check: Callable[[PublicKeyVerifier], _R]
    ) -> _R:
        """``check`` with the entry's key; when it fails on artifacts that were ``found``, once more with a
        re-fetched key (a rotated KMS key), if the resolver has a newer one."""
        verifier = self._keys.verifier(keys, deadline=ctx.deadline)
        try:
            return check(verifier)
        except VerificationFailure:
            if not found:
                raise
            fresh = self._keys.refreshed(keys, verifier, deadline=ctx.deadline)
            if fresh is None:
                raise
            return check(fresh)

    def _check_statements(
        self,
        ctx: _ImageContext,
        iv: ImageVerification,
        statements: Sequence[Statement],
        predicate_type: str,
        conditions: Sequence[AnyAllConditions],
    ) -> None:
        wanted = [s for s in statements if s.predicate_type == predicate_type]
        if not wanted:
            raise VerificationFailure(
                f"attestions not found for predicate type {predicate_type}", kind=FailureKind.NO_ATTESTATIONS
            )
        if not conditions:
            return
        from sigward.policy.conditions import evaluate_any_all

        for statement in wanted:
            context = self._condition_context(ctx, iv)
            if isinstance(statement.predicate, Mapping):
                context.update(statement.predicate)
            outcome = evaluate_any_all(conditions, context, now=self._clock(), missing="error")
            if not outcome.passed:
                raise VerificationFailure(
                    f"attestation checks failed for {ctx.ref.reference} and predicate {predicate_type}: "
                    f"{outcome.message}"
                )

    def _condition_context(self, ctx: _ImageContext, iv: ImageVerification) -> dict[str, Any]:
        """What ``iv``'s conditions may read: the image's digest and the request-specific values they were found
        to read (``ImageVerification.condition_inputs``), nothing more. A verdict's reuse key holds exactly these
        values, so an expression whose text only appears at evaluation (substituted from attestation data) cannot
        read a value the key does not cover: it finds the key missing instead."""
        inputs = iv.condition_inputs
        values = image_values(ctx.ref, ctx.digest)
        context: dict[str, Any] = {"image": {k: v for k, v in values.items() if k == "digest" or k in inputs.image}}
        if inputs.request and ctx.request is not None:
            context["request"] = ctx.request
        return context

    def _deny(self, ctx: _ImageContext, iv: ImageVerification) -> str:
        """``validate.deny``: when its conditions hold, the image is denied with ``validate.message``."""
        from sigward.policy.conditions import evaluate_deny

        assert iv.validate is not None and iv.validate.deny is not None
        # A missing key is an error (as in Kyverno), never a null that would let a deny condition quietly not hold.
        outcome = evaluate_deny(
            iv.validate.deny.conditions,
            self._condition_context(ctx, iv),
            now=self._clock(),
            message=iv.validate.message,
            missing="error",
        )
        if outcome.passed:
            return ""
        return outcome.message or f"image {ctx.ref.reference} denied by validate.deny"

    def _verify_entry_certificates(self, ctx: _ImageContext, iv: ImageVerification, entry: Attestor) -> _EntryOutcome:
        """``certificates`` and ``keyless`` entries (an empty entry is keyless with no identity constraint)."""
        from sigward.verify.keyless import verify_signatures_by_certificate

        layers = self._layers(ctx, self._signature_repository(ctx, iv, entry), entry.signature_tag_prefix)
        signatures = verify_signatures_by_certificate(
            layers,
            attestor=_certificate_attestor(entry),
            image_digest=ctx.digest,
            annotations=dict(entry.annotations),
            trusted_root=ctx.trusted_root,
            signature_algorithm=entry.signature_algorithm,
            now=self._clock(),
        )
        return _EntryOutcome(signatures=signatures)

    def _signature_repository(self, ctx: _ImageContext, iv: ImageVerification, entry: Attestor) -> Repository:
        name = entry.repository or iv.repository
        if not name:
            return ctx.ref.repo
        try:
            return parse_repository(name)
        except BadRequestError as exc:
            raise VerificationFailure(f"failed to parse signature repository {name}: {exc}") from None

    # Each fetch once per image context (per credential set): rules and entries share what was fetched.

    def _layers(self, ctx: _ImageContext, repo: Repository, prefix: str = "") -> tuple[SignatureLayer, ...]:
        source = self._source_of(ctx)
        return _memo(
            ctx.layers,
            (f"{prefix}|{repo}", ctx.digest),
            lambda: source.signature_layers(repo, ctx.digest, deadline=ctx.deadline, tag_prefix=prefix),
        )

    def _att_layers(self, ctx: _ImageContext, repo: Repository, prefix: str = "") -> tuple[SignatureLayer, ...]:
        source = self._source_of(ctx)
        return _memo(
            ctx.layers,
            (f"att:{prefix}|{repo}", ctx.digest),
            lambda: source.attestation_layers(repo, ctx.digest, deadline=ctx.deadline, tag_prefix=prefix),
        )

    def _bundle_layers(self, ctx: _ImageContext, repo: Repository) -> tuple[BundleLayer, ...]:
        source = self._source_of(ctx)
        return _memo(
            ctx.bundles,
            (f"bundles:{repo}", ctx.digest),
            lambda: source.bundles(repo, ctx.digest, deadline=ctx.deadline),
        )

    def _tlog_options(self, ctx: _ImageContext, keys: StaticKeyAttestor) -> TlogOptions:
        from sigward.verify.rekor import tlog_options

        return tlog_options(keys.rekor, ctx.trusted_root)

    # -- many images -------------------------------------------------------------------------------------------

    def verify_images(
        self, images: Sequence[str], policies: Sequence[Policy], *, deadline: Deadline
    ) -> list[RuleVerdict]:
        """One verdict per (image, matching rule), and one ``skip`` per image no rule matched; images run
        concurrently. Malformed references raise :class:`BadRequestError` before any network work."""
        refs = [parse_image_reference(image) for image in images]
        if not refs:
            return []
        if len(refs) == 1:  # no thread to start for one image: its requests are sequential anyway
            return self._verify_one_image(refs[0], policies, deadline)
        workers = min(MAX_PARALLEL_IMAGES, len(refs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sigward-verify") as pool:
            futures = [pool.submit(self._verify_one_image, ref, policies, deadline) for ref in refs]
            results: list[RuleVerdict] = []
            for future in futures:
                results.extend(future.result())
        return results

    def _verify_one_image(
        self, ref: ImageReference, policies: Sequence[Policy], deadline: Deadline
    ) -> list[RuleVerdict]:
        plans = plan_image(policies, ref)
        if not plans:
            return [
                RuleVerdict(
                    image=ref.original,
                    reference=ref.reference,
                    digest=ref.digest,
                    verdict=Verdict.SKIP,
                    policy="",
                    rule="",
                    message=f"no verifyImages rule matches {ref.reference}",
                )
            ]
        fetching = [p for p in plans if _fetches(p)]
        context: _ImageContext | None = None
        try:
            if fetching:
                providers = rule_credential_providers(fetching[0].rule, ref)
                context = self.new_context(ref, deadline=deadline, providers=providers)
        except ConfigurationError:
            raise  # the caller reports configuration (CLI exit 2; admission denies)
        except SigwardError as exc:
            verdict = Verdict.ERROR if isinstance(exc, ExternalServiceError) else Verdict.FAIL
            failed = exc

            def run(wave: Sequence[RulePlan]) -> list[RuleVerdict | None]:
                return [
                    RuleVerdict(
                        image=ref.original,
                        reference=ref.reference,
                        digest="",
                        verdict=verdict,
                        policy=plan.policy.name,
                        rule=plan.rule.name,
                        message=f"failed to verify image {ref.reference}: {failed.message}",
                        failure=failure_kind_of(failed),
                    )
                    for plan in wave
                ]

        else:

            def run(wave: Sequence[RulePlan]) -> list[RuleVerdict | None]:
                out: list[RuleVerdict | None] = []
                for plan in wave:
                    prepared = self._prepared(plan)
                    if prepared is None or isinstance(prepared, RuleVerdict):
                        out.append(prepared)
                    else:
                        out.append(self.evaluate(prepared, deadline=deadline, context=context))
                return out

        ran = staged(
            plans,
            policy_of=lambda p: p.policy,
            rule_of=lambda p: p.rule.name,
            run=run,
            verdict_of=lambda _, v: v.verdict if v is not None else Verdict.SKIP,
        )
        return [verdict for _, verdict in ran if verdict is not None]

    def _prepared(self, plan: RulePlan) -> RulePlan | RuleVerdict | None:
        """The plan of the rule prepared without an admission request (``verify``): context, preconditions,
        variables and cluster keys; a rule reading request data is decided at admission only (a ``skip`` that says
        so). None: the prepared rule no longer matches the image."""
        from sigward.policy.dynamic import is_dynamic, reads_request
        from sigward.verify.rulecontext import resolve_rule

        policy, rule, ref = plan.policy, plan.rule, plan.ref
        if not is_dynamic(rule):
            return plan

        def verdict(status: Verdict, message: str) -> RuleVerdict:
            return RuleVerdict(
                image=ref.original,
                reference=ref.reference,
                digest=ref.digest,
                verdict=status,
                policy=policy.name,
                rule=rule.name,
                message=message,
            )

        if reads_request(rule):
            return verdict(
                Verdict.SKIP,
                "rule reads admission request data (request, images, serviceAccount*, celPreconditions or the "
                "requesting user in match/exclude): evaluated at admission only",
            )
        from sigward.cluster.data import EMPTY

        try:
            resolution = resolve_rule(
                policy,
                rule,
                request=None,
                images=None,
                cluster=self._cluster or EMPTY,
                now=self._clock(),
                image_data=self.image_data,
                global_context=self.global_context,
            )
        except SigwardError as exc:
            return verdict(Verdict.ERROR, exc.message)
        if resolution.rule is None:
            return verdict(Verdict.SKIP, resolution.skip)
        return plan_rule(policy, resolution.rule, ref, resolved=resolution.fingerprint)


def _standing_failure(
    legacy: VerificationFailure | None, referrers: VerificationFailure, *, nothing: FailureKind
) -> VerificationFailure:
    """Which failure stands when the legacy layers and the OCI referrers both failed: the one that found something
    (the other found ``nothing``), else both, by kind — never by message."""
    if legacy is None or referrers.kind is nothing:
        return legacy or referrers
    if legacy.kind is nothing:
        return referrers
    return VerificationFailure(
        f"{legacy.message}; OCI referrers: {referrers.message}", kind=combined_kind((legacy.kind, referrers.kind))
    )


def _fetches(plan: RulePlan) -> bool:
    """Whether an applied entry of ``plan`` has anything to fetch."""
    return any(plan.rule.verify_images[i].attestors or plan.rule.verify_images[i].attestations for i in plan.applied)


def _memo(store: dict[tuple[str, str], _R], key: tuple[str, str], fetch: Callable[[], _R]) -> _R:
    found = store.get(key)
    if found is None:
        found = fetch()
        store[key] = found
    return found


def _certificate_attestor(entry: Attestor) -> CertificateAttestor | KeylessAttestor:
    """The certificate-based attestor of an entry without ``keys``: ``certificates``, else ``keyless`` (an empty
    entry is keyless with no identity constraint)."""
    from sigward.policy.models import KeylessAttestor

    if entry.certificates is not None:
        return entry.certificates
    return entry.keyless if entry.keyless is not None else KeylessAttestor()


def _sub(entry: Attestor) -> str:
    if entry.keys is not None:
        return ".keys"
    if entry.certificates is not None:
        return ".certificates"
    if entry.keyless is not None:
        return ".keyless"
    return ""

"""Evaluate ImageValidatingPolicies against one admission request, as Kyverno's ``policy.go`` does (match,
extract images, pin digests, check ``verifyDigest``, run validations with the image functions, ``required``),
with the signature checks done by the shared :class:`~sigward.verify.engine.Verifier`: an IVPOL attestor is
checked as the equivalent one-entry ClusterPolicy attestor set would be, so both policy forms agree.

Outcome texts are Kyverno's (``Policy <name> failed: <message>``); client-supplied annotations claiming earlier
results are never read (Kyverno issue 16336): every request is verified."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

from sigward.deadline import Deadline
from sigward.errors import BadRequestError, ExternalServiceError, FailureKind, SigwardError, VerificationFailure
from sigward.patterns import compile_re2, wildcard_match
from sigward.policy.ivpol.autogen import CONTROLLER_GROUPS
from sigward.policy.ivpol.cel import LIBRARY_VALUES, CelError, Program, bound
from sigward.policy.ivpol.exceptions import CelPolicyException, skip_message
from sigward.policy.ivpol.load import CompiledAttestor, ImagePolicy
from sigward.policy.ivpol.matchconditions import evaluate_conditions
from sigward.policy.ivpol.models import InlineTrustedRoot, inline_root_of
from sigward.policy.ivpol.policy_fields import registry_credentials, selectors
from sigward.policy.models import (
    Attestation,
    AttestorSet,
    ImageRegistryCredentials,
    ImageVerification,
    MatchResources,
    Policy,
    PolicySpec,
    ResourceDescription,
    ResourceFilter,
    Rule,
    VerificationType,
)
from sigward.references import ImageReference
from sigward.references import parse_image_reference as _parse_uncached
from sigward.verify import ivpol_lookups as lookups
from sigward.verify import ivpol_material as material
from sigward.verify.engine import Verifier, credential_providers
from sigward.verify.ivpol_lookups import resolve_root
from sigward.verify.results import RuleVerdict, Verdict

# Where Pod specs are in each kind Kyverno extracts images from (pkg/cel/compiler/images.go, autogen).
_POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "pods": ("spec",),
    "cronjobs": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTROLLER_POD_SPEC = ("spec", "template", "spec")
_CONTAINER_FIELDS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class PolicyOutcome:
    """What one policy decided for the request. ``verdict``: PASS, FAIL (a validation was false), ERROR (an
    expression, a lookup or a registry failed: denied under Deny whatever the failurePolicy, as in Kyverno), SKIP
    (not matched)."""

    policy: str
    verdict: Verdict
    message: str = ""
    actions: tuple[str, ...] = ()
    failure_policy: str = "Fail"
    exceptions: tuple[str, ...] = ()  # keys of the CEL PolicyExceptions that skipped this policy
    # ``auditAnnotations`` this policy produced: (:func:`audit_annotation_key`, value).
    annotations: tuple[tuple[str, str], ...] = ()
    # the same values under the policy's own keys: Kyverno's report result ``properties``
    properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Decision:
    """The request's verdict over every IVPOL: denial text, warnings, digest patches (JSON patch operations) and
    the failures of Audit-only policies (logged by the caller, never shown to the requester)."""

    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()
    patches: tuple[Mapping[str, str], ...] = ()
    outcomes: tuple[PolicyOutcome, ...] = ()
    audits: tuple[str, ...] = ()

    @property
    def audit_annotations(self) -> dict[str, str]:
        """The AdmissionResponse ``auditAnnotations`` of every evaluated policy."""
        return {k: v for o in self.outcomes for k, v in o.annotations}


class ImageChecks(Protocol):
    """The registry work an IVPOL evaluation needs; admission supplies a cached form (same answers, keyed by the
    policy's content hash), everything else :class:`DirectChecks`."""

    @property
    def verifier(self) -> Verifier:
        """The verifier behind the checks: its cluster data and image data serve ``resource``/``imagedata``."""
        ...

    def digest(self, ref: ImageReference, deadline: Deadline, providers: tuple[str, ...] | None = None) -> str:
        """The digest of ``ref``'s tag, looked up with ``providers``' credentials (None: process-wide)."""
        ...

    def verify(
        self,
        policy: ImagePolicy,
        check: str,
        ref: ImageReference,
        build: Callable[[], tuple[Policy, Rule]],
        deadline: Deadline,
        inline_root: InlineTrustedRoot | None = None,
    ) -> RuleVerdict | None:
        """The verdict of ``check`` (the engine's policy and rule for it from ``build``, called only to verify);
        ``inline_root``: the attestor's ``cosign.trustedRoot``, the only root the check verifies under (its
        fingerprint, not the default root's, belongs in a reuse key)."""
        ...

    def predicates(
        self, policy: ImagePolicy, ref: ImageReference, iv: ImageVerification, deadline: Deadline
    ) -> tuple[Any, ...]:
        """The verified predicates of ``iv``'s one attestation (``extractPayload``)."""
        ...

    def lookup(self, fetch: Callable[[], Any]) -> Any:
        """``fetch()``: a cluster or image-data lookup (a caller that must not block may refuse)."""
        ...


@dataclass(frozen=True)
class DirectChecks:
    """Every check asks the verifier (and so the registry) again."""

    verifier: Verifier

    def digest(self, ref: ImageReference, deadline: Deadline, providers: tuple[str, ...] | None = None) -> str:
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
        shell, rule = build()  # the engine takes the inline root from the rule's attestor set
        return self.verifier.verify_image_rule(ref, policy=shell, rule=rule, deadline=deadline)

    def predicates(
        self, policy: ImagePolicy, ref: ImageReference, iv: ImageVerification, deadline: Deadline
    ) -> tuple[Any, ...]:
        return self.verifier.attestation_predicates(ref, iv, deadline=deadline)

    def lookup(self, fetch: Callable[[], Any]) -> Any:
        return fetch()


# sigstore-go's texts for a missed evidence threshold, as Kyverno's ImageValidatingPolicy reports them (its cosign
# verifier runs sigstore-go with threshold 1 for each kind of evidence the attestor does not ignore).
KYVERNO_THRESHOLD_TEXTS: Mapping[FailureKind, str] = {
    FailureKind.TLOG_ENTRIES: (
        "failed to verify log inclusion: not enough verified log entries from transparency log: 0 < 1"
    ),
    FailureKind.SCT_ENTRIES: (
        "failed to verify signed certificate timestamp: only able to verify 0 SCT entries; "
        "unable to meet threshold of 1"
    ),
    FailureKind.SIGNED_TIMESTAMPS: "threshold not met for verified signed timestamps: 0 < 1",
}


def kyverno_reason(kinds: Sequence[FailureKind]) -> str:
    """The Kyverno text for the missed thresholds among ``kinds`` (in order, each once); "" when none."""
    return "; ".join(dict.fromkeys(KYVERNO_THRESHOLD_TEXTS[k] for k in kinds if k in KYVERNO_THRESHOLD_TEXTS))


# Image references repeat across requests (the same few images are admitted over and over); parsed once each.
_PARSED_REFERENCES = 4096


@functools.lru_cache(maxsize=_PARSED_REFERENCES)
def parse_image_reference(image: str) -> ImageReference:
    """:func:`sigward.references.parse_image_reference`, memoized (a malformed one raises every time)."""
    return _parse_uncached(image)


def glob_match(glob: str, text: str) -> bool:
    """gobwas/glob without separators (Kyverno's ``matchImageReferences[].glob``): ``*`` any run including
    ``/``, ``?`` one character, ``[…]`` classes, ``{a,b}`` alternatives; anchored. Linear time (RE2)."""
    if not any(c in glob for c in "[{"):
        return wildcard_match(glob, text)
    return compile_re2(_glob_regex(glob), path="matchImageReferences glob").fullmatch(text)


def _glob_regex(glob: str) -> str:
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = glob.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
                i = end
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


# Answers of :func:`image_selected` per (policy content hash, image): globs and reference expressions are pure, and
# the cache-hit path asks the same question for every image of every request. Bounded: image names come from
# requests, so the table is cleared when full rather than grown.
MAX_CACHED_SELECTIONS = 8192
_selections: dict[tuple[str, str], bool] = {}
# Per-policy (content hash) and per-attestor engine checks that depend on nothing but the loaded policy.
MAX_CACHED_CHECKS = 1024
_static_checks: dict[tuple[str, ...], Any] = {}


def _memo(table: dict[Any, Any], limit: int, key: Any, compute: Callable[[], Any]) -> Any:
    found = table.get(key, _MISSING)
    if found is _MISSING:
        if len(table) >= limit:
            table.clear()
        found = table[key] = compute()
    return found


_MISSING = object()


def image_selected(policy: ImagePolicy, image: str) -> bool:
    """Does ``matchImageReferences`` select ``image``? Every spelling of the image is tried (as written, and
    normalised with ``docker.io/``), so a resource cannot dodge a glob by how it writes a name. No
    matchImageReferences selects every image."""
    if not policy.match_images:
        return True
    return bool(
        _memo(_selections, MAX_CACHED_SELECTIONS, (policy.content_hash, image), lambda: _selected(policy, image))
    )


def _selected(policy: ImagePolicy, image: str) -> bool:
    spellings = [image]
    with contextlib.suppress(BadRequestError):  # an unparsable name is matched as written only
        spellings += list(parse_image_reference(image).spellings)
    for matcher in policy.match_images:
        for s in spellings:
            if isinstance(matcher, Program):
                if matcher.evaluate({"ref": s}) is True:
                    return True
            elif glob_match(matcher.glob, s):
                return True
    return False


def _get(obj: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def _pod_spec_path(resource: str) -> tuple[str, ...] | None:
    if resource in _POD_SPEC_PATHS:
        return _POD_SPEC_PATHS[resource]
    if resource in CONTROLLER_GROUPS:
        return _CONTROLLER_POD_SPEC
    return None


def builtin_images(resource: str, obj: Any) -> dict[str, list[str]]:
    """``images.containers``/``initContainers``/``ephemeralContainers`` of a Pod or pod controller."""
    path = _pod_spec_path(resource)
    out: dict[str, list[str]] = {f: [] for f in _CONTAINER_FIELDS}
    spec = _get(obj, path) if path else None
    if isinstance(spec, Mapping):
        for f in _CONTAINER_FIELDS:
            items = spec.get(f)
            if isinstance(items, list):
                out[f] = [c["image"] for c in items if isinstance(c, Mapping) and isinstance(c.get("image"), str)]
    return out


def _rule_matches(rule: Any, group: str, version: str, resource: str, operation: str, name: str) -> bool:
    def has(values: Sequence[str], value: str) -> bool:
        return "*" in values or value in values

    resources = rule.resources
    sub_ok = (
        resource in resources
        or "*" in resources
        or "*/*" in resources
        or ("/" in resource and f"*/{resource.split('/', 1)[1]}" in resources)
    )
    return (
        has(rule.api_groups, group)
        and has(rule.api_versions, version)
        and has(rule.operations, operation)
        and sub_ok
        and (not rule.resource_names or name in rule.resource_names)
    )


def matched_request(policy: ImagePolicy, request: Mapping[str, Any]) -> Mapping[str, Any]:
    """The request as the policy's rules see it. ``matchPolicy: Exact``: the resource the client asked for
    (``requestResource`` / ``requestSubResource``), not the equivalent one sigward's Equivalent webhook converted it
    to — Kyverno gives an Exact policy its own webhook with ``matchPolicy: Exact`` (pkg/controllers/webhook/
    validating.go ``buildWebhookRules``) and its in-process matcher (pkg/cel/matching/matcher.go) then sees only
    exact requests. Equivalent (the default): ``resource``, as the API server converted it."""
    mc = policy.spec.match_constraints
    exact = request.get("requestResource")
    if mc is None or mc.match_policy != "Exact" or not isinstance(exact, Mapping):
        return request
    return {**request, "resource": exact, "subResource": request.get("requestSubResource") or ""}


def policy_matches(policy: ImagePolicy, request: Mapping[str, Any]) -> bool:
    """``matchConstraints`` (resource rules, exclusions, ``matchPolicy``) and autogen: a pods-only policy also
    selects the pod controllers in ``autogen.podControllers`` (default: Kyverno's list)."""
    mc = policy.spec.match_constraints
    if mc is None:
        return True
    request = matched_request(policy, request)
    res = request.get("resource") or {}
    group, version, resource = str(res.get("group", "")), str(res.get("version", "")), str(res.get("resource", ""))
    sub = str(request.get("subResource") or "")
    full = f"{resource}/{sub}" if sub else resource
    op, name = str(request.get("operation", "")), str(request.get("name") or "")
    if any(_rule_matches(r, group, version, full, op, name) for r in mc.exclude_resource_rules):
        return False
    if any(_rule_matches(r, group, version, full, op, name) for r in mc.resource_rules):
        return True
    return autogen_match(policy, request)


def autogen_match(policy: ImagePolicy, request: Mapping[str, Any]) -> bool:
    """Is ``request`` selected only through autogen (a pods-only policy extended to a Pod controller)? Kyverno then
    reads the policy's ``object.metadata`` / ``object.spec`` as the controller's Pod template (pkg/cel/autogen).
    The operations are those of the FIRST resource rule only (pkg/cel/policies/ivpol/autogen/autogen.go
    ``autogenIvPols``: ``spec.MatchConstraints.ResourceRules[0].Operations``); none → no controller rule
    (``CreateMatchConstraints`` returns nil)."""
    mc = policy.spec.match_constraints
    request = matched_request(policy, request)  # Kyverno's controller rules sit in the policy's (Exact) webhook
    res = request.get("resource") or {}
    group, resource = str(res.get("group", "")), str(res.get("resource", ""))
    if mc is None or not mc.resource_rules or request.get("subResource") or resource not in policy.pod_controllers:
        return False
    if group != CONTROLLER_GROUPS.get(resource):
        return False
    op = str(request.get("operation", ""))
    operations = mc.resource_rules[0].operations
    return op in operations or "*" in operations


def pod_template_view(resource: str, obj: Any) -> Any:
    """The object as an autogen'ed policy sees it: ``metadata`` and ``spec`` of the controller's Pod template (what
    Kyverno's rewrite of ``object.metadata`` to ``object.spec.template.metadata`` — ``spec.jobTemplate.spec.
    template`` for CronJobs — reads); ``apiVersion`` and ``kind`` stay the controller's."""
    if not isinstance(obj, Mapping):
        return obj
    path = ("spec", "jobTemplate", "spec", "template") if resource == "cronjobs" else ("spec", "template")
    template: Any = obj
    for key in path:
        template = template.get(key) if isinstance(template, Mapping) else None
    template = template if isinstance(template, Mapping) else {}
    view = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
    view.update(metadata=template.get("metadata") or {}, spec=template.get("spec") or {})
    return view


def _labels(obj: Any) -> Mapping[str, str] | None:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return None if not isinstance(obj, Mapping) else {}
    labels = meta.get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def object_selected(policy: ImagePolicy, request: Mapping[str, Any]) -> bool:
    """``matchConstraints.objectSelector`` as the API server applies it: the object's labels or, when they do not
    match (or there is no object: DELETE), the old object's labels must match."""
    _, selector = selectors(policy.spec)
    if selector is None:
        return True
    for side in ("object", "oldObject"):
        labels = _labels(request.get(side))
        if labels is not None and selector.matches(labels):
            return True
    return False


def request_namespace(request: Mapping[str, Any]) -> tuple[str, Mapping[str, str] | None]:
    """The namespace a namespaceSelector is matched against, and its labels when the request itself carries them
    (creating or updating a Namespace: the object's own labels, as the API server reads them)."""
    resource = str((request.get("resource") or {}).get("resource", ""))
    if resource == "namespaces" and not request.get("subResource"):
        name = str(request.get("name") or request.get("namespace") or "")
        if request.get("operation") in ("CREATE", "UPDATE"):
            return name, _labels(request.get("object")) or {}
        return name, None
    return str(request.get("namespace") or ""), None


def namespace_selected(
    policy: ImagePolicy, request: Mapping[str, Any], labels_of: Callable[[str], Mapping[str, str]]
) -> bool:
    """``matchConstraints.namespaceSelector`` as the API server applies it: a cluster-scoped request (other than
    for a Namespace) always matches; otherwise the namespace's labels (``labels_of``, which may raise a lookup
    error: the caller applies failurePolicy) must match."""
    selector, _ = selectors(policy.spec)
    if selector is None:
        return True
    name, labels = request_namespace(request)
    if not name:
        return True
    return selector.matches(labels if labels is not None else labels_of(name))


@dataclass
class _RequestState:
    """Per-request record for ``required``: images a signature/attestation check was attempted on and verified."""

    attempted: set[str] = field(default_factory=set)
    verified: set[str] = field(default_factory=set)
    selected: dict[tuple[str, str], bool] = field(default_factory=dict)

    def selects(self, policy: ImagePolicy, image: str) -> bool:
        """:func:`image_selected`, once per (policy, image) in this request."""
        key = (policy.key, image)
        found = self.selected.get(key)
        if found is None:
            found = self.selected[key] = image_selected(policy, image)
        return found


def shell_policy(policy: ImagePolicy) -> Policy:
    """The ClusterPolicy shell an IVPOL check runs in on the shared engine (named after the IVPOL)."""
    return Policy(api_version="policies.kyverno.io/v1", kind="ClusterPolicy", name=policy.name, spec=PolicySpec())


def check_rule(policy: ImagePolicy, iv: ImageVerification) -> Rule:
    return Rule(
        name=policy.name,
        match=MatchResources(any=(ResourceFilter(resources=ResourceDescription(kinds=("Pod",))),)),
        verify_images=(iv,),
    )


def signature_check(
    kind: VerificationType, attestors: AttestorSet, credentials: ImageRegistryCredentials | None = None
) -> ImageVerification:
    """``verifyImageSignatures`` with one attestor, as an engine check (the check key ``signature:<attestor>``)."""
    return _one_check(kind, credentials, attestors=(attestors,))


def attestation_check(
    kind: VerificationType,
    predicate: str,
    attestors: AttestorSet,
    credentials: ImageRegistryCredentials | None = None,
) -> ImageVerification:
    """``verifyAttestationSignatures`` of one type with one attestor (check key ``attestation:<type>:<attestor>``)."""
    return _one_check(kind, credentials, attestations=(Attestation(type=predicate, attestors=(attestors,)),))


def _one_check(
    kind: VerificationType, credentials: ImageRegistryCredentials | None, **fields: Any
) -> ImageVerification:
    if credentials is not None:
        fields["image_registry_credentials"] = credentials
    return ImageVerification(
        type=kind, image_references=("*",), mutate_digest=False, verify_digest=False, required=False, **fields
    )


def check_credentials(
    policy_credentials: ImageRegistryCredentials | None, compiled: CompiledAttestor
) -> ImageRegistryCredentials | None:
    """The registry credentials of one attestor's check: the policy's ``credentials`` and the attestor's
    PullSecrets (providers narrow, Secrets add); None: the process-wide setting."""
    if not compiled.pull_secrets:
        return policy_credentials
    creds = policy_credentials
    return ImageRegistryCredentials(
        allow_insecure_registry=creds.allow_insecure_registry if creds is not None else False,
        providers=creds.providers if creds is not None else (),
        secrets=(*(creds.secrets if creds is not None else ()), *compiled.pull_secrets),
    )


class _Functions:
    """Kyverno's image functions for one policy evaluation, backed by the shared verifier."""

    def __init__(
        self,
        policy: ImagePolicy,
        checks: ImageChecks,
        deadline: Deadline,
        state: _RequestState,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self._data = data if data is not None else {}  # the evaluation's variables (attestor expressions read them)
        self._policy = policy
        self._checks = checks
        self._deadline = deadline
        self._state = state
        self.failure_kinds: list[FailureKind] = []  # of the checks that failed, for the denial's wording
        self._roots: dict[str, Any] = {}  # attestor name -> its set under the root and material expressions gave
        self._material: dict[str, str] = {}  # attestor name -> fingerprint of its expression material
        # (image, attestation name) -> the check that verified it: what extractPayload may read.
        self._payload_sources: dict[tuple[str, str], ImageVerification] = {}
        # ``credentials``: every check of this policy uses them (the engine narrows providers / adds Secrets).
        self._credentials = registry_credentials(policy.spec)

    @cached_property
    def _shell(self) -> Policy:
        return shell_policy(self._policy)

    def _built(self, iv: ImageVerification) -> tuple[Policy, Rule]:
        return self._shell, check_rule(self._policy, iv)

    def _passes(self, image: str, ivs: Sequence[tuple[str, ImageVerification]]) -> list[ImageVerification]:
        """The checks of ``ivs`` that pass for ``image`` (none when matchImageReferences does not select it)."""
        if not self._state.selects(self._policy, image):
            return []
        self._state.attempted.add(image)
        ref = parse_image_reference(image)
        passed: list[ImageVerification] = []
        for check, iv in ivs:
            verdict = self._checks.verify(
                self._policy, check, ref, functools.partial(self._built, iv), self._deadline, _inline_root(iv)
            )
            if verdict is None:
                continue
            if verdict.verdict == Verdict.ERROR:
                raise ExternalServiceError(verdict.message)
            if verdict.verdict == Verdict.PASS:
                passed.append(iv)
            elif verdict.verdict == Verdict.FAIL:
                self.failure_kinds += [f.kind for f in verdict.failures] or [
                    verdict.failure or FailureKind.NOT_SATISFIED
                ]
        if passed:
            self._state.verified.add(image)
        return passed

    def _compiled(self, name: str) -> CompiledAttestor:
        found = self._policy.attestors.get(name)
        if found is None:
            raise CelError(f"attestor not found in policy: {name}")
        return found

    def _attestor(self, name: str) -> Any:
        """The attestor set of ``name``; with ``cosign.trustedRoot.expression`` (or ``cosign.tuf``) the root, and
        with material expressions (keys, certificates, subjects) their values, are evaluated now (Kyverno reads them
        per verification): the root's fingerprint and :meth:`_check` key the verdict, never stale values."""
        compiled = self._compiled(name)
        if compiled.root_expression is None and not compiled.material and compiled.tuf is None:
            return compiled.attestors
        resolved = self._roots.get(name)
        if resolved is None:
            base: AttestorSet
            if compiled.tuf is not None:
                base = lookups.resolve_tuf_root(compiled, self._checks.lookup)
            elif compiled.root_expression is not None:
                base = resolve_root(compiled, self._data)
            else:
                base = compiled.attestors
            values = material.evaluate_material(compiled, self._data)
            self._material[name] = material.fingerprint(values)
            resolved = self._roots[name] = material.with_material(base, values)
        return resolved

    def _check(self, kind: str, name: str) -> str:
        """The reuse name of a check of attestor ``name`` (after :meth:`_attestor`): with expression material,
        its fingerprint is part of it, so a changed ConfigMap makes a new verdict (and reverify, which cannot
        evaluate the expression, leaves it to admission)."""
        found = self._material.get(name, "")
        return f"{kind}:{name}#{found}" if found else f"{kind}:{name}"

    def verify_image_signatures(self, image: str, attestors: Sequence[str]) -> int:
        ivs: list[tuple[str, ImageVerification]] = []
        for n in attestors:
            compiled = self._compiled(n)
            attestor_set = self._attestor(n)

            def build(compiled: CompiledAttestor = compiled, attestor_set: Any = attestor_set) -> ImageVerification:
                return signature_check(compiled.type, attestor_set, check_credentials(self._credentials, compiled))

            if attestor_set is compiled.attestors:  # nothing evaluated per request: one check per loaded policy
                check = _memo(_static_checks, MAX_CACHED_CHECKS, ("signature", self._policy.content_hash, n), build)
            else:
                check = build()
            ivs.append((self._check("signature", n), check))
        return len(self._passes(image, ivs))

    def _attestation(self, attestation: str) -> str:
        """The name of a declared attestation (``attestations.x`` evaluates to its name)."""
        if attestation not in self._policy.attestations:
            raise CelError(f"attestation not found in policy: {attestation}")
        return attestation

    def verify_attestation_signatures(self, image: str, attestation: str, attestors: Sequence[str]) -> int:
        name = self._attestation(attestation)
        predicate = self._policy.attestations[name]
        referrer = name in self._policy.referrers
        ivs: list[tuple[str, ImageVerification]] = []
        for n in attestors:
            compiled = self._compiled(n)
            # Kyverno: a notary attestor reads OCI referrers only, a cosign one in-toto statements only.
            if compiled.type == "Notary" and not referrer:
                raise CelError("notary verifier only supports oci 1.1 referrers as attestations")
            if compiled.type != "Notary" and referrer:
                raise CelError("cosign verifier only supports in-toto attestations")
            check = attestation_check(
                compiled.type, predicate, self._attestor(n), check_credentials(self._credentials, compiled)
            )
            ivs.append((self._check(f"attestation:{predicate}", n), check))
        passed = self._passes(image, ivs)
        if passed:
            self._payload_sources.setdefault((image, name), passed[0])
        return len(passed)

    def extract_payload(self, image: str, attestation: str) -> Any:
        """Kyverno's ``extractPayload``: the predicate of the attestation ``verifyAttestationSignatures`` verified
        for ``image`` earlier in this evaluation (the last statement of the type, as Kyverno keeps the last)."""
        name = self._attestation(attestation)
        iv = self._payload_sources.get((image, name))
        if iv is None:
            form = "referrer" if name in self._policy.referrers else "intoto"
            raise CelError(
                f"failed to get payload: {form} attestation payload cannot be fetch before verifying {form} attestation"
            )
        try:
            found = self._checks.predicates(self._policy, parse_image_reference(image), iv, self._deadline)
        except VerificationFailure as exc:
            raise CelError(f"failed to get payload: {exc.message}") from None
        return found[-1]

    def _lookup(self, fetch: Callable[[], Any]) -> Any:
        """A library lookup (cluster, ``http``, image data, globalContext) through the checks, refused once the
        evaluation's deadline has passed: a comprehension may call up to ``MAX_IMAGE_FUNCTION_CALLS`` of them, each
        with its own timeouts, and none of them reads the deadline itself."""
        self._deadline.check()
        return self._checks.lookup(fetch)

    def image_data(self, image: str) -> Any:
        providers = policy_providers(self._policy)
        return self._lookup(lambda: lookups.image_data(self._checks.verifier, image, providers))

    def resource_get(self, api_version: str, resource: str, namespace: str, name: str) -> Any:
        cluster = self._checks.verifier.cluster_data
        return self._lookup(lambda: lookups.resource_get(cluster, api_version, resource, namespace, name))

    def resource_list(self, api_version: str, resource: str, namespace: str) -> Any:
        cluster = self._checks.verifier.cluster_data
        return self._lookup(lambda: lookups.resource_list(cluster, api_version, resource, namespace))

    def http_call(self, method: str, url: str, headers: Mapping[str, str], body: Any) -> Any:
        """Kyverno's ``http`` library through the apiCall service allowlist (never an open fetcher)."""
        cluster = self._checks.verifier.cluster_data
        sent = tuple({"key": k, "value": v} for k, v in headers.items())
        return self._lookup(lambda: cluster.service(url, method=method, headers=sent, body=body, ca_bundle=""))

    def global_context_get(self, name: str, projection: str) -> Any:
        gctx = self._checks.verifier.global_context
        return self._lookup(lambda: lookups.global_context_get(gctx, name, projection))


def policy_providers(policy: ImagePolicy) -> tuple[str, ...] | None:
    """The credential providers (and Secret markers) of ``policy``'s ``credentials``, read as a ClusterPolicy's
    ``imageRegistryCredentials`` (:func:`~sigward.verify.engine.credential_providers`); None: process-wide."""

    def compute() -> tuple[str, ...] | None:
        creds = registry_credentials(policy.spec)
        return credential_providers(ImageVerification(image_registry_credentials=creds)) if creds else None

    found: tuple[str, ...] | None = _memo(
        _static_checks, MAX_CACHED_CHECKS, ("providers", policy.content_hash), compute
    )
    return found


def _inline_root(iv: ImageVerification) -> InlineTrustedRoot | None:
    try:
        return inline_root_of(iv)
    except ValueError as exc:  # the loader never builds such a check
        raise CelError(str(exc)) from None


def _set_image(obj: Any, path: Sequence[str | int], value: str) -> None:
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value


def _pin(
    policy: ImagePolicy, resource: str, obj: Any, checks: ImageChecks, deadline: Deadline, state: _RequestState
) -> list[dict[str, str]]:
    """``mutateDigest``: each selected container image without a digest becomes ``image:tag@digest`` in ``obj``
    (Pod-style fields only); the JSON patches for the response."""
    path = _pod_spec_path(resource)
    spec = _get(obj, path) if path else None
    patches: list[dict[str, str]] = []
    providers = policy_providers(policy)
    if not isinstance(spec, Mapping):
        return patches
    for f in _CONTAINER_FIELDS:
        items = spec.get(f)
        if not isinstance(items, list):
            continue
        for i, c in enumerate(items):
            image = c.get("image") if isinstance(c, Mapping) else None
            if not isinstance(image, str) or not state.selects(policy, image):
                continue
            ref: ImageReference = parse_image_reference(image)
            if ref.digest:
                continue
            pinned = ref.pinned(checks.digest(ref, deadline, providers))
            _set_image(obj, [*(path or ()), f, i, "image"], pinned)
            pointer = "/" + "/".join([*(path or ()), f, str(i), "image"])
            patches.append({"op": "replace", "path": pointer, "value": pinned})
    return patches


def evaluate_policy(
    policy: ImagePolicy,
    request: Mapping[str, Any],
    obj: Any,
    *,
    checks: ImageChecks,
    deadline: Deadline,
    state: _RequestState,
    exemption: Exemption | None = None,
) -> tuple[PolicyOutcome, list[str]]:
    """One policy on one request whose ``obj`` (already pinned) is given; the outcome and the images it
    selected. ``exemption``: the CEL PolicyExceptions naming the policy (a SKIP naming them when they hold)."""
    spec = policy.spec
    actions = spec.effective_actions()
    base: dict[str, Any] = {"policy": policy.name, "actions": actions, "failure_policy": spec.failure_policy}
    resource = str((request.get("resource") or {}).get("resource", ""))
    view = obj
    old = request.get("oldObject")
    if autogen_match(policy, request):  # pod_controllers is set only for pods-only rules: never a direct match
        view, old = pod_template_view(resource, obj), pod_template_view(resource, old)
    data: dict[str, Any] = {
        "object": view,
        "oldObject": old,
        "request": dict(request),
        "namespaceObject": None,
        "variables": {},
    }
    data.update(LIBRARY_VALUES)
    functions = _Functions(policy, checks, deadline, state, data)
    try:
        with bound(functions) as cel_state:
            matched = evaluate_conditions(
                policy.match_conditions, data, run=lambda program, values: _evaluate(program, values, cel_state)
            )
            if matched.error and spec.failure_policy == "Fail":
                raise CelError(f"failed to evaluate matchConditions: {matched.error}")
            if not matched.matched:  # Kyverno: under failurePolicy Ignore a condition that errs does not match
                skipped = f"matchConditions not evaluable: {matched.error}" if matched.error else ""
                skipped = skipped or "matchConditions not met"
                return PolicyOutcome(verdict=Verdict.SKIP, message=skipped, **base), []
            if exemption is not None and exemption.keys():
                keys = exemption.keys()
                return PolicyOutcome(verdict=Verdict.SKIP, message=skip_message(keys), exceptions=keys, **base), []
            images = builtin_images(resource, obj if obj is not None else request.get("oldObject"))
            for name, extractor in policy.extractors.items():
                value = _evaluate(extractor, data, cel_state)
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise CelError(f"images.{name}: must be a list of strings")
                images[name] = list(value)
            images = {k: [i for i in v if state.selects(policy, i)] for k, v in images.items()}
            selected = list(dict.fromkeys(i for v in images.values() for i in v))
            if spec.validation_configurations.verify_digest:
                for image in selected:
                    if not _has_digest(image):
                        return PolicyOutcome(
                            verdict=Verdict.FAIL, message=f"image {image} does not have a digest", **base
                        ), selected
            data.update(
                images=images,
                attestors={name: {"name": name} for name in policy.attestors},
                attestations={name: name for name in policy.attestations},
                image={},
            )
            variables: dict[str, Any] = {}
            data["variables"] = variables
            for name, program in policy.variables.items():
                variables[name] = _evaluate(program, data, cel_state)
            failed = ""
            for index, (rule, message_program) in enumerate(policy.validations):
                if _evaluate(rule, data, cel_state) is True:
                    continue
                message = spec.validations[index].message
                if message_program is not None:
                    text = _evaluate(message_program, data, cel_state)
                    message = text if isinstance(text, str) else message
                message = message or f"CEL expression validation failed at index {index}"
                reason = kyverno_reason(functions.failure_kinds)
                failed = f"{message}: {reason}" if reason else message
                break
            base["properties"] = _audit_annotations(policy, data, cel_state)
            base["annotations"] = tuple((audit_annotation_key(policy.name, k), v) for k, v in base["properties"])
            if failed:
                return PolicyOutcome(verdict=Verdict.FAIL, message=failed, **base), selected
    except (CelError, SigwardError) as exc:
        base.pop("annotations", None)  # an evaluation error leaves no annotation (failurePolicy decides)
        base.pop("properties", None)
        return PolicyOutcome(verdict=Verdict.ERROR, message=exc.message, **base), []
    return PolicyOutcome(verdict=Verdict.PASS, **base), selected


class Exemption:
    """The CEL PolicyExceptions (already those naming the policy, unexpired) that exempt one request, evaluated at
    most once: before pinning (an exempted policy pins nothing) and after the policy's own matchConditions held
    (Kyverno's order). Conditions read the request as sent (``object`` is the controller, never an autogen view).
    An evaluation error is kept and raised to the policy's evaluation: the policy's error, as in Kyverno."""

    def __init__(
        self,
        policy: ImagePolicy,
        exceptions: Sequence[CelPolicyException],
        request: Mapping[str, Any],
        *,
        checks: ImageChecks,
        deadline: Deadline,
        state: _RequestState,
    ) -> None:
        self._args = (policy, exceptions, request, checks, deadline, state)
        self._keys: tuple[str, ...] | None = None
        self._error: CelError | SigwardError | None = None

    def keys(self) -> tuple[str, ...]:
        """The exempting exceptions' keys, sorted; raises what evaluating them raised."""
        if self._error is not None:
            raise self._error
        if self._keys is None:
            try:
                self._keys = self._evaluate()
            except (CelError, SigwardError) as exc:
                self._error = exc
                raise
        return self._keys

    def exempts(self) -> bool:
        """Whether the request is (or may be: an evaluation error) exempted: then nothing is pinned."""
        try:
            return bool(self.keys())
        except (CelError, SigwardError):
            return True

    def _evaluate(self) -> tuple[str, ...]:
        policy, exceptions, request, checks, deadline, state = self._args
        data: dict[str, Any] = {
            "object": request.get("object"),
            "oldObject": request.get("oldObject"),
            "request": dict(request),
            "namespaceObject": None,
            "variables": {},
        }
        data.update(LIBRARY_VALUES)
        found: list[str] = []
        with bound(_Functions(policy, checks, deadline, state, data)) as cel_state:
            for exception in exceptions:
                matched = evaluate_conditions(
                    exception.conditions,
                    data,
                    run=lambda program, values: _evaluate(program, values, cel_state),
                    exempting=True,
                )
                if matched.error and policy.spec.failure_policy == "Fail":
                    raise CelError(f"PolicyException {exception.key} matchConditions: {matched.error}")
                if matched.matched:
                    found.append(exception.key)
        return tuple(sorted(found))


# ValidatingAdmissionPolicy: an audit annotation value longer than 10 KiB is truncated to 10 KiB (the audit log
# must not grow with request data).
MAX_AUDIT_ANNOTATION_VALUE_BYTES = 10 * 1024


# The API server stores a webhook's audit annotation as ``<webhook name>/<key>`` and drops any key that is not then a
# qualified name (apiserver admission ``checkKeyFormat``: exactly one ``/``, a name part of at most 63 characters).
MAX_AUDIT_KEY_CHARS = 63
_AUDIT_KEY_HASH_CHARS = 8


def audit_annotation_key(policy: str, key: str) -> str:
    """The AdmissionResponse key of ``policy``'s audit annotation ``key``: ValidatingAdmissionPolicy writes
    ``<policy>/<key>``, which a webhook cannot (the API server adds its own ``<webhook>/`` prefix), so
    ``<policy>.<key>``; a policy name too long for 63 characters is shortened and marked with its hash."""
    joined = f"{policy}.{key}"
    if len(joined) <= MAX_AUDIT_KEY_CHARS:
        return joined
    digest = hashlib.sha256(policy.encode()).hexdigest()[:_AUDIT_KEY_HASH_CHARS]
    room = MAX_AUDIT_KEY_CHARS - len(key) - len(digest) - 2
    head = policy[:room].rstrip(".-") if room > 0 else ""
    if head:
        return f"{head}-{digest}.{key}"
    return f"{digest}.{key[: MAX_AUDIT_KEY_CHARS - len(digest) - 1]}".rstrip(".-_")


def _error_outcome(policy: ImagePolicy, message: str) -> PolicyOutcome:
    """An ERROR outcome before the policy was evaluated (its failurePolicy and actions decide what it means)."""
    return PolicyOutcome(
        policy=policy.name,
        verdict=Verdict.ERROR,
        message=message,
        actions=policy.spec.effective_actions(),
        failure_policy=policy.spec.failure_policy,
    )


def _audit_annotations(policy: ImagePolicy, data: Mapping[str, Any], cel_state: Any) -> tuple[tuple[str, str], ...]:
    """``auditAnnotations``: each key → the valueExpression's string (null: no annotation), as
    ValidatingAdmissionPolicy computes them; an evaluation error raises (the policy's outcome is an error)."""
    out: list[tuple[str, str]] = []
    for key, program in policy.audit_annotations:
        value = _evaluate(program, data, cel_state)
        if value is None:
            continue
        if not isinstance(value, str):
            raise CelError(f"{program.path}: must evaluate to a string or null")
        encoded = value.encode()
        if len(encoded) > MAX_AUDIT_ANNOTATION_VALUE_BYTES:
            value = encoded[:MAX_AUDIT_ANNOTATION_VALUE_BYTES].decode("utf-8", "ignore")
        out.append((key, value))
    return tuple(out)


def _has_digest(image: str) -> bool:
    try:
        return bool(parse_image_reference(image).digest)
    except BadRequestError:
        return False


def _evaluate(program: Program, data: Mapping[str, Any], cel_state: Any) -> Any:
    try:
        return program.evaluate(data)
    except CelError:
        # What a function raised (a registry failure, or the caller's "not in memory") wins over CEL's wrapping.
        if cel_state.exception is not None:
            raise cel_state.exception from None
        raise


def evaluate_request(
    policies: Sequence[ImagePolicy],
    request: Mapping[str, Any],
    *,
    verifier: Verifier | None = None,
    checks: ImageChecks | None = None,
    deadline: Deadline,
    mutate: bool = True,
    namespace_decided: bool = False,
    apply_selectors: bool = True,
    apply_exceptions: bool = True,
    now: datetime | None = None,
) -> Decision:
    """Every IVPOL on one AdmissionRequest (``request`` is ``AdmissionReview.request``); registry work goes through
    ``checks`` (default: :class:`DirectChecks` on ``verifier``). ``mutate`` False is the validating webhook: no
    ``mutateDigest`` pinning, so ``verifyDigest`` checks the object as it will be stored. ``namespace_decided``:
    the request came through the webhook of the policies' namespaceSelector route (the API server matched it).
    ``apply_selectors`` False: an image checked alone (``verify``, push) is checked for any resource the policy
    covers, so the label selectors, which pick resources, do not apply (as a ClusterPolicy's ``match``).
    ``apply_exceptions``: each policy's CEL PolicyExceptions (:attr:`ImagePolicy.exceptions`) skip it when they hold
    (not verified, not pinned, autogen'ed controllers included); False for an image checked alone (``verify``, push):
    its request is synthetic, so no exception applies (fail closed)."""

    if checks is None:
        if verifier is None:
            raise TypeError("evaluate_request needs a verifier or checks")
        checks = DirectChecks(verifier)

    # The object came from JSON: a JSON round trip is its exact (and faster than deepcopy) private copy to pin in.
    obj = json.loads(json.dumps(request.get("object")))
    resource = str((request.get("resource") or {}).get("resource", ""))
    state = _RequestState()
    outcomes: list[PolicyOutcome] = []
    patches: list[Mapping[str, str]] = []
    required: dict[str, str] = {}
    when = now or datetime.now(UTC)
    for policy in policies:
        if not policy.spec.evaluation.admission.enabled or not policy_matches(policy, request):
            continue
        if policy.namespace and policy.namespace != request.get("namespace"):
            continue
        if apply_selectors and not object_selected(policy, request):
            continue
        if apply_selectors and not namespace_decided:
            try:
                if not namespace_selected(policy, request, functools.partial(_namespace_labels, checks)):
                    continue
            except SigwardError as exc:
                outcomes.append(_error_outcome(policy, f"namespaceSelector: {exc.message}"))
                continue
        naming = [e for e in policy.exceptions if e.refers_to(policy.kind, policy.name) and not e.expired(when)]
        exemption = (
            Exemption(policy, naming, request, checks=checks, deadline=deadline, state=state)
            if naming and apply_exceptions
            else None
        )
        pins = policy.spec.validation_configurations.mutate_digest and mutate
        if exemption is not None and exemption.exempts():
            pins = False  # Kyverno: an exempted policy mutates nothing
        if pins and obj is not None and not request.get("subResource"):
            try:
                patches += _pin(policy, resource, obj, checks, deadline, state)
            except SigwardError as exc:
                outcomes.append(_error_outcome(policy, f"failed to resolve image digest: {exc.message}"))
                continue
        outcome, selected = evaluate_policy(
            policy, request, obj, checks=checks, deadline=deadline, state=state, exemption=exemption
        )
        outcomes.append(outcome)
        if outcome.verdict == Verdict.PASS and policy.spec.validation_configurations.required:
            for image in selected:
                required.setdefault(image, policy.name)
    for image, name in required.items():
        if image in state.verified:
            continue
        message = (
            f"image {image} failed signature or attestation verification"
            if image in state.attempted
            else f"image {image} is not verified: no policy performed a signature or attestation check on it"
        )
        policy = next(p for p in policies if p.name == name)
        outcomes.append(
            PolicyOutcome(
                policy=name,
                verdict=Verdict.FAIL,
                message=message,
                actions=policy.spec.effective_actions(),
                failure_policy=policy.spec.failure_policy,
            )
        )
    return _decide(outcomes, patches)


def _namespace_labels(checks: ImageChecks, namespace: str) -> Mapping[str, str]:
    """A namespace's labels from the cluster data service (shipped manifests or the live connection)."""
    cluster = checks.verifier.cluster_data
    found: Mapping[str, str] = checks.lookup(lambda: cluster.namespace_labels(namespace))
    return found


def _decide(outcomes: Sequence[PolicyOutcome], patches: Sequence[Mapping[str, str]]) -> Decision:
    denials: list[str] = []
    warnings: list[str] = []
    audits: list[str] = []
    for o in outcomes:
        # Kyverno's IVPOL webhook (pkg/webhooks/resource/ivpol handler) turns an evaluation error (a lookup, a
        # registry, a CEL runtime error) into a denial under Deny and a warning under Warn whatever the
        # failurePolicy: that only tells the API server what to do when the webhook itself cannot answer. So an
        # unreachable lookup never admits here either.
        if o.verdict not in (Verdict.FAIL, Verdict.ERROR):
            continue
        text = f"Policy {o.policy} {'failed' if o.verdict == Verdict.FAIL else 'error'}: {o.message}"
        if "Deny" in o.actions:
            denials.append(text)
        elif "Warn" in o.actions:
            warnings.append(text)
        if "Audit" in o.actions:
            audits.append(text)
    if denials:
        return Decision(
            allowed=False,
            message="; ".join(denials),
            warnings=tuple(warnings),
            outcomes=tuple(outcomes),
            audits=tuple(audits),
        )
    return Decision(
        allowed=True, warnings=tuple(warnings), patches=tuple(patches), outcomes=tuple(outcomes), audits=tuple(audits)
    )


# Names through which an expression reads the admission request (``images`` is derived from the object but for a
# single image is the same at push, in ``sigward verify`` and at admission).
_REQUEST_NAMES = re.compile(r"\b(object|oldObject|request|namespaceObject)\b")


def reads_request(policy: ImagePolicy) -> bool:
    """Whether any expression of ``policy`` reads the admission request (then only admission can decide it)."""
    spec = policy.spec
    sources = [
        *(c.expression for c in spec.match_conditions),
        *(e.expression for e in spec.images),
        *(v.expression for v in spec.variables),
        *(v.expression for v in spec.validations),
        *(v.message_expression for v in spec.validations),
    ]
    return any(_REQUEST_NAMES.search(s) for s in sources)


# The Pod ``sigward verify IMAGE`` and push events evaluate an IVPOL against: the image as its only container.
SYNTHETIC_NAMESPACE = "default"
SYNTHETIC_NAME = "sigward-verify"


def pod_request(image: str) -> dict[str, Any]:
    """An AdmissionRequest creating a Pod in namespace ``default`` whose one container runs ``image``."""
    return {
        "uid": SYNTHETIC_NAME,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": SYNTHETIC_NAMESPACE,
        "name": SYNTHETIC_NAME,
        "userInfo": {},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": SYNTHETIC_NAME, "namespace": SYNTHETIC_NAMESPACE},
            "spec": {"containers": [{"name": "image", "image": image}]},
        },
    }


def evaluate_image(
    policies: Sequence[ImagePolicy], image: str, *, checks: ImageChecks, deadline: Deadline
) -> list[RuleVerdict]:
    """One verdict per IVPOL that selects ``image`` (``matchImageReferences``), evaluated as for a Pod in namespace
    ``default`` running it; ``verdict`` FAIL/ERROR/PASS/SKIP (matchConditions not met). The rule column is the
    kind. Policies not selecting the image give nothing."""
    ref = parse_image_reference(image)
    out: list[RuleVerdict] = []
    request = pod_request(image)
    for policy in policies:
        if not image_selected(policy, image) or (policy.namespace and policy.namespace != SYNTHETIC_NAMESPACE):
            continue
        decision = evaluate_request(
            [policy], request, checks=checks, deadline=deadline, apply_selectors=False, apply_exceptions=False
        )
        pinned = next((str(p.get("value", "")) for p in decision.patches), "")
        digest = ref.digest or pinned.rpartition("@")[2]
        if not decision.outcomes:
            out.append(
                RuleVerdict(
                    image=image,
                    reference=ref.reference,
                    digest=ref.digest,
                    verdict=Verdict.SKIP,
                    policy=policy.key,
                    rule=policy.kind,
                    message="not evaluated: its matchConstraints do not select a Pod",
                )
            )
        for o in decision.outcomes:
            if o.verdict == Verdict.SKIP and not o.message:
                continue
            out.append(
                RuleVerdict(
                    image=image,
                    reference=ref.reference,
                    digest=digest,
                    verdict=o.verdict,
                    policy=policy.key,
                    rule=policy.kind,
                    message=o.message or f"verified {ref.reference}",
                )
            )
    return out

"""Kyverno's CEL ``PolicyException`` (``policies.kyverno.io`` ``v1alpha1``, ``v1beta1``, ``v1``): exempts the
requests its ``matchConditions`` select from the policies its ``policyRefs`` name.

Semantics (Kyverno pkg/cel/engine/exception.go ``ListExceptions``, pkg/image/verification/evaluator/policy.go,
pkg/cel/policies/ivpol/engine/{engine,reconciler}.go; CRD config/crds/policies.kyverno.io):

- ``policyRefs[]{name, kind}``: exact name and kind of the policy (here: ImageValidatingPolicy or
  NamespacedImageValidatingPolicy; Kyverno's other CEL kinds are not sigward's, so such a reference exempts nothing);
- ``matchConditions[]{name, expression}``: CEL over ``object``/``oldObject``/``request``/``namespaceObject``,
  compiled and evaluated as the policy's own (:mod:`sigward.policy.ivpol.matchconditions`: Kubernetes' matcher, a
  false condition wins over errors); none: every request the policy matched; evaluated after the policy itself
  matched; an error is the policy's error (failurePolicy decides), as in Kyverno;
- ``expiresAt``: an expired exception is not applied;
- the policy's result is then ``skip`` with ``rule is skipped due to policy exception: <keys>``, no verification,
  no digest pin; autogen'ed controller variants share the policy's exceptions.

``images`` and ``allowedValues`` feed the ``exceptions`` variable of Kyverno's ValidatingPolicy only, and
``reportResult`` is read for Validating/Mutating/GeneratingPolicies only: an ImageValidatingPolicy ignores them in
Kyverno, and sigward notes it at load. ``evaluationMode`` other than Kubernetes is refused (sigward evaluates
Kubernetes requests only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import StrictStr

from sigward.policy.ivpol.matchconditions import MatchConditions, compile_conditions
from sigward.policy.models import KyvernoModel
from sigward.policy.validation import Problem

API_GROUP = "policies.kyverno.io"
API_VERSIONS = ("v1alpha1", "v1beta1", "v1")
DEPRECATED_VERSIONS = ("v1alpha1",)
KIND = "PolicyException"
# The policy kinds an exception can exempt in sigward (Kyverno's ValidatingPolicy, MutatingPolicy, … are not loaded).
EXEMPTABLE_KINDS = ("ImageValidatingPolicy", "NamespacedImageValidatingPolicy")
# Kyverno's message for a policy skipped by CEL exceptions (pkg/cel/policies/ivpol/engine/engine.go); the keys
# (``namespace/name``) follow, joined by ", ".
SKIP_MESSAGE = "rule is skipped due to policy exception: "
# RFC 3339 date-time as the CRD's ``format: date-time`` accepts it.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class PolicyRef(KyvernoModel):
    name: StrictStr
    kind: StrictStr


class ExceptionCondition(KyvernoModel):
    name: StrictStr
    expression: StrictStr


class CelExceptionSpec(KyvernoModel):
    policy_refs: tuple[PolicyRef, ...]
    match_conditions: tuple[ExceptionCondition, ...] = ()
    images: tuple[StrictStr, ...] = ()
    allowed_values: tuple[StrictStr, ...] = ()
    expires_at: StrictStr | None = None
    properties: Mapping[StrictStr, StrictStr] = {}
    report_result: Literal["skip", "pass"] = "skip"
    evaluation_mode: StrictStr = ""


@dataclass(frozen=True)
class CelPolicyException:
    """A loaded CEL PolicyException with its conditions compiled once."""

    name: str
    namespace: str
    spec: CelExceptionSpec
    conditions: MatchConditions
    expires: datetime | None = None
    source: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """Kyverno's ``MetaNamespaceKeyFunc``: ``namespace/name`` (``name`` when cluster-scoped)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def refers_to(self, kind: str, name: str) -> bool:
        """Kyverno's scope (pkg/cel/engine/exception.go ``ListExceptions``, lister from ``NewPolicyExceptionLister``
        with ``--exceptionNamespace`` unset = all namespaces): exact policyRef ``kind`` + ``name``, never the
        namespace. So an exception in namespace A applies to requests in B, and a ref to a
        NamespacedImageValidatingPolicy exempts that name in every namespace. Wider than ideal, kept for parity:
        sigward reads exceptions only from the operator's policy paths (no per-namespace write access), and an
        exception's ``matchConditions`` (``request.namespace``) narrow it."""
        return any(ref.kind == kind and ref.name == name for ref in self.spec.policy_refs)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


def skip_message(keys: tuple[str, ...]) -> str:
    return SKIP_MESSAGE + ", ".join(keys)


def _expiry(text: str, problems: list[Problem]) -> datetime | None:
    if not _RFC3339.fullmatch(text):
        problems.append(("spec.expiresAt", f'"{text[:40]}" is not an RFC 3339 date-time (e.g. 2026-05-01T00:00:00Z)'))
        return None
    try:
        when = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        problems.append(("spec.expiresAt", f'"{text[:40]}" is not a valid date-time'))
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def build(
    *, api_version: str, name: str, namespace: str, spec: CelExceptionSpec, source: str
) -> tuple[CelPolicyException | None, list[Problem], list[str]]:
    """Validate ``spec`` and compile its conditions (type errors with their YAML path); the exception or None, the
    problems, and notes on what an ImageValidatingPolicy ignores."""
    problems: list[Problem] = []
    notes: list[str] = []
    if api_version.rpartition("/")[2] in DEPRECATED_VERSIONS:
        notes.append(f"{api_version} is deprecated: use {API_GROUP}/v1")
    if not name:
        problems.append(("metadata.name", "a PolicyException needs a name"))
    if not spec.policy_refs:
        problems.append(("spec.policyRefs", "at least one {name, kind} reference is required"))
    for i, ref in enumerate(spec.policy_refs):
        if not ref.name:
            problems.append((f"spec.policyRefs[{i}].name", "a policy name is required"))
        if not ref.kind:
            problems.append((f"spec.policyRefs[{i}].kind", "a policy kind is required"))
        elif ref.kind not in EXEMPTABLE_KINDS:
            notes.append(
                f"spec.policyRefs[{i}]: sigward has no {ref.kind} policies (only {', '.join(EXEMPTABLE_KINDS)}): "
                "this reference exempts nothing"
            )
    if spec.evaluation_mode not in ("", "Kubernetes"):
        problems.append(
            ("spec.evaluationMode", f"{spec.evaluation_mode} is not supported: sigward evaluates Kubernetes requests")
        )
    for label, present in (
        ("images", bool(spec.images)),
        ("allowedValues", bool(spec.allowed_values)),
        ("reportResult", spec.report_result != "skip"),
    ):
        if present:
            notes.append(f"spec.{label} is not read for ImageValidatingPolicies (as in Kyverno): ignored")
    expires = _expiry(spec.expires_at, problems) if spec.expires_at is not None else None
    conditions = compile_conditions([c.model_dump() for c in spec.match_conditions], "spec.matchConditions")
    problems.extend(conditions.problems)
    if problems:
        return None, problems, notes
    exception = CelPolicyException(
        name=name, namespace=namespace, spec=spec, conditions=conditions, expires=expires, source=source
    )
    return exception, problems, notes

"""Kyverno's CEL ``PolicyException`` (``policies.kyverno.io`` v1alpha1/v1beta1/v1) for ImageValidatingPolicies: it
names policies (``policyRefs``: name and kind) and, when all its CEL ``matchConditions`` hold for the request, the
named policy is skipped for it — reported ``skip`` with the exception named (Kyverno's report vectors). The loader
attaches each exception to the policies it names (:attr:`ImagePolicy.exceptions`); a namespaced exception applies
wherever the policy does, as with Kyverno's default (no ``--exceptionNamespace``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import StrictStr

from sigward.policy.ivpol.cel import CelError, Program, compile_expression
from sigward.policy.ivpol.models import NamedExpression
from sigward.policy.models import KyvernoModel
from sigward.policy.validation import Problem

API_GROUP = "policies.kyverno.io"
API_VERSIONS = ("v1alpha1", "v1beta1", "v1")
KIND = "PolicyException"
# The policy kinds an exception may name that sigward evaluates (ValidatingPolicy and the others are not image
# policies: naming them is refused rather than silently doing nothing).
REFERABLE_KINDS = ("ImageValidatingPolicy", "NamespacedImageValidatingPolicy")


class PolicyRef(KyvernoModel):
    name: StrictStr
    kind: StrictStr


class CelExceptionSpec(KyvernoModel):
    policy_refs: tuple[PolicyRef, ...] = ()
    match_conditions: tuple[NamedExpression, ...] = ()


@dataclass(frozen=True)
class ImageException:
    name: str
    namespace: str
    source: str
    refs: tuple[tuple[str, str], ...]  # (kind, name)
    conditions: tuple[Program, ...]

    def names(self, kind: str, name: str) -> bool:
        return (kind, name) in self.refs


def build_exception(
    *, name: str, namespace: str, spec: CelExceptionSpec, source: str
) -> tuple[ImageException | None, list[Problem]]:
    """Validate and compile one exception: the exception, or None and the problems with their paths."""
    problems: list[Problem] = []
    if not name:
        problems.append(("metadata.name", "a PolicyException needs a name"))
    if not spec.policy_refs:
        problems.append(("spec.policyRefs", "at least one policy reference is required"))
    for i, ref in enumerate(spec.policy_refs):
        if ref.kind not in REFERABLE_KINDS:
            problems.append(
                (f"spec.policyRefs[{i}].kind", f"{ref.kind} is not supported: only {' and '.join(REFERABLE_KINDS)}")
            )
    conditions: list[Program] = []
    for i, c in enumerate(spec.match_conditions):
        try:
            conditions.append(
                compile_expression(
                    c.expression, f"spec.matchConditions[{i}].expression", kind="request", want_bool=True
                )
            )
        except CelError as exc:
            problems.append((f"spec.matchConditions[{i}].expression", exc.message.partition(": ")[2] or exc.message))
    if problems:
        return None, problems
    refs = tuple((r.kind, r.name) for r in spec.policy_refs)
    return ImageException(name, namespace, source, refs, tuple(conditions)), []

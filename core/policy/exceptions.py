"""Kyverno ``PolicyException`` (``kyverno.io/v2``, ``v2beta1``): a logged, counted exemption of resources from named
policy rules, loaded from the same files and directories as the policies.

Semantics (Kyverno pkg/engine/utils/exceptions.go, api/kyverno/v2/policy_exception_types.go, see
../shared/spec/kyverno-operability.md):

- ``exceptions[]{policyName, ruleNames[]}``: ``policyName`` exact (``<name>`` for a ClusterPolicy, ``<ns>/<name>``
  for a Policy); ``ruleNames`` wildcard-matched, so ``autogen-*`` names must be listed or globbed;
- ``match``: ``any`` (one filter) / ``all`` (every filter) of resource filters — kinds, names, namespaces,
  annotations, selector; ``operations`` are not checked (as in Kyverno);
- ``conditions`` (``any``/``all``) over the admission request; an evaluation error means the exception does not
  apply (fail closed: the rule is enforced);
- matched after the rule itself matched (:mod:`sigward.admission.exceptions`); the rule's result is then ``skip``
  with Kyverno's message, without verification and without a digest patch.

``subjects`` match ``request.userInfo``; ``roles``/``clusterRoles`` the roles bound to the user
(:mod:`sigward.cluster.rbac`), so they load only with a cluster connection. User criteria are never ignored in an
exception, and a lookup that fails means the exception does not apply (the rule is enforced).

What sigward cannot honour is refused when loading (exit 2), never silently ignored: ``roles``/``clusterRoles``
without a cluster connection, ``namespaceSelector`` (needs a live Namespace read), ``podSecurity`` (not an
image rule), the legacy ``match.resources`` form (not in the v2beta1 MatchResources the CRD uses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import StrictBool, StrictStr

from sigward.policy.capabilities import refusal
from sigward.policy.models import AnyAllConditions, KyvernoModel, MatchResources, ResourceDescription
from sigward.references import wildcard_match

EXCEPTION_API_VERSIONS = ("kyverno.io/v2", "kyverno.io/v2beta1")
EXCEPTION_KIND = "PolicyException"


class ExceptionEntry(KyvernoModel):
    policy_name: StrictStr
    rule_names: tuple[StrictStr, ...]


class ExceptionSpec(KyvernoModel):
    exceptions: tuple[ExceptionEntry, ...]
    match: MatchResources
    conditions: AnyAllConditions | None = None
    background: StrictBool = True
    pod_security: tuple[Mapping[StrictStr, Any], ...] = ()


@dataclass(frozen=True)
class PolicyException:
    name: str
    namespace: str
    spec: ExceptionSpec
    source: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def contains(self, policy_key: str, rule_name: str) -> bool:
        """Kyverno's ``Contains``: the policy by its exact key, the rule by any wildcard of ``ruleNames``."""
        return any(
            e.policy_name == policy_key and any(wildcard_match(r, rule_name) for r in e.rule_names)
            for e in self.spec.exceptions
        )


def spec_problems(spec: ExceptionSpec, *, user_roles: bool = False) -> list[tuple[str, str]]:
    """What sigward refuses in an exception's spec, each with its YAML path (``user_roles``: roles/clusterRoles
    can be computed, a cluster connection is configured)."""
    problems: list[tuple[str, str]] = []
    if not spec.exceptions:
        problems.append(("spec.exceptions", "at least one {policyName, ruleNames} entry is required"))
    for i, entry in enumerate(spec.exceptions):
        if not entry.rule_names:
            problems.append((f"spec.exceptions[{i}].ruleNames", "at least one rule name is required"))
    match = spec.match
    if not (match.any or match.all):
        problems.append(("spec.match", "any or all is required (the PolicyException match has no resources form)"))
    if not match.resources.is_empty() or match.has_user_info():
        problems.append(("spec.match", "only any/all are allowed in a PolicyException match"))
    for part, filters in (("any", match.any), ("all", match.all)):
        for i, flt in enumerate(filters):
            path = f"spec.match.{part}[{i}]"
            if spec.background:  # Kyverno's ValidateNoUserInfo: a background scan has no requesting user
                problems.extend(
                    (f"{path}.{name}", "Usage of user info is forbidden (set spec.background: false)")
                    for name, value in (
                        ("roles", flt.roles),
                        ("clusterRoles", flt.cluster_roles),
                        ("subjects", flt.subjects),
                    )
                    if value
                )
            if (flt.roles or flt.cluster_roles) and not user_roles:
                field_name = "roles" if flt.roles else "clusterRoles"
                problems.append((f"{path}.{field_name}", refusal("user_roles")))
            if flt.resources.namespace_selector is not None:
                problems.append(
                    (f"{path}.resources.namespaceSelector", "not supported: it needs a live read of the Namespace")
                )
            if flt.resources.is_empty() and not flt.has_user_info():
                problems.append((f"{path}.resources", "an empty filter would exempt every resource"))
    if spec.pod_security:
        problems.append(("spec.podSecurity", "not supported: it applies to validate.podSecurity rules only"))
    return problems


def without_operations(match: MatchResources) -> MatchResources:
    """Kyverno does not check ``operations`` when matching an exception: drop them so matching ignores them."""

    def strip(desc: ResourceDescription) -> ResourceDescription:
        return desc.model_copy(update={"operations": ()})

    return match.model_copy(
        update={
            "any": tuple(f.model_copy(update={"resources": strip(f.resources)}) for f in match.any),
            "all": tuple(f.model_copy(update={"resources": strip(f.resources)}) for f in match.all),
        }
    )

"""Which rules need per-request preparation (:mod:`sigward.verify.rulecontext`): pure analysis of the rule as
written, cached on the rule (``Rule.prepared_per_request``) because admission asks for every rule of every request."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sigward.policy.variables import variable_expressions

if TYPE_CHECKING:
    from sigward.policy.models import AttestorSet, ImageVerification, Rule

K8S_KEY_PREFIX = "k8s://"
# Names the request supplies; a rule reading them can only be decided at admission.
REQUEST_NAMES = ("request", "images", "serviceAccountName", "serviceAccountNamespace")
_REQUEST_RE = re.compile(r"(?:\A|[^.0-9A-Za-z_])(" + "|".join(REQUEST_NAMES) + r")\b")


def has_secret_keys(sets: Iterable[AttestorSet]) -> bool:
    for s in sets:
        for entry in s.entries:
            keys = entry.keys
            if keys is not None and (keys.secret is not None or keys.public_keys.strip().startswith(K8S_KEY_PREFIX)):
                return True
            if entry.attestor is not None and has_secret_keys((entry.attestor,)):
                return True
    return False


def substitutable(iv: ImageVerification) -> dict[str, Any]:
    """The entry as YAML keys, attestation conditions and deny conditions left out (kept raw)."""
    dumped = iv.model_dump(by_alias=True, exclude={"validate"})
    for att in dumped.get("attestations", ()):
        att.pop("conditions", None)
    return dumped


def texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from texts(k)
            yield from texts(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from texts(v)


def expressions(value: Any) -> list[str]:
    out: list[str] = []
    for text in texts(value):
        found, nested = variable_expressions(text)
        out.extend(found)
        if nested:
            out.append(text)
    return out


def needs_preparation(rule: Rule) -> bool:
    """Whether the rule needs per-request preparation (context, preconditions, variables, cluster keys) or is
    decided by request data alone (celPreconditions, match/exclude on the requesting user)."""
    if rule.context or rule.preconditions is not None or request_only(rule):
        return True
    for iv in rule.verify_images:
        if expressions(substitutable(iv)) or has_secret_keys(
            (*iv.attestors, *(a for x in iv.attestations for a in x.attestors))
        ):
            return True
    return False


def request_only(rule: Rule) -> bool:
    """Whether the rule applies depending on the admission request itself: ``celPreconditions`` (CEL over
    ``object``/``request``) or ``match``/``exclude`` on the requesting user (subjects, roles, clusterRoles)."""
    blocks = (rule.match, *((rule.exclude,) if rule.exclude is not None else ()))
    return bool(rule.cel_preconditions) or any(f.has_user_info() for m in blocks for f in (*m.filters(), m))


def reads_request(rule: Rule) -> bool:
    """Whether the rule reads request data (``request``, ``images``, ``serviceAccount*`` in an expression; or
    :func:`request_only`)."""
    if request_only(rule):
        return True
    everything = [rule.preconditions, list(rule.context), [iv.model_dump(by_alias=True) for iv in rule.verify_images]]
    return any(_REQUEST_RE.search(e) for e in expressions(everything))


_ROLES_RE = re.compile(r"\brequest\.(roles|clusterRoles)\b")


def reads_roles(rule: Rule) -> bool:
    """Whether an expression of the rule reads ``request.roles``/``request.clusterRoles`` (computed from the
    cluster's RoleBindings, so only when needed)."""
    everything = [rule.preconditions, list(rule.context), [iv.model_dump(by_alias=True) for iv in rule.verify_images]]
    sources = [source for c in rule.cel_preconditions for source in (str(c.get("expression", "")),)]
    return any(_ROLES_RE.search(e) for e in [*expressions(everything), *sources])


def is_dynamic(rule: Rule) -> bool:
    """Whether the rule needs per-request preparation (context, preconditions, variables, cluster keys)."""
    return rule.prepared_per_request


# Kyverno's policy validation substitutes every rule against a mock context holding only these names (plus the
# rule's context entries); any other variable rejects the policy (validation/policy/validate.go).
PREDEFINED_VARIABLES = frozenset(
    {"request", "serviceAccountName", "serviceAccountNamespace", "element", "elementIndex", "images", "image"}
)
_LEADING = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\()?")


def undefined_variables(rule: Rule) -> list[str]:
    """The ``{{ }}`` expressions of a verifyImages rule (entries, preconditions, context) whose first name is neither
    predefined, a function call, ``@``, a literal, nor one of the rule's context entries."""
    names = {str(e.get("name", "")).split(".", 1)[0] for e in rule.context}
    found: list[str] = []
    # Attestation conditions and validate.deny read the statement and image.*: Kyverno checks them against those.
    everything = [rule.preconditions, list(rule.context), [substitutable(iv) for iv in rule.verify_images]]
    for expression in expressions(everything):
        if "{{" in expression:
            continue  # nested: its final text is known only after substitution
        m = _LEADING.match(expression)
        if m is None or m.group(2):
            continue  # a literal, @, or a function call
        if m.group(1) not in PREDEFINED_VARIABLES and m.group(1) not in names:
            found.append(expression.strip())
    return list(dict.fromkeys(found))

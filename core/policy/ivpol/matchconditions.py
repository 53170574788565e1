"""Kubernetes ``matchConditions`` (``admissionregistration.k8s.io/v1 MatchCondition``): one place that compiles a
list of ``{name, expression}`` CEL conditions and evaluates it with the API server's semantics.

Used by a ClusterPolicy rule's ``celPreconditions``, a policy's ``spec.webhookConfiguration.matchConditions`` and an
ImageValidatingPolicy's ``spec.matchConditions``. Semantics (k8s.io/apiserver ``pkg/admission/plugin/webhook/
matchconditions/matcher.go``): every condition is evaluated; one that is ``false`` makes the list not match, and
that wins over errors in other conditions; otherwise any error makes the result an error (the caller's
failurePolicy decides, never a silent match); a value that is not a bool is not ``false`` (see
:func:`evaluate_conditions`). Validation (``ValidateMatchConditions``): at most 64 conditions, each
with a unique qualified name and a non-empty expression that type-checks as a bool.

Variables: ``object``, ``oldObject``, ``request``, ``namespaceObject`` (Kyverno's compiler for these). ``authorizer``
(a SubjectAccessReview per evaluation) is refused at load with its path: sigward does not call the authorization API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sigward.policy.ivpol.cel import CelError, Program, compile_expression

if TYPE_CHECKING:
    from sigward.policy.models import Rule, WebhookConfiguration

# Kubernetes' limit on matchConditions per webhook (validation.go maxMatchConditions): the API server rejects more.
MAX_MATCH_CONDITIONS = 64
# A qualified name (k8s.io/apimachinery IsQualifiedName): optional DNS-subdomain prefix "/" then a 63-char name.
_NAME_RE = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
# Distinct condition lists kept compiled: policies are loaded once and looked up per request; an evicted list is
# compiled again (correct, only slower). Far above the conditions of any real policy set.
MAX_COMPILED_LISTS = 1024
# Declared by sigward's IVPOL request environment but not by Kubernetes' matchConditions compiler: refused here so a
# condition never depends on an IVPOL-only value (and webhook-config never emits one the API server rejects).
NOT_DECLARED: tuple[str, ...] = ("variables", "resource", "imagedata")
_AUTHORIZER_RE = re.compile(r"(?:\A|[^.0-9A-Za-z_])authorizer\b")

Problem = tuple[str, str]


@dataclass(frozen=True)
class MatchConditions:
    """A compiled list: ``(name, program)`` in order; ``problems`` (YAML path, message) when it did not compile."""

    conditions: tuple[tuple[str, Program], ...] = ()
    problems: tuple[Problem, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def sources(self) -> tuple[tuple[str, str], ...]:
        """``(name, expression)`` pairs, as written: what a webhook configuration carries."""
        return tuple((name, program.source) for name, program in self.conditions)


EMPTY = MatchConditions()


@dataclass(frozen=True)
class MatchResult:
    """``matched``; when not, ``failed`` names the first condition that was false. ``error``: why the list could
    not be decided (then ``matched`` is False and the caller's failurePolicy decides)."""

    matched: bool
    failed: str = ""
    error: str = ""


def _unavailable(expression: str, names: Sequence[str]) -> str:
    for name in names:
        if re.search(r"(?:\A|[^.0-9A-Za-z_])" + name + r"\b", expression):
            return name
    return ""


def compile_conditions(entries: Sequence[Any], path: str, *, undeclared: Sequence[str] = ()) -> MatchConditions:
    """Compile ``entries`` (the YAML list at ``path``) once, at policy load; ``undeclared``: variables of sigward's
    request environment the caller's compiler does not declare (refused with the path)."""
    problems: list[Problem] = []
    compiled: list[tuple[str, Program]] = []
    if len(entries) > MAX_MATCH_CONDITIONS:
        problems.append((path, f"at most {MAX_MATCH_CONDITIONS} match conditions are allowed, found {len(entries)}"))
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{path}[{i}]"
        if not isinstance(entry, Mapping):
            problems.append((where, "must be a mapping with name and expression"))
            continue
        name, expression = entry.get("name"), entry.get("expression")
        if not isinstance(name, str) or not name:
            problems.append((f"{where}.name", "a name is required"))
        elif not _NAME_RE.fullmatch(name):
            problems.append((f"{where}.name", f'"{name}" is not a valid qualified name'))
        elif name in seen:
            problems.append((f"{where}.name", f'duplicate name "{name}"'))
        else:
            seen.add(name)
        if not isinstance(expression, str) or not expression.strip():
            problems.append((f"{where}.expression", "an expression is required"))
            continue
        if _AUTHORIZER_RE.search(expression):
            problems.append(
                (
                    f"{where}.expression",
                    "authorizer needs a SubjectAccessReview per request, which sigward does not make: "
                    "match on request.userInfo (username, groups) instead",
                )
            )
            continue
        missing = _unavailable(expression, undeclared)
        if missing:
            problems.append((f"{where}.expression", f"undeclared reference to '{missing}' (not a variable here)"))
            continue
        try:
            program = compile_expression(expression, f"{where}.expression", kind="request", want_bool=True)
        except CelError as exc:
            at, _, message = exc.message.partition(": ")
            problems.append((at, message))
            continue
        compiled.append((str(name), program))
    return MatchConditions(conditions=tuple(compiled), problems=tuple(problems))


@lru_cache(maxsize=MAX_COMPILED_LISTS)
def _compiled(text: str, path: str, undeclared: tuple[str, ...]) -> MatchConditions:
    return compile_conditions(json.loads(text), path, undeclared=undeclared)


def compiled(entries: Sequence[Any], path: str, undeclared: tuple[str, ...] = ()) -> MatchConditions:
    """:func:`compile_conditions`, once per distinct list (the loader's compilation is the one requests reuse)."""
    return _compiled(json.dumps(list(entries), sort_keys=True, default=str), path, undeclared)


def rule_preconditions(rule: Rule) -> MatchConditions:
    """A rule's ``celPreconditions``, compiled (paths relative to the rule)."""
    return compiled(rule.cel_preconditions, "celPreconditions", NOT_DECLARED)


def webhook_match_conditions(wc: WebhookConfiguration | None) -> MatchConditions:
    """A policy's ``spec.webhookConfiguration.matchConditions``, compiled (paths relative to
    ``spec.webhookConfiguration``); empty when there are none."""
    if wc is None or not wc.match_conditions:
        return EMPTY
    return compiled(wc.match_conditions, "matchConditions", (*NOT_DECLARED, "namespaceObject"))


def evaluate_conditions(
    conditions: MatchConditions,
    data: Mapping[str, Any],
    *,
    run: Callable[[Program, Mapping[str, Any]], Any] | None = None,
    exempting: bool = False,
) -> MatchResult:
    """The API server's matcher over ``data`` (``object``, ``oldObject``, ``request``, ``namespaceObject``).
    ``run`` evaluates one program (default :meth:`Program.evaluate`); what it raises other than
    :class:`CelError` propagates (an infrastructure failure inside a function).

    Only ``false`` fails a condition: a value that is not a bool (a ``dyn`` expression reading an object field gave
    a string or null) is no error to the API server and counts as met, so the policy applies. ``exempting``: the
    list decides an exemption (a PolicyException), where "met" would skip the policy, so such a value is an error
    (the policy's failurePolicy decides), never a silent exemption."""
    errors: list[str] = []
    for name, program in conditions.conditions:
        try:
            value = run(program, data) if run is not None else program.evaluate(data)
        except CelError as exc:
            errors.append(f"{name}: {exc.message}")
            continue
        if value is False:
            return MatchResult(matched=False, failed=name)
        if value is not True and exempting:
            errors.append(f"{name}: evaluated to {_cel_type(value)}, not a bool")
    if errors:
        return MatchResult(matched=False, error="; ".join(errors))
    return MatchResult(matched=True)


def _cel_type(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "a string", int: "an int", float: "a double", list: "a list", dict: "a map"}.get(
        type(value), type(value).__name__
    )


def request_data(request: Mapping[str, Any], namespace_object: Any = None) -> dict[str, Any]:
    """The variables of an admission request: ``object``/``oldObject`` as sent (null when absent)."""
    return {
        "object": request.get("object"),
        "oldObject": request.get("oldObject"),
        "request": dict(request),
        "namespaceObject": namespace_object,
        "variables": {},
    }

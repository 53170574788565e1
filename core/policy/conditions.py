"""Kyverno's condition evaluation (``pkg/engine/variables/evaluate.go`` and ``operator/*.go``) for attestation
``conditions`` and ``validate.deny.conditions``.

:func:`evaluate_any_all` checks an attestation's ``conditions`` against a context (for attestations: the
in-toto statement's predicate merged into the root, so keys are bare, ``{{ builder.id }}``). The list is
ANDed; in each element ``any`` is OR and ``all`` is AND (both present: both must hold; an empty element
holds). Keys, values and messages are substituted first (:mod:`sigward.policy.variables`), as Kyverno's
``SubstituteAllInConditions`` does, then each condition's operator compares key and value with Kyverno's
Go-typed rules: every number is a float64, durations (``"168h"``), Kubernetes quantities (``"1Gi"``) and
semantic versions compare as such, wildcards (``*``, ``?``) apply on the value side of ``Equals`` and both
ways for the ``In`` family. A null key (also what a missing key reads as, by default) satisfies no
operator, not even ``NotEquals`` or ``AnyNotIn``.

:func:`evaluate_deny` does the same for ``validate.deny.conditions`` (any/all form or Kyverno's legacy plain
list), where the conditions being *true* denies.

An operator Kyverno does not know, or an expression that fails, raises
:class:`~sigward.errors.VerificationFailure`; Kyverno fails the check in both cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from sigward.errors import VerificationFailure
from sigward.patterns import wildcard_match as _wildcard_match
from sigward.policy import durations
from sigward.policy.budget import budget, charge
from sigward.policy.jmes import (
    MissingKeys,
    go_json_dumps,
    go_sprint,
    is_number,
    json_equal,
    parse_strict_json,
    to_float,
    to_json_data,
    try_parse_go_float,
    try_parse_quantity,
    try_parse_semver,
)
from sigward.policy.models import AnyAllConditions, Condition
from sigward.policy.variables import substitute_json

# Generated failure descriptions show at most this many characters of a key or value.
MAX_SHOWN_CHARS = 80


@dataclass(frozen=True)
class ConditionOutcome:
    """``passed``; ``message``: on failure the failing conditions' messages (a generated description for a
    condition without one), on success the messages of the conditions that held (often empty)."""

    passed: bool
    message: str = ""


def wildcard_match(pattern: str, text: str) -> bool:
    """:func:`sigward.patterns.wildcard_match`, charged to the evaluation's budget (either side may be signed data)."""
    charge(len(pattern) + len(text))
    return _wildcard_match(pattern, text)


# --- operators

EQUALS = "Equals"
NOT_EQUALS = "NotEquals"
IN = "In"
ANY_IN = "AnyIn"
ALL_IN = "AllIn"
NOT_IN = "NotIn"
ANY_NOT_IN = "AnyNotIn"
ALL_NOT_IN = "AllNotIn"
GREATER_THAN = "GreaterThan"
GREATER_THAN_OR_EQUALS = "GreaterThanOrEquals"
LESS_THAN = "LessThan"
LESS_THAN_OR_EQUALS = "LessThanOrEquals"

# Kyverno's ConditionOperators, matched case-insensitively; the deprecated names map to what they mean.
_OPERATORS = {
    "equal": EQUALS,
    "equals": EQUALS,
    "notequal": NOT_EQUALS,
    "notequals": NOT_EQUALS,
    "in": IN,
    "anyin": ANY_IN,
    "allin": ALL_IN,
    "notin": NOT_IN,
    "anynotin": ANY_NOT_IN,
    "allnotin": ALL_NOT_IN,
    "greaterthan": GREATER_THAN,
    "greaterthanorequals": GREATER_THAN_OR_EQUALS,
    "lessthan": LESS_THAN,
    "lessthanorequals": LESS_THAN_OR_EQUALS,
    "durationgreaterthan": "Duration" + GREATER_THAN,
    "durationgreaterthanorequals": "Duration" + GREATER_THAN_OR_EQUALS,
    "durationlessthan": "Duration" + LESS_THAN,
    "durationlessthanorequals": "Duration" + LESS_THAN_OR_EQUALS,
}

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    GREATER_THAN: lambda a, b: a > b,
    GREATER_THAN_OR_EQUALS: lambda a, b: a >= b,
    LESS_THAN: lambda a, b: a < b,
    LESS_THAN_OR_EQUALS: lambda a, b: a <= b,
}


def canonical_operator(operator: str) -> str:
    """The canonical name of a condition operator (any case; ``Equal``/``NotEqual`` are aliases)."""
    canonical = _OPERATORS.get(operator.lower())
    if canonical is None:
        raise VerificationFailure(f"unknown condition operator {operator!r}")
    return canonical


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "list"
    return "other"


def _duration_pair(key: Any, value: Any) -> tuple[int, int] | None:
    """Kyverno's ``parseDuration``: when at least one side is a duration string (``"0"`` alone does not
    count), the other side may be a number of seconds."""
    key_d = durations.try_parse_duration(key) if isinstance(key, str) and key != "0" else None
    value_d = durations.try_parse_duration(value) if isinstance(value, str) and value != "0" else None
    if key_d is None and value_d is None:
        return None
    if key_d is None:
        if not is_number(key):
            return None
        key_d = durations.seconds_to_duration(to_float(key))
    if value_d is None:
        if not is_number(value):
            return None
        value_d = durations.seconds_to_duration(to_float(value))
    return key_d, value_d


def _seconds(pair: tuple[int, int]) -> tuple[float, float]:
    return durations.duration_seconds(pair[0]), durations.duration_seconds(pair[1])


def _equals(key: Any, value: Any, *, negate: bool) -> bool:
    kind = _kind(key)
    if kind == "bool":
        if not isinstance(value, bool):
            return negate
        return bool(key != value) if negate else bool(key == value)
    if kind == "number":
        k = to_float(key)
        if is_number(value):
            return (k != to_float(value)) if negate else (k == to_float(value))
        if isinstance(value, str):
            parsed = try_parse_go_float(value)
            if parsed is None:
                return negate
            return (parsed != k) if negate else (parsed == k)
        return negate
    if kind == "string":
        return _string_equals(key, value, negate=negate)
    if kind in ("map", "list"):
        if _kind(value) != kind:
            return negate
        return json_equal(key, value) != negate
    return False  # a null key satisfies neither Equals nor NotEquals in Kyverno


def _string_equals(key: str, value: Any, *, negate: bool) -> bool:
    pair = _duration_pair(key, value)
    if pair is not None:
        a, b = _seconds(pair)
        return (a != b) if negate else (a == b)
    key_q = try_parse_quantity(key)
    if key_q is not None and isinstance(value, str):
        if negate and value == "":
            return not wildcard_match(value, key)
        value_q = try_parse_quantity(value)
        if value_q is None:
            return negate
        return (key_q.cmp(value_q) != 0) if negate else (key_q.cmp(value_q) == 0)
    if isinstance(value, str):
        return wildcard_match(value, key) != negate
    return negate


def _compare(operator: str, key: Any, value: Any) -> bool:
    """GreaterThan and friends: numbers, durations, quantities, then semantic versions."""
    kind = _kind(key)
    if kind == "number":
        return _compare_number(operator, to_float(key), value)
    if kind != "string":
        return False
    pair = _duration_pair(key, value)
    if pair is not None:
        return _ORDER[operator](*_seconds(pair))
    key_q = try_parse_quantity(key)
    value_q = try_parse_quantity(value)
    if key_q is not None and value_q is not None:
        return _ORDER[operator](key_q.cmp(value_q), 0)
    key_f = try_parse_go_float(key)
    if key_f is not None:
        return _compare_number(operator, key_f, value)
    key_v = try_parse_semver(key)
    if key_v is not None and isinstance(value, str):
        value_v = try_parse_semver(value)
        return value_v is not None and _ORDER[operator](key_v.compare(value_v), 0)
    return False


def _compare_number(operator: str, key: float, value: Any) -> bool:
    if is_number(value):
        return _ORDER[operator](key, to_float(value))
    if isinstance(value, str):
        pair = _duration_pair(key, value)
        if pair is not None:
            return _ORDER[operator](*_seconds(pair))
        parsed = try_parse_go_float(value)
        return parsed is not None and _ORDER[operator](key, parsed)
    return False


def _compare_durations(operator: str, key: Any, value: Any) -> bool:
    """The deprecated Duration* operators: both sides durations, numbers meaning seconds."""

    def as_duration(side: Any) -> int | None:
        if is_number(side):
            return durations.seconds_to_duration(to_float(side))
        if isinstance(side, str):
            return durations.try_parse_duration(side)
        return None

    if _kind(key) not in ("number", "string"):
        return False
    key_d = as_duration(key)
    value_d = as_duration(value)
    if key_d is None or value_d is None:
        return False
    return _ORDER[operator.removeprefix("Duration")](key_d, value_d)


# --- the In family

_IN_RANGE = re.compile(r"([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)-([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)")
_NOT_IN_RANGE = re.compile(r"([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)!-([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)")


def _pattern_operator(pattern: str) -> str:
    """Kyverno's ``GetOperatorFromStringPattern``."""
    if len(pattern) < 2:
        return ""
    for op in (">=", "<=", ">", "<", "!"):
        if pattern.startswith(op):
            return op
    if _NOT_IN_RANGE.fullmatch(pattern):
        return "!-"
    if _IN_RANGE.fullmatch(pattern):
        return "-"
    return ""


def _pattern_compare(op: str, ordering: int) -> bool | None:
    return {
        "": ordering == 0,
        "!": ordering != 0,
        ">": ordering > 0,
        "<": ordering < 0,
        ">=": ordering >= 0,
        "<=": ordering <= 0,
    }.get(op)


def _validate_pattern(value: str, pattern: str) -> bool:
    """Kyverno's ``pattern.Validate`` for a string value and string pattern (used for ``"1-10"`` ranges)."""
    if value == pattern:
        return True
    for alternative in pattern.split("|"):
        if all(_validate_single(value, part.strip(" ")) for part in alternative.strip(" ").split("&")):
            return True
    return False


def _validate_single(value: str, pattern: str) -> bool:
    op = _pattern_operator(pattern)
    if op == "-":
        match = _IN_RANGE.fullmatch(pattern)
        assert match is not None
        return _validate_single(value, f">= {match.group(1)}") and _validate_single(value, f"<= {match.group(2)}")
    if op == "!-":
        match = _NOT_IN_RANGE.fullmatch(pattern)
        assert match is not None
        return _validate_single(value, f"< {match.group(1)}") or _validate_single(value, f"> {match.group(2)}")
    operand = pattern[len(op) :].strip()
    pattern_d = durations.try_parse_duration(operand)
    value_d = durations.try_parse_duration(value)
    if pattern_d is not None and value_d is not None:
        return bool(_pattern_compare(op, (value_d > pattern_d) - (value_d < pattern_d)))
    pattern_q = try_parse_quantity(operand)
    value_q = try_parse_quantity(value)
    if pattern_q is not None and value_q is not None:
        return bool(_pattern_compare(op, value_q.cmp(pattern_q)))
    if op == "":
        return wildcard_match(operand, value)
    if op == "!":
        return not wildcard_match(operand, value)
    return False


def _string_array(text: str) -> list[str]:
    """``json.Unmarshal`` into ``[]string``: null is empty, null elements are ``""``. Raises ValueError."""
    parsed = parse_strict_json(text)
    if parsed is None:
        return []
    if not isinstance(parsed, list) or not all(isinstance(x, str) or x is None for x in parsed):
        raise ValueError("not an array of strings")
    return [x if isinstance(x, str) else "" for x in parsed]


def _json_valid(text: str) -> bool:
    try:
        parse_strict_json(text)
    except (ValueError, RecursionError):
        return False
    return True


def _matches_either_way(a: str, b: str) -> bool:
    return wildcard_match(a, b) or wildcard_match(b, a)


def _value_strings(text: str) -> list[str] | None:
    """A string value of the AnyIn/AllIn family: a JSON array of strings, or else the string itself; None when
    it is valid JSON but not an array of strings (Kyverno's "invalid type")."""
    if _json_valid(text):
        try:
            return _string_array(text)
        except ValueError:
            return None
    return [text]


def _key_in_value(key: str, value: Any) -> bool | None:
    """A scalar key against the value for AnyIn/AllIn/AnyNotIn/AllNotIn (``anyKeyExistsInArray``); None:
    the value has a type these operators reject."""
    if isinstance(value, list | tuple):
        return any(_matches_either_way(go_sprint(v), key) for v in value)
    if isinstance(value, str):
        if wildcard_match(value, key):
            return True
        if _pattern_operator(value) == "-":
            return _validate_pattern(key, value)
        values = _value_strings(value)
        if values is None:
            return None
        return key in values
    return None


def _any_in(keys: list[str], values: list[str]) -> bool:
    return any(_matches_either_way(k, v) for k in keys for v in values)


def _any_not_in(keys: list[str], values: list[str]) -> bool:
    return any(not any(_matches_either_way(k, v) for v in values) for k in keys)


def _all_in(keys: list[str], values: list[str]) -> bool:
    return all(any(_matches_either_way(k, v) for v in values) for k in keys)


def _all_not_in(keys: list[str], values: list[str]) -> bool:
    return not _any_in(keys, values)


def _set_any(keys: list[str], value: Any, *, negate: bool) -> bool | None:
    """A list key for AnyIn (``negate``: AnyNotIn), Kyverno's ``anySetExistsInArray``."""
    check = _any_not_in if negate else _any_in
    if isinstance(value, list | tuple):
        return check(keys, [go_sprint(v) for v in value])
    if is_number(value) or isinstance(value, bool):
        return check(keys, [go_sprint(value)])
    if isinstance(value, str):
        if len(keys) == 1 and keys[0] == value:
            return not negate
        if _pattern_operator(value) == "-":
            if negate:
                outside = value.replace("-", "!-", 1)
                return any(_validate_pattern(k, outside) for k in keys)
            return any(_validate_pattern(k, value) for k in keys)
        values = _value_strings(value)
        return None if values is None else check(keys, values)
    return None


def _set_all(keys: list[str], value: Any, *, negate: bool) -> bool | None:
    """A list key for AllIn (``negate``: AllNotIn), Kyverno's ``allSetExistsInArray``."""
    check = _all_not_in if negate else _all_in
    if isinstance(value, list | tuple):
        return check(keys, [go_sprint(v) for v in value])
    if isinstance(value, str):
        if len(keys) == 1 and keys[0] == value:
            return not negate
        if _pattern_operator(value) == "-":
            inside = [_validate_pattern(k, value) for k in keys]
            return not any(inside) if negate else all(inside)
        values = _value_strings(value)
        return None if values is None else check(keys, values)
    return None


def _legacy_in(key: Any, value: Any, *, negate: bool) -> bool:
    """The deprecated In/NotIn: exact matches for JSON-array strings, string-only lists."""
    kind = _kind(key)
    if kind in ("string", "number", "bool"):
        text = key if isinstance(key, str) else go_sprint(key)
        if isinstance(value, list | tuple):
            found = any(_matches_either_way(go_sprint(v), text) for v in value)
        elif isinstance(value, str):
            if wildcard_match(value, text):
                found = True
            else:
                try:
                    found = text in _string_array(value)
                except (ValueError, RecursionError):
                    return False
        else:
            return False
        return found != negate
    if kind != "list":
        return False
    if not all(isinstance(k, str) for k in key):
        # Kyverno panics on a non-string element here; refuse rather than guess.
        raise VerificationFailure(f"{'NotIn' if negate else 'In'}: every element of a list key must be a string")
    keys = list(key)
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            return False
        values: list[str] = list(value)
    elif isinstance(value, str):
        if len(keys) == 1 and keys[0] == value:
            return not negate
        try:
            values = _string_array(value)
        except (ValueError, RecursionError):
            return False
    else:
        return False
    available = set(values)
    missing = any(k not in available for k in keys)
    return missing if negate else not missing


def _in_family(operator: str, key: Any, value: Any) -> bool:
    if operator in (IN, NOT_IN):
        return _legacy_in(key, value, negate=operator == NOT_IN)
    negate = operator in (ANY_NOT_IN, ALL_NOT_IN)
    kind = _kind(key)
    if kind in ("string", "number", "bool"):
        found = _key_in_value(key if isinstance(key, str) else go_sprint(key), value)
        return False if found is None else found != negate
    if kind != "list":
        return False
    keys = [go_sprint(k) for k in key]
    if operator in (ANY_IN, ANY_NOT_IN):
        return bool(_set_any(keys, value, negate=negate))
    return bool(_set_all(keys, value, negate=negate))


def evaluate_operator(operator: str, key: Any, value: Any) -> bool:
    """Whether ``key`` ``operator`` ``value`` holds, for already substituted JSON values."""
    canonical = canonical_operator(operator)
    if canonical in (EQUALS, NOT_EQUALS):
        return _equals(key, value, negate=canonical == NOT_EQUALS)
    if canonical in _ORDER:
        return _compare(canonical, key, value)
    if canonical.startswith("Duration"):
        return _compare_durations(canonical, key, value)
    return _in_family(canonical, key, value)


# --- evaluation


@dataclass(frozen=True)
class _Resolved:
    condition: Condition
    key: Any
    value: Any
    message: str


def _show(value: Any) -> str:
    try:
        text = go_json_dumps(value)
    except VerificationFailure:  # NaN and infinities have no JSON form
        text = go_sprint(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _describe(resolved: _Resolved, verdict: str) -> str:
    raw = resolved.condition.key
    shown = f"key {_show(raw)}"
    if raw is not resolved.key and not json_equal(raw, resolved.key):
        shown += f" = {_show(resolved.key)}"
    return f"condition {verdict}: {shown}: {resolved.condition.operator} {_show(resolved.value)}"


def _resolve(condition: Condition, data: Any, now: datetime, missing: MissingKeys, *, with_message: bool) -> _Resolved:
    try:
        key = substitute_json(to_json_data(condition.key), data, now=now, missing=missing)
    except VerificationFailure as exc:
        raise type(exc)(f"failed to substitute variables in condition key: {exc.message}") from None
    try:
        value = substitute_json(to_json_data(condition.value), data, now=now, missing=missing)
    except VerificationFailure as exc:
        raise type(exc)(f"failed to substitute variables in condition value: {exc.message}") from None
    message = condition.message
    if with_message and message:
        try:
            resolved = substitute_json(message, data, now=now, missing=missing)
        except VerificationFailure as exc:
            raise type(exc)(f"failed to substitute variables in condition message: {exc.message}") from None
        message = resolved if isinstance(resolved, str) else go_json_dumps(resolved)
    return _Resolved(condition, key, value, message)


def _join(messages: Sequence[str], sep: str) -> str:
    return sep.join(m for m in messages if m)


def _block(
    block: AnyAllConditions,
    evaluate: Callable[[Condition], tuple[bool, _Resolved]],
    *,
    false_verdict: str,
) -> tuple[bool, list[str], list[str]]:
    """One any/all element: (result, messages, descriptions). On failure ``messages`` are those of the
    conditions that decided it, a condition without a message described instead; on success they are the
    messages of the conditions that held (as Kyverno reports them) and ``descriptions`` the same with the
    unmessaged ones described."""
    any_ok = True
    all_ok = True
    false_messages: list[str] = []
    true_messages: list[str] = []
    true_descriptions: list[str] = []
    if block.any:
        any_ok = False
        for condition in block.any:
            result, resolved = evaluate(condition)
            if result:
                any_ok = True
                true_messages.append(resolved.message)
                true_descriptions.append(resolved.message or _describe(resolved, "met"))
                break
            false_messages.append(resolved.message or _describe(resolved, false_verdict))
    for condition in block.all:
        result, resolved = evaluate(condition)
        if not result:
            all_ok = False
            false_messages.append(resolved.message or _describe(resolved, false_verdict))
            break
        true_messages.append(resolved.message)
        true_descriptions.append(resolved.message or _describe(resolved, "met"))
    if any_ok and all_ok:
        return True, true_messages, true_descriptions
    return False, false_messages, []


def evaluate_any_all(
    conditions: Sequence[AnyAllConditions],
    context: Mapping[str, Any],
    *,
    now: datetime,
    missing: MissingKeys = "null",
) -> ConditionOutcome:
    """Attestation ``conditions`` over ``context``: every element must hold. All keys, values and messages
    are substituted before any is evaluated (an expression error anywhere fails the check, as in Kyverno).
    A key missing from the context is null, or with ``missing="error"`` an error as in Kyverno
    (:func:`sigward.policy.variables.substitute`). Raises :class:`VerificationFailure` for an unknown operator
    or a failing expression; :class:`~sigward.policy.budget.BudgetExceeded` (a failure) when evaluating costs more than
    one evaluation's budget."""
    with budget():
        return _evaluate_any_all(conditions, context, now=now, missing=missing)


def _evaluate_any_all(
    conditions: Sequence[AnyAllConditions], context: Mapping[str, Any], *, now: datetime, missing: MissingKeys
) -> ConditionOutcome:
    for block in conditions:
        for condition in (*block.any, *block.all):
            canonical_operator(condition.operator)
    data = to_json_data(context)
    resolved_blocks: list[tuple[AnyAllConditions, dict[int, _Resolved]]] = []
    for block in conditions:
        table = {id(c): _resolve(c, data, now, missing, with_message=True) for c in (*block.any, *block.all)}
        resolved_blocks.append((block, table))

    held: list[str] = []
    for block, table in resolved_blocks:

        def evaluate(condition: Condition, table: dict[int, _Resolved] = table) -> tuple[bool, _Resolved]:
            resolved = table[id(condition)]
            return evaluate_operator(condition.operator, resolved.key, resolved.value), resolved

        ok, messages, _ = _block(block, evaluate, false_verdict="failed")
        if not ok:
            return ConditionOutcome(False, _join(messages, "; "))
        held.append(_join(messages, "; "))
    return ConditionOutcome(True, _join(held, ";"))


def deny_conditions_form(raw: Any) -> AnyAllConditions | tuple[Condition, ...]:
    """``validate.deny.conditions`` as written: absent means an empty any/all (which holds, so it denies), a
    mapping is the any/all form, a list Kyverno's legacy plain list of conditions."""
    try:
        if raw is None:
            return AnyAllConditions()
        if isinstance(raw, AnyAllConditions):
            return raw
        if isinstance(raw, Mapping):
            return AnyAllConditions.model_validate(dict(raw))
        if isinstance(raw, list | tuple):
            return tuple(c if isinstance(c, Condition) else Condition.model_validate(c) for c in raw)
    except ValidationError as exc:
        raise VerificationFailure(f"invalid deny conditions: {exc.error_count()} problem(s)") from None
    raise VerificationFailure(f"invalid deny conditions: expected any/all or a list, got {type(raw).__name__}")


def evaluate_deny(
    deny_conditions: Any,
    context: Mapping[str, Any],
    *,
    now: datetime,
    message: str = "",
    missing: MissingKeys = "null",
) -> ConditionOutcome:
    """``validate.deny``: ``passed`` is False (denied) when the conditions hold. The message of a denial is
    ``message`` (``validate.message``) and the holding conditions' messages joined by ``"; "`` and
    substituted, as Kyverno builds it; without any, a description of what held. Conditions are substituted
    one at a time as they are evaluated (Kyverno's precondition order). ``missing`` as for
    :func:`evaluate_any_all`: note that with the default ``"null"`` a deny condition over a path the context
    lacks usually does not hold (the image is allowed), where Kyverno errors (and blocks). Bounded by one
    evaluation's budget, as :func:`evaluate_any_all`."""
    with budget():
        return _evaluate_deny(deny_conditions, context, now=now, message=message, missing=missing)


def _evaluate_deny(
    deny_conditions: Any, context: Mapping[str, Any], *, now: datetime, message: str, missing: MissingKeys
) -> ConditionOutcome:
    form = deny_conditions_form(deny_conditions)
    for condition in (*form.any, *form.all) if isinstance(form, AnyAllConditions) else form:
        canonical_operator(condition.operator)
    data = to_json_data(context)

    def evaluate(condition: Condition) -> tuple[bool, _Resolved]:
        resolved = _resolve(condition, data, now, missing, with_message=False)
        return evaluate_operator(condition.operator, resolved.key, resolved.value), resolved

    if isinstance(form, AnyAllConditions):
        denied, messages, descriptions = _block(form, evaluate, false_verdict="not met")
    else:
        denied, messages, descriptions = True, [], []
        for condition in form:
            result, resolved = evaluate(condition)
            if not result:
                denied = False
                break
            messages.append(resolved.message)
            descriptions.append(resolved.message or _describe(resolved, "met"))
    if not denied:
        return ConditionOutcome(True, "")
    held = _join(messages, "; " if isinstance(form, AnyAllConditions) else ";")
    text = _join([message, held], "; ")
    if not text:
        detail = _join(descriptions, "; ")
        return ConditionOutcome(False, "validation error: imageVerify failed" + (f": {detail}" if detail else ""))
    try:
        substituted = substitute_json(text, data, now=now, missing=missing)
    except VerificationFailure:
        return ConditionOutcome(False, held or text)
    if not isinstance(substituted, str):
        return ConditionOutcome(False, "the produced message didn't resolve to a string, check your policy definition.")
    return ConditionOutcome(False, substituted)


# --- what a condition reads (verdict reuse keys)

# The ``image`` fields the verifyImages condition context holds (Kyverno's ``ImageInfo``): registry, path and
# name describe the repository, ``tag``/``reference``/``referenceWithTag`` change with the tag a request names.
IMAGE_FIELDS = ("registry", "path", "name", "tag", "digest", "reference", "referenceWithTag")


@dataclass(frozen=True)
class ConditionInputs:
    """Which request-specific values conditions can read: ``image.<field>`` names and whether anything under
    ``request`` is read. A verdict reached with these values answers only for the same values, so they are part of
    its reuse key, and the condition context offers nothing else (a read the analysis did not see cannot
    happen)."""

    image: frozenset[str] = frozenset()
    request: bool = False

    def __or__(self, other: ConditionInputs) -> ConditionInputs:
        return ConditionInputs(self.image | other.image, self.request or other.request)

    @property
    def tag_dependent(self) -> bool:
        return bool(self.image & {"tag", "reference", "referenceWithTag"})


NO_INPUTS = ConditionInputs()
# An expression that reads the whole context (``@``), or that cannot be analysed, may read anything.
ALL_INPUTS = ConditionInputs(frozenset(IMAGE_FIELDS), True)
_WHOLE = "\x00whole"


def inputs_read(value: Any) -> ConditionInputs:
    """The request-specific inputs the ``{{ }}`` expressions in ``value`` (conditions as written: strings, lists,
    mappings, models) can read. Conservative: a nested ``{{ {{ }} }}`` expression (its text is only known after
    substitution), an expression that does not parse, or one that reads the whole context counts as reading
    everything."""
    found = NO_INPUTS
    for text in _strings(value):
        found = found | _string_inputs(text)
        if found == ALL_INPUTS:
            break
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, BaseModel):
        return _strings(value.model_dump(by_alias=True))
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _string_inputs(text: str) -> ConditionInputs:
    from sigward.policy.variables import variable_expressions

    expressions, nested = variable_expressions(text)
    if nested:
        return ALL_INPUTS
    found = NO_INPUTS
    for expression in expressions:
        found = found | _expression_inputs(expression)
    return found


def _expression_inputs(expression: str) -> ConditionInputs:
    from sigward.policy.jmes import compile_expression

    try:
        parsed = compile_expression(expression).parsed
    except VerificationFailure:
        return ALL_INPUTS
    roots = _roots(parsed)
    if _WHOLE in roots:
        return ALL_INPUTS
    image: set[str] = set()
    for root in roots:
        if root == "image":
            image.update(IMAGE_FIELDS)
        elif root.startswith("image."):
            image.add(root[len("image.") :])
    return ConditionInputs(frozenset(image & set(IMAGE_FIELDS)), "request" in roots)


# Nodes whose first child is evaluated against the current node and the rest against its result.
_LEFT_ONLY = frozenset({"index_expression", "projection", "value_projection", "filter_projection", "pipe"})
# Nodes whose children are all evaluated against the current node.
_ALL_CHILDREN = frozenset(
    {
        "function_expression",
        "expref",
        "multi_select_list",
        "multi_select_dict",
        "key_val_pair",
        "or_expression",
        "and_expression",
        "not_expression",
        "comparator",
        "flatten",
    }
)


def _roots(node: Mapping[str, Any]) -> set[str]:
    """Top-level names an expression reads from the context (``image.<field>`` for image fields); ``_WHOLE`` when
    it reads the context itself (``@``) or uses a construct this walk does not know."""
    kind = node.get("type")
    children: list[Mapping[str, Any]] = list(node.get("children") or [])
    if kind == "field":
        return {str(node.get("value"))}
    if kind in ("literal", "index", "slice"):
        return set()
    if kind == "subexpression":
        first = children[0]
        if first.get("type") == "field" and first.get("value") == "image":
            second = children[1] if len(children) > 1 else {}
            if second.get("type") == "field":
                return {f"image.{second.get('value')}"}
            return {"image"}
        return _roots(first)
    if kind in _LEFT_ONLY:
        return _roots(children[0])
    if kind in _ALL_CHILDREN:
        out: set[str] = set()
        for child in children:
            out |= _roots(child)
        return out
    return {_WHOLE}  # current node (@), identity, or anything unknown


def evaluate_preconditions(raw: Any, context: Mapping[str, Any], *, now: datetime) -> ConditionOutcome:
    """A rule's ``preconditions`` as Kyverno checks them (``engine/internal/preconditions.go``): the any/all form
    or a legacy plain list (all must hold); each condition substituted as it is evaluated, a missing key an error
    (Kyverno since kyverno#4217), ``any``/``all`` short-circuiting. ``passed`` False carries the failing
    conditions' messages (joined by ``"; "``) for Kyverno's ``preconditions not met; <messages>``."""
    form = deny_conditions_form(raw)
    for condition in (*form.any, *form.all) if isinstance(form, AnyAllConditions) else form:
        canonical_operator(condition.operator)
    with budget():
        data = to_json_data(context)

        def evaluate(condition: Condition) -> tuple[bool, _Resolved]:
            resolved = _resolve(condition, data, now, "error", with_message=True)
            return evaluate_operator(condition.operator, resolved.key, resolved.value), resolved

        if isinstance(form, AnyAllConditions):
            ok, messages, _ = _block(form, evaluate, false_verdict="not met")
            return ConditionOutcome(ok, _join(messages, "; ") if not ok else "")
        for condition in form:
            result, resolved = evaluate(condition)
            if not result:
                return ConditionOutcome(False, resolved.message)
        return ConditionOutcome(True, "")

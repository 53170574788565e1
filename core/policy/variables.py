"""Kyverno's ``{{ }}`` variable substitution (``pkg/engine/variables/vars.go``) over policy values.

:func:`substitute` walks strings, lists and maps (map keys included) and replaces every ``{{ expression }}``
with the result of the JMESPath ``expression`` evaluated over the context (:mod:`sigward.policy.jmes`):

- a string that is exactly one ``{{expr}}`` becomes the typed result (a number, a list, ``None``, ...);
- inside a larger string the result is interpolated: strings as they are, anything else as Go's
  ``json.Marshal`` writes it (so a missing key reads ``null`` and a number ``1`` reads ``1``);
- nested expressions resolve inner-first: in ``"{{ regex_match('^x', '{{ builder.id }}') }}"`` the inner
  ``{{ builder.id }}`` is interpolated into the outer expression's text, which is then evaluated;
- a key that does not exist resolves to ``None`` (not an error); with ``missing="error"`` it fails as in
  Kyverno, whose JMESPath reports ``Unknown key "x" in path`` for a path through a missing key (a missing key
  inside a function argument, comparison or ``||`` still reads as null there);
- ``\\{{`` is an escaped, literal ``{{`` (the backslash is removed); ``{{- expr }}`` is Kyverno's "shallow"
  form whose result is not scanned for further ``{{ }}``.

Kyverno re-scans a string after each round of replacements (that is how nesting works), so text coming
from the data can itself contain ``{{ }}`` that gets evaluated. sigward keeps that for strings (nesting needs
it) but bounds it: at most :data:`MAX_SUBSTITUTIONS` expression evaluations per :func:`substitute` call and
strings of at most :data:`MAX_STRING_LENGTH` characters. Unlike Kyverno, a structured value produced by a
whole-string expression is returned as is, not walked again for ``{{ }}`` inside its strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sigward.errors import VerificationFailure
from sigward.policy.jmes import MissingKeys, go_json_dumps, search, to_json_data

# A policy holds a handful of expressions, nested two or three deep; a value that keeps producing new
# "{{ }}" (from data that contains them, or a reference loop) stops here instead of running forever.
MAX_SUBSTITUTIONS = 1000
# Interpolation can grow a string (an expression inserting a large JSON document, repeatedly); stop at 1 MiB
# of text, far beyond any real condition key or message.
MAX_STRING_LENGTH = 1 << 20

# Kyverno's RegexVariables: "{{...}}" at the start of the string, or preceded by a character other than a
# backslash (which is part of the match); the body may hold single-brace pairs but no "{{".
_VARIABLE = re.compile(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})")
_VARIABLE_AT_START = re.compile(r"\{\{(\{[^{}]*\}|[^{}])*\}\}")


@dataclass
class _Budget:
    remaining: int
    missing: MissingKeys = "null"

    def spend(self) -> None:
        self.remaining -= 1
        if self.remaining < 0:
            raise VerificationFailure(
                f"variable substitution stopped after {MAX_SUBSTITUTIONS} expressions (a value keeps producing "
                "new {{ }} expressions)"
            )


def substitute(value: Any, context: Mapping[str, Any], *, now: datetime, missing: MissingKeys = "null") -> Any:
    """``value`` with every ``{{ }}`` expression replaced, evaluated over ``context`` with ``now`` as the
    current time. Raises :class:`VerificationFailure` when an expression is invalid or fails, or a bound is
    exceeded."""
    data = to_json_data(context)
    return substitute_json(value, data, now=now, missing=missing)


def substitute_json(value: Any, data: Any, *, now: datetime, missing: MissingKeys = "null") -> Any:
    """:func:`substitute` over a context already in JSON form (:func:`sigward.policy.jmes.to_json_data`), so
    callers substituting many values convert the context once."""
    return _walk(value, data, now, _Budget(MAX_SUBSTITUTIONS, missing))


def _walk(value: Any, data: Any, now: datetime, budget: _Budget) -> Any:
    if isinstance(value, str):
        return _substitute_string(value, data, now, budget)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = key
            if isinstance(key, str):
                resolved = _substitute_string(key, data, now, budget)
                if resolved is not None and not isinstance(resolved, str):
                    raise VerificationFailure(f'expected string after substituting variables in key "{key}"')
                new_key = key if resolved is None else resolved
            out[new_key] = _walk(item, data, now, budget)
        return out
    if isinstance(value, list | tuple):
        return [_walk(item, data, now, budget) for item in value]
    return value


def _is_delete_request(data: Any) -> bool:
    request = data.get("request") if isinstance(data, dict) else None
    return isinstance(request, dict) and request.get("operation") == "DELETE"


def _variable_text(match: str) -> tuple[str, bool]:
    """Kyverno's ``replaceBracesAndTrimSpaces``: the expression inside the braces, and whether it is the
    shallow ``{{- ...}}`` form."""
    text = match.replace("{{", "").replace("}}", "").strip()
    if text.startswith("-"):
        return text[1:].strip(), True
    return text, False


def variable_expressions(text: str) -> tuple[list[str], bool]:
    """The ``{{ }}`` expressions written in ``text`` (without braces or the shallow ``-``), found as
    :func:`substitute` finds them, and whether ``text`` nests them (``{{ f('{{ x }}') }}``): a nested expression's
    final text is only known after the inner one is substituted."""
    matches = list(_VARIABLE.finditer(text))
    expressions = [_variable_text(m.group(2))[0] for m in matches]
    rest = _VARIABLE.sub(lambda m: m.group(1), text)
    nested = re.search(r"(^|[^\\])\{\{", rest) is not None
    return expressions, nested


def _resolve(expression: str, data: Any, now: datetime, missing: MissingKeys) -> Any:
    if not expression.strip():
        raise VerificationFailure("failed to resolve an empty {{ }} expression")
    try:
        return search(expression.strip(), data, now=now, missing=missing)
    except VerificationFailure as exc:
        raise type(exc)(f"failed to resolve {expression}: {exc.message}") from None  # keeps BudgetExceeded


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else go_json_dumps(value)


def _substitute_string(value: str, data: Any, now: datetime, budget: _Budget) -> Any:
    if len(value) > MAX_STRING_LENGTH:
        raise VerificationFailure(f"a string longer than {MAX_STRING_LENGTH} characters cannot be substituted")
    delete_request = _is_delete_request(data)
    found = [m.group(0) for m in _VARIABLE.finditer(value)]
    while found:
        original = value
        shallow = False
        for match in found:
            at_start = _VARIABLE_AT_START.match(match) is not None
            variable = match if at_start else match[1:]
            prefix = "" if at_start else match[0]
            expression, shallow = _variable_text(variable)
            if delete_request:
                expression = expression.replace("request.object", "request.oldObject")
            budget.spend()
            result = _resolve(expression, data, now, budget.missing)
            if original == variable:
                return result
            if shallow and result is not None:
                result = _as_text(result).replace("{{", "\\{{")
            value = value.replace(prefix + variable, prefix + _as_text(result), 1)
            if len(value) > MAX_STRING_LENGTH:
                raise VerificationFailure(
                    f"variable substitution made a string longer than {MAX_STRING_LENGTH} characters"
                )
        found = [] if shallow else [m.group(0) for m in _VARIABLE.finditer(value)]
    return value.replace("\\{{", "{{")

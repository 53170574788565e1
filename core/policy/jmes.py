"""JMESPath with Kyverno's custom functions (``pkg/engine/jmespath``), for ``imageExtractors[].jmesPath`` and the
``{{ }}`` expressions of attestation conditions. Functions are added as the features that need them arrive; an
unknown function is a clear error, never a silent null."""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import exceptions as jmes_exceptions
from jmespath import functions

from core.errors import VerificationFailure

# Expressions come from policies (trusted authors) but are compiled once per distinct text.
MAX_EXPRESSION_LENGTH = 4096


class KyvernoFunctions(functions.Functions):  # type: ignore[misc]
    @functions.signature({"types": ["string"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_trim_prefix(self, value: str, prefix: str) -> str:
        return value.removeprefix(prefix)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_trim(self, value: str, cutset: str) -> str:
        return value.strip(cutset)

    @functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_to_upper(self, value: str) -> str:
        return value.upper()

    @functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_to_lower(self, value: str) -> str:
        return value.lower()

    @functions.signature({"types": ["string"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_split(self, value: str, sep: str) -> list[str]:
        return value.split(sep)

    @functions.signature(  # type: ignore[untyped-decorator]
        {"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]}, {"types": ["number"]}
    )
    def _func_replace(self, value: str, old: str, new: str, count: float) -> str:
        return value.replace(old, new, int(count))

    @functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_replace_all(self, value: str, old: str, new: str) -> str:
        return value.replace(old, new)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_equal_fold(self, a: str, b: str) -> bool:
        return a.casefold() == b.casefold()

    @functions.signature({"types": ["string"]}, {"types": ["string", "number"]})  # type: ignore[untyped-decorator]
    def _func_regex_match(self, pattern: str, value: str | float) -> bool:
        try:
            return re.search(pattern, str(value)) is not None
        except re.error as exc:
            raise VerificationFailure(f"regex_match: invalid pattern {pattern!r}: {exc}") from None

    @functions.signature(  # type: ignore[untyped-decorator]
        {"types": ["string"]}, {"types": ["string", "number"]}, {"types": ["string", "number"]}
    )
    def _func_regex_replace_all(self, pattern: str, value: str | float, repl: str | float) -> str:
        go_repl = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", str(repl))
        try:
            return re.sub(pattern, go_repl, str(value))
        except re.error as exc:
            raise VerificationFailure(f"regex_replace_all: invalid pattern {pattern!r}: {exc}") from None

    @functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_base64_encode(self, value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    @functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_base64_decode(self, value: str) -> str:
        try:
            return base64.b64decode(value, validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise VerificationFailure("base64_decode: input is not base64 text") from None

    @functions.signature({"types": ["string"]}, {"types": ["number"]})  # type: ignore[untyped-decorator]
    def _func_truncate(self, value: str, length: float) -> str:
        return value[: max(int(length), 0)]


_OPTIONS = jmespath.Options(custom_functions=KyvernoFunctions())


@lru_cache(maxsize=1024)
def compile_expression(expression: str) -> Any:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise VerificationFailure(f"JMESPath expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        return jmespath.compile(expression)
    except jmes_exceptions.JMESPathError as exc:
        raise VerificationFailure(f"invalid JMESPath expression {expression!r}: {exc}") from None


def search(expression: str, data: Any) -> Any:
    """Evaluate ``expression`` over ``data`` with Kyverno's functions; errors name the expression."""
    compiled = compile_expression(expression)
    try:
        return compiled.search(data, options=_OPTIONS)
    except jmes_exceptions.JMESPathError as exc:
        raise VerificationFailure(f"JMESPath expression {expression!r} failed: {exc}") from None

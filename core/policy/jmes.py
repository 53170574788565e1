"""JMESPath with Kyverno's custom functions (``pkg/engine/jmespath``), for ``imageExtractors[].jmesPath`` and the
``{{ }}`` expressions of attestation conditions.

Kyverno runs on Go, and its conditions see Go values: every JSON number is a ``float64``, numbers print the
way ``fmt`` and ``encoding/json`` print them, strings parse as Go's ``strconv`` parses them. The helpers here
reproduce that (:func:`go_sprint`, :func:`go_json_dumps`, :func:`parse_go_float`), together with Kubernetes
resource quantities (:func:`parse_quantity`, ``"1Gi"``, ``"500m"``) and ``blang/semver`` versions
(:func:`parse_semver`), which both the functions and :mod:`sigward.policy.conditions` use. Go durations and
times are in :mod:`sigward.policy.durations`.

Time functions read the clock only through ``now`` (:func:`search`), so evaluation is deterministic under
test. An unknown function is a clear error, never a silent null; every failure is a
:class:`~sigward.errors.VerificationFailure` naming the expression.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, ROUND_UP, Context, Decimal, Inexact, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal, TypeVar, cast

import jmespath
from jmespath import exceptions as jmes_exceptions
from jmespath import functions, visitor

from sigward.errors import VerificationFailure
from sigward.patterns import CompiledPattern, Match, PatternError, compile_re2, wildcard_match
from sigward.policy import durations
from sigward.policy.budget import DATA_NODE_COST, NODE_COST, BudgetExceeded, budget, charge
from sigward.policy.durations import GoTime

# Expressions come from policies (trusted authors) but are compiled once per distinct text.
MAX_EXPRESSION_LENGTH = 4096
# parse_json/parse_yaml results and normalized contexts are walked node by node; a YAML alias bomb expands
# exponentially when walked, so the walk stops after this many nodes (real SBOMs stay far below it).
MAX_DATA_NODES = 2_000_000
# A quantity string longer than this is not treated as a quantity: Kubernetes never writes one, and the
# exact decimal arithmetic below is sized for it.
MAX_QUANTITY_LENGTH = 256
# Exact quantity arithmetic (add, multiply, divide) refuses decimal exponents beyond this magnitude rather
# than materialise numbers with millions of digits (comparisons have no such limit).
MAX_QUANTITY_EXPONENT = 4096

_F = TypeVar("_F", bound=Callable[..., Any])
_DIGITS = "0123456789"
_MAX_INT64 = 2**63 - 1


def _sig(*arguments: dict[str, Any]) -> Callable[[_F], _F]:
    """``jmespath.functions.signature`` with a type mypy can see."""
    return cast(Callable[[_F], _F], functions.signature(*arguments))


class _Fail(Exception):
    """A Kyverno function error; :func:`search` reports it with the expression."""


def _func_error(name: str, message: str) -> _Fail:
    return _Fail(f"JMESPath function '{name}': {message}")


# --- JSON data


def to_json_data(value: Any) -> Any:
    """``value`` as plain JSON data (dict with str keys, list, str, int, float, bool, None) as Kyverno's
    context holds it: mappings become dicts (non-string keys are written as strings), tuples lists, dates
    ISO strings, bytes base64. Raises :class:`VerificationFailure` for other types or over
    :data:`MAX_DATA_NODES` nodes."""
    return _to_json(value, [MAX_DATA_NODES], 0)


def _to_json(value: Any, budget: list[int], depth: int) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise VerificationFailure(f"data has more than {MAX_DATA_NODES} nodes")
    if depth > 500:
        raise VerificationFailure("data is nested more than 500 levels deep")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        charge(DATA_NODE_COST * len(value))
        return {_json_key(k): _to_json(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        charge(DATA_NODE_COST * len(value))
        return [_to_json(v, budget, depth + 1) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset):
        return {_json_key(k): None for k in value}
    raise VerificationFailure(f"unsupported value of type {type(value).__name__} in JSON data")


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return _go_g(key)
    return str(key)


def json_equal(a: Any, b: Any) -> bool:
    """``reflect.DeepEqual`` on Go JSON values: numbers compare as float64 (so 1 equals 1.0), a boolean
    never equals a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return to_float(a) == to_float(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return False


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_float(value: int | float) -> float:
    """A JSON number as Go's float64 (integers too large for a float become infinities)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


# --- Go formatting


def _shortest(f: float) -> tuple[str, int]:
    """The shortest digits that round-trip ``abs(f)`` (``f`` finite, non-zero) and the decimal point
    position: ``abs(f) == 0.<digits> * 10**point``."""
    _, digit_tuple, exponent = Decimal(repr(abs(f))).as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    stripped = digits.rstrip("0")
    assert isinstance(exponent, int)
    exponent += len(digits) - len(stripped)
    return stripped, len(stripped) + exponent


def _fmt_e(digits: str, point: int) -> str:
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_f(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _special(f: float) -> str | None:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    return None


def _go_g(f: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 64)``, which is also ``fmt.Sprint(f)``: ``1e+06``, ``123456``."""
    special = _special(f)
    if special is not None:
        return special
    digits, point = _shortest(f)
    sign = "-" if f < 0 else ""
    exp = point - 1
    if exp < -4 or exp >= 6:
        return sign + _fmt_e(digits, point)
    return sign + _fmt_f(digits, point)


def go_json_number(f: float) -> str:
    """A float64 as ``encoding/json`` writes it (``1``, ``0.5``, ``1e+21``, ``1e-7``); NaN and infinities
    have no JSON form."""
    if math.isnan(f) or math.isinf(f):
        raise VerificationFailure(f"json: unsupported value: {_special(f)}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    digits, point = _shortest(f)
    sign = "-" if f < 0 else ""
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        text = _fmt_e(digits, point)
        if len(text) >= 4 and text[-4:-1] == "e-0":  # e-07 -> e-7
            text = text[:-2] + text[-1]
        return sign + text
    return sign + _fmt_f(digits, point)


def go_float32_string(f: float) -> str:
    """``strconv.FormatFloat(f, 'f', -1, 32)``: Kyverno's number-to-string conversion for function
    arguments (``ifaceToString``); float32 precision, never an exponent."""
    if math.isnan(f):
        return "NaN"
    try:
        f32 = struct.unpack("<f", struct.pack("<f", f))[0]
    except OverflowError:
        return "+Inf" if f > 0 else "-Inf"
    if math.isinf(f32):
        return "+Inf" if f32 > 0 else "-Inf"
    if f32 == 0:
        return "-0" if math.copysign(1.0, f32) < 0 else "0"
    for precision in range(1, 10):
        text = f"{abs(f32):.{precision - 1}e}"
        try:
            if struct.unpack("<f", struct.pack("<f", float(text)))[0] == abs(f32):
                break
        except OverflowError:  # rounded past the largest float32
            continue
    mantissa, _, exp_text = text.partition("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    point = int(exp_text) + 1
    return ("-" if f32 < 0 else "") + _fmt_f(digits, point)


def iface_to_string(value: Any) -> str | None:
    """Kyverno's ``ifaceToString``: strings as is, numbers via float32 formatting, booleans; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return go_float32_string(to_float(value))
    return None


def go_sprint(value: Any) -> str:
    """``fmt.Sprint`` of a Go JSON value: ``<nil>``, ``true``, ``1e+06``, ``[a b]``, ``map[k:v]``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return _go_g(to_float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_sprint(value[k])}" for k in sorted(value, key=str)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def _json_escape_char(match: re.Match[str]) -> str:
    c = match.group(0)
    if c in _JSON_ESCAPES:
        return _JSON_ESCAPES[c]
    if "\ud800" <= c <= "\udfff":
        return "\ufffd"
    return f"\\u{ord(c):04x}"


def go_json_dumps(value: Any) -> str:
    """``json.Marshal`` as Kyverno uses it: compact, map keys sorted, ``<``, ``>``, ``&`` escaped as
    ``\\u003c``..., numbers as float64."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return go_json_number(to_float(value))
    if isinstance(value, str):
        return '"' + _JSON_NEEDS_ESCAPE.sub(_json_escape_char, value) + '"'
    if isinstance(value, Mapping):
        items = sorted(((_json_key(k), v) for k, v in value.items()), key=lambda item: item[0])
        return "{" + ",".join(f"{go_json_dumps(k)}:{go_json_dumps(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json_dumps(v) for v in value) + "]"
    raise VerificationFailure(f"json: unsupported type {type(value).__name__}")


def parse_strict_json(text: str) -> Any:
    """``encoding/json`` decoding: standard JSON only (no NaN/Infinity). Raises ValueError."""

    def _reject(constant: str) -> Any:
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=_reject)


# --- Go number parsing

_GO_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?")
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+")
_GO_INT = re.compile(r"[+-]?[0-9]+")


def _underscore_ok(s: str) -> bool:
    """Go's ``underscoreOK``: underscores only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if c in _DIGITS or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def parse_go_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``; raises ValueError (also for values out of float64 range)."""
    lowered = text.lower()
    body = lowered[1:] if lowered[:1] in ("+", "-") else lowered
    if body in ("inf", "infinity"):
        return -math.inf if lowered[0] == "-" else math.inf
    if lowered == "nan":
        return math.nan
    if _GO_DEC_FLOAT.fullmatch(text):
        if "_" in text and not _underscore_ok(text):
            raise ValueError(f"invalid float {text!r}")
        cleaned = text.replace("_", "")
        if not any(c in _DIGITS for c in cleaned.split("e")[0].split("E")[0]):
            raise ValueError(f"invalid float {text!r}")
        result = float(cleaned)
    elif _GO_HEX_FLOAT.fullmatch(text):
        if "_" in text and not _underscore_ok(text):
            raise ValueError(f"invalid float {text!r}")
        cleaned = text.replace("_", "")
        sign = -1.0 if cleaned[0] == "-" else 1.0
        try:
            result = sign * float.fromhex(cleaned.lstrip("+-"))
        except OverflowError:
            raise ValueError(f"float {text!r} out of range") from None
    else:
        raise ValueError(f"invalid float {text!r}")
    if math.isinf(result):
        raise ValueError(f"float {text!r} out of range")
    return result


def try_parse_go_float(text: str) -> float | None:
    try:
        return parse_go_float(text)
    except ValueError:
        return None


def parse_go_int(text: str) -> int:
    """``strconv.ParseInt(text, 10, 64)``; raises ValueError."""
    if not _GO_INT.fullmatch(text):
        raise ValueError(f"invalid integer {text!r}")
    value = int(text)
    if not -(2**63) <= value <= _MAX_INT64:
        raise ValueError(f"integer {text!r} out of range")
    return value


def go_rem(a: int, b: int) -> int:
    """Go's ``%``: the remainder has the sign of the dividend."""
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return a - b * q


# --- Kubernetes resource quantities (k8s.io/apimachinery/pkg/api/resource)

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIX_BY_EXP = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIX_BY_EXP = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_QUANTITY_SUFFIX_CHARS = "eEinumkKMGTP"
_NANO = Decimal("1e-9")
_QCTX = Context(prec=MAX_QUANTITY_LENGTH + 64, Emax=999_999_999_999_999_999, Emin=-999_999_999_999_999_999)

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"


@dataclass(frozen=True)
class Quantity:
    """A parsed quantity: its exact ``value``, the ``format`` it keeps for printing, and ``scale``, the
    number of fractional digits of its ``inf.Dec`` form (which Kyverno's ``divide`` rounds to)."""

    value: Decimal
    format: str
    scale: int

    def cmp(self, other: Quantity) -> int:
        return (self.value > other.value) - (self.value < other.value)

    def __str__(self) -> str:
        return format_quantity(self.value, self.format)


def _scan_quantity(text: str) -> tuple[bool, str, str, str]:
    """Go's ``parseQuantityString``: (positive, numerator digits, denominator digits, suffix)."""
    positive = True
    pos = 0
    end = len(text)
    if end and text[0] in "+-":
        positive = text[0] == "+"
        pos = 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _QUANTITY_SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(f"quantity {text!r} does not match the quantity syntax")
    return positive, num, denom, text[suffix_start:]


def _interpret_suffix(suffix: str) -> tuple[int, int, str]:
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        exponent = parse_go_int(suffix[1:])
        return 10, ((exponent + 2**31) % 2**32) - 2**31, DECIMAL_EXPONENT  # Go keeps it as an int32
    raise ValueError(f"unable to parse quantity's suffix {suffix!r}")


def parse_quantity(text: str) -> Quantity:
    """``resource.ParseQuantity``: ``"1Gi"``, ``"500m"``, ``"1.5"``, ``"12e6"``; values are kept exactly,
    rounded up (away from zero) to a nano, binary ones capped at 2^63-1. Raises ValueError."""
    if not text or len(text) > MAX_QUANTITY_LENGTH:
        raise ValueError(f"{text!r} is not a quantity")
    if text == "0":
        return Quantity(Decimal(0), DECIMAL_SI, 0)
    positive, num, denom, suffix = _scan_quantity(text)
    base, exponent, fmt = _interpret_suffix(suffix)
    digits = int(num + denom)
    # Which representation Kubernetes picks decides only the scale that ``divide`` rounds to.
    scale: int | None = None
    if fmt == BINARY_SI:
        if exponent >= 0 and not denom:
            precision = 15 - len(num) - int(exponent * 3 / 10) - 1
            if precision >= 0 and digits << exponent <= _MAX_INT64:
                scale = 0
    elif 18 - (len(num) + len(denom)) >= 0 and exponent - len(denom) >= -9:
        scale = len(denom) - exponent
    magnitude = Decimal(digits).scaleb(-len(denom), _QCTX)
    scaled = 2**exponent if base == 2 else 1
    magnitude = _QCTX.multiply(magnitude, Decimal(scaled)) if base == 2 else magnitude.scaleb(exponent, _QCTX)
    if magnitude != 0 and int(magnitude.as_tuple().exponent) < -9:
        magnitude = magnitude.quantize(_NANO, rounding=ROUND_UP, context=_QCTX)
    if fmt == BINARY_SI and magnitude > _MAX_INT64:
        magnitude = Decimal(_MAX_INT64)
    if fmt == BINARY_SI and 0 < magnitude < 1:
        fmt = DECIMAL_SI
    if scale is None:
        scale = 9 if magnitude != 0 else len(denom) - (exponent if base == 10 else 0)
    return Quantity(magnitude if positive else -magnitude, fmt, scale)


def try_parse_quantity(value: Any) -> Quantity | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_quantity(value)
    except ValueError:
        return None


def format_quantity(value: Decimal, fmt: str) -> str:
    """``Quantity.String()``: the canonical form, e.g. ``1500m`` for 1.5 and ``1536Mi`` for 1.5Gi."""
    if value == 0:
        return "0"
    if fmt == BINARY_SI and (-1024 < value < 1024 or value != value.to_integral_value()):
        fmt = DECIMAL_SI
    if fmt == BINARY_SI:
        mantissa = int(value)
        exp = 0
        while abs(mantissa) >= 1024 and mantissa % 1024 == 0 and exp < 6:
            mantissa //= 1024
            exp += 1
        return f"{mantissa}{_BINARY_SUFFIX_BY_EXP[exp]}"
    sign, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digit_tuple)))
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    while exponent % 3 != 0:
        mantissa *= 10
        exponent -= 1
    if fmt == DECIMAL_SI and exponent in _DECIMAL_SUFFIX_BY_EXP:
        suffix = _DECIMAL_SUFFIX_BY_EXP[exponent]
    else:
        suffix = f"e{exponent}" if exponent else ""
    return f"{'-' if sign else ''}{mantissa}{suffix}"


def _exact(q: Quantity) -> Fraction:
    exponent = q.value.as_tuple().exponent
    assert isinstance(exponent, int)
    if abs(exponent) > MAX_QUANTITY_EXPONENT or abs(q.scale) > MAX_QUANTITY_EXPONENT:
        raise ValueError("quantity is too large or too small for exact arithmetic")
    return Fraction(q.value)


def _fraction_to_decimal(value: Fraction) -> Decimal:
    """An exact Decimal for a fraction whose denominator has only factors 2 and 5."""
    ctx = Context(prec=len(str(value.numerator)) + 4 * len(str(value.denominator)) + 10, traps=[Inexact])
    return ctx.divide(Decimal(value.numerator), Decimal(value.denominator))


# --- semantic versions (github.com/blang/semver/v4)

_ALPHANUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789")


def _only(s: str, chars: frozenset[str] | str) -> bool:
    return all(c in chars for c in s)


def _parse_uint(part: str, what: str) -> int:
    if not _only(part, _DIGITS) or not part:
        raise ValueError(f"invalid character(s) found in {what} number {part!r}")
    if len(part) > 1 and part[0] == "0":
        raise ValueError(f"{what} number must not contain leading zeroes {part!r}")
    value = int(part)
    if value >= 2**64:
        raise ValueError(f"{what} number {part!r} out of range")
    return value


@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    def compare(self, other: SemVer) -> int:
        for a, b in ((self.major, other.major), (self.minor, other.minor), (self.patch, other.patch)):
            if a != b:
                return 1 if a > b else -1
        if not self.pre or not other.pre:
            return (not self.pre) - (not other.pre)
        for x, y in zip(self.pre, other.pre, strict=False):
            if x == y:
                continue
            if isinstance(x, int) and isinstance(y, int):
                return 1 if x > y else -1
            if isinstance(x, str) and isinstance(y, str):
                return 1 if x > y else -1
            return -1 if isinstance(x, int) else 1
        return (len(self.pre) > len(other.pre)) - (len(self.pre) < len(other.pre))


def parse_semver(text: str) -> SemVer:
    """``semver.Parse``: strict ``MAJOR.MINOR.PATCH[-pre][+build]`` (no ``v``, no leading zeros)."""
    if not text:
        raise ValueError("version string empty")
    parts = text.split(".", 2)
    if len(parts) != 3:
        raise ValueError("no Major.Minor.Patch elements found")
    major = _parse_uint(parts[0], "major")
    minor = _parse_uint(parts[1], "minor")
    patch_text = parts[2]
    build: list[str] = []
    pre_text: list[str] = []
    if "+" in patch_text:
        patch_text, _, build_text = patch_text.partition("+")
        build = build_text.split(".")
    if "-" in patch_text:
        patch_text, _, rest = patch_text.partition("-")
        pre_text = rest.split(".")
    patch = _parse_uint(patch_text, "patch")
    pre: list[int | str] = []
    for item in pre_text:
        if not item:
            raise ValueError("prerelease is empty")
        if _only(item, _DIGITS):
            pre.append(_parse_uint(item, "prerelease"))
        elif _only(item, _ALPHANUM):
            pre.append(item)
        else:
            raise ValueError(f"invalid character(s) found in prerelease {item!r}")
    for item in build:
        if not item or not _only(item, _ALPHANUM):
            raise ValueError(f"invalid build metadata {item!r}")
    return SemVer(major, minor, patch, tuple(pre))


def try_parse_semver(text: str) -> SemVer | None:
    try:
        return parse_semver(text)
    except ValueError:
        return None


_RANGE_COMPARATORS: dict[str, Callable[[int], bool]] = {
    "": lambda c: c == 0,
    "=": lambda c: c == 0,
    "==": lambda c: c == 0,
    "!": lambda c: c != 0,
    "!=": lambda c: c != 0,
    ">": lambda c: c == 1,
    ">=": lambda c: c >= 0,
    "<": lambda c: c == -1,
    "<=": lambda c: c <= 0,
}


def _split_range(s: str) -> list[str]:
    result: list[str] = []
    last = 0
    last_char = ""
    for i, c in enumerate(s):
        if c == " " and last_char not in (">", "<", "="):
            if last < i - 1:
                result.append(s[last:i])
            last = i + 1
        elif c != " ":
            last_char = c
    if last < len(s) - 1:
        result.append(s[last:])
    return [r.replace(" ", "") for r in result]


def _split_comparator(s: str) -> tuple[str, str]:
    for i, c in enumerate(s):
        if c.isdigit():
            return s[:i].strip(), s[i:]
    raise ValueError(f"could not get version from string: {s!r}")


def _expand_wildcard(part: str) -> list[str]:
    op, version = _split_comparator(part)
    pieces = version.split(".")
    wildcard = len(pieces) if pieces[-1] == "x" else 0
    flat = version.replace(".x.x", ".x", 1).replace(".x", ".0", 1)
    if len(flat.split(".")) == 2:
        flat += ".0"
    out: list[str] = []
    increment = False
    if op == ">":
        result_op, increment = ">=", True
    elif op == ">=":
        result_op = ">="
    elif op == "<":
        result_op = "<"
    elif op == "<=":
        result_op, increment = "<", True
    elif op in ("", "=", "=="):
        out.append(">=" + flat)
        result_op, increment = "<", True
    elif op in ("!=", "!"):
        out.append("<" + flat)
        result_op, increment = ">=", True
    else:
        result_op = ""
    result_version = ""
    if not increment:
        result_version = flat
    else:
        fields = flat.split(".")
        index = {3: 1, 2: 0}.get(wildcard)
        if index is not None:
            try:
                fields[index] = str(int(fields[index]) + 1)
                result_version = ".".join(fields)
            except ValueError:
                result_version = ""
    out.append(result_op + result_version)
    return out


def parse_semver_range(text: str) -> Callable[[SemVer], bool]:
    """``semver.ParseRange``: ``">=1.0.0 <2.0.0 || 3.x"``. Raises ValueError."""
    parts = _split_range(text)
    or_groups: list[list[str]] = []
    last = 0
    for i, p in enumerate(parts):
        if p == "||":
            if i == 0:
                raise ValueError("first element in range is '||'")
            or_groups.append(parts[last:i])
            last = i + 1
    if last == len(parts):
        raise ValueError("last element in range is '||'")
    or_groups.append(parts[last:])
    alternatives: list[list[tuple[Callable[[int], bool], SemVer]]] = []
    for group in or_groups:
        expanded: list[str] = []
        for part in group:
            expanded.extend(_expand_wildcard(part) if "x" in part else [part])
        conjunction = []
        for part in expanded:
            op, version = _split_comparator(part)
            if op not in _RANGE_COMPARATORS:
                raise ValueError(f"could not parse comparator {op!r} in {part!r}")
            conjunction.append((_RANGE_COMPARATORS[op], parse_semver(version)))
        if not conjunction:
            raise ValueError(f"empty version range {text!r}")
        alternatives.append(conjunction)

    def matches(version: SemVer) -> bool:
        return any(all(check(version.compare(v)) for check, v in conj) for conj in alternatives)

    return matches


# --- Go regular expressions (RE2, sigward.patterns)

_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_]+")


def _expand_template(template: str, match: Match) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``; unknown groups are empty."""
    out: list[str] = []
    i = 0
    while i < len(template):
        c = template[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if template[i + 1 : i + 2] == "$":
            out.append("$")
            i += 2
            continue
        name = None
        if template[i + 1 : i + 2] == "{":
            close = template.find("}", i + 2)
            if close != -1 and _TEMPLATE_NAME.fullmatch(template[i + 2 : close]):
                name, i = template[i + 2 : close], close + 1
        else:
            found = _TEMPLATE_NAME.match(template, i + 1)
            if found:
                name, i = found.group(0), found.end()
        if name is None:
            out.append("$")
            i += 1
            continue
        out.append(match.group(int(name) if name.isdigit() else name) or "")
    return "".join(out)


# --- arithmetic operands


def _operand(name: str, value: Any) -> tuple[str, Any]:
    if is_number(value):
        return "scalar", to_float(value)
    if isinstance(value, str):
        quantity = try_parse_quantity(value)
        if quantity is not None:
            return "quantity", quantity
        duration = durations.try_parse_duration(value)
        if duration is not None:
            return "duration", duration
    raise _func_error(name, "invalid operand")


def _scalar_quantity(name: str, value: float) -> Quantity:
    try:
        return parse_quantity(_go_g(value))
    except ValueError as exc:
        raise _func_error(name, str(exc)) from None


def _quantity_result(name: str, value: Fraction, fmt: str) -> str:
    try:
        return format_quantity(_fraction_to_decimal(value), fmt)
    except (Inexact, InvalidOperation):
        raise _func_error(name, "result cannot be represented exactly") from None


def _add(name: str, a: Any, b: Any, *, negate: bool = False) -> Any:
    kind_a, x = _operand(name, a)
    kind_b, y = _operand(name, b)
    if kind_a != kind_b:
        raise _func_error(name, "Types mismatch")
    if kind_a == "scalar":
        return x - y if negate else x + y
    if kind_a == "duration":
        return durations.format_duration(durations.wrap_int64(x - y if negate else x + y))
    fmt = x.format if x.value != 0 else y.format
    try:
        total = _exact(x) - _exact(y) if negate else _exact(x) + _exact(y)
    except ValueError as exc:
        raise _func_error(name, str(exc)) from None
    return _quantity_result(name, total, fmt)


def _multiply(a: Any, b: Any) -> Any:
    kind_a, x = _operand("multiply", a)
    kind_b, y = _operand("multiply", b)
    if kind_a == "scalar" and kind_b != "scalar":
        kind_a, x, kind_b, y = kind_b, y, kind_a, x
    if kind_b != "scalar":
        raise _func_error("multiply", "Types mismatch")
    if kind_a == "scalar":
        return x * y
    if kind_a == "duration":
        seconds = durations.duration_seconds(x) * y
        return durations.format_duration(durations.float_to_int64(seconds * 1e9))
    factor = _scalar_quantity("multiply", y)
    try:
        product = _exact(x) * _exact(factor)
    except ValueError as exc:
        raise _func_error("multiply", str(exc)) from None
    return _quantity_result("multiply", product, x.format)


def _divide(a: Any, b: Any) -> Any:
    kind_a, x = _operand("divide", a)
    kind_b, y = _operand("divide", b)
    zero = _func_error("divide", "Zero divisor passed")
    if kind_a == "quantity" and kind_b == "quantity":
        divisor = float(y.value)
        if divisor == 0:
            raise zero
        return float(x.value) / divisor
    if kind_a == "duration" and kind_b == "duration":
        divisor = durations.duration_seconds(y)
        if divisor == 0:
            raise zero
        return durations.duration_seconds(x) / divisor
    if kind_b != "scalar":
        raise _func_error("divide", "Types mismatch")
    if y == 0:
        raise zero
    if kind_a == "scalar":
        return x / y
    if kind_a == "duration":
        seconds = durations.duration_seconds(x) / y
        return durations.format_duration(durations.float_to_int64(seconds * 1e9))
    divisor_q = _scalar_quantity("divide", y)
    scale = max(x.scale, divisor_q.scale)
    try:
        quotient = _exact(x) / _exact(divisor_q)
    except ValueError as exc:
        raise _func_error("divide", str(exc)) from None
    if abs(scale) > MAX_QUANTITY_EXPONENT:
        raise _func_error("divide", "quantity is too large or too small for exact arithmetic")
    truncated = Fraction(math.trunc(quotient * Fraction(10) ** scale)) / Fraction(10) ** scale
    return _quantity_result("divide", truncated, x.format)


def _int_of(name: str, value: float, message: str) -> int:
    converted = durations.float_to_int64(value)
    if float(converted) != value:
        raise _func_error(name, message)
    return converted


def _modulo(a: Any, b: Any) -> Any:
    kind_a, x = _operand("modulo", a)
    kind_b, y = _operand("modulo", b)
    if kind_a != kind_b:
        raise _func_error("modulo", "Types mismatch")
    non_int = "Non-integer argument(s) passed for modulo"
    zero = _func_error("modulo", "Zero divisor passed")
    if kind_a == "duration":
        if y == 0:
            raise zero
        return durations.format_duration(go_rem(x, y))
    if kind_a == "quantity":
        i1 = _int_of("modulo", float(x.value), non_int)
        i2 = _int_of("modulo", float(y.value), non_int)
        if i2 == 0:
            raise zero
        return format_quantity(Decimal(go_rem(i1, i2)), x.format)
    i1 = _int_of("modulo", x, non_int)
    i2 = _int_of("modulo", y, non_int)
    if i2 == 0:
        raise zero
    return float(go_rem(i1, i2))


def _int_number(value: float) -> int | None:
    """Kyverno's ``intNumber``: the integer a float64 holds exactly, else None."""
    if math.isinf(value) or math.isnan(value) or math.trunc(value) != value or abs(value) >= 2**63:
        return None
    return int(value)


def go_round(value: float) -> float:
    """``math.Round``: half away from zero."""
    if math.isinf(value) or math.isnan(value):
        return value
    return float(Decimal(value).to_integral_value(rounding=ROUND_HALF_UP))


# --- paths


def go_clean_path(path: str) -> str:
    """``filepath.Join(path)`` on Linux: ``""`` stays empty, else Go's ``Clean``."""
    if path == "":
        return ""
    rooted = path.startswith("/")
    parts: list[str] = []
    for element in path.split("/"):
        if element in ("", "."):
            continue
        if element == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(element)
    joined = "/".join(parts)
    if rooted:
        return "/" + joined
    return joined or "."


# --- YAML as sigs.k8s.io/yaml reads it


def _yaml_loader() -> type[Any]:
    import yaml

    class Loader(yaml.SafeLoader):
        """Safe YAML without the timestamp resolver: ``2021-01-01`` stays a string, as in Kyverno."""

    Loader.yaml_implicit_resolvers = {
        key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


def parse_yaml_text(text: str) -> Any:
    """The first YAML document of ``text`` as JSON data. Raises ValueError."""
    import yaml

    try:
        documents = yaml.load_all(text, Loader=_yaml_loader())
        first = next(iter(documents), None)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from None
    try:
        data = to_json_data(first)
        go_json_dumps(data)  # non-finite floats have no JSON form
    except VerificationFailure as exc:
        raise ValueError(exc.message) from None
    return data


# --- the functions


def _time_arg(name: str, value: str) -> GoTime:
    try:
        return durations.parse_rfc3339(value)
    except ValueError as exc:
        raise _func_error(name, str(exc)) from None


def _duration_arg(name: str, value: str) -> int:
    try:
        return durations.parse_duration(value)
    except ValueError as exc:
        raise _func_error(name, str(exc)) from None


def _regex(name: str, pattern: str) -> CompiledPattern:
    """A pattern given at run time (possibly from attestation data) that RE2 refuses is an evaluation error: the
    condition fails closed; Python's backtracking ``re`` is never a fallback."""
    try:
        return compile_re2(pattern, path="")
    except PatternError as exc:
        raise _func_error(name, f"invalid pattern (argument #1): {exc.message}") from None


def _string_arg(name: str, index: int, value: Any) -> str:
    text = iface_to_string(value)
    if text is None:
        raise _func_error(name, f"argument #{index} is not of type String or Real")
    return text


S = {"types": ["string"]}
N = {"types": ["number"]}
SN = {"types": ["string", "number"]}
ANY: dict[str, Any] = {"types": []}


def _size(value: Any) -> int:
    """What a function's argument or result costs to handle: its length (shallow for containers)."""
    return len(value) if isinstance(value, str | list | dict) else 1


def _charged(text: str) -> str:
    charge(len(text))
    return text


def _charge_replacement(value: str, old: str, new: str, count: int) -> None:
    """Charge a replacement's output before building it: ``replace`` can multiply its input's size."""
    hits = value.count(old) if old else len(value) + 1
    if count >= 0:
        hits = min(hits, count)
    charge(len(value) + hits * len(new))


class KyvernoFunctions(functions.Functions):  # type: ignore[misc]
    """Kyverno's JMESPath functions; time functions use ``now`` (the wall clock when None). Every call charges its
    arguments' and result's sizes to the evaluation's budget (:mod:`sigward.policy.budget`)."""

    def __init__(self, now: datetime | None = None) -> None:
        super().__init__()
        self._now = now

    def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
        charge(sum(_size(a) for a in resolved_args))
        result = super().call_function(function_name, resolved_args)
        charge(_size(result))
        return result

    def _current(self) -> GoTime:
        return GoTime.from_datetime(self._now if self._now is not None else datetime.now(UTC))

    # strings

    @_sig(S, S)
    def _func_compare(self, a: str, b: str) -> int:
        return (a > b) - (a < b)

    @_sig(S, S)
    def _func_equal_fold(self, a: str, b: str) -> bool:
        return a.casefold() == b.casefold()

    @_sig(S, S, S, N)
    def _func_replace(self, value: str, old: str, new: str, count: float) -> str:
        n = durations.float_to_int64(to_float(count))
        _charge_replacement(value, old, new, n)
        return value.replace(old, new, n if n >= 0 else -1)

    @_sig(S, S, S)
    def _func_replace_all(self, value: str, old: str, new: str) -> str:
        _charge_replacement(value, old, new, -1)
        return value.replace(old, new)

    @_sig(S)
    def _func_to_upper(self, value: str) -> str:
        return value.upper()

    @_sig(S)
    def _func_to_lower(self, value: str) -> str:
        return value.lower()

    @_sig(S, S)
    def _func_trim(self, value: str, cutset: str) -> str:
        return value.strip(cutset) if cutset else value

    @_sig(S, S)
    def _func_trim_prefix(self, value: str, prefix: str) -> str:
        return value.removeprefix(prefix)

    @_sig(S, S)
    def _func_split(self, value: str, sep: str) -> list[str]:
        return list(value) if sep == "" else value.split(sep)

    @_sig(S, N)
    def _func_truncate(self, value: str, length: float) -> str:
        n = durations.float_to_int64(to_float(length))
        return value[: max(n, 0)]

    @_sig(S)
    def _func_base64_encode(self, value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    @_sig(S)
    def _func_base64_decode(self, value: str) -> str:
        try:
            raw = base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
            return raw.decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise _func_error("base64_decode", "input is not base64 text") from None

    @_sig(S)
    def _func_path_canonicalize(self, value: str) -> str:
        return go_clean_path(value)

    @_sig(S)
    def _func_to_boolean(self, value: str) -> bool:
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise _func_error("to_boolean", f"lowercase argument must be 'true' or 'false' (provided: '{value}')")

    @_sig(S)
    def _func_sha256(self, value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()

    @_sig(S)
    def _func_sha1(self, value: str) -> str:
        return hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()

    @_sig(S)
    def _func_md5(self, value: str) -> str:
        return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()

    # JSON conversions with Go's formatting (to_string and to_number are JMESPath built-ins)

    @_sig(ANY)
    def _func_to_string(self, value: Any) -> str:
        return value if isinstance(value, str) else go_json_dumps(value)

    @_sig(ANY)
    def _func_to_number(self, value: Any) -> Any:
        if is_number(value):
            return value
        if isinstance(value, str):
            return try_parse_go_float(value)
        return None

    # regular expressions and wildcards

    @_sig(S, SN)
    def _func_regex_match(self, pattern: str, value: Any) -> bool:
        text = _string_arg("regex_match", 2, value)
        charge(len(text) + len(pattern))
        return _regex("regex_match", pattern).search(text)

    @_sig(S, SN, SN)
    def _func_regex_replace_all(self, pattern: str, value: Any, repl: Any) -> str:
        regex = _regex("regex_replace_all", pattern)
        template = _string_arg("regex_replace_all", 3, repl)
        source = _string_arg("regex_replace_all", 2, value)
        charge(len(source) + len(pattern))
        return regex.replace_all(source, lambda m: _charged(_expand_template(template, m)))

    @_sig(S, SN, SN)
    def _func_regex_replace_all_literal(self, pattern: str, value: Any, repl: Any) -> str:
        regex = _regex("regex_replace_all_literal", pattern)
        literal = _string_arg("regex_replace_all_literal", 3, repl)
        source = _string_arg("regex_replace_all_literal", 2, value)
        charge(len(source) + len(pattern))
        return regex.replace_all(source, lambda m: _charged(literal))

    @_sig(S, SN)
    def _func_pattern_match(self, pattern: str, value: Any) -> bool:
        text = _string_arg("pattern_match", 2, value)
        charge(len(text) + len(pattern))
        return wildcard_match(pattern, text)

    @_sig({"types": ["object"]}, {"types": ["object"]})
    def _func_label_match(self, labels: dict[str, Any], against: dict[str, Any]) -> bool:
        return all(k in against and json_equal(against[k], v) for k, v in labels.items())

    # arithmetic

    @_sig(ANY, ANY)
    def _func_add(self, a: Any, b: Any) -> Any:
        return _add("add", a, b)

    @_sig(ANY, ANY)
    def _func_subtract(self, a: Any, b: Any) -> Any:
        return _add("subtract", a, b, negate=True)

    @_sig(ANY, ANY)
    def _func_multiply(self, a: Any, b: Any) -> Any:
        return _multiply(a, b)

    @_sig(ANY, ANY)
    def _func_divide(self, a: Any, b: Any) -> Any:
        return _divide(a, b)

    @_sig(ANY, ANY)
    def _func_modulo(self, a: Any, b: Any) -> Any:
        return _modulo(a, b)

    @_sig({"types": ["array"]})
    def _func_sum(self, items: list[Any]) -> Any:
        if not items:
            raise _func_error("sum", "at least one element in the array is required")
        result = items[0]
        for item in items[1:]:
            result = _add("sum", result, item)
        return result

    @_sig(N, N)
    def _func_round(self, value: float, places: float) -> float:
        n = _int_number(to_float(places))
        if n is None:
            raise _func_error("round", "Non-integer argument(s) passed for round off")
        if n < 0:
            raise _func_error("round", "2 argument is out of bounds (2)")
        shift = math.inf if n > 308 else 10.0**n
        x = to_float(value)
        return go_round(x * shift) / shift

    # semver

    @_sig(S, S)
    def _func_semver_compare(self, version: str, wanted: str) -> bool:
        parsed = try_parse_semver(version) or SemVer(0, 0, 0)
        try:
            matches = parse_semver_range(wanted)
        except ValueError as exc:
            raise _func_error("semver_compare", str(exc)) from None
        return matches(parsed)

    # structured data

    @_sig(S)
    def _func_parse_json(self, text: str) -> Any:
        try:
            return to_json_data(parse_strict_json(text))
        except (ValueError, RecursionError, VerificationFailure) as exc:
            raise _func_error("parse_json", str(exc)) from None

    @_sig(S)
    def _func_parse_yaml(self, text: str) -> Any:
        try:
            return parse_yaml_text(text)
        except (ValueError, RecursionError) as exc:
            raise _func_error("parse_yaml", str(exc)) from None

    @_sig({"types": ["object", "array"]}, SN)
    def _func_lookup(self, collection: Any, key: Any) -> Any:
        if isinstance(collection, dict):
            if not isinstance(key, str):
                raise _func_error("lookup", "argument #2 is not of type String")
            return collection.get(key)
        if not is_number(key):
            raise _func_error("lookup", "argument #2 is not of type Number")
        index = _int_number(to_float(key))
        if index is None:
            raise _func_error("lookup", f"argument #2: expected an integer number but got: {go_sprint(key)}")
        return collection[index] if 0 <= index < len(collection) else None

    @_sig({"types": ["object", "array"]}, S, S)
    def _func_items(self, collection: Any, key_name: str, value_name: str) -> list[dict[str, Any]]:
        if isinstance(collection, dict):
            return [{key_name: k, value_name: collection[k]} for k in sorted(collection)]
        return [{key_name: float(i), value_name: v} for i, v in enumerate(collection)]

    @_sig({"types": ["array"]}, {"types": ["array"]})
    def _func_object_from_lists(self, keys: list[Any], values: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, raw in enumerate(keys):
            key = iface_to_string(raw)
            if key is None:
                raise _func_error("object_from_lists", "argument #1 is not of type StringArray")
            out[key] = values[i] if i < len(values) else None
        return out

    # time

    @_sig()
    def _func_time_now(self) -> str:
        return self._current().format_rfc3339()

    @_sig()
    def _func_time_now_utc(self) -> str:
        return self._current().utc().format_rfc3339()

    @_sig(S, S, S)
    def _func_time_since(self, layout: str, start: str, end: str) -> str:
        def parse(value: str) -> GoTime:
            try:
                return durations.parse_time(layout or durations.RFC3339, value)
            except ValueError as exc:
                raise _func_error("time_since", str(exc)) from None

        t1 = parse(start)
        t2 = parse(end) if end else self._current()
        return durations.format_duration(t2.sub(t1))

    @_sig(S, S)
    def _func_time_add(self, time: str, duration: str) -> str:
        t = _time_arg("time_add", time)
        return t.add(_duration_arg("time_add", duration)).format_rfc3339()

    @_sig(S, S)
    def _func_time_parse(self, layout: str, value: str) -> str:
        try:
            parse_go_int(layout)
            epoch = True
        except ValueError:
            epoch = False
        try:
            if epoch:
                return GoTime(parse_go_int(value)).format_rfc3339()
            return durations.parse_time(layout, value).format_rfc3339()
        except ValueError as exc:
            raise _func_error("time_parse", str(exc)) from None

    @_sig(S)
    def _func_time_utc(self, time: str) -> str:
        return _time_arg("time_utc", time).utc().format_rfc3339()

    @_sig(S, S)
    def _func_time_diff(self, start: str, end: str) -> str:
        t1 = _time_arg("time_diff", start)
        t2 = _time_arg("time_diff", end)
        return durations.format_duration(t2.sub(t1))

    @_sig(S, S)
    def _func_time_before(self, a: str, b: str) -> bool:
        return _time_arg("time_before", a).before(_time_arg("time_before", b))

    @_sig(S, S)
    def _func_time_after(self, a: str, b: str) -> bool:
        return _time_arg("time_after", a).after(_time_arg("time_after", b))

    @_sig(S, S, S)
    def _func_time_between(self, time: str, start: str, end: str) -> bool:
        t = _time_arg("time_between", time)
        return t.after(_time_arg("time_between", start)) and t.before(_time_arg("time_between", end))

    @_sig(S, S)
    def _func_time_truncate(self, time: str, duration: str) -> str:
        t = _time_arg("time_truncate", time)
        return t.truncate(_duration_arg("time_truncate", duration)).format_rfc3339()

    @_sig(S)
    def _func_time_to_cron(self, time: str) -> str:
        _, month, day, hour, minute, _, weekday = _time_arg("time_to_cron", time).civil()
        return f"{minute} {hour} {day} {month} {weekday}"


# Errors the jmespath library or a function may raise on unusual input; all become VerificationFailure.
_EVALUATION_ERRORS = (
    jmes_exceptions.JMESPathError,
    _Fail,
    TypeError,
    ValueError,
    ArithmeticError,
    RecursionError,
    LookupError,
    AttributeError,
)


@lru_cache(maxsize=1024)
def compile_expression(expression: str) -> Any:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise VerificationFailure(f"JMESPath expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        return jmespath.compile(expression)
    except (jmes_exceptions.JMESPathError, RecursionError, ValueError) as exc:
        raise VerificationFailure(f"invalid JMESPath expression {expression!r}: {exc}") from None


class _BudgetedInterpreter(visitor.TreeInterpreter):  # type: ignore[misc]
    """jmespath's tree interpreter, charging every node visit to the evaluation's budget."""

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        charge(NODE_COST)
        return super().visit(node, *args, **kwargs)


class _UnknownKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(f'Unknown key "{key}" in path')


class _KyvernoInterpreter(_BudgetedInterpreter):
    """The interpreter of Kyverno's go-jmespath fork: a field missing from an object is an error ("Unknown
    key"), which travels up through ``a.b`` and ``a[0]`` chains to the result; every other construct
    (function arguments, comparisons, ``||``, ``&&``, ``!``, pipes, projections, filters, multi-selects)
    reads it as null."""

    _PROPAGATING = frozenset({"field", "subexpression", "index_expression"})

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self._parents: list[str] = []

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        parent = self._parents[-1] if self._parents else None
        self._parents.append(node["type"])
        try:
            return super().visit(node, *args, **kwargs)
        except _UnknownKey:
            if parent is None or parent in self._PROPAGATING:
                raise
            return None
        finally:
            self._parents.pop()

    def visit_field(self, node: dict[str, Any], value: Any) -> Any:
        if isinstance(value, dict) and node["value"] not in value:
            raise _UnknownKey(node["value"])
        return super().visit_field(node, value)


# How a key missing from the data reads: "null" (standard JMESPath; sigward's default) or "error" (Kyverno).
MissingKeys = Literal["null", "error"]


def search(expression: str, data: Any, *, now: datetime | None = None, missing: MissingKeys = "null") -> Any:
    """Evaluate ``expression`` over ``data`` with Kyverno's functions; time functions take the current time
    from ``now`` (the wall clock when None). A key missing from the data reads as null (``missing="null"``,
    standard JMESPath) or, with ``missing="error"``, fails the way Kyverno's go-jmespath fork does
    (``Unknown key "x" in path``) unless the path is only an argument, operand or alternative. Errors name
    the expression."""
    compiled = compile_expression(expression)
    options = jmespath.Options(custom_functions=KyvernoFunctions(now))
    try:
        with budget():
            if missing == "error":
                return _KyvernoInterpreter(options).visit(compiled.parsed, data)
            return _BudgetedInterpreter(options).visit(compiled.parsed, data)
    except BudgetExceeded as exc:
        raise BudgetExceeded(f"JMESPath expression {expression!r}: {exc.message}") from None
    except VerificationFailure as exc:
        raise VerificationFailure(f"JMESPath expression {expression!r} failed: {exc.message}") from None
    except (_UnknownKey, *_EVALUATION_ERRORS) as exc:
        raise VerificationFailure(f"JMESPath expression {expression!r} failed: {exc}") from None

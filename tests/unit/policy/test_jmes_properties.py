"""Property tests for the Go value helpers and the function library: round trips, agreement with simpler
implementations, and only sigward's own errors on arbitrary input."""

from __future__ import annotations

import contextlib
import math
import re
import struct
from datetime import UTC, datetime
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sigward.errors import VerificationFailure
from sigward.patterns import wildcard_match
from sigward.policy import durations
from sigward.policy.jmes import (
    go_float32_string,
    go_json_number,
    go_sprint,
    parse_go_float,
    parse_quantity,
    search,
)

NOW = datetime(2024, 5, 1, tzinfo=UTC)


@given(st.integers(min_value=durations.MIN_DURATION, max_value=durations.MAX_DURATION))
def test_duration_format_parses_back(nanoseconds: int) -> None:
    assert durations.parse_duration(durations.format_duration(nanoseconds)) == nanoseconds


@given(st.text(alphabet="0123456789.+-hmsuµnµ ", max_size=16) | st.text(max_size=16))
def test_duration_parsing_fails_only_with_value_error(text: str) -> None:
    try:
        value = durations.parse_duration(text)
    except ValueError:
        return
    assert durations.MIN_DURATION <= value <= durations.MAX_DURATION


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_json_numbers_round_trip(value: float) -> None:
    text = go_json_number(value)
    assert float(text) == value
    assert parse_go_float(text) == value
    assert "e" not in text or abs(value) < 1e-6 or abs(value) >= 1e21


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_sprint_round_trips(value: float) -> None:
    assert parse_go_float(go_sprint(value)) == value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_strings_round_trip_in_float32(value: float) -> None:
    text = go_float32_string(value)
    assert "e" not in text
    assert struct.unpack("<f", struct.pack("<f", float(text)))[0] == value


@given(
    sign=st.sampled_from(["", "-", "+"]),
    whole=st.text(alphabet="0123456789", min_size=1, max_size=12),
    fraction=st.text(alphabet="0123456789", max_size=10),
    suffix=st.sampled_from(["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "e3", "E-2"]),
)
def test_quantity_canonical_form_keeps_the_value(sign: str, whole: str, fraction: str, suffix: str) -> None:
    text = f"{sign}{whole}{'.' + fraction if fraction else ''}{suffix}"
    quantity = parse_quantity(text)
    again = parse_quantity(str(quantity))
    assert again.value == quantity.value
    assert str(again) == str(quantity)


@given(st.text(max_size=20))
def test_quantity_parsing_fails_only_with_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_quantity(text)


@settings(max_examples=500)
@given(pattern=st.text(alphabet="ab*?", max_size=8), text=st.text(alphabet="ab*?", max_size=10))
def test_linear_wildcard_agrees_with_the_regex_one(pattern: str, text: str) -> None:
    # The reference: the glob as a Python regex (fine for these tiny inputs; product code never does this).
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    assert wildcard_match(pattern, text) is (re.fullmatch(regex, text, re.DOTALL) is not None)


EXPRESSION_ATOMS = st.sampled_from(
    [
        "@",
        "a",
        "a.b",
        "a[0]",
        "[*]",
        "`1`",
        "'x'",
        "time_since('', a, '')",
        "add(a, `1`)",
        "divide(`1`, a)",
        "parse_yaml(a)",
        "parse_json(a)",
        "regex_match(a, 'x')",
        "semver_compare(a, '>1.0.0')",
        "lookup(a, `1`)",
        "items(a, 'k', 'v')",
        "time_parse(a, a)",
        "round(a, a)",
        "modulo(a, a)",
        "|",
        "||",
        "&&",
        "(",
        ")",
        ",",
        "!",
        "[?a]",
        "{x: a}",
    ]
)
EXPRESSIONS = st.lists(EXPRESSION_ATOMS, min_size=1, max_size=5).map(" ".join) | st.text(max_size=30)
DATA_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), children),
    max_leaves=6,
)


@settings(max_examples=800, deadline=None)
@given(expression=EXPRESSIONS, a=DATA_VALUES)
def test_search_fails_only_with_sigward_errors(expression: str, a: Any) -> None:
    with contextlib.suppress(VerificationFailure):
        search(expression, {"a": a, "b": {"a": a}}, now=NOW)


@settings(max_examples=300, deadline=None)
@given(
    function=st.sampled_from(["add", "subtract", "multiply", "divide", "modulo"]),
    left=st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False, width=32),
    right=st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False, width=32),
)
def test_scalar_arithmetic_matches_float_arithmetic(function: str, left: float, right: float) -> None:
    try:
        result = search(f"{function}(a, b)", {"a": left, "b": right}, now=NOW)
    except VerificationFailure as exc:
        assert function in ("divide", "modulo")
        assert "Zero divisor" in exc.message or "Non-integer" in exc.message
        return
    x, y = float(left), float(right)
    expected = {
        "add": lambda: x + y,
        "subtract": lambda: x - y,
        "multiply": lambda: x * y,
        "divide": lambda: x / y,
        "modulo": lambda: math.fmod(x, y),
    }[function]()
    assume(not math.isinf(expected))
    assert result == expected


@settings(max_examples=300, deadline=None)
@given(layout=st.text(alphabet="0123456789JanMonPMZ-:._ T", max_size=12), value=st.text(max_size=20))
def test_time_parsing_fails_only_with_value_error(layout: str, value: str) -> None:
    with contextlib.suppress(ValueError):
        durations.parse_time(layout, value)

"""Go value semantics behind Kyverno's conditions: number formatting and parsing, durations, times, quantities,
semantic versions, wildcards."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from sigward.patterns import wildcard_match
from sigward.policy import durations
from sigward.policy.jmes import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    go_float32_string,
    go_json_dumps,
    go_sprint,
    parse_go_float,
    parse_quantity,
    parse_semver,
)


@pytest.mark.parametrize(
    ("value", "sprint", "json_text"),
    [
        (1, "1", "1"),
        (1.0, "1", "1"),
        (-2.5, "-2.5", "-2.5"),
        (123456.0, "123456", "123456"),
        (1e6, "1e+06", "1000000"),
        (1234567.0, "1.234567e+06", "1234567"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "1e-05", "0.00001"),
        (1e-7, "1e-07", "1e-7"),
        (1e21, "1e+21", "1e+21"),
        (1e20, "1e+20", "100000000000000000000"),
        (0.1, "0.1", "0.1"),
        (True, "true", "true"),
        (None, "<nil>", "null"),
        ("s", "s", '"s"'),
        (["a", 1.5, None], "[a 1.5 <nil>]", '["a",1.5,null]'),
        ({"b": 1, "a": "x"}, "map[a:x b:1]", '{"a":"x","b":1}'),
        ('<&>\u2028\n\x01"\\', '<&>\u2028\n\x01"\\', '"\\u003c\\u0026\\u003e\\u2028\\n\\u0001\\"\\\\"'),
    ],
)
def test_go_formatting(value: Any, sprint: str, json_text: str) -> None:
    assert go_sprint(value) == sprint
    assert go_json_dumps(value) == json_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (123456789.0, "123456790"),
        (1e20, "100000000000000000000"),
        (-0.25, "-0.25"),
    ],
)
def test_float32_argument_formatting(value: float, expected: str) -> None:
    assert go_float32_string(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1.0), ("-1.5", -1.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0), ("1_000", 1000.0), ("0x1p-2", 0.25)],
)
def test_parse_go_float(text: str, expected: float) -> None:
    assert parse_go_float(text) == expected


def test_parse_go_float_specials_and_errors() -> None:
    assert parse_go_float("+Inf") == math.inf
    assert parse_go_float("-infinity") == -math.inf
    assert math.isnan(parse_go_float("NaN"))
    for text in ("", " 1", "1 ", "1e", "_1", "1__0", "+nan", "1e400", "0x1", "one", "1.5.5"):
        with pytest.raises(ValueError, match="float"):
            parse_go_float(text)


@pytest.mark.parametrize(
    ("text", "nanoseconds", "formatted"),
    [
        ("0", 0, "0s"),
        ("168h", 168 * durations.HOUR, "168h0m0s"),
        ("1h30m", 90 * durations.MINUTE, "1h30m0s"),
        ("1h2m3.5s", durations.HOUR + 2 * durations.MINUTE + 3_500_000_000, "1h2m3.5s"),
        ("-1.5s", -1_500_000_000, "-1.5s"),
        (".5h", 30 * durations.MINUTE, "30m0s"),
        ("1.5ms", 1_500_000, "1.5ms"),
        ("2us", 2000, "2µs"),
        ("2µs", 2000, "2µs"),
        ("7ns", 7, "7ns"),
        ("2562047h47m16.854775807s", durations.MAX_DURATION, "2562047h47m16.854775807s"),
        ("-2562047h47m16.854775808s", durations.MIN_DURATION, "-2562047h47m16.854775808s"),
    ],
)
def test_durations(text: str, nanoseconds: int, formatted: str) -> None:
    assert durations.parse_duration(text) == nanoseconds
    assert durations.format_duration(nanoseconds) == formatted


@pytest.mark.parametrize("text", ["", "1", "h", "1d", ".h", "1.h.", "+-1h", "2562047h47m16.854775808s", "1h 2m"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        durations.parse_duration(text)


def test_duration_seconds_as_go_computes_them() -> None:
    assert durations.duration_seconds(-1_500_000_000) == -1.5
    assert durations.seconds_to_duration(1.9) == durations.SECOND  # time.Duration(1.9) truncates
    # int64(NaN) is MinInt64 on amd64, and MinInt64 * 1e9 wraps to 0.
    assert durations.seconds_to_duration(math.nan) == 0


@pytest.mark.parametrize(
    ("layout", "value", "rfc3339", "nanos"),
    [
        (durations.RFC3339, "2022-04-12T00:10:00Z", "2022-04-12T00:10:00Z", 0),
        (durations.RFC3339, "2022-04-12T00:10:00.123456789+05:30", "2022-04-12T00:10:00+05:30", 123456789),
        (durations.RFC3339, "2022-04-12T3:04:05Z", "2022-04-12T03:04:05Z", 0),  # Go accepts one-digit hours
        ("2006-01-02", "2022-04-12", "2022-04-12T00:00:00Z", 0),
        ("01/02/06 03:04PM", "04/12/22 11:30PM", "2022-04-12T23:30:00Z", 0),
        ("Jan _2 15:04:05.000", "Apr  2 01:02:03.456", "0000-04-02T01:02:03Z", 456000000),
        ("Monday, 02-Jan-06 15:04:05 MST", "Tuesday, 12-Apr-22 00:10:00 PDT", "2022-04-12T00:10:00Z", 0),
        ("2006-01-02 15:04 MST", "2022-04-12 00:10 GMT+3", "2022-04-12T00:10:00+03:00", 0),
        ("2006-002", "2024-060", "2024-02-29T00:00:00Z", 0),
        ("20060102150405", "20220412001000", "2022-04-12T00:10:00Z", 0),
    ],
)
def test_parse_time(layout: str, value: str, rfc3339: str, nanos: int) -> None:
    parsed = durations.parse_time(layout, value)
    assert parsed.format_rfc3339() == rfc3339
    assert parsed.nanos == nanos


@pytest.mark.parametrize(
    ("layout", "value"),
    [
        (durations.RFC3339, "2022-04-12 00:10:00Z"),
        (durations.RFC3339, "2022-04-12T00:10:00"),
        (durations.RFC3339, "2022-04-12T24:10:00Z"),
        (durations.RFC3339, "2022-04-12T00:10:00z"),
        ("2006-01-02", "2022-02-29"),
        ("2006-002", "2023-366"),
        ("15:04", "12:60"),
    ],
)
def test_parse_time_errors(layout: str, value: str) -> None:
    with pytest.raises(ValueError, match="parsing time"):
        durations.parse_time(layout, value)


def test_time_arithmetic() -> None:
    start = durations.parse_rfc3339("2022-04-12T00:10:00Z")
    assert start.add(25 * durations.HOUR).format_rfc3339() == "2022-04-13T01:10:00Z"
    assert (
        durations.parse_rfc3339("0001-01-01T00:00:00Z").sub(durations.parse_rfc3339("9999-01-01T00:00:00Z"))
        == durations.MIN_DURATION
    )  # saturated, as Go's Sub
    assert start.civil()[6] == 2  # a Tuesday


@pytest.mark.parametrize(
    ("text", "value", "fmt", "canonical"),
    [
        ("1Gi", Decimal(2**30), BINARY_SI, "1Gi"),
        ("1.5Gi", Decimal(3 * 2**29), BINARY_SI, "1536Mi"),
        ("500m", Decimal("0.5"), DECIMAL_SI, "500m"),
        ("1.5", Decimal("1.5"), DECIMAL_SI, "1500m"),
        ("1000", Decimal(1000), DECIMAL_SI, "1k"),
        ("12e6", Decimal(12_000_000), DECIMAL_EXPONENT, "12e6"),
        ("0.9n", Decimal("1e-9"), DECIMAL_SI, "1n"),  # rounded up to a nano
        ("-0.9n", Decimal("-1e-9"), DECIMAL_SI, "-1n"),
        ("8Ei", Decimal(2**63 - 1), BINARY_SI, "9223372036854775807"),  # binary capped at 2^63-1
        ("0.5Ki", Decimal(512), BINARY_SI, "512"),
        ("0", Decimal(0), DECIMAL_SI, "0"),
        ("+", Decimal(0), DECIMAL_SI, "0"),  # Kubernetes' scanner accepts a bare sign ...
        ("Gi", Decimal(0), BINARY_SI, "0"),  # ... and a bare suffix
        ("18446744073709551616", Decimal(2**64), DECIMAL_SI, "18446744073709551616"),
    ],
)
def test_quantities(text: str, value: Decimal, fmt: str, canonical: str) -> None:
    quantity = parse_quantity(text)
    assert quantity.value == value
    assert quantity.format == fmt
    assert str(quantity) == canonical


@pytest.mark.parametrize("text", ["", "1.2.3", "1e", "1Ki5", "1kM", "abc", "1 Gi", "1h", "x" * 300])
def test_invalid_quantities(text: str) -> None:
    with pytest.raises(ValueError, match=r"quantit|suffix"):
        parse_quantity(text)


def test_quantity_order() -> None:
    assert parse_quantity("1Gi").cmp(parse_quantity("1G")) == 1
    assert parse_quantity("1e3").cmp(parse_quantity("1k")) == 0
    assert parse_quantity("-1").cmp(parse_quantity("1m")) == -1
    assert parse_quantity("1e2147483647").cmp(parse_quantity("1E")) == 1


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0", "2.0.0"),
        ("1.9.0", "1.10.0"),
        ("1.0.0-alpha", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-2", "1.0.0-11"),
        ("1.0.0-beta.11", "1.0.0-rc.1"),
    ],
)
def test_semver_order(lower: str, higher: str) -> None:
    assert parse_semver(lower).compare(parse_semver(higher)) == -1
    assert parse_semver(higher).compare(parse_semver(lower)) == 1


@pytest.mark.parametrize("text", ["", "1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.0.0-a_b", "1..0"])
def test_invalid_semver(text: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)version|number|prerelease|build|major|minor|patch"):
        parse_semver(text)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*", "", True),
        ("", "", True),
        ("", "x", False),
        ("a*", "abc", True),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("*:*", "ghcr.io/x:1", True),
        ("*b*b", "abab", True),
        ("**a", "xxa", True),
        ("a*b", "ab", True),
        ("a*b", "abc", False),
        ("*" * 60 + "b", "a" * 5000, False),  # linear: no catastrophic backtracking
    ],
)
def test_wildcard(pattern: str, text: str, expected: bool) -> None:
    assert wildcard_match(pattern, text) is expected

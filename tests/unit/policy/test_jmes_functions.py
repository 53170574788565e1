"""Kyverno's JMESPath function library (``pkg/engine/jmespath``) as sigward implements it, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sigward.errors import VerificationFailure
from sigward.policy.jmes import search

NOW = datetime(2022, 4, 13, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        # time
        ("time_now_utc()", None, "2022-04-13T00:10:00Z"),
        ("time_since('', '2022-04-12T00:10:00Z', '')", None, "24h0m0s"),
        ("time_since('', '2022-04-11T23:10:00Z', '')", None, "25h0m0s"),
        ("time_since('', '2022-04-12T00:10:00Z', '2022-04-12T01:40:30.5Z')", None, "1h30m30.5s"),
        ("time_since('', '2022-04-13T00:10:00Z', '2022-04-12T00:10:00Z')", None, "-24h0m0s"),
        ("time_since('2006-01-02', '2022-04-10', '2022-04-12')", None, "48h0m0s"),
        ("time_since('Jan 2, 2006 at 3:04pm (MST)', 'Apr 12, 2022 at 0:10am (UTC)', '')", None, "24h0m0s"),
        ("time_add('2022-04-12T00:10:00Z', '1h30m')", None, "2022-04-12T01:40:00Z"),
        ("time_add('2022-04-12T00:10:00+02:00', '-24h')", None, "2022-04-11T00:10:00+02:00"),
        ("time_parse('2006-01-02T15:04:05Z07:00', '2022-04-12T00:10:00-05:00')", None, "2022-04-12T00:10:00-05:00"),
        ("time_parse('Mon Jan _2 15:04:05 2006', 'Tue Apr  5 17:01:02 2022')", None, "2022-04-05T17:01:02Z"),
        ("time_parse('02 Jan 06 15:04 -0700', '12 Apr 22 09:30 +0530')", None, "2022-04-12T09:30:00+05:30"),
        ("time_parse('2006-01-02 15:04:05.000', '2022-04-12 09:30:00.123')", None, "2022-04-12T09:30:00Z"),
        ("time_parse('1136239445', '1649722200')", None, "2022-04-12T00:10:00Z"),
        ("time_utc('2022-04-12T02:10:00+02:00')", None, "2022-04-12T00:10:00Z"),
        ("time_diff('2022-04-12T00:00:00Z', '2022-04-12T00:00:01.5Z')", None, "1.5s"),
        ("time_before('2022-04-12T00:00:00Z', '2022-04-12T00:00:01Z')", None, True),
        ("time_before('2022-04-12T00:00:00Z', '2022-04-12T00:00:00Z')", None, False),
        ("time_after('2022-04-12T02:00:00+02:00', '2022-04-11T23:59:59Z')", None, True),
        ("time_between('2022-04-12T00:00:00Z', '2022-04-11T00:00:00Z', '2022-04-13T00:00:00Z')", None, True),
        ("time_between('2022-04-11T00:00:00Z', '2022-04-11T00:00:00Z', '2022-04-13T00:00:00Z')", None, False),
        ("time_truncate('2022-04-12T13:10:42Z', '1h')", None, "2022-04-12T13:00:00Z"),
        ("time_truncate('2022-04-12T13:10:42Z', '24h')", None, "2022-04-12T00:00:00Z"),
        ("time_to_cron('2022-04-12T13:10:00Z')", None, "10 13 12 4 2"),
        # semver
        ("semver_compare('1.2.3', '>=1.0.0 <2.0.0')", None, True),
        ("semver_compare('2.0.0', '>=1.0.0 <2.0.0')", None, False),
        ("semver_compare('1.2.3', '1.x')", None, True),
        ("semver_compare('2.0.0', '1.x || >=3.0.0')", None, False),
        ("semver_compare('3.1.0', '1.x || >=3.0.0')", None, True),
        ("semver_compare('1.0.0-rc.1', '<1.0.0')", None, True),
        ("semver_compare('not a version', '0.0.0')", None, True),  # Kyverno ignores the parse error: 0.0.0
        # structured data
        ("parse_json('{\"a\": [1, 2.5, null]}')", None, {"a": [1, 2.5, None]}),
        ("parse_json('\"s\"')", None, "s"),
        ("parse_yaml('a: 2021-01-01\nb: [1, yes]\n')", None, {"a": "2021-01-01", "b": [1, True]}),
        ("parse_yaml('1: one')", None, {"1": "one"}),
        ("parse_yaml('')", None, None),
        ("items(@, 'key', 'value')", {"b": 1, "a": 2}, [{"key": "a", "value": 2}, {"key": "b", "value": 1}]),
        ("items(@, 'i', 'v')", ["x", "y"], [{"i": 0, "v": "x"}, {"i": 1, "v": "y"}]),
        ("object_from_lists(['a', 'b', `1`], [`1`])", {}, {"a": 1, "b": None, "1": None}),
        ("lookup(@, 'a')", {"a": {"b": 1}}, {"b": 1}),
        ("lookup(@, 'missing')", {"a": 1}, None),
        ("lookup(@, `1`)", ["x", "y"], "y"),
        ("lookup(@, `5`)", ["x", "y"], None),
        ('label_match(`{"app": "web"}`, @)', {"app": "web", "tier": "front"}, True),
        ('label_match(`{"app": "web"}`, @)', {"app": "db"}, False),
        ("compare('a', 'b')", None, -1),
        ("compare('b', 'a')", None, 1),
        ("compare('a', 'a')", None, 0),
        ("to_boolean('TrUe')", None, True),
        ("to_boolean('false')", None, False),
        ("to_string(`1.0`)", None, "1"),
        ('to_string(`{"b": 1, "a": [true]}`)', None, '{"a":[true],"b":1}'),
        ("to_number('1e3')", None, 1000.0),
        ("to_number('x')", None, None),
        # arithmetic: numbers, durations, quantities
        ("add(`1`, `2.5`)", None, 3.5),
        ("add('1h', '30m0s')", None, "1h30m0s"),
        ("add('1Gi', '512Mi')", None, "1536Mi"),
        ("add('500m', '500m')", None, "1"),
        ("subtract(`5`, `7`)", None, -2.0),
        ("subtract('1h', '90m0s')", None, "-30m0s"),
        ("subtract('1', '250m')", None, "750m"),
        ("multiply(`3`, `2.5`)", None, 7.5),
        ("multiply('1h30m', `2`)", None, "3h0m0s"),
        ("multiply(`2`, '1Gi')", None, "2Gi"),
        ("multiply('1.5', `3`)", None, "4500m"),
        ("divide(`5`, `2`)", None, 2.5),
        ("divide('3h', '1h0m0s')", None, 3.0),
        ("divide('1h', `4`)", None, "15m0s"),
        ("divide('10', `3`)", None, "3"),
        ("divide('1.5', `2`)", None, "700m"),
        ("divide('1Gi', '512Mi')", None, 2.0),
        ("modulo(`7`, `3`)", None, 1.0),
        ("modulo(`-7`, `3`)", None, -1.0),
        ("modulo('1h10m', '1h0m0s')", None, "10m0s"),
        ("modulo('7Gi', '3Gi')", None, "1Gi"),
        ("sum([`1`, `2`, `3.5`])", {}, 6.5),
        ("sum(['1h', '30m0s', '15m0s'])", {}, "1h45m0s"),
        ("sum(['1Gi', '1Gi'])", {}, "2Gi"),
        ("sum(['x'])", {}, "x"),
        ("round(`2.5`, `0`)", None, 3.0),
        ("round(`-2.5`, `0`)", None, -3.0),
        ("round(`1.23456`, `2`)", None, 1.23),
        # strings, paths, patterns
        ("split('a,b,,c', ',')", {}, ["a", "b", "", "c"]),
        ("split('abc', '')", None, ["a", "b", "c"]),
        ("split('', ',')", None, [""]),
        ("trim('xxaxx', '')", None, "xxaxx"),
        ("replace('aaa', 'a', 'b', `-1`)", None, "bbb"),
        ("replace('aaa', 'a', 'b', `0`)", None, "aaa"),
        ("path_canonicalize('//a/./b/../c/')", None, "/a/c"),
        ("path_canonicalize('a/../../b')", None, "../b"),
        ("path_canonicalize('')", None, ""),
        ("pattern_match('ghcr.io/*/app:v?', 'ghcr.io/org/app:v1')", None, True),
        ("pattern_match('v*', `1`)", None, False),
        ("pattern_match('1*', `1.5`)", None, True),
        ("regex_match('^v[0-9]+$', 'v12')", None, True),
        ("regex_match('^v[0-9]+$', 'v12\n')", None, False),  # Go's $ is the end of the text
        ("regex_match('^1$', `1`)", None, True),  # numbers as Go formats them: 1, not 1.0
        ("regex_match('^[[:digit:]]+$', '123')", None, True),
        ("regex_match('\\d', '\u0663')", None, False),  # \d is ASCII in Go
        ("regex_replace_all('a*', 'baaac', '-')", None, "-b-c-"),  # Go's empty-match rule
        ("regex_replace_all('(?P<first>[a-z]+)-([0-9]+)', 'abc-123', '${2}_$first$$')", None, "123_abc$"),
        ("regex_replace_all('([a-z]+)', 'abc', '$1x')", None, ""),  # $1x names group "1x": empty
        ("regex_replace_all_literal('[0-9]', 'a1b2', '$1')", None, "a$1b$1"),
        ("sha256('abc')", None, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("md5('')", None, "d41d8cd98f00b204e9800998ecf8427e"),
        ("base64_decode('aGVs\nbG8=')", None, "hello"),
    ],
)
def test_function(expression: str, data: Any, expected: Any) -> None:
    result = search(expression, data, now=NOW)
    assert result == expected
    assert type(result) is type(expected)


def test_time_now_keeps_the_offset_of_now() -> None:
    now = datetime(2022, 4, 13, 2, 10, tzinfo=timezone(timedelta(hours=2)))
    assert search("time_now()", None, now=now) == "2022-04-13T02:10:00+02:00"
    assert search("time_now_utc()", None, now=now) == "2022-04-13T00:10:00Z"


def test_time_without_now_reads_the_clock() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = search("time_now_utc()", None)
    assert isinstance(stamp, str)
    assert datetime.fromisoformat(stamp) >= before


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("time_since('', 'yesterday', '')", "time_since"),
        ("time_add('2022-04-12T00:10:00Z', '1d')", "unknown unit"),
        ("time_parse('2006-01-02', '2022-13-01')", "month out of range"),
        ("time_parse('2006-01-02', '2022-02-30')", "day out of range"),
        ("time_parse('2006-01-02', '2022-01-01 extra')", "extra text"),
        ("time_before('2022-04-12', '2022-04-13T00:00:00Z')", "time_before"),
        ("semver_compare('1.0.0', '~1.0')", "semver_compare"),
        ("semver_compare('1.0.0', '')", "semver_compare"),
        ("parse_json('{bad')", "parse_json"),
        ("parse_json('NaN')", "parse_json"),
        ("parse_yaml('a: [')", "parse_yaml"),
        ("parse_yaml('a: .inf')", "parse_yaml"),
        ("add('1h', `1`)", "Types mismatch"),
        ("add('1h', 'x')", "invalid operand"),
        ("add(`true`, `1`)", "invalid operand"),
        ("divide(`1`, `0`)", "Zero divisor"),
        ("divide('1h', `0`)", "Zero divisor"),
        ("modulo(`1.5`, `1`)", "Non-integer"),
        ("modulo('1Gi', '0')", "Zero divisor"),
        ("sum(`[]`)", "at least one element"),
        ("round(`1.5`, `0.5`)", "Non-integer"),
        ("round(`1.5`, `-1`)", "out of bounds"),
        ("to_boolean('yes')", "must be 'true' or 'false'"),
        ("lookup(@, `1`)", "not of type String"),
        ("object_from_lists([`{}`], [`1`])", "StringArray"),
        ("regex_match('(', 'x')", "invalid pattern"),
        ("time_now('x')", "arguments"),
    ],
)
def test_function_errors(expression: str, message: str) -> None:
    with pytest.raises(VerificationFailure, match=message) as info:
        search(expression, {"a": 1}, now=NOW)
    assert expression in str(info.value)

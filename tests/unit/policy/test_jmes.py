"""Kyverno's JMESPath functions as sigward implements them."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.errors import VerificationFailure
from sigward.policy.jmes import search


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        ("trim_prefix(@, 'docker://')", "docker://ghcr.io/a:1", "ghcr.io/a:1"),
        ("trim_prefix(@, 'oci://')", "ghcr.io/a:1", "ghcr.io/a:1"),
        ("to_upper(@)", "abc", "ABC"),
        ("to_lower(@)", "ABC", "abc"),
        ("split(@, '/')", "a/b/c", ["a", "b", "c"]),
        ("replace_all(@, 'a', 'b')", "aaa", "bbb"),
        ("replace(@, 'a', 'b', `1`)", "aaa", "baa"),
        ("equal_fold(@, 'ABC')", "abc", True),
        ("regex_match('^v[0-9]+$', @)", "v12", True),
        ("regex_match('^v[0-9]+$', @)", "x12", False),
        ("regex_replace_all('([a-z]+)-(\\d+)', @, '$2-$1')", "abc-123", "123-abc"),
        ("base64_decode(base64_encode(@))", "hello", "hello"),
        ("truncate(@, `3`)", "abcdef", "abc"),
        ("trim(@, 'x')", "xxaxx", "a"),
        ("a.b", {"a": {"b": 1}}, 1),
    ],
)
def test_functions(expression: str, data: Any, expected: Any) -> None:
    assert search(expression, data) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("nope(@)", "Unknown function"),
        ("a.[", "invalid JMESPath expression"),
        ("regex_match('(', @)", "invalid pattern"),
        ("trim_prefix(@)", "failed"),
        ("x" * 5000, "longer than"),
    ],
)
def test_errors_name_the_expression(expression: str, message: str) -> None:
    with pytest.raises(VerificationFailure, match=message):
        search(expression, "value")

"""Kyverno's ``{{ }}`` substitution (``pkg/engine/variables/vars.go``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sigward.errors import VerificationFailure
from sigward.policy.variables import MAX_STRING_LENGTH, MAX_SUBSTITUTIONS, substitute

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONTEXT: dict[str, Any] = {
    "builder": {"id": "https://github.com/x/y/.github/workflows/build.yml@refs/tags/v1.2.3"},
    "count": 5,
    "ratio": 1.5,
    "whole": 2.0,
    "big": 1e21,
    "flag": True,
    "nothing": None,
    "tags": ["a", "b"],
    "labels": {"z": 1, "a": "<b>&"},
    "key": "name",
    "metadata": {"name": "temp", "scanFinishedOn": "2024-04-30T12:00:00Z"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ count }}", 5),  # a whole-string expression keeps its type
        ("{{count}}", 5),
        ("{{ ratio }}", 1.5),
        ("{{ flag }}", True),
        ("{{ tags }}", ["a", "b"]),
        ("{{ labels }}", {"z": 1, "a": "<b>&"}),
        ("{{ nothing }}", None),
        ("{{ missing }}", None),  # a missing key is null, not an error
        ("{{ missing.deeper.still }}", None),
        ("{{ builder.id }}", CONTEXT["builder"]["id"]),
        ("count={{ count }}", "count=5"),  # embedded: interpolated as text
        ("r={{ ratio }} w={{ whole }} b={{ big }}", "r=1.5 w=2 b=1e+21"),  # numbers as Go's json.Marshal
        ("flag={{ flag }}", "flag=true"),
        ("tags={{ tags }}", 'tags=["a","b"]'),
        ("labels={{ labels }}", 'labels={"a":"\\u003cb\\u003e\\u0026","z":1}'),
        ("x={{ nothing }}", "x=null"),
        ("x={{ missing }}", "x=null"),
        ("{{ count }}{{ ratio }}", "51.5"),
        ("no variables", "no variables"),
        ("", ""),
        ("{ single } braces", "{ single } braces"),
        ('{{ `{"a": 1}` }}', {"a": 1}),
        ("{{ length(tags) }}", 2),
        ("{{ metadata.{{ key }} }}", "temp"),  # nested: inner first
        ("{{ regex_match('^https://github.com/x/y/', '{{ builder.id}}') }}", True),
        ("{{ regex_match('^https://other/', '{{ builder.id}}') }}", False),
        ("{{ regex_match('^null$', '{{ missing }}') }}", True),
        ("{{ time_since('', '{{ metadata.scanFinishedOn }}', '') }}", "24h0m0s"),
        ("{{ time_now_utc() }}", "2024-05-01T12:00:00Z"),
        ("\\{{ count }}", "{{ count }}"),  # escaped braces stay literal (without the backslash)
        ("a \\{{ count }} {{ count }}", "a {{ count }} 5"),
    ],
)
def test_substitute(template: str, expected: Any) -> None:
    result = substitute(template, CONTEXT, now=NOW)
    assert result == expected
    assert type(result) is type(expected)


def test_substitute_walks_lists_and_maps_keys_included() -> None:
    value = {"{{ key }}": ["{{ count }}", 1, None, {"n": "{{ metadata.name }}"}], "plain": ("{{ flag }}",)}
    assert substitute(value, CONTEXT, now=NOW) == {"name": [5, 1, None, {"n": "temp"}], "plain": [True]}


def test_a_map_key_must_stay_a_string() -> None:
    with pytest.raises(VerificationFailure, match="expected string after substituting variables in key"):
        substitute({"{{ count }}": 1}, CONTEXT, now=NOW)


def test_non_strings_pass_through() -> None:
    assert substitute(5, CONTEXT, now=NOW) == 5
    assert substitute(None, CONTEXT, now=NOW) is None
    assert substitute([True, 1.5], CONTEXT, now=NOW) == [True, 1.5]


def test_text_from_the_data_is_scanned_again_as_in_kyverno() -> None:
    context = {"a": "{{ b }}", "b": "B"}
    assert substitute("x {{ a }}", context, now=NOW) == "x B"
    # A whole-string expression returns its value as is.
    assert substitute("{{ a }}", context, now=NOW) == "{{ b }}"


def test_shallow_substitution_is_not_scanned_again() -> None:
    context = {"raw": "{{ DO_NOT_SUBSTITUTE {{ME}} }}", "foo": "bar", "nested": "{{ foo }}"}
    assert substitute("{{- raw }} {{ foo }} {{ nested }}", context, now=NOW) == "{{ DO_NOT_SUBSTITUTE {{ME}} }} bar bar"
    assert substitute("{{ foo }} {{- raw }} {{ nested }}", context, now=NOW) == "bar {{ DO_NOT_SUBSTITUTE {{ME}} }} bar"


def test_delete_requests_read_the_old_object() -> None:
    context = {"request": {"operation": "DELETE", "object": None, "oldObject": {"metadata": {"name": "old"}}}}
    assert substitute("{{ request.object.metadata.name }}", context, now=NOW) == "old"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ }}", "empty"),
        ("{{ nope(count) }}", "Unknown function"),
        ("{{ count.[ }}", "invalid JMESPath expression"),
        ("{{ time_add('yesterday', '1h') }}", "time_add"),
        ("x {{ to_boolean('maybe') }}", "to_boolean"),
    ],
)
def test_expression_errors_are_verification_failures(template: str, message: str) -> None:
    with pytest.raises(VerificationFailure, match=message):
        substitute(template, CONTEXT, now=NOW)


def test_substitution_count_is_bounded() -> None:
    # Each round produces the same expression again; Kyverno would loop forever.
    with pytest.raises(VerificationFailure, match=f"stopped after {MAX_SUBSTITUTIONS}"):
        substitute("x {{ loop }}", {"loop": "{{ loop }}"}, now=NOW)


def test_output_size_is_bounded() -> None:
    context = {"half": "x" * (MAX_STRING_LENGTH // 2 + 1)}
    assert len(substitute("{{ half }}", context, now=NOW)) == MAX_STRING_LENGTH // 2 + 1
    with pytest.raises(VerificationFailure, match="longer than"):
        substitute("{{ half }}{{ half }}", context, now=NOW)
    with pytest.raises(VerificationFailure, match="longer than"):
        substitute("y" * (MAX_STRING_LENGTH + 1), {}, now=NOW)


def test_context_values_of_other_python_types_are_json() -> None:
    from datetime import date

    context = {"when": date(2024, 1, 2), "pair": ("a", "b"), "blob": b"hi"}
    assert substitute("{{ when }} {{ pair }} {{ blob }}", context, now=NOW) == '2024-01-02 ["a","b"] aGk='
    with pytest.raises(VerificationFailure, match="unsupported value"):
        substitute("{{ x }}", {"x": object()}, now=NOW)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ metadata.name }}", "temp"),
        ("{{ nothing }}", None),  # present but null is not missing
        ("{{ nothing.deeper }}", None),  # a field of null is null
        ("{{ missing || 'default' }}", "default"),  # an alternative reads a missing key as null
        ("{{ regex_match('^null$', to_string(missing)) }}", True),  # ... and so does a function argument
        ("{{ tags[?missing] }}", []),
        ("{{ length([missing, count]) }}", 2),
    ],
)
def test_missing_keys_as_kyverno_where_they_read_as_null(template: str, expected: Any) -> None:
    assert substitute(template, CONTEXT, now=NOW, missing="error") == expected


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("{{ missing }}", "missing"),
        ("{{ metadata.missing }}", "missing"),
        ("x-{{ attestation.predicate.x }}", "attestation"),
        ("{{ regex_match('^x', '{{ builder.missing }}') }}", "missing"),  # the inner expression is its own path
        ("{{ missing[0] }}", "missing"),
    ],
)
def test_missing_keys_as_kyverno_where_they_fail(template: str, key: str) -> None:
    with pytest.raises(VerificationFailure, match=f'Unknown key "{key}" in path'):
        substitute(template, CONTEXT, now=NOW, missing="error")

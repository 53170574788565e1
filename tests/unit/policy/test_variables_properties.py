"""Property tests: substitution of arbitrary text either yields a value or fails with sigward's own error,
and text without ``{{`` passes through untouched."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sigward.errors import VerificationFailure
from sigward.policy.jmes import MissingKeys
from sigward.policy.variables import substitute

NOW = datetime(2024, 5, 1, tzinfo=UTC)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(alphabet="{}ab\\ ", max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c"]), children),
    max_leaves=6,
)
TEMPLATES = st.text(alphabet="{}\\abc.-' `@|()[]0123456789", max_size=40)


@settings(max_examples=800, deadline=None)
@given(
    template=TEMPLATES,
    context=st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=3),
    missing=st.sampled_from(["null", "error"]),
)
def test_substitution_fails_only_with_sigward_errors(
    template: str, context: dict[str, Any], missing: MissingKeys
) -> None:
    with contextlib.suppress(VerificationFailure):
        substitute({"k": [template], template: template}, context, now=NOW, missing=missing)


@given(text=st.text().filter(lambda t: "{{" not in t and "\\" not in t))
def test_text_without_expressions_is_unchanged(text: str) -> None:
    assert substitute(text, {"a": 1}, now=NOW) == text


@given(value=st.text(alphabet="abc {}", max_size=10).filter(lambda t: "{{" not in t and "}}" not in t))
def test_whole_string_expression_returns_the_value(value: str) -> None:
    assert substitute("{{ a }}", {"a": value}, now=NOW) == value
    assert substitute("{{ a }}", {"a": [value, 1]}, now=NOW) == [value, 1]

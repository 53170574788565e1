"""Fuzzing the RE2 pattern layer and event identity: compile_re2 yields a pattern or a PatternError (never another
exception, never Python's re); matching is fast on any text; the wildcard matcher agrees with an independent one; an
event's idempotency key changes with every identity field and only with them."""

from __future__ import annotations

import dataclasses
import re
import time

from hypothesis import example, given
from hypothesis import strategies as st

from sigward.events import PushEvent
from sigward.patterns import PatternError, compile_re2, wildcard_match
from tests.support.fuzzing import SETTINGS

REGEX_ALPHABET = "ab.*+?()[]{}|^$\\-:=<>!PkCzdwsb0123,"
pattern_texts = st.one_of(
    st.text(alphabet=REGEX_ALPHABET, max_size=30),
    st.text(max_size=20),
    st.sampled_from([r"(a+)+$", r"(a|aa)*b", r"(?=x)", r"(?<=x)", r"\1", r"a++", r"(?>a)", r"\C", r"(?P=n)"]),
)


@SETTINGS
@given(pattern=pattern_texts, text=st.text(alphabet="ab!\n\ud800é", max_size=2000))
@example(pattern=r"(a+)+$", text="a" * 2000 + "!")
@example(pattern="(", text="")
def test_compile_re2_yields_a_pattern_or_pattern_error(pattern: str, text: str) -> None:
    try:
        compiled = compile_re2(pattern, path="fuzz.path")
    except PatternError as exc:
        assert exc.path == "fuzz.path" and str(exc).startswith("fuzz.path: ")
        return
    started = time.perf_counter()
    found = compiled.search(text)
    full = compiled.fullmatch(text)
    assert not (full and not found)  # a full match is a match
    assert time.perf_counter() - started < 0.5
    replaced = compiled.replace_all(text[:200], lambda m: "-")
    assert isinstance(replaced, str)


def _reference_glob(pattern: str, text: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


@SETTINGS
@given(pattern=st.text(alphabet="ab*?\n/", max_size=10), text=st.text(alphabet="ab\n/", max_size=14))
def test_wildcard_agrees_with_an_independent_matcher(pattern: str, text: str) -> None:
    assert wildcard_match(pattern, text) is _reference_glob(pattern, text)


DIGESTS = st.sampled_from(["sha256:" + c * 64 for c in "0123"])
events = st.builds(
    PushEvent,
    source=st.sampled_from(["gcr", "ecr", "acr", "distribution", "harbor", "github"]),
    event_id=st.text(alphabet="abc:-\x00é", min_size=1, max_size=12),
    action=st.sampled_from(["push", "delete"]),
    registry=st.sampled_from(["registry.test", "ghcr.io", "localhost:5000"]),
    repository=st.sampled_from(["team/app", "team/ap", "team/app/x", "other"]),
    digest=DIGESTS,
    tag=st.sampled_from(["", "v1", "latest"]),
)
IDENTITY = ("source", "event_id", "action", "registry", "repository", "digest")


@SETTINGS
@given(a=events, b=events)
def test_idempotency_key_is_equal_exactly_when_identity_fields_are(a: PushEvent, b: PushEvent) -> None:
    same_identity = all(getattr(a, f) == getattr(b, f) for f in IDENTITY)
    assert (a.idempotency_key == b.idempotency_key) is same_identity
    assert dataclasses.replace(a, tag="other-tag").idempotency_key == a.idempotency_key

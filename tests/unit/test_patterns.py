"""sigward.patterns: RE2 compilation with typed refusals naming the path, Go-compatible matching, linear-time
wildcards."""

from __future__ import annotations

import time

import pytest

from sigward.errors import SigwardError
from sigward.patterns import (
    MAX_PATTERN_LENGTH,
    PatternError,
    PatternRefusal,
    compile_re2,
    go_text,
    wildcard_match,
)

REFUSED = [
    (r"(a)\1", PatternRefusal.BACKREFERENCE),
    (r"(?P<n>a)(?P=n)", PatternRefusal.BACKREFERENCE),
    (r"(?<n>a)\k<n>", PatternRefusal.BACKREFERENCE),
    (r"foo(?=bar)", PatternRefusal.LOOKAHEAD),
    (r"foo(?!bar)", PatternRefusal.LOOKAHEAD),
    (r"(?<=foo)bar", PatternRefusal.LOOKBEHIND),
    (r"(?<!foo)bar", PatternRefusal.LOOKBEHIND),
    (r"a++", PatternRefusal.POSSESSIVE),
    (r"a*+b", PatternRefusal.POSSESSIVE),
    (r"a?+", PatternRefusal.POSSESSIVE),
    (r"(?>a+)b", PatternRefusal.ATOMIC_GROUP),
    (r"a\Cb", PatternRefusal.ANY_BYTE),
    (r"a\Z", PatternRefusal.SYNTAX),
    (r"(unclosed", PatternRefusal.SYNTAX),
    (r"a{1001}", PatternRefusal.SYNTAX),
    ("a" * (MAX_PATTERN_LENGTH + 1), PatternRefusal.TOO_LONG),
]


@pytest.mark.parametrize(("pattern", "refusal"), REFUSED)
def test_non_re2_constructs_are_refused_with_path_and_reason(pattern: str, refusal: PatternRefusal) -> None:
    path = "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.subjectRegExp"
    with pytest.raises(PatternError) as err:
        compile_re2(pattern, path=path)
    assert err.value.refusal is refusal
    assert err.value.path == path
    assert isinstance(err.value, SigwardError)
    assert str(err.value).startswith(path + ": pattern ")
    assert len(str(err.value)) < 400  # a huge runtime pattern is not echoed whole


ACCEPTED = [
    # (pattern, text, search, fullmatch) — Go regexp semantics
    (r"^https://github\.com/org/.+$", "https://github.com/org/repo/.github/x.yml@refs/heads/main", True, True),
    (r"org/repo", "https://github.com/org/repo", True, False),
    (r"a$", "a\n", False, False),  # `$` is end of text in Go, not before a final newline as in Python
    (r"(?m)a$", "a\nb", True, False),
    (r"a\z", "a", True, True),
    (r"(?P<v>v[0-9]+)", "v12", True, True),
    (r"(?<v>v[0-9]+)", "v12", True, True),
    (r"[[:digit:]]+", "123", True, True),
    (r"\d+", "١٢٣", False, False),  # \d is ASCII in Go
    (r"\Qa.b\E", "a.b", True, True),
    (r"\Qa.b\E", "axb", False, False),
    (r"(?i)ABC", "abc", True, True),
    (r".", "\n", False, False),
    (r"(?s).", "\n", True, True),
    (r"^é.$", "éa", True, True),
]


@pytest.mark.parametrize(("pattern", "text", "search", "full"), ACCEPTED)
def test_go_semantics(pattern: str, text: str, search: bool, full: bool) -> None:
    compiled = compile_re2(pattern, path="p")
    assert compiled.search(text) is search
    assert compiled.fullmatch(text) is full


def test_lone_surrogate_reads_as_replacement_character_as_go_json_would() -> None:
    assert go_text("a\ud800b") == "a\ufffdb"
    assert compile_re2("^a.b$", path="p").search("a\ud800b")
    assert not compile_re2("^ab$", path="p").search("a\ud800b")


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"(a+)+$", "a" * 200_000 + "!"),
        (r"(a|a)*b", "a" * 200_000),
        (r"(.*a){20}", "a" * 50_000),
        (r"^(\w+\s?)*$", "word " * 40_000 + "!"),
    ],
)
def test_catastrophic_backtracking_patterns_are_linear(pattern: str, text: str) -> None:
    compiled = compile_re2(pattern, path="p")
    started = time.perf_counter()
    compiled.search(text)
    compiled.fullmatch(text)
    assert time.perf_counter() - started < 0.5


def test_replace_all_follows_go_empty_match_rule() -> None:
    compiled = compile_re2("a*", path="p")
    # Go: regexp.MustCompile("a*").ReplaceAllString("baaac", "-") == "-b-c-"
    assert compiled.replace_all("baaac", lambda m: "-") == "-b-c-"
    groups = compile_re2(r"(?P<k>\w+)=(\w+)", path="p")
    assert groups.replace_all("a=1 b=2", lambda m: f"{m.group(2)}:{m.group('k')}") == "1:a 2:b"
    assert groups.replace_all("none", lambda m: "x") == "none"


WILDCARDS = [
    ("*", "", True),
    ("*", "anything/at:all@sha256", True),
    ("ghcr.io/org/*", "ghcr.io/org/app:v1", True),
    ("ghcr.io/org/*", "ghcr.io/other/app", False),
    ("ghcr.io/org/*", "ghcr.io/org", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("a?c", "abbc", False),
    ("*a?c*", "xxabcxx", True),
    ("*a?c*", "xxacxx", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "acb", False),
    ("a*a", "a", False),
    ("*ab", "aab", True),
    ("*?*", "", False),
    ("*??*a", "xa", False),
    ("*??*a", "xya", True),
    ("exact", "exact", True),
    ("exact", "exacT", False),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), WILDCARDS)
def test_wildcard_match(pattern: str, text: str, expected: bool) -> None:
    assert wildcard_match(pattern, text) is expected


def test_wildcard_is_fast_on_hostile_inputs() -> None:
    started = time.perf_counter()
    assert not wildcard_match("*a*a*a*a*a*a*a*a*b", "a" * 500_000)
    assert not wildcard_match("*" * 5_000 + "b", "a" * 100_000)
    assert not wildcard_match("*a?a?a?a?b*", "a" * 200_000)
    assert time.perf_counter() - started < 1.0

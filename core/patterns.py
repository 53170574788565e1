"""Linear-time patterns: Go/RE2 regular expressions and Kyverno wildcards.

Kyverno's patterns (``regex_match`` and friends, ``subjectRegExp``/``issuerRegExp``) are Go ``regexp``, i.e. RE2:
matching is linear in the input and there are no backreferences or look-around. sigward compiles them with RE2
itself (``google-re2``), never with Python's backtracking ``re``, so a value a Pod author or an attestation controls
cannot make matching super-linear. A construct RE2 refuses is a :class:`PatternError` naming where the pattern came
from (a YAML path at policy load, an expression at run time) and why (:class:`PatternRefusal`).

Residual differences between Go's ``regexp`` and the C++ RE2 used here, and how they are closed:

* ``\\C`` (any byte) is C++-only; Go refuses it, so sigward refuses it too.
* Go matches runes of UTF-8 text; Python strings can hold lone surrogates (from JSON ``\\ud800``), which Go's JSON
  decoder would have read as U+FFFD, so they are replaced by U+FFFD before matching.
* ``(?P<name>...)``, ``(?<name>...)``, ``\\z``, ``\\Q...\\E``, POSIX classes ``[[:alpha:]]``, ASCII ``\\d \\w \\s
  \\b``, ``$`` only at the very end without ``(?m)``, leftmost-first matching and the 1000 repetition limit behave
  the same in both.

Wildcards (``*`` any run of characters, ``?`` exactly one, the rest literal, anchored — go-wildcard as Kyverno uses
it) are matched by :func:`wildcard_match` without any regex: a pattern is split at ``*`` and each piece is found
leftmost, so the cost is one pass over the text per piece, whoever wrote either side.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sigward.errors import SigwardError

# Go's regexp has no length limit, but no policy needs a pattern this long; refusing bigger ones bounds the cost of
# compiling a pattern an attestation supplies at run time.
MAX_PATTERN_LENGTH = 16 * 1024
# RE2's memory budget for one compiled pattern (program and DFA cache). Beyond it RE2 refuses the pattern ("pattern
# too large") or falls back from its DFA to its NFA, which is still linear in the text.
RE2_MAX_MEMORY = 4 * 1024 * 1024
# Patterns are compiled once per distinct text; policies hold a handful, attestations may supply a few more.
_CACHE_SIZE = 512
# A pattern is shown in error messages only up to this many characters (runtime patterns may be huge).
_SHOWN_CHARS = 120


class PatternRefusal(enum.Enum):
    """Why a pattern is not accepted; the constructs Perl/Python have and RE2 (hence Kyverno) refuses."""

    BACKREFERENCE = "backreferences (\\1, \\k<name>) are not supported by RE2"
    LOOKAHEAD = "look-ahead assertions ((?=, (?!) are not supported by RE2"
    LOOKBEHIND = "look-behind assertions ((?<=, (?<!) are not supported by RE2"
    POSSESSIVE = "possessive quantifiers (*+, ++, ?+) are not supported by RE2"
    ATOMIC_GROUP = "atomic groups ((?>) are not supported by RE2"
    ANY_BYTE = "\\C (any byte) is not supported by Go's regexp"
    TOO_LONG = f"longer than {MAX_PATTERN_LENGTH} characters"
    TOO_LARGE = "too large for RE2's memory budget"
    SYNTAX = "invalid RE2 syntax"


class PatternError(SigwardError):
    """A pattern RE2 (Go's regexp) refuses; ``path`` says where it came from, ``refusal`` why."""

    def __init__(self, *, path: str, pattern: str, refusal: PatternRefusal, detail: str = "") -> None:
        self.path = path
        self.pattern = pattern
        self.refusal = refusal
        self.detail = detail
        shown = pattern if len(pattern) <= _SHOWN_CHARS else pattern[:_SHOWN_CHARS] + "…"
        extra = f" ({detail})" if detail and refusal is PatternRefusal.SYNTAX else ""
        where = f"{path}: " if path else ""
        super().__init__(f"{where}pattern {shown!r} is not a valid RE2 regular expression: {refusal.value}{extra}")


def go_text(text: str) -> str:
    """``text`` as Go would hold it: lone surrogates (not encodable as UTF-8) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


@dataclass(frozen=True)
class Match:
    """One match: the matched text's span and its groups (``None`` for a group that did not take part)."""

    start: int
    end: int
    groups: tuple[str | None, ...]  # groups[0] is the whole match
    names: tuple[tuple[str, int], ...]

    def group(self, key: int | str) -> str | None:
        """Group by number or name; an unknown group is ``None`` (Go's Expand writes it as empty)."""
        if isinstance(key, str):
            index = dict(self.names).get(key)
            if index is None:
                return None
            key = index
        return self.groups[key] if 0 <= key < len(self.groups) else None


class CompiledPattern:
    """An RE2 program: :meth:`search` (unanchored, as Go's ``MatchString``) and :meth:`fullmatch` answer bool,
    in time linear in the text."""

    __slots__ = ("_matcher", "_regexp", "pattern")

    def __init__(self, pattern: str, regexp: Any, matcher: Any) -> None:
        self.pattern = pattern
        self._regexp = regexp
        self._matcher = matcher  # the same pattern without captures: RE2 answers yes/no with its DFA alone

    def search(self, text: str) -> bool:
        return self._matcher.search(go_text(text).encode("utf-8")) is not None

    def fullmatch(self, text: str) -> bool:
        return self._matcher.fullmatch(go_text(text).encode("utf-8")) is not None

    def finditer(self, text: str) -> Iterator[Match]:
        """Every match of ``text`` left to right (``text`` already :func:`go_text`), lazily, as Go's ``FindAll``: an
        empty match right after the previous match is skipped."""
        names = tuple(sorted(self._regexp.groupindex.items(), key=lambda kv: kv[1]))
        previous_end = -1
        for m in self._regexp.finditer(text):
            start, end = m.span()
            if start == end and start == previous_end:
                continue
            yield Match(start=start, end=end, groups=(m.group(0), *m.groups()), names=names)
            previous_end = end

    def replace_all(self, src: str, replacement: Callable[[Match], str]) -> str:
        """Go's ``ReplaceAllStringFunc`` semantics: each match replaced by ``replacement(match)``."""
        text = go_text(src)
        out: list[str] = []
        last = 0
        for m in self.finditer(text):
            out.append(text[last : m.start])
            out.append(replacement(m))
            last = m.end
        out.append(text[last:])
        return "".join(out)


def _refusal(pattern: str, message: str) -> PatternRefusal:
    if "too large" in message:
        return PatternRefusal.TOO_LARGE
    if "invalid escape sequence: \\" in message:
        escaped = message.rsplit("\\", 1)[-1][:1]
        if escaped.isdigit() or escaped == "k":
            return PatternRefusal.BACKREFERENCE
    if "invalid perl operator: (?=" in message or "invalid perl operator: (?!" in message:
        return PatternRefusal.LOOKAHEAD
    if "invalid perl operator: (?<=" in message or "invalid perl operator: (?<!" in message:
        return PatternRefusal.LOOKBEHIND
    if "invalid perl operator: (?>" in message:
        return PatternRefusal.ATOMIC_GROUP
    if "bad repetition operator" in message and message.rstrip().endswith("+"):
        return PatternRefusal.POSSESSIVE
    if "invalid perl operator: (?P" in message and "(?P=" in pattern:
        return PatternRefusal.BACKREFERENCE
    return PatternRefusal.SYNTAX


def _has_any_byte_escape(pattern: str) -> bool:
    """Whether ``pattern`` uses ``\\C`` outside a ``\\Q...\\E`` literal span."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "C":
                return True
            if nxt == "Q":
                end = pattern.find("\\E", i + 2)
                if end == -1:
                    return False
                i = end + 2
                continue
            i += 2
            continue
        i += 1
    return False


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(pattern: str) -> CompiledPattern | tuple[PatternRefusal, str]:
    """The cached compilation; a refusal is cached too, so a hostile pattern repeated costs one compile."""
    import re2

    if len(pattern) > MAX_PATTERN_LENGTH:
        return PatternRefusal.TOO_LONG, ""
    if _has_any_byte_escape(pattern):
        return PatternRefusal.ANY_BYTE, ""
    options = re2.Options()
    options.max_mem = RE2_MAX_MEMORY
    options.log_errors = False
    try:
        regexp = re2.compile(go_text(pattern), options)
        options.never_capture = True
        matcher = re2.compile(go_text(pattern), options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return _refusal(pattern, message), message
    return CompiledPattern(pattern, regexp, matcher)


def compile_re2(pattern: str, *, path: str) -> CompiledPattern:
    """Compile a Go (RE2) regular expression; raises :class:`PatternError` naming ``path`` when RE2 (or Go) refuses
    it. ``path`` is the YAML path of a policy field or a description of a runtime source."""
    compiled = _compile(pattern)
    if isinstance(compiled, CompiledPattern):
        return compiled
    refusal, detail = compiled
    raise PatternError(path=path, pattern=pattern, refusal=refusal, detail=detail)


@lru_cache(maxsize=_CACHE_SIZE)
def _piece_program(piece: str) -> Any:
    """A wildcard piece with ``?`` as an RE2 program (``?`` is one character, newlines included), or None when
    RE2 will not take it (too large): the caller then scans in Python."""
    import re2

    options = re2.Options()
    options.max_mem = RE2_MAX_MEMORY
    options.log_errors = False
    options.dot_nl = True
    options.never_capture = True
    source = ".".join(re2.escape(go_text(run)) for run in piece.split("?"))
    try:
        return re2.compile(source, options)
    except re2.error:
        return None


def _find_piece(piece: str, text: str, start: int, end: int) -> int:
    """The leftmost index ``>= start`` where ``piece`` (literal but for ``?``) occurs within ``text[:end]``, or -1."""
    if "?" not in piece:
        return text.find(piece, start, end)
    program = _piece_program(piece)
    if program is not None:
        found = program.search(go_text(text), start, end)
        return -1 if found is None else int(found.start())
    for i in range(start, end - len(piece) + 1):  # pragma: no cover - only for pieces beyond RE2's memory budget
        if all(pc in ("?", text[i + k]) for k, pc in enumerate(piece)):
            return i
    return -1


def wildcard_match(pattern: str, text: str) -> bool:
    """Kyverno's wildcard match: ``*`` any run of characters (``/ : @`` included), ``?`` exactly one character, the
    rest literal; anchored at both ends.

    The pattern is split at ``*``: the first piece must start the text, the last end it, and each middle piece is
    taken at its leftmost occurrence after the previous one (leftmost is always safe between stars): a literal piece
    by ``str.find``, a piece with ``?`` by an RE2 search, both linear in the text."""
    if "*" not in pattern:
        return len(pattern) == len(text) and all(p in ("?", t) for p, t in zip(pattern, text, strict=True))
    pieces = pattern.split("*")
    head, tail, middle = pieces[0], pieces[-1], pieces[1:-1]
    if len(head) + len(tail) > len(text):
        return False
    if not wildcard_match(head, text[: len(head)]) or not wildcard_match(tail, text[len(text) - len(tail) :]):
        return False
    pos, end = len(head), len(text) - len(tail)
    for piece in middle:
        if not piece:
            continue
        hit = _find_piece(piece, text, pos, end)
        if hit == -1:
            return False
        pos = hit + len(piece)
    return True


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern

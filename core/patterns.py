"""Stand-in for the RE2 pattern module (being written in another branch): ``compile_re2`` with the agreed shape, so
identity regexes can route through it now. It uses Python's ``re`` and refuses the constructs RE2 refuses that
``re`` would accept (lookaround, backreferences, atomic groups). The real module replaces this file at merge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import PolicyError, PolicyProblem

_RE2_UNSUPPORTED = (
    (re.compile(r"\(\?<?[=!]"), "lookaround"),
    (re.compile(r"\(\?P="), "backreference"),
    (re.compile(r"\(\?>"), "atomic group"),
    (re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]"), "backreference"),
)


@dataclass(frozen=True)
class CompiledPattern:
    """A compiled RE2 pattern: ``search`` (unanchored, as Go's ``MatchString``) and ``fullmatch``."""

    pattern: str
    compiled: re.Pattern[str]

    def search(self, text: str) -> bool:
        return self.compiled.search(text) is not None

    def fullmatch(self, text: str) -> bool:
        return self.compiled.fullmatch(text) is not None


def compile_re2(pattern: str, *, path: str) -> CompiledPattern:
    """``pattern`` as RE2 reads it, or :class:`PolicyError` naming ``path`` when RE2 would refuse it."""
    for construct, name in _RE2_UNSUPPORTED:
        if construct.search(pattern):
            raise PolicyError([PolicyProblem("", path, f"invalid regexp {pattern!r}: RE2 does not support {name}")])
    translated = re.sub(r"(?<!\\)((?:\\\\)*)\\z", r"\1\\Z", pattern)  # RE2's \z (end of text) is Python's \Z
    try:
        return CompiledPattern(pattern=pattern, compiled=re.compile(translated))
    except re.error as exc:
        raise PolicyError([PolicyProblem("", path, f"invalid regexp {pattern!r}: {exc}")]) from None

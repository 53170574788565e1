"""Verdicts: what one (image, policy rule) check decided, shaped for the CLI, admission and the verdict store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sigward.errors import FailureKind


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"  # infrastructure: the answer could not be had (failurePolicy applies)


# When one rule holds several verifyImages entries for an image, the worst outcome stands.
_SEVERITY = {Verdict.SKIP: 0, Verdict.PASS: 1, Verdict.ERROR: 2, Verdict.FAIL: 3}


@dataclass(frozen=True)
class EntryFailure:
    """Why one ``verifyImages`` entry failed: its YAML path within the rule and the typed reason."""

    path: str
    kind: FailureKind


@dataclass(frozen=True)
class RuleVerdict:
    image: str  # as written by the user or the resource
    reference: str  # normalized as Kyverno renders it
    digest: str  # the digest that was verified ("" when it could not be determined)
    verdict: Verdict
    policy: str
    rule: str
    message: str
    mutate_digest: bool = False
    failure: FailureKind | None = None  # what a FAIL was (never read from ``message``); None otherwise
    failures: tuple[EntryFailure, ...] = ()  # on a FAIL: each failed entry with its path and kind
    exceptions: tuple[str, ...] = ()  # on a SKIP: the PolicyExceptions that exempted it (reports name them)
    # an ImageValidatingPolicy's auditAnnotations (key, value): Kyverno's report result properties
    properties: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict[str, str]:
        return {
            "image": self.image,
            "digest": self.digest,
            "verdict": self.verdict.value,
            "policy": self.policy,
            "rule": self.rule,
            "message": self.message,
        }


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    items = list(verdicts)
    if not items:
        return Verdict.SKIP
    return max(items, key=lambda v: _SEVERITY[v])

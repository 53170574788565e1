"""The one error hierarchy of sigward.

Every error sigward raises on purpose derives from :class:`SigwardError`. Callers turn them into responses (HTTP
status, AdmissionReview verdict, CLI exit code) in exactly one place per entry point; third-party exceptions are
wrapped with ``raise ... from`` so their text never decides a verdict by accident.

The split that matters for admission is between a *decided* failure (the image is not allowed: bad or missing
signature, access denied, policy says no) and an *infrastructure* error (the answer could not be had: registry or KMS
unreachable, deadline exceeded), because Kyverno's ``failurePolicy`` only applies to the latter.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class SigwardError(Exception):
    """Base class; ``str(err)`` is a complete, user-facing sentence without secrets."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequestError(SigwardError):
    """The caller's input is malformed (AdmissionReview, push event, image reference, CLI argument)."""


class ConfigurationError(SigwardError):
    """sigward's own configuration (environment, credentials file, trust material) is unusable."""


@dataclass(frozen=True)
class PolicyProblem:
    """One problem in a policy document, located by its YAML path (``spec.rules[0].verifyImages[1]...``)."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"


class PolicyError(SigwardError):
    """A policy cannot be used; carries every problem found, each with its YAML path."""

    def __init__(self, problems: Iterable[PolicyProblem]) -> None:
        self.problems: Sequence[PolicyProblem] = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid policy")


class FailureKind(enum.Enum):
    """What a decided failure was, for code that branches on it (stored status ``unsigned``, which of two failures
    stands): never the message text, which follows Kyverno's wording and is for people."""

    NO_SIGNATURES = "no signatures"  # nothing signed the image where the entry looked
    NO_ATTESTATIONS = "no attestations"  # no attestation (of the wanted predicate type) where the entry looked
    NOT_SATISFIED = "not satisfied"  # something was there but did not satisfy the policy, or any other refusal
    # Evidence thresholds sigstore-go names (Kyverno's ImageValidatingPolicy reports them in its wording): a kind of
    # "not satisfied" whose evidence was absent, so the edge can say which threshold was missed.
    TLOG_ENTRIES = "no verified transparency log entry"
    SCT_ENTRIES = "no verified SCT"
    SIGNED_TIMESTAMPS = "no verified signed timestamp"


#: The kinds that say which evidence threshold was missed.
EVIDENCE_KINDS = frozenset({FailureKind.TLOG_ENTRIES, FailureKind.SCT_ENTRIES, FailureKind.SIGNED_TIMESTAMPS})


def evidence_kind(kinds: Iterable[FailureKind]) -> FailureKind:
    """The missed-evidence kind shared by every failure of ``kinds`` (several bundles tried), else
    :attr:`FailureKind.NOT_SATISFIED`: only a shared threshold is worth naming."""
    kind = combined_kind(kinds)
    return kind if kind in EVIDENCE_KINDS else FailureKind.NOT_SATISFIED


def combined_kind(kinds: Iterable[FailureKind]) -> FailureKind:
    """The kind of a failure made of several: theirs when they agree, else :attr:`FailureKind.NOT_SATISFIED`."""
    distinct = set(kinds)
    return distinct.pop() if len(distinct) == 1 else FailureKind.NOT_SATISFIED


class VerificationFailure(SigwardError):
    """A decided negative outcome: the image or its signatures do not satisfy the policy; ``kind`` says which."""

    def __init__(self, message: str, *, kind: FailureKind = FailureKind.NOT_SATISFIED) -> None:
        super().__init__(message)
        self.kind = kind


def no_signatures_found() -> VerificationFailure:
    """cosign's and Kyverno's "no signatures found", typed."""
    return VerificationFailure("no signatures found", kind=FailureKind.NO_SIGNATURES)


def no_attestations_found(detail: str = "no attestations found") -> VerificationFailure:
    """cosign's "no matching attestations: no attestations found" (or ``detail``), typed."""
    return VerificationFailure(f"no matching attestations: {detail}", kind=FailureKind.NO_ATTESTATIONS)


class NotFoundError(VerificationFailure):
    """The registry answered that a manifest or blob does not exist."""


class AccessDeniedError(VerificationFailure):
    """The registry or KMS answered 401/403: a decided failure, not an outage (Kyverno treats it so)."""


class ExternalServiceError(SigwardError):
    """A registry, KMS or store could not give an answer (network, 5xx, throttling, timeout)."""


class DeadlineExceededError(ExternalServiceError):
    """The shared time budget ran out before an answer was had."""


def failure_kind_of(exc: SigwardError) -> FailureKind | None:
    """The kind of a verdict decided by ``exc``: None for an infrastructure error (no decision was made)."""
    if isinstance(exc, VerificationFailure):
        return exc.kind
    return None if isinstance(exc, ExternalServiceError) else FailureKind.NOT_SATISFIED

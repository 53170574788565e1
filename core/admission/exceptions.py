"""Which PolicyExceptions (:mod:`sigward.policy.exceptions`) exempt an admission request from a rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sigward.admission.match import RequestInfo, match_resources
from sigward.errors import SigwardError
from sigward.policy.exceptions import PolicyException

# Kyverno's message for a rule skipped by exceptions (pkg/engine/.../mutate_image.go): the keys follow the text
# directly, joined by ", " (Kyverno writes no separator before the first key; kept verbatim for parity).
SKIP_MESSAGE = "rule is skipped due to policy exceptions"


def _conditions_hold(exc: PolicyException, request: Mapping[str, Any], now: datetime) -> bool:
    conditions = exc.spec.conditions
    if conditions is None or not (conditions.any or conditions.all):
        return True
    from sigward.policy.conditions import evaluate_any_all

    try:
        return evaluate_any_all([conditions], {"request": request}, now=now, missing="error").passed
    except (SigwardError, ValueError, TypeError, RecursionError):
        return False  # Kyverno: an evaluation error skips that exception


def _matches(exc: PolicyException, info: RequestInfo) -> bool:
    """Match like an exclude (user criteria never ignored); a role lookup that fails means no exemption."""
    try:
        return match_resources(exc.spec.match, info, exclude=True)
    except SigwardError:
        return False


def matching_exceptions(
    exceptions: Sequence[PolicyException],
    *,
    policy_key: str,
    rule_name: str,
    info: RequestInfo,
    request: Mapping[str, Any],
    now: datetime | None = None,
) -> tuple[str, ...]:
    """The keys of the exceptions that exempt this request from the rule (sorted, as Kyverno's index is)."""
    when = now or datetime.now(UTC)
    found = [
        exc.key
        for exc in exceptions
        if exc.contains(policy_key, rule_name) and _matches(exc, info) and _conditions_hold(exc, request, when)
    ]
    return tuple(sorted(found))


def skip_message(keys: Sequence[str]) -> str:
    return SKIP_MESSAGE + ", ".join(keys)

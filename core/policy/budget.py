"""A cost budget for CPU-bound policy evaluation (JMESPath, conditions, patterns), checked cooperatively.

Conditions run over attestation predicates that whoever signed them controls; a predicate, a pattern or an expression
over it may be large. Evaluation charges what it does — one unit per character scanned or produced by a function
(regex, wildcard, string building), :data:`NODE_COST` per JMESPath node visited, :data:`DATA_NODE_COST` per
predicate node converted — to the budget of the evaluation in
progress, and stops with :class:`BudgetExceeded` once it is spent, so one request cannot hold a worker (and, through
the GIL, its neighbours) for long.

Exceeding the budget is a *decided* failure (a :class:`~sigward.errors.VerificationFailure`), not an infrastructure
error: the input that blew it is attacker-controlled and deterministic, so calling it an outage would let it through
under ``failurePolicy: Ignore``. It fails the attestation check that evaluated it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sigward.errors import VerificationFailure

# Units for one evaluation (one attestation's conditions, one deny block, one expression outside those): with
# NODE_COST below this is ~200k JMESPath node visits or ~10M characters scanned — well under a second of CPU on a
# small instance, a hundred times what real Kyverno conditions over real SLSA/SBOM predicates take.
MAX_EVALUATION_COST = 10_000_000
# A JMESPath node visit runs Python code; scanning a character runs C. The ratio is roughly their relative cost.
NODE_COST = 50
# Converting one node of a predicate to JSON data (to_json_data) costs about a fifth of a JMESPath visit: a 16 MiB
# attestation of tiny objects then exhausts the budget (~1M nodes) instead of holding a worker for many seconds.
DATA_NODE_COST = 10


class BudgetExceeded(VerificationFailure):
    """The evaluation did more work than :data:`MAX_EVALUATION_COST` allows: fail the check (closed)."""


@dataclass
class EvaluationBudget:
    """A mutable counter (deliberately not frozen): units left for the evaluation in progress."""

    limit: int = MAX_EVALUATION_COST
    used: int = field(default=0)

    def charge(self, units: int) -> None:
        self.used += units
        if self.used > self.limit:
            raise BudgetExceeded(
                f"condition evaluation exceeded its cost budget ({self.limit} units: JMESPath nodes and characters "
                "processed); the data or expression is too large to evaluate"
            )


_current: ContextVar[EvaluationBudget | None] = ContextVar("sigward_evaluation_budget", default=None)


def charge(units: int) -> None:
    """Charge ``units`` to the evaluation in progress (no-op outside one: callers open one with :func:`budget`)."""
    active = _current.get()
    if active is not None:
        active.charge(units)


@contextmanager
def budget(limit: int = MAX_EVALUATION_COST) -> Iterator[EvaluationBudget]:
    """The budget of one evaluation; nested calls share the outermost one, so a helper cannot reset it."""
    active = _current.get()
    if active is not None:
        yield active
        return
    fresh = EvaluationBudget(limit=limit)
    token = _current.set(fresh)
    try:
        yield fresh
    finally:
        _current.reset(token)

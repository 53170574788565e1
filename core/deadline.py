"""A shared time budget: every network call takes its timeout from the one deadline of the decision it serves."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sigward.errors import DeadlineExceededError


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point on the monotonic clock; ``Deadline.after(8.0)`` is eight seconds from now."""

    expires_at: float
    started_at: float = field(default_factory=time.monotonic)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        now = time.monotonic()
        return cls(expires_at=now + seconds, started_at=now)

    @classmethod
    def never(cls) -> Deadline:
        """For offline tools (CLI); network calls still have their own per-call timeouts."""
        return cls(expires_at=float("inf"))

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def timeout(self, cap: float) -> float:
        """The timeout for one call: ``cap`` or what is left, whichever is smaller; raises when nothing is left."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceededError("deadline exceeded")
        return min(cap, left)

    def check(self) -> None:
        if self.expired():
            raise DeadlineExceededError("deadline exceeded")

"""One reading of the trusted roots per evaluation, shared by the verdict key and the checks.

The public-good root and GitHub's root are each kept current by a holder that a background refresh may swap at any
moment. A verdict key records the fingerprints of the roots a policy allows and the checks verify under those roots:
if each read the holders separately, a refresh between the two would store a verdict made under the new root under
the old root's key (or the reverse). A :class:`RootSnapshot` reads the public-good root when taken and GitHub's root
at most once, on first need (most policies never allow it, and reading it may mean a TUF fetch); every later reader
of the same snapshot -- the key, then every check -- gets that same root, or the same failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sigward.errors import SigwardError
from sigward.verify.trust import TrustedRoot

if TYPE_CHECKING:
    from sigward.policy.models import Policy

#: What a verdict key records when GitHub's root could not be read: a key no verdict was made under (the
#: verification itself then reports the outage as an error verdict).
UNAVAILABLE = "unavailable"


class RootSnapshot:
    """The trusted roots of one evaluation (thread-safe: an image's rules may run on several threads)."""

    def __init__(self, default: TrustedRoot, github: Callable[[], TrustedRoot]) -> None:
        self.default = default
        self._load_github = github
        self._lock = threading.Lock()
        self._github: TrustedRoot | SigwardError | None = None

    def github(self) -> TrustedRoot:
        """GitHub's root as first read through this snapshot; a failure to read it is kept and raised again."""
        with self._lock:
            if self._github is None:
                try:
                    self._github = self._load_github()
                except SigwardError as exc:
                    self._github = exc
            found = self._github
        if isinstance(found, SigwardError):
            raise found
        return found

    def for_policy(self, policy: Policy) -> tuple[TrustedRoot, ...]:
        """The roots ``policy`` allows (``sigward.dev/trusted-roots``; public-good = :attr:`default`), in the order
        written: the first verifies legacy signatures and keyed bundles."""
        from sigward.policy.trustroots import RootName, allowed_root_names

        names = allowed_root_names(policy.annotations)
        return tuple(self.default if name is RootName.PUBLIC_GOOD else self.github() for name in names)

    def fingerprint(self, policy: Policy) -> str:
        """What a verdict key records of the roots ``policy`` allows: every allowed root's fingerprint (the default
        root's alone when the policy does not name roots, the key earlier versions stored)."""
        from sigward.policy.trustroots import TRUSTED_ROOTS_ANNOTATION

        if TRUSTED_ROOTS_ANNOTATION not in policy.annotations:
            return self.default.fingerprint
        try:
            return ",".join(root.fingerprint for root in self.for_policy(policy))
        except SigwardError:
            return f"{self.default.fingerprint},{UNAVAILABLE}"


__all__ = ["UNAVAILABLE", "RootSnapshot"]

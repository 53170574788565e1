"""Everything sigward takes from sigstore-python that is NOT its public API, in one place.

sigstore-python 4.x makes ``sigstore.models`` (``Bundle``, ``TrustedRoot``, ``ClientTrustConfig``), ``sigstore.verify``
(``Verifier``, policies), ``sigstore.hashes`` and ``sigstore.errors`` public. Three things sigward needs have no public
form, so they live here and nowhere else, and ``tests/unit/verify/test_sigstore_private.py`` pins each of them so an
upstream change fails that test loudly instead of silently changing a verdict:

1. ``sigstore._internal.timestamp`` (``TimestampSource``, ``TimestampVerificationResult``) and the private
   ``Verifier._establish_time`` hook: sigward verifies signing times itself (see :func:`pinned_time_verifier_class`).
2. ``Verifier._verify_common_signing_cert``: certificate, policy and log checks without the content check, for
   DSSE bundles whose log entry is ``intoto`` (which sigstore-python 4.5 does not match against content).
3. The bundled public-good TUF bootstrap data, ``sigstore/_store/<quoted TUF URL>/{root.json,trusted_root.json}``:
   read as package data (no import of sigstore code), the offline starting point of :mod:`sigward.verify.tuf`.

Nothing here is imported at module import time: admission's cold path must not load sigstore-python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from sigstore.verify import Verifier as SigstoreVerifier

# sigstore-python's own default (``sigstore._internal.tuf.DEFAULT_TUF_URL``), repeated so reading it needs no import.
PUBLIC_GOOD_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"
# The two files of a bundled TUF repository sigward reads: the TUF root (bootstrap) and the Sigstore trusted root.
BUNDLED_TUF_ROOT = "root.json"
BUNDLED_TRUSTED_ROOT = "trusted_root.json"


def bundled_file(url: str, name: str) -> bytes:
    """A file sigstore-python ships for the TUF repository at ``url`` (public-good and staging only).

    Raises ``FileNotFoundError`` when there is none (any other URL)."""
    folder = quote(url.rstrip("/"), safe="")
    return (resources.files("sigstore") / "_store" / folder / name).read_bytes()


@lru_cache(maxsize=1)
def pinned_time_verifier_class() -> Callable[..., SigstoreVerifier]:
    """sigstore-python's ``Verifier`` with one substitution: the signing times it validates the certificate at are
    the ones sigward verified (sigward.verify.bundles ``_verify_timestamps``), for two reasons where sigstore-python 4.5
    differs from the Sigstore specification and the conformance suite: it treats a TSA's validity end as exclusive
    (TimeRange is a closed interval), and it refuses the integrated time of ``intoto`` entries. Everything else —
    chain building at those times, SCT, X.509 profile, policy, log entry, signature, validity window — is
    sigstore-python's own."""
    from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import TrustedRoot as SigstoreTrustedRoot
    from sigstore.verify import Verifier

    class PinnedTimeVerifier(Verifier):
        def __init__(self, *, trusted_root: SigstoreTrustedRoot, times: Sequence[tuple[bool, datetime]]) -> None:
            super().__init__(trusted_root=trusted_root)
            self._sigward_times = tuple(times)

        def _establish_time(self, bundle: SigstoreBundle) -> list[TimestampVerificationResult]:
            return [
                TimestampVerificationResult(
                    source=TimestampSource.TIMESTAMP_AUTHORITY if from_tsa else TimestampSource.TRANSPARENCY_SERVICE,
                    time=when,
                )
                for from_tsa, when in self._sigward_times
            ]

    return PinnedTimeVerifier


def verify_common_signing_cert(verifier: Any, bundle: Any, policy: Any) -> None:
    """sigstore-python's certificate, policy and transparency-log checks of ``bundle``, without its content check."""
    verifier._verify_common_signing_cert(bundle, policy)


__all__ = [
    "BUNDLED_TRUSTED_ROOT",
    "BUNDLED_TUF_ROOT",
    "PUBLIC_GOOD_TUF_URL",
    "bundled_file",
    "pinned_time_verifier_class",
    "verify_common_signing_cert",
]

"""Everything sigward takes from sigstore-python that is NOT its public API, in one place.

sigward verifies Sigstore bundles on its own checks (sigward.verify.certificates, .timestamps, .rekor, .bundles);
the one thing it still takes from sigstore-python without a public form is the bundled public-good TUF bootstrap data,
``sigstore/_store/<quoted TUF URL>/{root.json,trusted_root.json}``: read as package data (no import of sigstore code),
the offline starting point of :mod:`sigward.verify.tuf`. ``tests/unit/verify/test_sigstore_private.py`` pins it so an
upstream change fails that test loudly.

Nothing here imports sigstore code: admission's cold path must not load sigstore-python.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import quote

from sigward.policy.tufroot import PUBLIC_GOOD_MIRROR

# sigstore-python's own default (``sigstore._internal.tuf.DEFAULT_TUF_URL``), repeated so reading it needs no import.
PUBLIC_GOOD_TUF_URL = PUBLIC_GOOD_MIRROR
# The two files of a bundled TUF repository sigward reads: the TUF root (bootstrap) and the Sigstore trusted root.
BUNDLED_TUF_ROOT = "root.json"
BUNDLED_TRUSTED_ROOT = "trusted_root.json"


def bundled_file(url: str, name: str) -> bytes:
    """A file sigstore-python ships for the TUF repository at ``url`` (public-good and staging only).

    Raises ``FileNotFoundError`` when there is none (any other URL)."""
    folder = quote(url.rstrip("/"), safe="")
    return (resources.files("sigstore") / "_store" / folder / name).read_bytes()


__all__ = [
    "BUNDLED_TRUSTED_ROOT",
    "BUNDLED_TUF_ROOT",
    "PUBLIC_GOOD_TUF_URL",
    "bundled_file",
]

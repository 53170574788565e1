"""Base64 fields of hostile JSON documents (log entries, envelopes, trusted roots): one decoding rule.

Each caller names its own wording (Kyverno's or cosign's, which differ per document) and error type; the rule
itself — a string, strict alphabet, optionally the URL-safe unpadded form real envelopes also carry — lives here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from sigward.errors import VerificationFailure


def _strict(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a non-ASCII str
        return None


def decode_base64(
    value: object,
    *,
    missing: str,
    invalid: str,
    any_alphabet: bool = False,
    error: Callable[[str], Exception] = VerificationFailure,
) -> bytes:
    """``value`` decoded as standard base64 (``any_alphabet``: also URL-safe, padded or not); ``error(missing)``
    when it is not a string, ``error(invalid)`` when it does not decode."""
    if not isinstance(value, str):
        raise error(missing)
    decoded = _strict(value)
    if decoded is None and any_alphabet:
        standard = value.replace("-", "+").replace("_", "/")
        decoded = _strict(standard + "=" * (-len(standard) % 4))
    if decoded is None:
        raise error(invalid)
    return decoded


__all__ = ["decode_base64"]

"""Sender authentication for the push webhook (``SIGWARD_PUSH_SECRET``).

A delivery is authentic when any one of these carries the secret:

- ``Authorization: Bearer <secret>`` (distribution ``headers`` config, Event Grid delivery property), or
  ``Authorization: <secret>`` verbatim (Harbor sends its configured "auth header" value as is);
- ``X-Sigward-Secret: <secret>`` (an EventBridge API-destination connection with API-key auth names its header;
  also the header to use behind a platform that owns ``Authorization``, e.g. an IAM-authenticated Cloud Run URL);
- ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`` (GitHub), computed over the exact bytes
  received — verify before anything re-encodes the body.

All comparisons are constant-time (:func:`hmac.compare_digest`); no message ever contains the secret or what was
sent in its place.

The caller decides whether to call :func:`authenticate`: with no secret configured it is not called. With one
configured it must be called for *every* request, handshakes included: Event Grid adds an event subscription's
delivery-property headers to its ``SubscriptionValidation`` POST like to any delivery, so requiring the secret there
costs nothing and keeps a stranger from completing a subscription to someone else's endpoint. (Whether Event Grid
also adds them to the CloudEvents ``OPTIONS`` validation request is not documented; if that handshake fails with a
401, put the secret in the endpoint URL's path instead and authenticate by path, as admission does.)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from core.errors import ConfigurationError, SigwardError
from core.events._fields import lower_headers

SECRET_HEADER = "X-Sigward-Secret"  # noqa: S105 - a header name, not a secret
SIGNATURE_HEADER = "X-Hub-Signature-256"
_SIGNATURE_PREFIX = "sha256="


class Unauthenticated(SigwardError):
    """The request does not carry the push secret (the HTTP adapter answers 401)."""


def _same(given: str, secret: bytes) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret)


def authenticate(headers: Mapping[str, str], body: bytes, *, secret: str) -> None:
    """Return when ``headers`` (or the HMAC of ``body``) prove knowledge of ``secret``; raise
    :class:`Unauthenticated` otherwise."""
    if not secret:
        raise ConfigurationError("push webhook: the push secret is empty; unset SIGWARD_PUSH_SECRET to disable it")
    key = secret.encode("utf-8", "surrogatepass")
    folded = lower_headers(headers)
    authorization = folded.get("authorization")
    explicit = folded.get(SECRET_HEADER.lower())
    signature = folded.get(SIGNATURE_HEADER.lower())
    if authorization is None and explicit is None and signature is None:
        raise Unauthenticated(
            f"push webhook: no credentials (send Authorization, {SECRET_HEADER} or {SIGNATURE_HEADER})"
        )
    ok = False
    if authorization is not None:
        value = authorization.strip()
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and _same(token.strip(), key):
            ok = True
        if _same(value, key):
            ok = True
    if explicit is not None and _same(explicit.strip(), key):
        ok = True
    if signature is not None:
        value = signature.strip()
        if value[: len(_SIGNATURE_PREFIX)].lower() == _SIGNATURE_PREFIX:
            expected = hmac.new(key, body, hashlib.sha256).hexdigest()
            if _same(value[len(_SIGNATURE_PREFIX) :].lower(), expected.encode()):
                ok = True
    if not ok:
        sent = [
            name
            for name, value in (
                ("Authorization", authorization),
                (SECRET_HEADER, explicit),
                (SIGNATURE_HEADER, signature),
            )
            if value is not None
        ]
        what = "does not match the body" if sent == [SIGNATURE_HEADER] else "does not carry the push secret"
        raise Unauthenticated(f"push webhook: {' / '.join(sent)} {what}")

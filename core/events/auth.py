"""Sender authentication for the push functions: the push webhook's shared secret (``SIGWARD_PUSH_SECRET``) and,
at the end of this module, the Google OIDC token of a Pub/Sub push delivery (``SIGWARD_PUBSUB_AUDIENCE``).

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

import enum
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sigward.errors import ConfigurationError, ExternalServiceError, SigwardError
from sigward.events._fields import lower_headers

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


# -- Pub/Sub push OIDC tokens -----------------------------------------------------------------------------------
#
# A Pub/Sub push subscription (or Eventarc) with ``oidcToken`` signs each delivery with a Google ID token for a
# service account. Cloud Run's invoker IAM checks it when the service is private, and then hands the application
# the token with its signature removed; so sigward checks the token itself only when the function is reachable
# without IAM (``SIGWARD_PUBSUB_AUDIENCE`` + ``SIGWARD_PUBSUB_SERVICE_ACCOUNTS``).

ENV_PUBSUB_AUDIENCE = "SIGWARD_PUBSUB_AUDIENCE"
ENV_PUBSUB_SERVICE_ACCOUNTS = "SIGWARD_PUBSUB_SERVICE_ACCOUNTS"
ENV_GOOGLE_CERTS_URL = "SIGWARD_GOOGLE_CERTS_URL"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"  # Google's ID-token signing certs, {kid: PEM}
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
# Google ID tokens are RS256; refusing anything else keeps "alg" confusion out before a key is even chosen.
ALGORITHM = "RS256"
# Clock skew tolerated on iat/exp: Google's clocks and Cloud Run's are synchronised; 30 s covers NTP drift only.
CLOCK_SKEW_SECONDS = 30
# A Google JWT is ~1 KB; anything far larger is not one, and is not worth base64-decoding.
MAX_TOKEN_CHARS = 8192
# Google's certs document holds 2-3 certificates (~4 KB); cap what a misconfigured URL can make us read.
MAX_CERTS_BYTES = 64 * 1024
CERTS_TIMEOUT_SECONDS = 5.0
# Cache the certs as long as Google's Cache-Control says, within these bounds: keys rotate over days and are
# published before use, so an hour is safe, and a floor keeps a hostile max-age=0 from costing a fetch per request.
CERTS_DEFAULT_TTL_SECONDS = 300.0
CERTS_MIN_TTL_SECONDS = 60.0
CERTS_MAX_TTL_SECONDS = 3600.0
# An unknown kid triggers at most one refetch per interval: a token with a made-up kid must not make every request
# an outbound fetch.
CERTS_REFETCH_INTERVAL_SECONDS = 30.0


class OidcFailure(enum.Enum):
    """Why a Pub/Sub push token was refused (the value is what the log line and the 401 say)."""

    MISSING = "no Authorization: Bearer token"
    MALFORMED = "the bearer token is not a well-formed RS256 JWT"
    UNKNOWN_KEY = "the token is signed with a key id Google does not publish"
    BAD_SIGNATURE = "the token's signature does not verify"
    EXPIRED = "the token has expired"
    NOT_YET_VALID = "the token is not valid yet"
    WRONG_ISSUER = "the token was not issued by accounts.google.com"
    WRONG_AUDIENCE = f"the token's audience is not {ENV_PUBSUB_AUDIENCE}"
    EMAIL_UNVERIFIED = "the token's email is not verified"
    EMAIL_NOT_ALLOWED = f"the token's service account is not in {ENV_PUBSUB_SERVICE_ACCOUNTS}"


class OidcUnauthenticated(Unauthenticated):
    """A Pub/Sub push delivery without a valid Google OIDC token; ``reason`` says which check failed."""

    def __init__(self, reason: OidcFailure) -> None:
        super().__init__(f"Pub/Sub push: {reason.value}")
        self.reason = reason


@dataclass(frozen=True)
class PubSubAuth:
    """Who may deliver to ``push_pubsub``: tokens for ``audience`` issued to one of ``service_accounts``."""

    audience: str
    service_accounts: frozenset[str]
    certs_url: str = GOOGLE_CERTS_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PubSubAuth | None:
        """None when neither variable is set; a :class:`ConfigurationError` when only one is (half a check would
        accept any Google-signed token, or none)."""
        audience = env.get(ENV_PUBSUB_AUDIENCE, "").strip()
        listed = env.get(ENV_PUBSUB_SERVICE_ACCOUNTS, "").split(",")
        accounts = frozenset(a.strip().lower() for a in listed if a.strip())
        if not audience and not accounts:
            return None
        if not audience:
            raise ConfigurationError(f"{ENV_PUBSUB_SERVICE_ACCOUNTS} is set but {ENV_PUBSUB_AUDIENCE} is not")
        if not accounts:
            raise ConfigurationError(f"{ENV_PUBSUB_AUDIENCE} is set but {ENV_PUBSUB_SERVICE_ACCOUNTS} lists no account")
        for account in sorted(accounts):
            if not _EMAIL_RE.fullmatch(account):
                raise ConfigurationError(f"{ENV_PUBSUB_SERVICE_ACCOUNTS}: {account[:80]!r} is not an e-mail address")
        certs_url = env.get(ENV_GOOGLE_CERTS_URL, "").strip() or GOOGLE_CERTS_URL
        parsed = urllib.parse.urlsplit(certs_url)
        loopback = parsed.hostname in {"127.0.0.1", "::1", "localhost"}
        if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
            raise ConfigurationError(f"{ENV_GOOGLE_CERTS_URL} must be an https URL (plain http only on loopback)")
        return cls(audience=audience, service_accounts=accounts, certs_url=certs_url)


_EMAIL_RE = re.compile(r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}")


class GoogleCerts:
    """Google's ``{kid: PEM certificate}`` document at one URL, cached per Cache-Control within bounds and
    refetched (rate-limited) when a token names a kid it does not hold. Thread-safe."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._clock = clock
        self._lock = threading.Lock()
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = -CERTS_REFETCH_INTERVAL_SECONDS

    def cert(self, kid: str) -> str | None:
        """The PEM certificate for ``kid``, or None when Google does not publish it (after at most one refetch)."""
        with self._lock:
            now = self._clock()
            if now >= self._expires or (
                kid not in self._certs and now - self._fetched >= CERTS_REFETCH_INTERVAL_SECONDS
            ):
                self._certs, ttl = self._fetch()
                self._fetched = now
                self._expires = now + ttl
            return self._certs.get(kid)

    def _fetch(self) -> tuple[dict[str, str], float]:
        import requests

        try:
            with requests.get(self.url, timeout=CERTS_TIMEOUT_SECONDS, allow_redirects=False, stream=True) as response:
                if response.status_code != 200:
                    raise ExternalServiceError(
                        f"Google's token certificates: {self.url} answered HTTP {response.status_code}"
                    )
                raw = response.raw.read(MAX_CERTS_BYTES + 1, decode_content=True)
                cache_control = response.headers.get("Cache-Control", "")
        except requests.RequestException as exc:
            raise ExternalServiceError(
                f"Google's token certificates: {self.url} unreachable ({type(exc).__name__})"
            ) from exc
        if len(raw) > MAX_CERTS_BYTES:
            raise ExternalServiceError(
                f"Google's token certificates: {self.url} is larger than {MAX_CERTS_BYTES} bytes"
            )
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ExternalServiceError(f"Google's token certificates: {self.url} is not JSON") from exc
        if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
            raise ExternalServiceError(f"Google's token certificates: {self.url} is not a {{kid: PEM}} object")
        return doc, _ttl(cache_control)


def _ttl(cache_control: str) -> float:
    match = re.search(r"(?:^|[,\s])max-age=(\d{1,10})", cache_control)
    ttl = float(match.group(1)) if match else CERTS_DEFAULT_TTL_SECONDS
    return min(max(ttl, CERTS_MIN_TTL_SECONDS), CERTS_MAX_TTL_SECONDS)


_certs_lock = threading.Lock()
_certs_by_url: dict[str, GoogleCerts] = {}


def google_certs(url: str) -> GoogleCerts:
    """The process-wide cache for ``url`` (every request of a function instance shares it)."""
    with _certs_lock:
        found = _certs_by_url.get(url)
        if found is None:
            found = _certs_by_url[url] = GoogleCerts(url)
        return found


def verify_pubsub_token(
    headers: Mapping[str, str],
    config: PubSubAuth,
    *,
    certs: GoogleCerts | None = None,
    now: Callable[[], float] = time.time,
) -> str:
    """Return the verified service account e-mail of a Pub/Sub push delivery; raise :class:`OidcUnauthenticated`
    (or :class:`ExternalServiceError` when Google's certificates cannot be fetched). Nothing of the token is ever
    put in a message."""
    from google.auth import exceptions as google_exceptions
    from google.auth import jwt

    authorization = lower_headers(headers).get("authorization")
    if authorization is None:
        raise OidcUnauthenticated(OidcFailure.MISSING)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise OidcUnauthenticated(OidcFailure.MALFORMED)
    try:
        header = jwt.decode_header(token)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, google_exceptions.GoogleAuthError):
        raise OidcUnauthenticated(OidcFailure.MALFORMED) from None
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
        raise OidcUnauthenticated(OidcFailure.MALFORMED)
    cert = (certs or google_certs(config.certs_url)).cert(kid)
    if cert is None:
        raise OidcUnauthenticated(OidcFailure.UNKNOWN_KEY)
    try:
        claims = jwt.decode(  # type: ignore[no-untyped-call]
            token, certs={kid: cert}, verify=True, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
    except (ValueError, TypeError, google_exceptions.GoogleAuthError):
        raise OidcUnauthenticated(_why_undecodable(token, kid, cert, now())) from None
    if not isinstance(claims, dict):
        raise OidcUnauthenticated(OidcFailure.MALFORMED)
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise OidcUnauthenticated(OidcFailure.WRONG_ISSUER)
    audience = claims.get("aud")
    if not isinstance(audience, str) or not hmac.compare_digest(audience.encode(), config.audience.encode()):
        raise OidcUnauthenticated(OidcFailure.WRONG_AUDIENCE)
    if claims.get("email_verified") is not True:
        raise OidcUnauthenticated(OidcFailure.EMAIL_UNVERIFIED)
    email = claims.get("email")
    if not isinstance(email, str) or email.lower() not in config.service_accounts:
        raise OidcUnauthenticated(OidcFailure.EMAIL_NOT_ALLOWED)
    return email.lower()


def _why_undecodable(token: str, kid: str, cert: str, now: float) -> OidcFailure:
    """Tell a good signature outside its validity window from a bad signature or a broken token: verify once more
    with the time check widened to everything (public google-auth API, no parsing of its messages)."""
    from google.auth import exceptions as google_exceptions
    from google.auth import jwt

    try:
        claims = jwt.decode(token, certs={kid: cert}, verify=True, clock_skew_in_seconds=10**12)  # type: ignore[no-untyped-call]
    except google_exceptions.MalformedError:
        try:
            unverified = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError, google_exceptions.GoogleAuthError):
            return OidcFailure.MALFORMED
        times = [unverified.get(c) if isinstance(unverified, dict) else None for c in ("iat", "exp")]
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in times):
            return OidcFailure.MALFORMED  # google-auth requires both; their absence is not a signature problem
        return OidcFailure.BAD_SIGNATURE
    except (ValueError, TypeError, google_exceptions.GoogleAuthError):
        return OidcFailure.MALFORMED
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and exp + CLOCK_SKEW_SECONDS < now:
        return OidcFailure.EXPIRED
    return OidcFailure.NOT_YET_VALID

"""Registry authentication: ``WWW-Authenticate`` challenges, the distribution token protocol, a token cache.

Anonymous first; on 401 the challenge says how. Bearer: ask the realm for a pull-only token (with the
registry's credentials as Basic, or an identity token as an OAuth2 refresh token, when we have them). Basic:
send the registry's credentials to the registry itself. Tokens are cached per (registry, scope, credential
identity).
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from sigward.deadline import Deadline
from sigward.errors import AccessDeniedError, DeadlineExceededError, ExternalServiceError
from sigward.registry.credentials import Credentials
from sigward.registry.transport import origin

if TYPE_CHECKING:
    from sigward.registry.providers import CredentialSource
    from sigward.registry.transport import Transport

# Longest WWW-Authenticate value parsed; real ones are a few hundred bytes.
MAX_CHALLENGE_LENGTH = 8 * 1024
# Parameters per challenge; realm, service, scope, error and a few vendor extras is all there is.
MAX_CHALLENGE_PARAMS = 16
# Token responses are a JWT or an opaque string plus a few fields; ACR's are the largest at a few KiB.
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
# A token longer than this would not fit in an HTTP header most servers accept.
MAX_TOKEN_LENGTH = 64 * 1024
# The token spec: expires_in defaults to 60 s, and a token never lives shorter than that.
DEFAULT_TOKEN_SECONDS = 60
# Never reuse a token longer than this, whatever the token server says, so revocations take effect.
MAX_TOKEN_CACHE_SECONDS = 3600
# Tokens are dropped this long before they expire, so one is not sent just as it becomes invalid.
TOKEN_EXPIRY_MARGIN_SECONDS = 10
# Cached tokens kept (distinct registry/repository/credential combinations); the oldest go first.
MAX_CACHED_TOKENS = 1024
# Distinct scopes requested in one token request; a challenge asking for more is not a pull.
MAX_SCOPES = 8
# Longest a thread waits for another thread's token request for the same key (it has its own timeouts too).
MAX_TOKEN_WAIT_SECONDS = 30.0
CLIENT_ID = "sigward"
# Token realms documented on another host than their registry (spec: registry-credentials §1): the registry's
# credentials may go there. Every other realm must be the registry's own origin, or it gets no credentials.
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_GCR_SUBDOMAIN = re.compile(r"^[a-z0-9-]+\.gcr\.io$")

_TOKEN_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class ChallengeError(ValueError):
    """A ``WWW-Authenticate`` value that does not follow RFC 7235."""


@dataclass(frozen=True)
class Challenge:
    """One auth challenge: lower-case scheme, parameters with lower-case names."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Parse every challenge of a ``WWW-Authenticate`` value (RFC 7235 §4.1), quoted strings included.

    Several challenges may share one value, separated by commas, and a quoted parameter may itself contain
    commas.
    Raises :class:`ChallengeError` on malformed input rather than guessing.
    """
    if len(value) > MAX_CHALLENGE_LENGTH:
        raise ChallengeError("WWW-Authenticate value too long")
    parser = _Parser(value)
    challenges: list[Challenge] = []
    while True:
        parser.skip(" \t,")
        if parser.done():
            break
        scheme = parser.token()
        if not scheme:
            raise ChallengeError(f"expected an auth scheme at position {parser.pos}")
        params: dict[str, str] = {}
        spaced = parser.skip(" \t") > 0
        # token68 (``Negotiate abc123==``) may only follow the scheme after a space, and ends the challenge.
        token68 = parser.token68() if spaced else ""
        if token68:
            params[""] = token68
        while not token68 and not parser.done():
            start = parser.pos
            if parser.peek() == ",":
                parser.pos += 1
                parser.skip(" \t")
                continue
            name = parser.token()
            parser.skip(" \t")
            if not name or parser.peek() != "=":
                parser.pos = start  # the next challenge's scheme
                break
            parser.pos += 1
            parser.skip(" \t")
            if parser.peek() == '"':
                val = parser.quoted()
            else:
                val = parser.token()
                if not val:
                    raise ChallengeError(f"parameter {name!r} has no value")
            key = name.lower()
            if key in params:
                raise ChallengeError(f"parameter {key!r} given twice")
            params[key] = val
            if len(params) > MAX_CHALLENGE_PARAMS:
                raise ChallengeError("too many challenge parameters")
            parser.skip(" \t")
            if not parser.done() and parser.peek() != ",":
                raise ChallengeError(f"expected ',' at position {parser.pos}")
        challenges.append(Challenge(scheme=scheme.lower(), params=params))
    return challenges


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.pos - start

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def token68(self) -> str:
        start = self.pos
        allowed = _TCHAR | frozenset("/")
        while self.pos < len(self.text) and self.text[self.pos] in allowed and self.text[self.pos] != "=":
            self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] == "=":
            self.pos += 1
        end = self.pos
        self.skip(" \t")
        if not self.done() and self.peek() != ",":
            self.pos = start
            return ""
        return self.text[start:end]

    def quoted(self) -> str:
        assert self.text[self.pos] == '"'
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(self.text):
                    break
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise ChallengeError("unterminated quoted string")


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def sanitize_scopes(challenge_scope: str, default: str, *, allow_push: bool = False) -> tuple[str, ...]:
    """The scopes to ask for: the challenge's repository scopes cut down to ``pull`` (no push, delete, ``*``) —
    or to ``pull,push`` for a client made to push signatures (``sigward sign``).

    Without a usable scope in the challenge, ``default`` (our own ``repository:<repo>:pull``).
    """
    kept: list[str] = []
    for item in challenge_scope.split()[: MAX_SCOPES * 4]:
        first, sep, rest = item.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not (sep and sep2 and name) or not first.startswith("repository"):
            continue
        wanted = actions.split(",")
        if "pull" not in wanted and not (allow_push and "push" in wanted):
            continue
        scope = f"{first}:{name}:pull,push" if allow_push and "push" in wanted else f"{first}:{name}:pull"
        if scope not in kept and all(c in _TOKEN_CHARS for c in scope):
            kept.append(scope)
        if len(kept) >= MAX_SCOPES:
            break
    return tuple(kept) if kept else (default,)


class TokenCache:
    """Bearer tokens by (registry, scope, credential identity), with expiry; thread-safe and bounded."""

    def __init__(self, max_entries: int = MAX_CACHED_TOKENS) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, str]] = OrderedDict()
        self._max = max_entries

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if hit[0] <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return hit[1]

    def put(self, key: tuple[str, str, str], token: str, seconds: float) -> None:
        ttl = min(float(seconds), MAX_TOKEN_CACHE_SECONDS) - TOKEN_EXPIRY_MARGIN_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, token)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def invalidate(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _documented_realm_host(registry_host: str, realm_host: str) -> bool:
    if registry_host in _DOCKER_HUB:
        return realm_host == "auth.docker.io"
    if _GCR_SUBDOMAIN.match(registry_host):
        return realm_host == "gcr.io"
    return False


def realm_may_receive_credentials(registry_origin: tuple[str, str, int], realm_url: str) -> bool:
    """Whether a token realm may be sent the registry's credentials: the registry's own origin (scheme, host and
    port), or a realm documented for that cloud registry (HTTPS on 443). A look-alike host, another port or a
    host the registry merely names is a foreign realm."""
    realm = origin(realm_url)
    if realm == registry_origin:
        return True
    scheme, host, port = registry_origin
    return (
        realm[0] == "https"
        and realm[2] == 443
        and scheme == "https"
        and port == 443
        and _documented_realm_host(host, realm[1])
    )


def basic_authorization(creds: Credentials) -> str:
    pair = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class _Known:
    """What a registry asked for the last time: lets later requests authenticate without a 401 round trip."""

    scheme: str
    realm: str = ""
    service: str = ""


class Authenticator:
    """Turns challenges into ``Authorization`` values for one client; shared by all its threads."""

    def __init__(self, transport: Transport, credentials: CredentialSource, *, allow_push: bool = False) -> None:
        self._allow_push = allow_push
        self._transport = transport
        self._credentials = credentials
        self.tokens = TokenCache()
        self._lock = threading.Lock()
        self._known: dict[str, _Known] = {}
        self._inflight: dict[tuple[str, str, str], threading.Lock] = {}
        # Registries whose challenge named a foreign realm: their credentials were withheld (said in 401 messages).
        self.withheld: set[str] = set()

    def with_credentials(self, credentials: CredentialSource) -> Authenticator:
        """An authenticator for other credentials sharing this one's token cache and learned registry schemes
        (cache keys carry the credential identity, so tokens of one credential never serve another)."""
        other = copy.copy(self)
        other._credentials = credentials
        return other

    def registry_origin(self, registry: str) -> tuple[str, str, int]:
        scheme = "http" if self._transport.config.is_insecure(registry) else "https"
        return origin(f"{scheme}://{registry}")

    def credentials_for(self, registry: str) -> Credentials | None:
        return self._credentials.get(registry)

    def authorization_for(self, registry: str, scope: str, deadline: Deadline) -> str | None:
        """Pre-emptive ``Authorization`` for a registry whose scheme is already known, else ``None``."""
        with self._lock:
            known = self._known.get(registry)
        if known is None:
            return None
        if known.scheme == "basic":
            creds = self.credentials_for(registry)
            return basic_authorization(creds) if creds is not None and creds.has_password else None
        return self._bearer(registry, known, (scope,), deadline, self.credentials_for(registry))

    def on_unauthorized(
        self, registry: str, www_authenticate: str, scope: str, deadline: Deadline, *, rejected: str | None
    ) -> str:
        """The ``Authorization`` to retry with after a 401; raises :class:`AccessDeniedError` if none."""
        try:
            challenges = parse_www_authenticate(www_authenticate)
        except ChallengeError as exc:
            raise AccessDeniedError(
                f"{registry} requires authentication but its WWW-Authenticate challenge is malformed ({exc})"
            ) from None
        by_scheme = {c.scheme: c for c in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None:
            realm = bearer.realm
            if not realm:
                raise AccessDeniedError(f"{registry} sent a Bearer challenge without a realm")
            known = _Known(scheme="bearer", realm=realm, service=bearer.params.get("service", ""))
            ours = realm_may_receive_credentials(self.registry_origin(registry), realm)
            if ours:
                with self._lock:
                    self._known[registry] = known
            else:
                # A foreign realm gets an anonymous token request at most, and is never remembered for the registry.
                self.withheld.add(registry)
            creds = self.credentials_for(registry) if ours else None
            scopes = sanitize_scopes(bearer.params.get("scope", ""), scope, allow_push=self._allow_push)
            if rejected is not None:
                for s in {scopes, (scope,)}:
                    self.tokens.invalidate(self._cache_key(registry, s, creds))
            return self._bearer(registry, known, scopes, deadline, creds)
        creds = self.credentials_for(registry)
        if "basic" in by_scheme:
            with self._lock:
                self._known[registry] = _Known(scheme="basic")
            if creds is None or not creds.has_password:
                raise AccessDeniedError(f"{registry} requires a user name and password and none are configured for it")
            header = basic_authorization(creds)
            if rejected is not None and hmac.compare_digest(rejected.encode(), header.encode()):
                raise AccessDeniedError(f"{registry} rejected the configured credentials")
            return header
        shown = ", ".join(sorted(by_scheme)) or "none"
        raise AccessDeniedError(f"{registry} requires an unsupported authentication scheme ({shown[:64]})")

    @staticmethod
    def _cache_key(registry: str, scopes: tuple[str, ...], creds: Credentials | None) -> tuple[str, str, str]:
        return (registry, " ".join(scopes), creds.identity if creds is not None else "anonymous")

    def _bearer(
        self, registry: str, known: _Known, scopes: tuple[str, ...], deadline: Deadline, creds: Credentials | None
    ) -> str:
        key = self._cache_key(registry, scopes, creds)
        token = self.tokens.get(key)
        if token is not None:
            return f"Bearer {token}"
        with self._lock:
            lock = self._inflight.setdefault(key, threading.Lock())
        # One token request per key however many threads need it; the others wait and reuse its token.
        if not lock.acquire(timeout=max(0.0, min(deadline.remaining(), MAX_TOKEN_WAIT_SECONDS))):
            raise DeadlineExceededError(f"deadline exceeded waiting for a token for {registry}")
        try:
            token = self.tokens.get(key)
            if token is None:
                token, seconds = self._fetch_token(registry, known, scopes, creds, deadline)
                self.tokens.put(key, token, seconds)
            return f"Bearer {token}"
        finally:
            lock.release()
            with self._lock:
                if self._inflight.get(key) is lock:
                    del self._inflight[key]

    def _fetch_token(
        self,
        registry: str,
        known: _Known,
        scopes: tuple[str, ...],
        creds: Credentials | None,
        deadline: Deadline,
    ) -> tuple[str, float]:
        transport = self._transport
        parts = transport.check_url(known.realm)
        realm_host = parts.netloc
        realm = parts._replace(fragment="").geturl()
        form: dict[str, str] = {}
        if known.service:
            form["service"] = known.service
        authorization: str | None = None
        if creds is not None and creds.identity_token:
            # OAuth2 refresh-token grant, as docker does with an identitytoken.
            form.update(
                grant_type="refresh_token",
                refresh_token=creds.identity_token,
                client_id=CLIENT_ID,
                scope=" ".join(scopes),
            )
            resp = transport.send(
                "POST",
                realm,
                deadline=deadline,
                kind="token",
                headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
                data=form,
            )
        else:
            query = list(form.items()) + [("scope", s) for s in scopes]
            url = realm + ("&" if parts.query else "?") + urlencode(query)
            if creds is not None and creds.has_password:
                authorization = basic_authorization(creds)
            resp = transport.send(
                "GET",
                url,
                deadline=deadline,
                kind="token",
                headers={"Accept": "application/json"},
                authorization=authorization,
            )
        used = f"the credentials configured for {registry}" if creds is not None else "anonymous access"
        status = resp.status_code
        if status in (401, 403):
            transport.discard(resp)
            raise AccessDeniedError(f"token service {realm_host} for {registry} refused {used} (HTTP {status})")
        if status != 200:
            detail = transport.error_detail(resp, deadline)
            raise ExternalServiceError(f"token service {realm_host} for {registry} answered HTTP {status}{detail}")
        body = transport.read_body(resp, MAX_TOKEN_RESPONSE_BYTES, deadline, f"token response from {realm_host}")
        return _parse_token_response(body, realm_host)


def _parse_token_response(body: bytes, realm_host: str) -> tuple[str, float]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise AccessDeniedError(f"token service {realm_host} did not answer with JSON") from None
    if not isinstance(data, dict):
        raise AccessDeniedError(f"token service {realm_host} did not answer with a JSON object")
    token = data.get("token") or data.get("access_token")
    if not isinstance(token, str) or not token:
        raise AccessDeniedError(f"token service {realm_host} answered without a token")
    if len(token) > MAX_TOKEN_LENGTH or not all(c in _TOKEN_CHARS for c in token):
        # Control characters or spaces would let a token service inject headers.
        raise AccessDeniedError(f"token service {realm_host} answered with an unusable token")
    expires = data.get("expires_in", DEFAULT_TOKEN_SECONDS)
    try:
        if not isinstance(expires, int | float) or isinstance(expires, bool) or math.isnan(expires):
            expires = DEFAULT_TOKEN_SECONDS
        seconds = max(float(expires), DEFAULT_TOKEN_SECONDS)
    except OverflowError:  # an integer beyond float range is no lifetime
        seconds = DEFAULT_TOKEN_SECONDS
    return token, seconds

"""``azure``: an Entra access token from azure-identity (``DefaultAzureCredential``: workload identity, managed
identity, environment), exchanged at ``https://REGISTRY/oauth2/exchange`` for an ACR refresh token. The refresh token
is the registry credential (an identity token): the authenticator trades it at the registry's own ``/oauth2/token``
realm for pull tokens."""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sigward.errors import AccessDeniedError, ConfigurationError, ExternalServiceError, SigwardError
from sigward.registry.credentials import Credentials
from sigward.registry.providers import ExpiringCache

# The ACR audience: accepted whether or not the registry allows ARM-audience tokens.
SCOPE = "https://containerregistry.azure.net/.default"
# docker login's user name for an ACR refresh token.
USERNAME = "00000000-0000-0000-0000-000000000000"
# ACR refresh tokens are JWTs of a few hours; renew 5 min before ``exp``.
REFRESH_MARGIN_SECONDS = 300.0
# A refresh token without a readable ``exp`` is kept as long as Flux keeps one (msi-acrpull's default).
DEFAULT_LIFETIME_SECONDS = 600.0

#: ``post_form(host, path, form)`` → the JSON object the registry answered (raises SigwardError otherwise).
PostForm = Callable[[str, str, Mapping[str, str]], Mapping[str, Any]]


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying (only to know when to renew it), or ``None``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool) and 0 < exp < 2**40:
        return float(exp)
    return None


class AzureProvider:
    """Refresh tokens cached per registry until ``exp`` minus the margin; one exchange per registry at a time."""

    def __init__(self, post_form: PostForm, *, credential: Any = None, clock: Callable[[], float] = time.time) -> None:
        self._post_form = post_form
        self._lock = threading.Lock()
        self._credential = credential
        self._clock = clock
        self._cache = ExpiringCache(REFRESH_MARGIN_SECONDS, clock=clock)

    def __repr__(self) -> str:
        return "AzureProvider()"

    def get(self, host: str) -> Credentials | None:
        return self._cache.get(host.lower(), lambda: self._fetch(host.lower()))

    def _entra_token(self) -> str:
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        with self._lock:
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                self._credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
            credential = self._credential
        try:
            return str(credential.get_token(SCOPE).token)
        except ClientAuthenticationError as exc:
            raise ConfigurationError(
                "registry provider azure: no Entra token from azure-identity (workload or managed identity)"
            ) from exc
        except AzureError as exc:
            raise ExternalServiceError(
                f"registry provider azure: Entra token request failed ({type(exc).__name__})"
            ) from exc

    def _fetch(self, host: str) -> tuple[Credentials, float | None]:
        form = {"grant_type": "access_token", "service": host, "access_token": self._entra_token()}
        tenant = os.environ.get("AZURE_TENANT_ID", "").strip()
        if tenant:
            form["tenant"] = tenant
        try:
            answer = self._post_form(host, "/oauth2/exchange", form)
        except AccessDeniedError as exc:
            raise AccessDeniedError(f"registry provider azure: {host} refused the Entra token ({exc})") from None
        except SigwardError:
            raise
        refresh = answer.get("refresh_token")
        if not isinstance(refresh, str) or not refresh or any(c.isspace() for c in refresh):
            raise ExternalServiceError(f"registry provider azure: {host} answered the exchange without a refresh token")
        expires_at = jwt_expiry(refresh) or self._clock() + DEFAULT_LIFETIME_SECONDS
        return Credentials(username=USERNAME, identity_token=refresh), expires_at

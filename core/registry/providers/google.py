"""``google``: an OAuth2 access token from Application Default Credentials (Cloud Run, GKE Workload Identity, the
metadata server, a service-account file), sent as ``oauth2accesstoken:<token>`` to Google's registries."""

from __future__ import annotations

import threading
import time
from datetime import UTC
from typing import Any

from sigward.errors import ConfigurationError, ExternalServiceError
from sigward.registry.credentials import Credentials
from sigward.registry.providers import ExpiringCache

# The scope go-containerregistry asks ADC for; it covers Artifact Registry and Container Registry pulls.
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
USERNAME = "oauth2accesstoken"
# Refresh this long before expiry (access tokens live about an hour), so a token is never sent as it expires.
REFRESH_MARGIN_SECONDS = 300.0
# One token serves every Google registry: one cache key.
_KEY = "google"


class GoogleProvider:
    """One ADC credentials object per process, refreshed behind a lock; the token never appears in text."""

    def __init__(self, *, clock: Any = time.time) -> None:
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._cache = ExpiringCache(REFRESH_MARGIN_SECONDS, clock=clock)

    def __repr__(self) -> str:
        return "GoogleProvider()"

    def get(self, host: str) -> Credentials | None:
        return self._cache.get(_KEY, self._fetch)

    def _fetch(self) -> tuple[Credentials, float | None]:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests

        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials, _ = google.auth.default(scopes=list(SCOPES))
                creds = self._credentials
                creds.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise ConfigurationError(
                    "registry provider google: no Application Default Credentials found "
                    "(metadata server, GOOGLE_APPLICATION_CREDENTIALS or gcloud)"
                ) from exc
            except google.auth.exceptions.GoogleAuthError as exc:
                # google-auth's text can quote a server body; name the failure only.
                raise ExternalServiceError(
                    f"registry provider google: could not get an access token ({type(exc).__name__})"
                ) from exc
            except Exception as exc:  # google-auth lets KeyError/ValueError out on odd metadata answers
                raise ExternalServiceError(
                    f"registry provider google: the metadata server gave an unusable answer ({type(exc).__name__})"
                ) from exc
            token = creds.token
            expiry = creds.expiry
        if not isinstance(token, str) or not token:
            raise ExternalServiceError("registry provider google: Application Default Credentials gave no token")
        expires_at = expiry.replace(tzinfo=UTC).timestamp() if expiry is not None else None
        return Credentials(username=USERNAME, password=token), expires_at

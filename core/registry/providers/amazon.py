"""``amazon``: ECR ``GetAuthorizationToken`` through the AWS SDK chain (IRSA, instance/task role, or the GCP → AWS
federation of :mod:`sigward.aws_federation` when ``SIGWARD_AWS_ROLE_ARN`` is set). Account and region come from
the ECR host name; a host mapped to ``amazon`` by ``SIGWARD_REGISTRY_PROVIDERS`` uses the SDK's region.

ECR Public (``public.ecr.aws``) gets its token from the ``ecr-public`` API in us-east-1 with the same credentials.
Every ECR Public image can be pulled anonymously (a token only raises the pull rate limit), so a workload with no
AWS identity, or one AWS refuses a public token, pulls anonymously instead of failing: that is never an allow, the
same public content is verified either way. A failing AWS API is an infrastructure error, as for private ECR."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sigward.errors import AccessDeniedError, ConfigurationError, ExternalServiceError
from sigward.references import normalize_registry_host
from sigward.registry.credentials import Credentials
from sigward.registry.providers import ECR_HOST_RE, ECR_PUBLIC_HOSTS, ExpiringCache

log = logging.getLogger(__name__)

# ECR tokens live 12 h; refreshing 30 min early leaves a long-running verification room to finish.
REFRESH_MARGIN_SECONDS = 1800.0
# Bounded SDK calls: an admission deadline is seconds, botocore's default is a minute.
SDK_TIMEOUT_SECONDS = 5.0
# "The ECR Public API is only available in us-east-1" (amazon-ecr-credential-helper), whatever the workload's region.
ECR_PUBLIC_REGION = "us-east-1"
# After "no AWS identity" or "refused a public token", pull ECR Public anonymously this long before asking AWS again:
# resolving an absent SDK chain can cost metadata-endpoint timeouts, which must not be paid on every request.
ANONYMOUS_RECHECK_SECONDS = 300.0
_PUBLIC_KEY = "ecr-public"
# What botocore's response parser lets out on an answer of the wrong shape (a list where a structure belongs, ...).
_UNREADABLE = (AttributeError, TypeError, ValueError, KeyError)
_DENIED_CODES = frozenset({"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"})


class _Anonymous(Exception):
    """Internal: ECR Public is to be pulled anonymously (never leaves this module)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AmazonProvider:
    """Tokens cached per (account, region, FIPS), and one for ECR Public, until ``expiresAt`` minus the margin,
    one request per key. ``public_hosts``: the hosts that are ECR Public (tests point it at a loopback registry)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, public_hosts: frozenset[str] = ECR_PUBLIC_HOSTS
    ) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._clock = clock
        self._public_hosts = frozenset(normalize_registry_host(h) for h in public_hosts)
        self._anonymous_until = 0.0
        self._cache = ExpiringCache(REFRESH_MARGIN_SECONDS, clock=clock)

    def __repr__(self) -> str:
        return "AmazonProvider()"

    def get(self, host: str) -> Credentials | None:
        bare = normalize_registry_host(host)
        if bare in self._public_hosts:
            return self._public(host)
        match = ECR_HOST_RE.match(bare)
        if match is not None:
            account, fips, region = match.group(1), bool(match.group(2)), match.group(3)
        else:
            account, fips, region = "", False, os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
        key = f"{account}/{region}/{'fips' if fips else ''}"
        return self._cache.get(key, lambda: self._fetch(account, region, fips, host))

    def _public(self, host: str) -> Credentials | None:
        with self._lock:
            if self._anonymous_until > self._clock():
                return None
        try:
            return self._cache.get(_PUBLIC_KEY, lambda: self._fetch_public(host))
        except _Anonymous as why:
            with self._lock:
                self._anonymous_until = self._clock() + ANONYMOUS_RECHECK_SECONDS
            log.warning("registry provider amazon: ECR Public pulled anonymously: %s", why.reason)
            return None

    def _client(self, service: str, region: str, fips: bool) -> Any:
        from botocore.config import Config  # type: ignore[import-untyped]

        from sigward.aws_federation import aws_session

        with self._lock:
            if self._session is None:
                self._session = aws_session(region or None)
            session = self._session
            if not (region or session.region_name):
                raise ConfigurationError(
                    "registry provider amazon: no AWS region for a registry that is not an ECR host name "
                    "(set AWS_REGION)"
                )
            config = Config(
                connect_timeout=SDK_TIMEOUT_SECONDS,
                read_timeout=SDK_TIMEOUT_SECONDS,
                retries={"mode": "standard", "total_max_attempts": 2},
                use_fips_endpoint=fips,
            )
            return session.client(service, region_name=region or None, config=config)

    def _fetch(self, account: str, region: str, fips: bool, host: str) -> tuple[Credentials, float | None]:
        import botocore.exceptions  # type: ignore[import-untyped]

        client = self._client("ecr", region, fips)
        try:
            answer = client.get_authorization_token(**({"registryIds": [account]} if account else {}))
        except botocore.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code in _DENIED_CODES:
                raise AccessDeniedError(f"registry provider amazon: ECR GetAuthorizationToken denied ({code})") from exc
            raise ExternalServiceError(f"registry provider amazon: ECR GetAuthorizationToken failed ({code})") from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise ConfigurationError("registry provider amazon: no AWS credentials in the SDK chain") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise ExternalServiceError(
                f"registry provider amazon: ECR GetAuthorizationToken failed ({type(exc).__name__})"
            ) from exc
        except _UNREADABLE as exc:  # botocore's parser trips over an answer of the wrong shape
            raise ExternalServiceError(
                f"registry provider amazon: ECR sent an answer sigward cannot read ({type(exc).__name__})"
            ) from exc
        data = answer.get("authorizationData") or []
        entry = data[0] if isinstance(data, list) and data else None
        if not isinstance(entry, dict):
            raise ExternalServiceError(f"registry provider amazon: ECR gave no authorization data for {host}")
        return _token_entry(entry, "ECR")

    def _fetch_public(self, host: str) -> tuple[Credentials, float | None]:
        import botocore.exceptions

        client = self._client("ecr-public", ECR_PUBLIC_REGION, False)
        try:
            answer = client.get_authorization_token()
        except botocore.exceptions.NoCredentialsError:
            raise _Anonymous("no AWS credentials in the SDK chain") from None
        except botocore.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code in _DENIED_CODES:
                raise _Anonymous(
                    f"AWS refused ecr-public GetAuthorizationToken ({code}); the role needs "
                    "ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken"
                ) from None
            raise ExternalServiceError(
                f"registry provider amazon: ECR Public GetAuthorizationToken failed ({code})"
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise ExternalServiceError(
                f"registry provider amazon: ECR Public GetAuthorizationToken failed ({type(exc).__name__})"
            ) from exc
        except _UNREADABLE as exc:
            raise ExternalServiceError(
                f"registry provider amazon: ECR Public sent an answer sigward cannot read ({type(exc).__name__})"
            ) from exc
        entry = answer.get("authorizationData")  # one object for ECR Public, not a list
        if not isinstance(entry, dict):
            raise ExternalServiceError(f"registry provider amazon: ECR Public gave no authorization data for {host}")
        return _token_entry(entry, "ECR Public")


def _error_code(exc: Any) -> str:
    """The AWS error code only: the message can quote request details and is never shown."""
    return str(exc.response.get("Error", {}).get("Code", ""))[:64]


def _token_entry(entry: dict[str, Any], api: str) -> tuple[Credentials, float | None]:
    """``authorizationToken`` (base64 ``user:password``) and ``expiresAt`` of an ECR or ECR Public answer."""
    try:
        decoded = base64.b64decode(str(entry.get("authorizationToken", "")), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ExternalServiceError(
            f"registry provider amazon: {api} sent an authorization token that is not base64"
        ) from None
    user, sep, password = decoded.partition(":")
    if not sep or not user or not password:
        raise ExternalServiceError(
            f"registry provider amazon: {api} sent an authorization token that is not user:password"
        )
    expires = entry.get("expiresAt")
    expires_at = expires.timestamp() if isinstance(expires, datetime) else None
    return Credentials(username=user, password=password), expires_at

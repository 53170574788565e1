"""``amazon``: ECR ``GetAuthorizationToken`` through the AWS SDK chain (IRSA, instance/task role, or the GCP → AWS
federation of :mod:`sigward.aws_federation` when ``SIGWARD_AWS_ROLE_ARN`` is set). Account and region come from
the ECR host name; a host mapped to ``amazon`` by ``SIGWARD_REGISTRY_PROVIDERS`` uses the SDK's region."""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sigward.errors import AccessDeniedError, ConfigurationError, ExternalServiceError
from sigward.registry.credentials import Credentials
from sigward.registry.providers import ECR_HOST_RE, ExpiringCache

# ECR tokens live 12 h; refreshing 30 min early leaves a long-running verification room to finish.
REFRESH_MARGIN_SECONDS = 1800.0
# Bounded SDK calls: an admission deadline is seconds, botocore's default is a minute.
SDK_TIMEOUT_SECONDS = 5.0
# ECR Public: tokens come from the ecr-public API (us-east-1 only), which sigward does not call yet; its public
# images need none, so these hosts are pulled anonymously and never get a private-ECR token.
ECR_PUBLIC_HOSTS = frozenset({"public.ecr.aws", "ecr-public.aws.com"})
_DENIED_CODES = frozenset({"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"})


class AmazonProvider:
    """Tokens cached per (account, region, FIPS) until ``expiresAt`` minus the margin, one request per key."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._cache = ExpiringCache(REFRESH_MARGIN_SECONDS, clock=clock)

    def __repr__(self) -> str:
        return "AmazonProvider()"

    def get(self, host: str) -> Credentials | None:
        bare = host.lower().removesuffix(":443")
        if bare in ECR_PUBLIC_HOSTS:
            return None
        match = ECR_HOST_RE.match(bare)
        if match is not None:
            account, fips, region = match.group(1), bool(match.group(2)), match.group(3)
        else:
            account, fips, region = "", False, os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
        key = f"{account}/{region}/{'fips' if fips else ''}"
        return self._cache.get(key, lambda: self._fetch(account, region, fips, host))

    def _client(self, region: str, fips: bool) -> Any:
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
            return session.client("ecr", region_name=region or None, config=config)

    def _fetch(self, account: str, region: str, fips: bool, host: str) -> tuple[Credentials, float | None]:
        import botocore.exceptions  # type: ignore[import-untyped]

        client = self._client(region, fips)
        try:
            answer = client.get_authorization_token(**({"registryIds": [account]} if account else {}))
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _DENIED_CODES:
                raise AccessDeniedError(f"registry provider amazon: ECR GetAuthorizationToken denied ({code})") from exc
            raise ExternalServiceError(f"registry provider amazon: ECR GetAuthorizationToken failed ({code})") from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise ConfigurationError("registry provider amazon: no AWS credentials in the SDK chain") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise ExternalServiceError(
                f"registry provider amazon: ECR GetAuthorizationToken failed ({type(exc).__name__})"
            ) from exc
        data = answer.get("authorizationData") or []
        entry = data[0] if isinstance(data, list) and data else None
        if not isinstance(entry, dict):
            raise ExternalServiceError(f"registry provider amazon: ECR gave no authorization data for {host}")
        try:
            decoded = base64.b64decode(str(entry.get("authorizationToken", "")), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ExternalServiceError(
                "registry provider amazon: ECR sent an authorization token that is not base64"
            ) from None
        user, sep, password = decoded.partition(":")
        if not sep or not user or not password:
            raise ExternalServiceError(
                "registry provider amazon: ECR sent an authorization token that is not user:password"
            )
        expires = entry.get("expiresAt")
        expires_at = expires.timestamp() if isinstance(expires, datetime) else None
        return Credentials(username=user, password=password), expires_at

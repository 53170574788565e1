"""AWS credentials for sigward running on Google Cloud, without AWS keys.

When ``SIGWARD_AWS_ROLE_ARN`` is set and no other AWS credentials are configured in the environment, sigward asks
the GCE metadata server for a Google-signed ID token of its service account (audience ``SIGWARD_AWS_AUDIENCE``,
default ``sts.amazonaws.com``), exchanges it with STS ``AssumeRoleWithWebIdentity`` for the role (which trusts
``accounts.google.com`` with the service account's unique id as ``sub``: terraform/aws creates it), and hands out a
boto3 ``Session`` whose credentials refresh themselves before they expire (botocore ``RefreshableCredentials``:
advisory refresh 15 minutes, mandatory refresh 10 minutes before expiry).

:func:`aws_session` is what every AWS client of sigward should be built from: the federated session when configured,
else ``boto3.Session()`` with the SDK's own default credential chain.

- The metadata host is ``GCE_METADATA_HOST`` (as Google's libraries honour it) or ``metadata.google.internal``;
  requests carry ``Metadata-Flavor: Google``, never go through a proxy and are bounded in time.
- STS is reached as the SDK reaches it (``AWS_ENDPOINT_URL_STS`` / ``AWS_ENDPOINT_URL`` honoured, regional endpoint of
  ``AWS_REGION``, else us-east-1); the call is unsigned, as ``AssumeRoleWithWebIdentity`` requires no credentials.
- "Other credentials configured" means any of the SDK's environment sources: ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
  ``AWS_WEB_IDENTITY_TOKEN_FILE`` (IRSA), ``AWS_CONTAINER_CREDENTIALS_*``; those win, so a workload moved to EKS or
  ECS keeps working without removing ``SIGWARD_AWS_ROLE_ARN``.
- One credential object per (role, audience, metadata host, STS endpoint, region) is shared by every session of the
  process, so sessions created per backend or per request do not each fetch a token.

boto3 and botocore are imported on first use only (cold start).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sigward.errors import AccessDeniedError, ConfigurationError, ExternalServiceError

if TYPE_CHECKING:
    import boto3  # type: ignore[import-untyped]

ENV_ROLE_ARN = "SIGWARD_AWS_ROLE_ARN"
ENV_AUDIENCE = "SIGWARD_AWS_AUDIENCE"
ENV_SESSION_NAME = "SIGWARD_AWS_ROLE_SESSION_NAME"
DEFAULT_AUDIENCE = "sts.amazonaws.com"
DEFAULT_METADATA_HOST = "metadata.google.internal"
IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
SESSION_DURATION_SECONDS = 3600  # the default maximum session duration of an IAM role
METADATA_TIMEOUT_SECONDS = 3.0
STS_TIMEOUT_SECONDS = 5.0
MAX_TOKEN_BYTES = 16 * 1024
# Any of these means the SDK's own chain has credentials to use; federation then stays out of the way.
OTHER_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_ROLE_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]")
_DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidIdentityToken", "IDPRejectedClaim", "ExpiredTokenException", "InvalidParameterValue"}
)


@dataclass(frozen=True)
class FederationSettings:
    role_arn: str
    audience: str
    metadata_host: str
    session_name: str
    region: str
    sts_endpoint: str  # empty: the SDK's own resolution

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FederationSettings | None:
        """The settings when federation applies: ``SIGWARD_AWS_ROLE_ARN`` set and no other credentials; else None."""
        env = os.environ if environ is None else environ
        role = env.get(ENV_ROLE_ARN, "").strip()
        if not role or any(env.get(name, "").strip() for name in OTHER_CREDENTIAL_VARIABLES):
            return None
        if not _ROLE_ARN.match(role):
            raise ConfigurationError(f"{ENV_ROLE_ARN}={role!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        host = env.get("GCE_METADATA_HOST", "").strip() or DEFAULT_METADATA_HOST
        if "/" in host or "@" in host:
            raise ConfigurationError(f"GCE_METADATA_HOST={host!r} must be a host[:port]")
        name = env.get(ENV_SESSION_NAME, "").strip() or f"sigward-{env.get('K_SERVICE', '').strip() or 'gcp'}"
        name = _SESSION_NAME_BAD.sub("-", name)[:64]
        return cls(
            role_arn=role,
            audience=env.get(ENV_AUDIENCE, "").strip() or DEFAULT_AUDIENCE,
            metadata_host=host,
            session_name=name if len(name) >= 2 else "sigward",
            region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip(),
            sts_endpoint=(env.get("AWS_ENDPOINT_URL_STS") or env.get("AWS_ENDPOINT_URL") or "").strip(),
        )


def google_id_token(settings: FederationSettings) -> str:
    """A Google-signed ID token (JWT) of the instance's default service account for ``settings.audience``."""
    import requests

    url = f"http://{settings.metadata_host}{IDENTITY_PATH}"
    with requests.Session() as http:
        http.trust_env = False  # no proxy, no netrc: the metadata server is link-local
        try:
            resp = http.get(
                url,
                params={"audience": settings.audience, "format": "full"},
                headers={"Metadata-Flavor": "Google"},
                timeout=METADATA_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise ExternalServiceError(
                f"GCE metadata server {settings.metadata_host} unreachable for an ID token: {type(exc).__name__}"
            ) from None
    if resp.status_code != 200:
        raise ExternalServiceError(
            f"GCE metadata server {settings.metadata_host} refused an ID token for audience "
            f"{settings.audience!r} (HTTP {resp.status_code})"
        )
    token = resp.content[:MAX_TOKEN_BYTES].decode("ascii", "replace").strip()
    if token.count(".") != 2:
        raise ExternalServiceError(f"GCE metadata server {settings.metadata_host} returned no ID token (not a JWT)")
    return token


def _sts_client(settings: FederationSettings) -> Any:
    import botocore.session  # type: ignore[import-untyped]
    from botocore import UNSIGNED
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(
        signature_version=UNSIGNED,
        connect_timeout=STS_TIMEOUT_SECONDS,
        read_timeout=STS_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": 3},
        user_agent_extra="sigward",
    )
    session = botocore.session.get_session()
    return session.create_client(
        "sts",
        region_name=settings.region or "us-east-1",
        endpoint_url=settings.sts_endpoint or None,
        config=config,
    )


def assume_role(settings: FederationSettings, token_source: Callable[[FederationSettings], str]) -> dict[str, str]:
    """One ``AssumeRoleWithWebIdentity`` exchange, as the metadata ``RefreshableCredentials`` wants it."""
    from botocore import exceptions as boto

    token = token_source(settings)
    client = _sts_client(settings)
    try:
        response = client.assume_role_with_web_identity(
            RoleArn=settings.role_arn,
            RoleSessionName=settings.session_name,
            WebIdentityToken=token,
            DurationSeconds=SESSION_DURATION_SECONDS,
        )
    except boto.ClientError as exc:
        error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or "")[:200]
        if code in _DENIED_CODES:
            raise AccessDeniedError(
                f"AWS STS refused AssumeRoleWithWebIdentity for {settings.role_arn} ({code}: {message}): the role "
                f"must trust accounts.google.com with aud/sub = this service account's unique id"
            ) from None
        raise ExternalServiceError(
            f"AWS STS AssumeRoleWithWebIdentity for {settings.role_arn} failed ({code}: {message})"
        ) from None
    except boto.BotoCoreError as exc:
        raise ExternalServiceError(
            f"AWS STS unreachable for AssumeRoleWithWebIdentity ({type(exc).__name__})"
        ) from None
    finally:
        client.close()
    creds = response.get("Credentials") or {}
    expiration = creds.get("Expiration")
    if isinstance(expiration, dt.datetime):
        expiry = expiration if expiration.tzinfo else expiration.replace(tzinfo=dt.UTC)
    else:
        raise ExternalServiceError("AWS STS returned credentials without an expiration")
    return {
        "access_key": str(creds["AccessKeyId"]),
        "secret_key": str(creds["SecretAccessKey"]),
        "token": str(creds["SessionToken"]),
        "expiry_time": expiry.isoformat(),
    }


_lock = threading.Lock()
_credentials: dict[FederationSettings, Any] = {}


def federated_credentials(
    settings: FederationSettings, token_source: Callable[[FederationSettings], str] = google_id_token
) -> Any:
    """The process-wide ``RefreshableCredentials`` for ``settings`` (fetched on first use, then refreshed by
    botocore before expiry)."""
    from botocore.credentials import RefreshableCredentials  # type: ignore[import-untyped]

    with _lock:
        creds = _credentials.get(settings)
        if creds is None:
            creds = RefreshableCredentials.create_from_metadata(
                metadata=assume_role(settings, token_source),
                refresh_using=lambda: assume_role(settings, token_source),
                method="sigward-gcp-web-identity",
            )
            _credentials[settings] = creds
        return creds


def _provider(settings: FederationSettings) -> Any:
    from botocore.credentials import CredentialProvider

    class GoogleWebIdentityProvider(CredentialProvider):  # type: ignore[misc]
        METHOD = "sigward-gcp-web-identity"
        CANONICAL_NAME = "SigwardGoogleWebIdentity"

        def load(self) -> Any:
            return federated_credentials(settings)

    return GoogleWebIdentityProvider()


def aws_session(
    region_name: str | None = None,
    *,
    botocore_session: Any = None,
    environ: Mapping[str, str] | None = None,
) -> boto3.Session:
    """A boto3 session: federated from Google when ``SIGWARD_AWS_ROLE_ARN`` applies, else the SDK's default chain.

    ``botocore_session`` (optional) is a prepared botocore session (e.g. with default client timeouts); federation
    puts its credential provider first in that session's chain. Credentials are fetched lazily, on the first call
    that needs them, so creating a session never blocks."""
    import boto3
    import botocore.session

    settings = FederationSettings.from_env(environ)
    if settings is None:
        return boto3.session.Session(botocore_session=botocore_session, region_name=region_name)
    core = botocore_session or botocore.session.get_session()
    core.get_component("credential_provider").insert_before("env", _provider(settings))
    return boto3.session.Session(botocore_session=core, region_name=region_name)


def reset() -> None:
    """Forget cached federated credentials (tests change the environment between cases)."""
    with _lock:
        _credentials.clear()

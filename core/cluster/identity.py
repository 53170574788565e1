"""Bearer tokens for a GKE, EKS or AKS cluster from the function's own workload identity (no kubeconfig, no stored
secret): what ``gke-gcloud-auth-plugin``, ``aws eks get-token`` and ``kubelogin`` produce, made with the cloud's
own client library. Every SDK is imported lazily (cold start); every failure is a :class:`ClusterLookupError` whose
text names the provider and the error type, never a credential.

Settings (read by :func:`sigward.cluster.sources.cluster_data_from_env`):

- ``SIGWARD_CLUSTER_PROVIDER``: ``gke`` | ``eks`` | ``aks``
- ``SIGWARD_CLUSTER_SERVER``: the API server's ``https://`` URL; ``SIGWARD_CLUSTER_CA``: its CA bundle file
- ``SIGWARD_CLUSTER_NAME`` (EKS, required): the cluster name the token is bound to (``x-k8s-aws-id``);
  ``SIGWARD_CLUSTER_REGION`` (EKS, optional): the STS region (else the SDK's region, else ``us-east-1``)
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sigward.cluster.data import ClusterLookupError
from sigward.errors import ConfigurationError

Provider = Literal["gke", "eks", "aks"]
PROVIDERS: tuple[Provider, ...] = ("gke", "eks", "aks")
# OAuth scope GKE accepts for a Google access token (what gke-gcloud-auth-plugin requests).
GKE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# The well-known Entra application of AKS's AAD integration (the server app every managed AAD cluster trusts).
AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
# EKS: the token is an STS GetCallerIdentity URL presigned with the cluster name as a signed header.
EKS_TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format prefix, not a secret
EKS_CLUSTER_HEADER = "x-k8s-aws-id"
# EKS accepts presigned URLs at most 15 minutes old; 60 s (aws eks get-token's value) keeps a leaked token short-lived.
EKS_PRESIGN_SECONDS = 60
EKS_DEFAULT_REGION = "us-east-1"
# Token endpoint timeouts (AKS): a black-holed endpoint must not take azure-core's default 300 s.
TOKEN_CONNECT_TIMEOUT_SECONDS = 2.0
TOKEN_READ_TIMEOUT_SECONDS = 5.0


@dataclass
class GkeTokenSource:
    """A Google OAuth access token from Application Default Credentials (on GKE/Cloud Run: the metadata server)."""

    _credentials: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def token(self) -> str:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests

        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials, _ = google.auth.default(scopes=list(GKE_SCOPES))
                if not self._credentials.valid:
                    self._credentials.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.GoogleAuthError as exc:
                raise ClusterLookupError(f"GKE cluster token unavailable: {type(exc).__name__}") from None
            return str(self._credentials.token)


@dataclass
class EksTokenSource:
    """``aws eks get-token``'s token: a presigned STS GetCallerIdentity URL signed over ``x-k8s-aws-id``."""

    cluster_name: str
    region: str = ""
    endpoint_url: str | None = None  # STS endpoint override; the SDK also honours AWS_ENDPOINT_URL_STS
    _client: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _sts(self) -> Any:
        if self._client is None:
            from sigward.aws_federation import aws_session

            session = aws_session()
            region = self.region or session.region_name or EKS_DEFAULT_REGION
            client = session.client("sts", region_name=region, endpoint_url=self.endpoint_url)
            name = self.cluster_name

            def bind_cluster(request: Any, **_: Any) -> None:
                request.headers[EKS_CLUSTER_HEADER] = name

            client.meta.events.register("before-sign.sts.GetCallerIdentity", bind_cluster)
            self._client = client
        return self._client

    def token(self) -> str:
        import botocore.exceptions  # type: ignore[import-untyped]

        with self._lock:
            try:
                url = self._sts().generate_presigned_url(
                    "get_caller_identity", Params={}, ExpiresIn=EKS_PRESIGN_SECONDS, HttpMethod="GET"
                )
            except botocore.exceptions.BotoCoreError as exc:
                raise ClusterLookupError(f"EKS cluster token unavailable: {type(exc).__name__}") from None
        return EKS_TOKEN_PREFIX + base64.urlsafe_b64encode(str(url).encode()).decode().rstrip("=")


@dataclass
class AksTokenSource:
    """An Entra access token for the AKS AAD server application, from ``DefaultAzureCredential`` (workload identity,
    managed identity, environment service principal)."""

    _credential: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def token(self) -> str:
        from azure.core.exceptions import AzureError

        with self._lock:
            try:
                if self._credential is None:
                    from azure.identity import DefaultAzureCredential

                    self._credential = DefaultAzureCredential(
                        connection_timeout=TOKEN_CONNECT_TIMEOUT_SECONDS, read_timeout=TOKEN_READ_TIMEOUT_SECONDS
                    )
                return str(self._credential.get_token(AKS_SCOPE).token)
            except AzureError as exc:
                raise ClusterLookupError(f"AKS cluster token unavailable: {type(exc).__name__}") from None


TokenSource = GkeTokenSource | EksTokenSource | AksTokenSource


def token_source(provider: str, environ: Mapping[str, str]) -> TokenSource:
    """The token source ``SIGWARD_CLUSTER_PROVIDER`` names, with its settings checked."""
    if provider == "gke":
        return GkeTokenSource()
    if provider == "aks":
        return AksTokenSource()
    if provider == "eks":
        name = environ.get("SIGWARD_CLUSTER_NAME", "").strip()
        if not name:
            raise ConfigurationError("SIGWARD_CLUSTER_PROVIDER=eks needs SIGWARD_CLUSTER_NAME (the EKS cluster name)")
        return EksTokenSource(cluster_name=name, region=environ.get("SIGWARD_CLUSTER_REGION", "").strip())
    raise ConfigurationError(f"SIGWARD_CLUSTER_PROVIDER={provider!r} must be one of {', '.join(PROVIDERS)}")

"""A small, hardened Kubernetes API client: plain HTTPS GETs of the few paths sigward reads.

Why not the kubernetes client library: it is large (slow cold start), follows redirects, and reads unbounded bodies.
Here every request goes to the one configured API server, redirects are never followed, answers are capped at
:data:`MAX_RESPONSE_BYTES`, timeouts are short, and the bearer token is read fresh from its file for every request
(projected service-account tokens rotate) and never appears in a message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests

from sigward.cluster.data import ClusterLookupError, ObjectRef
from sigward.errors import ConfigurationError

if TYPE_CHECKING:
    from sigward.cluster.identity import TokenSource

# Kyverno caps apiCall answers at 10 MB in its admission controller; a ConfigMap is at most 1 MiB. 10 MB bounds both.
MAX_RESPONSE_BYTES = 10_000_000
# Connect/read timeouts: an admission decision has 8 s in all; a slow API server must not take them all.
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 3.0
# The read timeout bounds each wait for bytes, not the whole answer: a server trickling a byte every 2 s would hold a
# request (and the admission thread) for hours. The whole body must arrive within this, well inside the 8 s decision.
MAX_READ_SECONDS = 5.0
# Where a pod's service account credentials are mounted.
IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Connection:
    """How to reach one API server: its base URL, the CA bundle file that verifies it (None = system roots), and
    the bearer token (inline or a file re-read per request)."""

    server: str
    ca_file: str | None = None
    token: str = ""
    token_file: str = ""
    # The function's own workload identity (sigward.cluster.identity), asked for a token per request (it caches).
    token_source: TokenSource | None = field(default=None, compare=False, repr=False)

    def bearer(self) -> str:
        if self.token_source is not None:
            return self.token_source.token()
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise ClusterLookupError(f"cannot read the cluster token file: {exc.strerror or exc}") from None
        return self.token


class KubeClient:
    """GETs objects and raw paths from one API server (the ``ObjectSource``/``RawSource`` of the live connection)."""

    def __init__(self, connection: Connection, *, session: requests.Session | None = None) -> None:
        split = urlsplit(connection.server)
        if split.scheme != "https" or not split.hostname:
            raise ConfigurationError(f"cluster API server must be an https:// URL, got {connection.server!r}")
        self._conn = connection
        self._base = connection.server.rstrip("/")
        self._session = session or requests.Session()
        self._session.trust_env = False  # no proxy or netrc from the environment: credentials go only to this host

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        status, doc = self._request("GET", ref.api_path, None)
        if status == 404:
            return None
        if status != 200 or not isinstance(doc, Mapping):
            raise ClusterLookupError(f"failed to get {ref}: {_status_text(status, doc)}")
        return doc

    def raw(self, path: str, *, method: str = "GET", body: Any = None) -> Any:
        if not path.startswith("/") or ".." in path.split("?", 1)[0].split("/") or "//" in path or "#" in path:
            raise ClusterLookupError(f"apiCall urlPath {path!r} is not an absolute API path")
        status, doc = self._request(method, path, body)
        if status in (401, 403):
            raise ClusterLookupError(f"failed to {method} resource with raw url: {path}: permission denied")
        if status != 200:
            raise ClusterLookupError(f"failed to {method} resource with raw url: {path}: {_status_text(status, doc)}")
        return doc

    def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        url = self._base + quote(path, safe="/?=&-._~:%,")
        headers = {"Accept": "application/json", "User-Agent": "sigward/0.1 (+cluster data)", **IDENTITY_ENCODING}
        token = self._conn.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with self._session.request(
                method,
                url,
                headers=headers,
                json=body if method == "POST" else None,
                verify=self._conn.ca_file or True,
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
                allow_redirects=False,
                stream=True,
            ) as resp:
                data = read_capped(resp, "cluster API")
                status = resp.status_code
        except requests.RequestException as exc:
            # The exception text may quote the URL but never carries the Authorization header.
            raise ClusterLookupError(
                f"cluster API {urlsplit(self._base).netloc} unreachable: {type(exc).__name__}"
            ) from None
        if 300 <= status < 400:
            raise ClusterLookupError(f"cluster API answered {status} (a redirect) for {path}: not followed")
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
            if status == 200:
                raise ClusterLookupError(f"cluster API answered {path} with invalid JSON") from None
        return status, doc


#: Asked of every server whose answer :func:`read_capped` reads: the byte cap is then the size of the answer itself
#: (a compressed body would be decoded to many times its size, and decoding would read on without a time check).
IDENTITY_ENCODING = {"Accept-Encoding": "identity"}


def read_capped(resp: requests.Response, what: str) -> bytes:
    """The body of ``resp`` (sent with ``stream=True`` and :data:`IDENTITY_ENCODING`): at most
    :data:`MAX_RESPONSE_BYTES`, all of it within :data:`MAX_READ_SECONDS`. Reads at most one socket receive at a
    time (``read1``), so a trickling server meets the time check between receives; ``what`` names the server in
    the :class:`ClusterLookupError` raised otherwise."""
    import urllib3

    encoding = resp.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ClusterLookupError(f"{what} answered with Content-Encoding {encoding[:32]!r} although identity was asked")
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise ClusterLookupError(f"{what} answer larger than {MAX_RESPONSE_BYTES} bytes")
    give_up = time.monotonic() + MAX_READ_SECONDS
    out = bytearray()
    try:
        while True:
            chunk = resp.raw.read1(_CHUNK, decode_content=False)
            if not chunk:
                return bytes(out)
            out.extend(chunk)
            if len(out) > MAX_RESPONSE_BYTES:
                raise ClusterLookupError(f"{what} answer larger than {MAX_RESPONSE_BYTES} bytes")
            if time.monotonic() > give_up:
                raise ClusterLookupError(f"{what} answer took longer than {MAX_READ_SECONDS:g} s to arrive")
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterLookupError(f"{what} answer could not be read: {type(exc).__name__}") from None


def _status_text(status: int, doc: Any) -> str:
    if status in (401, 403):
        return f"HTTP {status}: permission denied"
    message = doc.get("message") if isinstance(doc, Mapping) else None
    text = f"HTTP {status}"
    if isinstance(message, str) and message:
        text += f": {message[:200]}"
    return text


def in_cluster_connection(environ: Mapping[str, str], directory: Path = IN_CLUSTER_DIR) -> Connection | None:
    """The pod's own service account connection, when running inside a cluster."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = directory / "token"
    if not host or not token_file.is_file():
        return None
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    ca = directory / "ca.crt"
    return Connection(
        server=f"https://{hostport}", ca_file=str(ca) if ca.is_file() else None, token_file=str(token_file)
    )


def kubeconfig_connection(path: str, workdir: Path) -> Connection:
    """The current context of a kubeconfig: server, CA (file or inline data, written to ``workdir``), bearer token
    (inline or ``tokenFile``). Client certificates and exec plugins (GKE/EKS/AKS) are refused by name."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"SIGWARD_KUBECONFIG {path}: cannot read: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ConfigurationError(f"SIGWARD_KUBECONFIG {path}: not a kubeconfig")
    current = doc.get("current-context")
    context = _named(doc.get("contexts"), current, "context", path)
    cluster = _named(doc.get("clusters"), context.get("cluster"), "cluster", path)
    user = _named(doc.get("users"), context.get("user"), "user", path) if context.get("user") else {}
    server = cluster.get("server")
    if not isinstance(server, str):
        raise ConfigurationError(f"SIGWARD_KUBECONFIG {path}: cluster has no server")
    if cluster.get("insecure-skip-tls-verify"):
        raise ConfigurationError(f"SIGWARD_KUBECONFIG {path}: insecure-skip-tls-verify is refused; give the CA")
    ca_file: str | None = None
    if isinstance(cluster.get("certificate-authority"), str):
        ca_file = cluster["certificate-authority"]
    elif isinstance(cluster.get("certificate-authority-data"), str):
        import base64

        workdir.mkdir(parents=True, exist_ok=True)
        ca_path = workdir / "kubeconfig-ca.pem"
        try:
            ca_path.write_bytes(base64.b64decode(cluster["certificate-authority-data"], validate=True))
        except ValueError:
            raise ConfigurationError(f"SIGWARD_KUBECONFIG {path}: certificate-authority-data is not base64") from None
        ca_file = str(ca_path)
    for refused in ("exec", "auth-provider", "client-certificate", "client-certificate-data", "username"):
        if refused in user:
            raise ConfigurationError(
                f"SIGWARD_KUBECONFIG {path}: user {refused} is not supported: use a bearer token (token or tokenFile)"
            )
    token = user.get("token") if isinstance(user.get("token"), str) else ""
    token_file = user.get("tokenFile") if isinstance(user.get("tokenFile"), str) else ""
    return Connection(server=server, ca_file=ca_file, token=token or "", token_file=token_file or "")


def workload_identity_connection(environ: Mapping[str, str]) -> Connection | None:
    """A GKE/EKS/AKS cluster reached with the function's own identity (``SIGWARD_CLUSTER_PROVIDER``), or None."""
    from sigward.cluster.identity import token_source

    provider = environ.get("SIGWARD_CLUSTER_PROVIDER", "").strip().lower()
    if not provider:
        return None
    server = environ.get("SIGWARD_CLUSTER_SERVER", "").strip()
    if not server:
        raise ConfigurationError(f"SIGWARD_CLUSTER_PROVIDER={provider} needs SIGWARD_CLUSTER_SERVER (https URL)")
    ca = environ.get("SIGWARD_CLUSTER_CA", "").strip()
    if ca and not Path(ca).is_file():
        raise ConfigurationError(f"SIGWARD_CLUSTER_CA {ca}: no such file")
    return Connection(server=server, ca_file=ca or None, token_source=token_source(provider, environ))


def _named(items: Any, name: Any, what: str, path: str) -> Mapping[str, Any]:
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and item.get("name") == name and isinstance(item.get(what), Mapping):
            return item[what]  # type: ignore[no-any-return]
    raise ConfigurationError(f"SIGWARD_KUBECONFIG {path}: no {what} named {name!r} (current-context)")

"""``apiCall.service``: calls from a policy to an HTTP(S) service, only to URLs the operator allowlisted.

A policy author must not be able to make sigward call arbitrary addresses (an SSRF into the function's network, the
cloud metadata server, internal admin APIs), so every call needs its URL to start with one of the prefixes in
``SIGWARD_APICALL_SERVICES`` (comma-separated, e.g. ``https://keys.internal.example/v1/``). Redirects are never
followed, answers are capped at Kyverno's 10 MB, timeouts are short, ``caBundle`` replaces the system roots, and the
environment's proxy settings are ignored.

Every connection goes through sigward's network guard (:mod:`sigward.netguard`): the host is resolved once,
every address checked, and the socket made to a checked address (no DNS rebinding between check and connect).
Link-local and cloud metadata addresses are refused always, even when an allowlisted name resolves to one; private
and loopback addresses only for a host an allowlisted prefix names exactly (an in-cluster
``http://svc.ns.svc.cluster.local`` service resolves to a private address and is allowlisted by name).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from sigward.cluster.api import CONNECT_TIMEOUT_SECONDS, IDENTITY_ENCODING, READ_TIMEOUT_SECONDS, read_capped
from sigward.cluster.data import ClusterLookupError
from sigward.netguard import BlockedAddressError, GuardedHTTPAdapter, NetworkGuard, Resolver, host_port
from sigward.policy.serviceurls import shown_url, split_service_url

SERVICES_ENV = "SIGWARD_APICALL_SERVICES"
# How much of a failing service's answer a message quotes: enough to recognise an error, too little to carry a
# document. Printable characters only (a body may hold terminal escapes or log-line breaks); 401/403 bodies are never
# quoted (a service may echo the credentials it refused).
ERROR_EXCERPT_CHARS = 80


def error_excerpt(status: int, data: bytes) -> str:
    """``HTTP <status>`` with at most :data:`ERROR_EXCERPT_CHARS` printable characters of the body (none for
    401/403)."""
    if status in (401, 403):
        return f"HTTP {status}: permission denied"
    text = data[: ERROR_EXCERPT_CHARS * 4].decode("utf-8", "replace")
    shown = " ".join("".join(c if c.isprintable() else " " for c in text).split())[:ERROR_EXCERPT_CHARS]
    return f"HTTP {status}: {shown}" if shown else f"HTTP {status}"


def _default_port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


@dataclass(frozen=True)
class ServiceCaller:
    allowed: tuple[str, ...]
    # How host names are resolved (tests give a fixed answer); None = the system resolver.
    resolver: Resolver | None = field(default=None, compare=False, repr=False)

    def guard(self) -> NetworkGuard:
        """The network guard for calls: private addresses only for the hosts (host and port) the allowlist names."""
        hosts: list[str] = []
        for prefix in self.allowed:
            try:
                split = urlsplit(prefix)
                port = _default_port(split.scheme, split.port)
            except ValueError:
                continue
            if split.hostname:
                hosts.append(host_port(split.hostname, port))
        return NetworkGuard.create(hosts, resolver=self.resolver)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServiceCaller:
        prefixes = tuple(p.strip() for p in environ.get(SERVICES_ENV, "").split(",") if p.strip())
        return cls(prefixes)

    def permits(self, url: str) -> bool:
        """Same scheme, host and port as an allowlisted prefix, and a path under its path (no dot-segments)."""
        split, _ = split_service_url(url)
        if split is None:
            return False
        port = split.port
        for prefix in self.allowed:
            allowed = urlsplit(prefix)
            same_origin = (allowed.scheme, allowed.hostname, allowed.port) == (split.scheme, split.hostname, port)
            base = allowed.path if allowed.path.endswith("/") else allowed.path + "/"
            if same_origin and (split.path + "/").startswith(base):
                return True
        return False

    def call(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Sequence[Mapping[str, Any]] = (),
        body: Any = None,
        ca_bundle: str = "",
    ) -> Any:
        if not self.permits(url):
            raise ClusterLookupError(f"apiCall service URL {shown_url(url)} is not allowlisted ({SERVICES_ENV})")
        if method not in ("GET", "POST"):
            raise ClusterLookupError(f"apiCall service method {method} is not GET or POST")
        sent = {str(h.get("key")): str(h.get("value")) for h in headers if isinstance(h, Mapping)}
        sent.update(IDENTITY_ENCODING)
        verify: str | bool = True
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=True) as ca:
            if ca_bundle:
                ca.write(ca_bundle)
                ca.flush()
                verify = ca.name
            try:
                with requests.Session() as session:
                    session.trust_env = False
                    adapter = GuardedHTTPAdapter(self.guard(), pool_connections=1, pool_maxsize=1)
                    session.mount("https://", adapter)
                    session.mount("http://", adapter)
                    with session.request(
                        method,
                        url,
                        headers=sent,
                        json=body if method == "POST" else None,
                        verify=verify,
                        timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
                        allow_redirects=False,
                        stream=True,
                    ) as resp:
                        data = read_capped(resp, "apiCall service")
                        status = resp.status_code
            except BlockedAddressError as exc:
                raise ClusterLookupError(f"apiCall service {shown_url(url)} refused: {exc.message}") from None
            except requests.RequestException as exc:
                blocked = _blocked_cause(exc)
                if blocked is not None:
                    raise ClusterLookupError(f"apiCall service {shown_url(url)} refused: {blocked.message}") from None
                raise ClusterLookupError(
                    f"apiCall service {urlsplit(url).netloc} unreachable: {type(exc).__name__}"
                ) from None
        if not 200 <= status < 300:
            raise ClusterLookupError(error_excerpt(status, data))
        try:
            return json.loads(data)
        except ValueError:
            raise ClusterLookupError(f"apiCall service {shown_url(url)} answered with invalid JSON") from None


def _blocked_cause(exc: BaseException) -> BlockedAddressError | None:
    """The guard's refusal when a client library wrapped it (urllib3/requests chain their exceptions)."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain; never loop on a cycle
        if seen is None:
            return None
        if isinstance(seen, BlockedAddressError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None

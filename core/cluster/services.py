"""``apiCall.service``: calls from a policy to an HTTP(S) service, only to URLs the operator allowlisted.

A policy author must not be able to make sigward call arbitrary addresses (an SSRF into the function's network, the
cloud metadata server, internal admin APIs), so every call needs its URL to start with one of the prefixes in
``SIGWARD_APICALL_SERVICES`` (comma-separated, e.g. ``https://keys.internal.example/v1/``). Redirects are never
followed, answers are capped at Kyverno's 10 MB, timeouts are short, ``caBundle`` replaces the system roots, and the
environment's proxy settings are ignored.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from sigward.cluster.api import CONNECT_TIMEOUT_SECONDS, IDENTITY_ENCODING, READ_TIMEOUT_SECONDS, read_capped
from sigward.cluster.data import ClusterLookupError
from sigward.policy.serviceurls import shown_url, split_service_url

SERVICES_ENV = "SIGWARD_APICALL_SERVICES"


@dataclass(frozen=True)
class ServiceCaller:
    allowed: tuple[str, ...]

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
            except requests.RequestException as exc:
                raise ClusterLookupError(
                    f"apiCall service {urlsplit(url).netloc} unreachable: {type(exc).__name__}"
                ) from None
        if not 200 <= status < 300:
            raise ClusterLookupError(f"HTTP {status}: {bytes(data[:200]).decode('utf-8', 'replace')}")
        try:
            return json.loads(data)
        except ValueError:
            raise ClusterLookupError(f"apiCall service {shown_url(url)} answered with invalid JSON") from None

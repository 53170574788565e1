"""An Azure Container Registry stand-in over HTTPS on loopback, in front of a real token-auth ``docker-registry``:
``POST /oauth2/exchange`` trades an Entra access token for an ACR refresh token (a JWT with ``exp``), ``POST
/oauth2/token`` trades that refresh token for a registry token (the real token server issues it), everything else
goes to the registry. The Entra side is :class:`EntraServer` (a :class:`KeyVaultServer` whose token endpoint issues
tokens for the ACR audience), reached by the real azure-identity through workload-identity variables."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from tests.support.keyvault_server import KeyVaultServer, LocalCA
from tests.support.tokenserver import TokenServer

ACR_AUDIENCE = "https://containerregistry.azure.net"
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"})


class EntraServer(KeyVaultServer):
    """Entra's token endpoint (``/TENANT/oauth2/v2.0/token``) for the ACR audience; ``tokens`` = issued tokens."""

    @property
    def resource(self) -> str:
        return ACR_AUDIENCE


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refresh_jwt(lifetime: float) -> str:
    """An ACR-style refresh token: a JWT whose ``exp`` is ``lifetime`` seconds away (signature not checked here)."""
    claims = {"jti": secrets.token_hex(8), "exp": int(time.time() + lifetime), "grant_type": "refresh_token"}
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(b'sig')}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up are part of the tests."""


class AcrFront:
    """``https://127.0.0.1:PORT``. ``accept_entra(token)`` decides the exchange; ``exchanges`` lists its forms."""

    def __init__(self, ca: LocalCA, token_server: TokenServer, tenant: str, accept_entra: Callable[[str], bool]):
        self.token_server = token_server
        self.tenant = tenant
        self.accept_entra = accept_entra
        self.refresh_lifetime = 3600.0
        self.upstream = ""  # the registry's ``ip:port``, set once it runs
        self.exchanges: list[dict[str, str]] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._httpd.socket = ca.server_context().wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"https://{self.host}/oauth2/token"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.exchanges.append(form)
        wrong = [
            name
            for name, ok in (
                ("grant_type", form.get("grant_type") == "access_token"),
                ("service", form.get("service") == self.host),
                ("tenant", form.get("tenant") == self.tenant),
                ("access_token", self.accept_entra(form.get("access_token", ""))),
            )
            if not ok
        ]
        if wrong:
            with self._lock:
                self.problems.append(",".join(wrong))
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid " + ", ".join(wrong)}]}
        refresh = refresh_jwt(self.refresh_lifetime)
        self.token_server.refresh_tokens[refresh] = "acr-workload"
        return 200, {"refresh_token": refresh}


def _handler(front: AcrFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self, target: str, path: str, body: bytes | None) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn = http.client.HTTPConnection(target, timeout=10)
            try:
                conn.request(self.command, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                headers_out = resp.getheaders()
                if self.command == "HEAD":
                    self.send_response(resp.status)
                    for key, value in headers_out:
                        if key.lower() not in _HOP_BY_HOP:
                            self.send_header(key, value)
                    self.end_headers()
                    return
                self._send(resp.status, headers_out, data)
            finally:
                conn.close()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            if self.command == "POST" and path == "/oauth2/exchange":
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                status, answer = front.exchange(form)
                self._send(status, [("Content-Type", "application/json")], json.dumps(answer).encode())
            elif path == "/oauth2/token":  # POST: refresh-token grant; GET: anonymous or Basic
                query = self.path[len(path) :]
                self._forward(front.token_server.host, "/token" + query, body or None)
            else:
                self._forward(front.upstream, self.path, body or None)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _handle  # noqa: N815 - http.server names

    return Handler

"""Scripted local HTTP servers for what a real registry will not do on demand: redirect to storage, throttle,
lie about digests, send hostile challenges, or never answer. Each records the requests it received."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclass(frozen=True)
class Seen:
    """One request a scripted server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    client_port: int


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # Send this Content-Length instead of the body's (to announce more than is sent, for example).
    content_length: int | None = None


Handler = Callable[[Seen], Reply]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up or fail the TLS handshake are part of the tests, not errors to print."""


class ScriptedServer:
    """A threaded HTTP/1.1 server whose every answer comes from ``handler``; use as a context manager."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = _QuietServer((host, 0), _request_handler(self))
        self.scheme = "https" if tls is not None else "http"
        if tls is not None:
            # The handshake happens in the handler thread, so a failed one does not stall the accept loop.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self.host_ip = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-server", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return f"{self.host_ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def requests_seen(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _request_handler(owner: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            if length:
                self.rfile.read(length)
            seen = Seen(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                client_port=int(self.client_address[1]),
            )
            owner.record(seen)
            reply = owner.handler(seen)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            size = reply.content_length if reply.content_length is not None else len(reply.body)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command != "HEAD" and reply.body:
                with contextlib.suppress(OSError):
                    self.wfile.write(reply.body)
            # A body cut short (the ``truncated`` fault) ends the connection. A HEAD answer announces the length of
            # a body it never sends: closing after it made the client's next request on that pooled connection race
            # the close (the intermittent "connection reset" of test_bearer_and_identity_tokens_never_in_logs...).
            truncated = self.command != "HEAD" and reply.content_length not in (None, len(reply.body))
            if truncated:
                self.close_connection = True

        do_GET = do_HEAD = do_POST = do_PUT = _handle  # noqa: N815 - http.server's method names

    return RequestHandler


def forward(target: str, seen: Seen, *, drop: tuple[str, ...] = ()) -> Reply:
    """Proxy one request to ``target`` (``http://host:port``) and return its answer unchanged."""
    headers = {k: v for k, v in seen.headers.items() if k not in _HOP_BY_HOP and k not in drop}
    with requests.Session() as session:
        session.trust_env = False
        resp = session.request(
            seen.method, target + seen.path, headers=headers, allow_redirects=False, timeout=10, stream=True
        )
        body = resp.raw.read(decode_content=False) if seen.method != "HEAD" else b""
        out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP}
        reply = Reply(status=resp.status_code, headers=out_headers, body=body)
        if seen.method == "HEAD" and "Content-Length" in resp.headers:
            reply.content_length = int(resp.headers["Content-Length"])
        return reply


class SilentServer:
    """Accepts TCP connections and never answers: a registry that hangs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self.host_ip = host
        self.port = int(self._sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"{self.host_ip}:{self.port}"

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._held:
            conn.close()
        self._sock.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

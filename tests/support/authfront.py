"""A same-origin front for a token-auth ``docker-registry``: one loopback port serving ``/token`` (forwarded to a
token server) and everything else (forwarded to the registry), as real registries serve their own realm
(``gcr.io/v2/token``, ``REG.azurecr.io/oauth2/token``). sigward sends a registry's credentials only to a realm on
the registry's own origin, so tests of credentialed token auth need this; a realm on another port is foreign."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"})


class _FrontServer(ThreadingHTTPServer):
    # The default listen backlog (5) resets connections when parallel tests burst at the front.
    request_queue_size = 128
    daemon_threads = True


class SameOriginFront:
    """Forwards ``path_prefixes`` → ``side_host`` and every other path → ``main_host`` (both ``ip:port``)."""

    def __init__(self, host_ip: str, port: int, main_host: str, side_host: str, path_prefixes: tuple[str, ...]) -> None:
        self.main_host = main_host
        self.side_host = side_host
        self.prefixes = path_prefixes
        server = _FrontServer((host_ip, port), _handler_for(self))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(front: SameOriginFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            target = front.side_host if self.path.startswith(front.prefixes) else front.main_host
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn = http.client.HTTPConnection(target, timeout=10)
            try:
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except OSError:
                    # The registry behind is not up yet (start() polls through the front): answer like a gateway
                    # instead of dropping the connection with a traceback on stderr.
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                conn.close()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815 - http.server names

    return Handler

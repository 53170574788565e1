"""The local RFC 3161 TSA (tests/support/tsa.py) served over HTTP on 127.0.0.1, as ``sigward sign --tsa-url`` talks
to DigiCert or GlobalSign: POST ``application/timestamp-query``, answer ``application/timestamp-reply``. ``mode``
scripts the hostile answers (wrong imprint, wrong nonce, an HTTP error, not a response)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.tsa import LocalTSA

MODES = ("ok", "wrong-imprint", "wrong-nonce", "http-500", "garbage")


def _read(data: bytes, at: int) -> tuple[int, int, int]:
    tag, first = data[at], data[at + 1]
    start = at + 2
    if first & 0x80:
        count = first & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    else:
        length = first
    return tag, start, start + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(data):
        tag, start, end = _read(data, at)
        out.append((tag, data[start:end]))
        at = end
    return out


def parse_request(der: bytes) -> tuple[bytes, int | None]:
    """``(imprint, nonce)`` of a DER TimeStampReq (RFC 3161 §2.4.1)."""
    _, start, end = _read(der, 0)
    fields = _children(der[start:end])
    imprint = _children(fields[1][1])[1][1]
    nonce = next((int.from_bytes(v, "big", signed=True) for t, v in fields[2:] if t == 0x02), None)
    return imprint, nonce


class TSAServer:
    """Use as a context manager; ``url`` is where to POST. ``gen_time`` gives each token's time (now by default)."""

    def __init__(
        self,
        tsa: LocalTSA,
        *,
        mode: str = "ok",
        gen_time: Callable[[], datetime] = lambda: datetime.now(UTC),
        embed_chain: bool = True,
    ) -> None:
        assert mode in MODES, mode
        self.tsa, self.mode, self.gen_time, self.embed_chain = tsa, mode, gen_time, embed_chain
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.requests += 1
                status, reply = server.answer(body, self.headers.get("Content-Type", ""))
                self.send_response(status)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/tsa"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def answer(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        if self.mode == "http-500" or content_type != "application/timestamp-query":
            return 500, b"no"
        if self.mode == "garbage":
            return 200, b"\x30\x03\x02\x01\x00not a response"
        imprint, nonce = parse_request(body)
        if self.mode == "wrong-imprint":
            imprint = bytes(32)
        if self.mode == "wrong-nonce" and nonce is not None:
            nonce += 1
        return 200, self.tsa.stamp(
            b"",
            gen_time=self.gen_time(),
            imprint=imprint,
            nonce=nonce,
            embed=self.tsa.chain if self.embed_chain else (),
        )

    def __enter__(self) -> TSAServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

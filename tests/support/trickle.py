"""A loopback HTTP server that answers every request with a 200 whose body trickles in, one byte per interval:
each wait for bytes is short (no read timeout fires), the whole answer takes ``duration`` seconds. What a client
bounding only its per-read timeout never finishes in time."""

from __future__ import annotations

import socket
import threading
import time


class TrickleServer:
    def __init__(self, *, interval: float = 0.1, duration: float = 8.0, announced: int = 100_000) -> None:
        self.interval, self.duration, self.announced = interval, duration, announced
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {self.announced}\r\n\r\n"
                conn.sendall(head.encode())
                ends = time.monotonic() + self.duration
                while time.monotonic() < ends and not self._stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(self.interval)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> TrickleServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

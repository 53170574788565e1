"""Fault injection for decision-level tests: a proxy in front of the real registry whose faults are switched on and
off while a test runs, a raw server for what ``http.server`` cannot send (chunked bodies without a length), a
listener that counts connections, an admission service wired to the real registry client, and a check that no
worker thread is still busy after a decision.

Everything listens on loopback; nothing here reaches another host.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import io
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigward import logs
from sigward.admission.http import handle_admission
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.policy.loader import load_policy_text
from sigward.registry import CredentialStore, RegistryClient, RegistryConfig
from sigward.store import VerdictStore
from sigward.verify.caching import CachingSignatureSource
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource
from tests.support.admission import pod, pod_request, review
from tests.support.httpservers import Reply, ScriptedServer, Seen, forward
from tests.support.policies import dump

# sigward's own frames, whichever path imported it (the checkout's sigward -> core link, or core/ itself)
CORE_DIRS = tuple(str(Path(__file__).resolve().parents[2] / name) + "/" for name in ("sigward", "core"))

Fault = Callable[[Seen], Reply | None]


# -- which requests a fault applies to ---------------------------------------------------------------------------------


def is_signature_manifest(seen: Seen) -> bool:
    return "/manifests/sha256-" in seen.path and seen.path.endswith(".sig")


def is_blob(seen: Seen) -> bool:
    return "/blobs/" in seen.path


def is_image_manifest(seen: Seen) -> bool:
    return "/manifests/" in seen.path and "/manifests/sha256-" not in seen.path


def everything(seen: Seen) -> bool:
    return True


# -- the proxy ---------------------------------------------------------------------------------------------------------


class FaultProxy:
    """Forwards every request to ``upstream`` (a real registry) unless ``fault`` answers it instead.

    ``fault`` may be replaced at any time (``heal()`` removes it); ``sleep`` waits inside a handler but ends at
    once when the proxy closes, so a "slow" registry never holds up the end of a test.
    """

    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.fault: Fault | None = None
        self._closing = threading.Event()
        self.server = ScriptedServer(self._handle, host)

    @property
    def host(self) -> str:
        return self.server.host

    def _handle(self, seen: Seen) -> Reply:
        fault = self.fault
        if fault is not None:
            reply = fault(seen)
            if reply is not None:
                return reply
        return forward(self.upstream, seen)

    def seen(self) -> list[Seen]:
        return self.server.requests_seen()

    def heal(self) -> None:
        self.fault = None

    def sleep(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def close(self) -> None:
        self._closing.set()
        self.server.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults (each returns a Fault to assign to ``fault``)

    def status(self, code: int, *, when: Callable[[Seen], bool] = everything, headers: Mapping[str, str] = {}) -> Fault:
        body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected"}]}).encode()
        return lambda seen: Reply(code, {"Content-Type": "application/json", **headers}, body) if when(seen) else None

    def throttle(
        self, retry_after: str, *, times: int | None = None, when: Callable[[Seen], bool] = everything
    ) -> Fault:
        """429 with ``Retry-After`` for the first ``times`` matching requests (all of them when None)."""
        count = [0]
        lock = threading.Lock()

        def fault(seen: Seen) -> Reply | None:
            if not when(seen):
                return None
            with lock:
                count[0] += 1
                if times is not None and count[0] > times:
                    return None
            return Reply(429, {"Retry-After": retry_after}, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}')

        return fault

    def slow(self, seconds: float, *, when: Callable[[Seen], bool] = everything) -> Fault:
        """Answer correctly, but only after ``seconds``."""

        def fault(seen: Seen) -> Reply | None:
            if when(seen):
                self.sleep(seconds)
            return None

        return fault

    def truncated(self, *, when: Callable[[Seen], bool]) -> Fault:
        """The real answer announced in full (Content-Length) but cut in half, then the connection is closed."""

        def fault(seen: Seen) -> Reply | None:
            if not when(seen) or seen.method == "HEAD":
                return None
            real = forward(self.upstream, seen)
            return Reply(real.status, real.headers, real.body[: len(real.body) // 2], content_length=len(real.body))

        return fault

    def rewrite(self, transform: Callable[[bytes], bytes], *, when: Callable[[Seen], bool]) -> Fault:
        """The real answer with its body changed and its headers (Docker-Content-Digest included) kept."""

        def fault(seen: Seen) -> Reply | None:
            if not when(seen) or seen.method == "HEAD":
                return None
            real = forward(self.upstream, seen)
            return Reply(real.status, real.headers, transform(real.body))

        return fault

    def gzip_encoded(self, *, when: Callable[[Seen], bool], body: bytes | None = None) -> Fault:
        """``Content-Encoding: gzip`` although identity was asked for: the real body compressed, or a gzip bomb."""

        def fault(seen: Seen) -> Reply | None:
            if not when(seen) or seen.method == "HEAD":
                return None
            real = forward(self.upstream, seen)
            payload = body if body is not None else gzip.compress(real.body)
            return Reply(real.status, {**real.headers, "Content-Encoding": "gzip"}, payload)

        return fault


def gzip_bomb(expanded: int = 64 * 1024 * 1024) -> bytes:
    """``expanded`` zero bytes, gzip-compressed (~1000:1): a few dozen KiB that would inflate to ``expanded``."""
    out = io.BytesIO()
    chunk = b"\0" * (1024 * 1024)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        for _ in range(expanded // len(chunk)):
            gz.write(chunk)
    return out.getvalue()


# -- a raw server ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRequest:
    method: str
    path: str
    headers: Mapping[str, str]


RawHandler = Callable[[RawRequest], Iterable[bytes]]


class RawServer:
    """Reads one request per connection and writes whatever ``handler`` yields, byte for byte, then closes."""

    def __init__(self, handler: RawHandler, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.requests: list[RawRequest] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(32)
        self._sock.settimeout(0.1)
        self.host = f"{host}:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), name="raw-server-conn", daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, path = [*head[0].split(" "), "", ""][:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
            request = RawRequest(method=method, path=path, headers=headers)
            with self._lock:
                self.requests.append(request)
            with contextlib.suppress(OSError):
                for piece in self.handler(request):
                    if self._stop.is_set():
                        return
                    conn.sendall(piece)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_reply(reply: Reply, method: str) -> bytes:
    """A :class:`Reply` as HTTP/1.1 bytes (``Connection: close``)."""
    lines = [f"HTTP/1.1 {reply.status} X"]
    lines += [f"{k}: {v}" for k, v in reply.headers.items() if k.lower() not in ("content-length", "connection")]
    lines += [f"Content-Length: {len(reply.body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + (reply.body if method != "HEAD" else b"")


def chunked(total: int, piece: int = 256 * 1024, headers: Mapping[str, str] = {}) -> Iterator[bytes]:
    """A 200 answer streaming ``total`` bytes of JSON-ish filler with ``Transfer-Encoding: chunked`` and no length."""
    head = ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    yield ("\r\n".join(head) + "\r\n\r\n").encode()
    sent = 0
    while sent < total:
        size = min(piece, total - sent)
        yield f"{size:x}\r\n".encode() + b" " * size + b"\r\n"
        sent += size
    yield b"0\r\n\r\n"


# -- a listener that only counts ---------------------------------------------------------------------------------------


class AcceptCounter:
    """Listens on ``host`` and counts TCP connections accepted (and closes them): proof that nobody connected."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.host_ip = host
        self.port = int(self._sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accept-counter", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"{self.host_ip}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> AcceptCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- an admission service on the real registry client ------------------------------------------------------------------


@dataclass
class Admission:
    """An :class:`AdmissionService` over a real :class:`RegistryClient`, decided through ``handle_admission``."""

    service: AdmissionService
    client: RegistryClient
    source: CachingSignatureSource
    log: io.StringIO = field(default_factory=io.StringIO)

    def decide(self, *images: str, path: str = "/mutate", **request: Any) -> tuple[dict[str, Any], float]:
        """The AdmissionReview response for a Pod with ``images``, and the seconds it took."""
        doc = review(pod_request(pod(*images), **request))
        started = time.monotonic()
        resp = handle_admission(
            method="POST",
            path=path,
            headers={},
            body=json.dumps(doc).encode(),
            service=lambda: self.service,
            environ={},
        )
        elapsed = time.monotonic() - started
        assert resp.status == 200, resp.body
        body = json.loads(resp.body)
        assert body["response"]["uid"] == doc["request"]["uid"]
        return body["response"], elapsed

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.startswith("{")]

    def close(self) -> None:
        self.service.close()
        self.client.close()


@contextlib.contextmanager
def admission(
    *policies: Mapping[str, Any],
    insecure: Iterable[str],
    private: Sequence[str] = ("127.0.0.1",),
    deadline: float = 1.5,
    fail_ttl: float = 30.0,
    pass_ttl: float = 600.0,
    store: VerdictStore | None = None,
    credentials: CredentialStore | None = None,
    config: Mapping[str, Any] | None = None,
    workers: int = 8,
) -> Iterator[Admission]:
    """An admission service as ``sigward.wiring`` builds it (caching signature source, default key resolver), with
    its own registry client, deadline and negative-cache TTL; its log lines are captured in ``Admission.log``."""
    loaded = load_policy_text(dump(*policies), "faults.yaml").policies
    registry_config = RegistryConfig(
        insecure_registries=frozenset(insecure),
        private_registries=frozenset(private),
        connect_timeout=2.0,
        read_timeout=5.0,
        **(config or {}),
    )
    client = RegistryClient(registry_config, credentials=credentials or CredentialStore.empty())
    source = CachingSignatureSource(RegistrySignatureSource(client))
    service = AdmissionService(
        policies=lambda: loaded,
        verifier=Verifier(source=source),
        settings=AdmissionSettings(deadline_seconds=deadline, fail_ttl=fail_ttl, pass_ttl=pass_ttl, workers=workers),
        store=store,
    )
    stack = Admission(service=service, client=client, source=source)
    logs.set_stream(stack.log)
    try:
        yield stack
    finally:
        logs.set_stream(None)
        stack.close()


# -- worker threads ----------------------------------------------------------------------------------------------------


def busy_threads() -> list[str]:
    """Threads (other than this one) that are executing sigward code right now, with where they are."""
    # Regression (a hang of the whole serial suite): on CPython 3.11 sys._current_frames() allocates while holding the
    # runtime's thread-list lock; a garbage collection there ran a urllib3 pool finalizer that released the GIL to
    # close a socket, while a thread being created or ending held the GIL and waited for that lock: a deadlock. No
    # collection may run inside the call.
    enabled = gc.isenabled()
    gc.disable()
    try:
        frames = sys._current_frames()
    finally:
        if enabled:
            gc.enable()
    me = threading.get_ident()
    busy = []
    for thread in threading.enumerate():
        if thread.ident is None or thread.ident == me:
            continue
        frame = frames.get(thread.ident)
        where = []
        while frame is not None:
            if frame.f_code.co_filename.startswith(CORE_DIRS):
                where.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
            frame = frame.f_back
        # an idle FairPool thread waits for work inside its own loop (sigward.admission.scheduling) and nowhere else
        if where and not all(w.startswith("scheduling.py:") and w.endswith(" _work") for w in where):
            busy.append(f"{thread.name}: {' <- '.join(where[:4])}")
    return busy


def wait_until_idle(timeout: float = 4.0) -> float:
    """Seconds until no thread runs sigward code; fails (naming the busy threads) after ``timeout``."""
    started = time.monotonic()
    while True:
        busy = busy_threads()
        if not busy:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"worker threads still busy {timeout}s after the decision: {busy}")
        time.sleep(0.02)

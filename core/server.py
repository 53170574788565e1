"""``sigward serve``: every function target on one port — ``/admission/...``, ``/push/...`` — plus ``GET
/healthz``.

Why our own front instead of gunicorn: a gunicorn (g)thread worker gives a connection a thread while its headers and
body trickle in, so a few hundred slow or idle clients (slowloris) hold every thread and valid admissions wait past
the webhook timeout — which ``failurePolicy: Ignore`` turns into an allow. Here an asyncio loop (h11 parses HTTP/1.1)
owns every connection while it is incomplete, which costs a socket, not a thread:

- the request head must arrive within :data:`HEAD_SECONDS` of the connection (or of the previous answer), the body
  within :data:`BODY_SECONDS`; the head, its target and its field count are bounded (431 / 414);
- the admission token / push secret is checked on the head, *before* the body is read (401, connection closed), and
  a body announced past the limit is refused (413) unread; ``Expect: 100-continue`` is honoured only then;
- only complete requests reach the Flask app, on bounded thread pools per lane — admission, push, other — so a flood
  of push deliveries (whose lane also has a bounded queue: 503 past it, the platform redelivers) never takes a thread
  admission needs;
- past :data:`MAX_CONNECTIONS` the connection that has waited longest without sending a complete request is dropped
  (never one being answered), so piling up sockets cannot lock valid clients out.

Several processes (``--workers``, default: one per core) accept on one inherited listening socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import os
import signal
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    import ssl

    import flask
    import h11

# A webhook client (the API server, a registry) sends a whole request in milliseconds; 5 s is generous on a slow link
# and short enough that idle or trickling sockets are reclaimed long before they add up.
HEAD_SECONDS = 5.0
# The largest body (4 MiB AdmissionReview) at a slow 1 MiB/s.
BODY_SECONDS = 5.0
# gunicorn's defaults: a request line past 4 KiB, a field past 8 KiB, more than 100 fields are not webhook traffic.
MAX_TARGET_BYTES = 4096
MAX_HEADER_FIELDS = 100
MAX_FIELD_BYTES = 8190
MAX_HEAD_BYTES = 32 * 1024
# Connections per process; well under the usual descriptor limit, far above what a cluster's webhook traffic needs.
MAX_CONNECTIONS = 4096
# Push deliveries waiting for a thread beyond the lane's threads; past it → 503 (the platform redelivers).
PUSH_QUEUE = 16
PUSH_THREADS = 4
# A push delivery that waited this long for a thread is answered 503 unprocessed: its sender has a short timeout
# (EventBridge 5 s) and redelivers anyway, and work for a gone sender would only delay the next deliveries.
PUSH_QUEUE_SECONDS = 1.0
OTHER_THREADS = 2
READ_CHUNK = 64 * 1024
# An admission whose verdicts are all cached is answered on the event loop itself, without a thread hop — when its
# review is at most this big: parsing and deciding it then takes well under a millisecond, so no other connection
# waits longer than that. Larger reviews, and any that need the registry or the store, go to the admission threads.
INLINE_REVIEW_BYTES = 64 * 1024


def create_app() -> flask.Flask:
    import flask

    from sigward.flaskio import serve_admission, serve_push_pubsub, serve_push_webhook
    from sigward.wiring import process_services

    app = flask.Flask("sigward")
    # "//" in a path must not become a redirect that echoes the path (the admission token may be a segment of it)
    app.url_map.merge_slashes = False

    @app.route("/healthz", methods=["GET"])
    def healthz() -> flask.Response:
        try:
            loaded = process_services().policies()
        except Exception as exc:
            return flask.Response(
                json.dumps({"status": "unhealthy", "error": str(exc)}), status=503, mimetype="application/json"
            )
        body = {"status": "ok", "policies": [p.key for p in loaded.policies]}
        return flask.Response(json.dumps(body), status=200, mimetype="application/json")

    @app.route("/metrics", methods=["GET"])
    def metrics_text() -> flask.Response:
        from sigward import metrics

        if not metrics.enabled():
            return flask.Response(json.dumps({"error": "metrics are off"}), status=404, mimetype="application/json")
        body, content_type = metrics.render()
        return flask.Response(body, status=200, content_type=content_type)

    @app.route("/admission", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    @app.route("/admission/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def admission(rest: str) -> flask.Response:
        return serve_admission(flask.request, path="/" + rest, service=lambda: process_services().admission())

    @app.route("/push/pubsub", methods=["POST", "GET", "PUT"])
    def push_pubsub() -> flask.Response:
        return serve_push_pubsub(flask.request, service=lambda: process_services().push())

    @app.route("/push/webhook", methods=["POST", "OPTIONS", "GET", "PUT"])
    def push_webhook() -> flask.Response:
        return serve_push_webhook(flask.request, service=lambda: process_services().push())

    @app.route("/reverify", methods=["POST", "GET"])
    def reverify() -> flask.Response:
        from sigward.flaskio import serve_reverify

        return serve_reverify(
            flask.request, env=process_services().environ, service=lambda: process_services().reverify()
        )

    return app


# -- the front -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    head_seconds: float = HEAD_SECONDS
    body_seconds: float = BODY_SECONDS
    max_connections: int = MAX_CONNECTIONS
    admission_threads: int = 16
    push_threads: int = PUSH_THREADS
    push_queue: int = PUSH_QUEUE


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _json_answer(status: int, message: str) -> Answer:
    return Answer(status, (("Content-Type", "application/json"),), json.dumps({"error": message}).encode())


def _busy() -> Answer:
    """The push lane is full: the platform redelivers on a 503."""
    answer = _json_answer(503, "busy with other push deliveries: retry later")
    return Answer(503, (*answer.headers, ("Retry-After", "1")), answer.body)


def lane_of(path: str) -> str:
    if path == "/admission" or path.startswith("/admission/"):
        return "admission"
    if path.startswith("/push/"):
        return "push"
    return "other"


def body_limit(lane: str) -> int:
    from sigward.admission.review import MAX_REVIEW_BYTES
    from sigward.events import MAX_WEBHOOK_BYTES

    return {"admission": MAX_REVIEW_BYTES, "push": MAX_WEBHOOK_BYTES}.get(lane, 64 * 1024)


def refuse_before_body(lane: str, path: str, headers: Mapping[str, str], environ: Mapping[str, str]) -> Answer | None:
    """The answer to give on the head alone (401), using the adapters' own checks; None to read the body. A push
    request signed by a body HMAC (GitHub) can only be judged with its body, which the adapter then checks."""
    if lane == "admission":
        value = environ.get("SIGWARD_ADMISSION_TOKEN", "")
        if value:
            from sigward.admission.http import authenticate_tokens, parse_tokens
            from sigward.errors import ConfigurationError

            try:
                tokens = parse_tokens(value)
            except ConfigurationError:
                return None  # the adapter answers a misconfiguration with a denial, not a 401
            if authenticate_tokens(path=path, headers=headers, tokens=tokens)[0] is None:
                return _json_answer(401, "unauthorized: the admission token is missing or wrong")
    elif lane == "push":
        secret = environ.get("SIGWARD_PUSH_SECRET", "")
        if path.rstrip("/").endswith("/pubsub") and _pubsub_oidc_configured(environ):
            return None  # Pub/Sub deliveries prove themselves with a Google OIDC token, checked by the adapter
        if secret:
            from sigward.events.auth import SIGNATURE_HEADER, Unauthenticated, authenticate

            if SIGNATURE_HEADER.lower() not in {k.lower() for k in headers}:
                try:
                    authenticate(headers, b"", secret=secret)
                except Unauthenticated as exc:
                    return _json_answer(401, f"unauthorized: {exc.message}")
    return None


def _pubsub_oidc_configured(environ: Mapping[str, str]) -> bool:
    """Whether ``push_pubsub`` checks OIDC tokens instead of the push secret -- the adapter's own reading of the
    settings (half a configuration counts as configured: the adapter answers it as a misconfiguration)."""
    from sigward.errors import ConfigurationError
    from sigward.events.auth import PubSubAuth

    try:
        return PubSubAuth.from_env(environ) is not None
    except ConfigurationError:
        return True


def call_wsgi(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> Answer:
    """Run the WSGI app on a complete request and collect its (small) answer."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started[:] = [status, headers]
        return lambda _data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return Answer(int(status.split(" ", 1)[0]), tuple(headers), body)


@dataclass(frozen=True)
class AdmissionHandlers:
    """The admission target called directly with the parsed request (no WSGI/Flask per request): ``decide`` on an
    admission thread; ``from_memory`` on the event loop, None when the answer needs more than memory."""

    decide: Callable[[str, Mapping[str, str], bytes], Answer]
    from_memory: Callable[[str, Mapping[str, str], bytes], Answer | None]


def admission_handlers() -> AdmissionHandlers:
    """The admission target of :func:`create_app`'s ``/admission/...`` route, as :class:`AdmissionHandlers`."""
    from sigward.admission.http import HttpResponse, answer_from_memory, handle_admission
    from sigward.wiring import process_services

    def answer(response: HttpResponse) -> Answer:
        return Answer(response.status, tuple(response.headers.items()), response.body)

    def decide(path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        return answer(
            handle_admission(
                method="POST", path=path, headers=headers, body=body, service=lambda: process_services().admission()
            )
        )

    def from_memory(path: str, headers: Mapping[str, str], body: bytes) -> Answer | None:
        svc = process_services().admission_if_built()
        if svc is None:
            return None  # building it blocks (store, trust root): the first admission does that on a thread
        found = answer_from_memory(method="POST", path=path, headers=headers, body=body, service=lambda: svc)
        return None if found is None else answer(found)

    return AdmissionHandlers(decide=decide, from_memory=from_memory)


def admission_path(path: str) -> str | None:
    """The path the admission handler sees, exactly as :func:`create_app`'s route gives it (after ``/admission``,
    UTF-8); None for a path that route does not match (``/admission/``, ``/admission//…``: 404 as before)."""
    if path == "/admission":
        return "/"
    rest = path[len("/admission/") :]
    if not path.startswith("/admission/") or not rest or rest.startswith("/"):
        return None
    return "/" + rest.encode("latin-1").decode("utf-8", "replace")


def _call_if_fresh(app: Callable[..., Iterable[bytes]], environ: dict[str, Any], stale_at: float) -> Answer:
    if time.monotonic() > stale_at:
        return _busy()
    return call_wsgi(app, environ)


class Front:
    """One process's HTTP/1.1 server: connections on the event loop, complete requests on per-lane thread pools."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        limits: Limits | None = None,
        environ: Mapping[str, str] | None = None,
        server_port: int = 0,
        admission: AdmissionHandlers | None = None,
    ) -> None:
        """``admission``: POSTs to ``/admission/...`` go to these instead of the app (same answers, less work)."""
        self._app = app
        self._admission = admission
        self.limits = limits or Limits()
        self._environ = os.environ if environ is None else environ
        self._port = str(server_port)
        self._pools = {
            "admission": ThreadPoolExecutor(self.limits.admission_threads, thread_name_prefix="serve-admission"),
            "push": ThreadPoolExecutor(self.limits.push_threads, thread_name_prefix="serve-push"),
            "other": ThreadPoolExecutor(OTHER_THREADS, thread_name_prefix="serve-other"),
        }
        self._push_inflight = 0
        # connections not (yet) inside a request we are answering, oldest first: the ones to drop at the cap
        self._waiting: OrderedDict[int, asyncio.Task[None]] = OrderedDict()
        self._open = 0

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open += 1
        if self._open > self.limits.max_connections and self._waiting:
            _, oldest = self._waiting.popitem(last=False)
            oldest.cancel()
        try:
            linger = await self._serve_connection(reader, writer, id(task), task)
            self._waiting.pop(id(task), None)
            await _close(reader, writer, linger=linger)
        except (asyncio.CancelledError, ConnectionError, OSError, TimeoutError):
            writer.transport.abort()
        finally:
            self._waiting.pop(id(task), None)
            self._open -= 1

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: int, task: asyncio.Task[None]
    ) -> bool:
        """Answer requests until the connection ends; True when it ends on an answer sent before the request was
        read to its end (then the rest is discarded for a moment, so the client can read the answer)."""
        import h11

        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        peer = writer.get_extra_info("peername")
        while True:
            self._waiting[key] = task
            try:
                request = await asyncio.wait_for(self._next(conn, reader), self.limits.head_seconds)
            except TimeoutError:
                return False  # idle or trickling: closed without an answer, as a reverse proxy would
            except h11.RemoteProtocolError as exc:
                await self._send_error(conn, writer, exc.error_status_hint or 400, "malformed HTTP request")
                return True
            if request is None:
                return False
            self._waiting.pop(key, None)
            answer, keep = await self._answer(conn, reader, writer, request, peer)
            if not await self._send(conn, writer, request, answer, keep):
                return False
            if conn.our_state is h11.MUST_CLOSE or not keep:
                return not keep
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return False

    async def _next(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        import h11

        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(READ_CHUNK)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            return event

    async def _answer(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        peer: Any,
    ) -> tuple[Answer, bool]:
        """(answer, keep the connection)."""
        import h11

        target = request.target
        if len(target) > MAX_TARGET_BYTES:
            return _json_answer(414, "request target too long"), False
        if len(request.headers) > MAX_HEADER_FIELDS:
            return _json_answer(431, "too many header fields"), False
        if any(len(name) + len(value) > MAX_FIELD_BYTES for name, value in request.headers):
            return _json_answer(431, "header field too large"), False
        names = [name for name, _ in request.headers]
        if b"transfer-encoding" in names and b"content-length" in names:
            return _json_answer(400, "both Content-Length and Transfer-Encoding"), False
        raw_path, _, query = target.partition(b"?")
        path = unquote_to_bytes(raw_path).decode("latin-1")
        headers: dict[str, str] = {}
        for name, value in request.headers:
            title = name.decode("latin-1").title()
            text = value.decode("latin-1")
            headers[title] = f"{headers[title]}, {text}" if title in headers else text
        lane = lane_of(path)
        refused = refuse_before_body(lane, path, headers, self._environ)
        if refused is not None:
            return refused, False
        limit = body_limit(lane)
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            return _json_answer(413, f"request body exceeds the limit of {limit} bytes"), False
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        try:
            body = await asyncio.wait_for(self._body(conn, reader, limit), self.limits.body_seconds)
        except TimeoutError:
            return _json_answer(408, "request body not received in time"), False
        except h11.RemoteProtocolError:
            return _json_answer(400, "malformed request body"), False
        if body is None:
            return _json_answer(413, f"request body exceeds the limit of {limit} bytes"), False
        direct = admission_path(path) if lane == "admission" and request.method == b"POST" else None
        if direct is not None and self._admission is not None:
            return await self._admit(self._admission, direct, headers, body), True
        environ = self._wsgi_environ(request, path, query, headers, body, peer)
        if lane == "push":
            if self._push_inflight >= self.limits.push_threads + self.limits.push_queue:
                return _busy(), True
            self._push_inflight += 1
        try:
            loop = asyncio.get_running_loop()
            if lane == "push":
                answer = await loop.run_in_executor(
                    self._pools[lane], _call_if_fresh, self._app, environ, time.monotonic() + PUSH_QUEUE_SECONDS
                )
            else:
                answer = await loop.run_in_executor(self._pools[lane], call_wsgi, self._app, environ)
        finally:
            if lane == "push":
                self._push_inflight -= 1
        return answer, True

    async def _admit(self, handlers: AdmissionHandlers, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """A cache hit with a small review is answered right here; everything else on an admission thread."""
        if len(body) <= INLINE_REVIEW_BYTES:
            answer = handlers.from_memory(path, headers, body)
            if answer is not None:
                return answer
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pools["admission"], handlers.decide, path, headers, body)

    async def _body(self, conn: h11.Connection, reader: asyncio.StreamReader, limit: int) -> bytes | None:
        import h11

        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next(conn, reader)
            if event is None:
                raise h11.RemoteProtocolError("connection closed inside the body")
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    return None
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)

    def _wsgi_environ(
        self, request: h11.Request, path: str, query: bytes, headers: Mapping[str, str], body: bytes, peer: Any
    ) -> dict[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("latin-1"),
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": "sigward",
            "SERVER_PORT": self._port,
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("latin-1"),
            "REMOTE_ADDR": peer[0] if isinstance(peer, tuple) else "",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                environ["HTTP_" + key] = value
        return environ

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request, answer: Answer, keep: bool
    ) -> bool:
        import h11

        headers = [
            (k, v)
            for k, v in answer.headers
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server")
        ]
        headers.append(("Content-Length", str(len(answer.body))))
        if not keep:
            headers.append(("Connection", "close"))
        try:
            data = conn.send(h11.Response(status_code=answer.status, headers=headers))
            if request.method != b"HEAD" and answer.body:
                data = (data or b"") + (conn.send(h11.Data(data=answer.body)) or b"")
            data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            return False
        writer.write(data)
        await writer.drain()
        return True

    async def _send_error(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        import h11

        body = json.dumps({"error": message}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")]
        try:
            data = conn.send(h11.Response(status_code=status, headers=headers))
            data = (data or b"") + (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            # h11 refuses to answer in its state (e.g. a head it could not parse): answer with raw bytes
            data = (
                f"HTTP/1.1 {status} Bad Request\r\n".encode()
                + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
                + b"\r\n"
                + body
            )
        writer.write(data)
        await writer.drain()


# After an early answer (401, 413, 408) the rest of the request is read and dropped for a moment, so that closing
# with unread bytes does not reset the connection before the client has read the answer (Apache's lingering close).
LINGER_SECONDS = 1.0
LINGER_BYTES = 8 * 1024 * 1024


async def _close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, linger: bool) -> None:
    if linger and writer.can_write_eof():
        await writer.drain()
        writer.write_eof()
        deadline = time.monotonic() + LINGER_SECONDS
        dropped = 0
        while dropped < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
            chunk = await asyncio.wait_for(reader.read(READ_CHUNK), left)
            if not chunk:
                break
            dropped += len(chunk)
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), LINGER_SECONDS)


def default_workers(environ: Mapping[str, str]) -> int:
    """One process per core — except with the in-process ``memory:`` store, which processes cannot share."""
    if environ.get("SIGWARD_STORE", "").startswith("memory:"):
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _run_process(
    app: flask.Flask, sock: socket.socket, port: int, threads: int, ssl_context: ssl.SSLContext | None
) -> None:
    from sigward import tracing

    tracing.configure_from_env(os.environ)  # per process: the batch exporter's thread does not survive a fork

    async def main() -> None:
        front = Front(app, limits=Limits(admission_threads=threads), server_port=port, admission=admission_handlers())
        server = await asyncio.start_server(front.handle, sock=sock, ssl=ssl_context, limit=MAX_HEAD_BYTES)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
        front.close()

    # Everything built so far (modules, the app, policies) lives as long as the process: kept out of the collector's
    # scans, so a full collection under load does not walk it each time (its pauses land in the latency tail).
    gc.freeze()
    try:
        import uvloop  # libuv's loop: several times less per-event overhead than asyncio's selector loop
    except ImportError:  # not built for this platform: the standard loop behaves the same, only slower
        asyncio.run(main())
    else:
        uvloop.run(main())
    finally:
        tracing.shutdown()


def serve(
    *, host: str, port: int, workers: int | None = None, threads: int = 16, ssl_context: ssl.SSLContext | None = None
) -> None:
    """Bind once, then serve in ``workers`` processes (forked, sharing the socket); stop on SIGTERM/SIGINT."""
    count = workers if workers and workers > 0 else default_workers(os.environ)
    from sigward import metrics

    # before forking: every process writes its counts to its own file in one directory, which /metrics sums
    owned_metrics_dir = metrics.MULTIPROC_ENV not in os.environ  # else the operator's directory: left in place
    metrics_dir = metrics.enable(multiprocess=True)
    # imports and the app are made before the port is bound: a connection accepted early would wait on them
    app = create_app()
    import h11  # noqa: F401 - imported once, before the processes fork

    try:
        _serve_processes(app, host, port, count, threads, ssl_context)
    finally:
        if owned_metrics_dir and metrics_dir:
            metrics.remove_directory(metrics_dir)


def _serve_processes(
    app: flask.Flask, host: str, port: int, count: int, threads: int, ssl_context: ssl.SSLContext | None
) -> None:
    sock = _listen(host, port)
    if count == 1:
        _run_process(app, sock, port, threads, ssl_context)
        return
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                _run_process(app, sock, port, threads, ssl_context)
            finally:
                os._exit(0)
        children.append(pid)
    sock.close()

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while children:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            break
        if pid in children:
            children.remove(pid)
            forward(signal.SIGTERM, None)  # one process gone: stop all, let the supervisor restart us

"""HTTP for the registry client: one pooled urllib3 pool manager behind the network guard, manual redirects,
bounded bodies, retries that respect the shared deadline, and request counters.

urllib3 directly, not a ``requests.Session``: the session's per-request merging (settings, cookies, hooks, proxies
from the environment) cost about as much CPU as the rest of a cold verification, and sigward uses none of it —
no cookies, no proxies, no environment settings, redirects followed here.

Everything that crosses the network goes through :meth:`Transport.send`, so the guard, the scheme rule and the
"Authorization only to the host it was meant for" rule cannot be skipped by one code path forgetting them.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, urlencode, urljoin, urlsplit

import urllib3
import urllib3.exceptions
from urllib3.util import create_urllib3_context

from sigward import metrics, tracing
from sigward.deadline import Deadline
from sigward.errors import DeadlineExceededError, ExternalServiceError, SigwardError, VerificationFailure
from sigward.netguard import BlockedAddressError, NetworkGuard, guarded_pool_manager
from sigward.registry.config import RegistryConfig

log = logging.getLogger(__name__)

USER_AGENT = "sigward/0.1 (+registry client)"
# Registries send blobs to object storage with a redirect or two; more hops than this is a loop or a maze.
MAX_REDIRECTS = 5
# Error bodies are read only to pick out distribution's error codes; nothing larger is worth reading.
MAX_ERROR_BODY_BYTES = 16 * 1024
# How much of a 3xx/429/5xx body is drained so the connection can be reused; beyond it, it is dropped.
MAX_DRAIN_BYTES = 64 * 1024
# Longest we wait to drain a body we do not need; a slower server loses its connection instead.
MAX_DRAIN_SECONDS = 0.5
# Read size for streamed bodies: small enough that the size bound is checked often.
CHUNK_BYTES = 64 * 1024
# Wait before the one retry of an idempotent request after a 5xx or dropped connection.
RETRY_BACKOFF_SECONDS = 0.2
# Hosts whose connection pools are kept (one per registry, token service and storage host).
POOL_HOSTS = 32
# Origins (scheme, host:port) remembered as passing the URL rules; a client talks to a handful (registry, token
# service, storage), so a full table is simply emptied.
MAX_CHECKED_ORIGINS = 256
# Connections kept per host: at least the number of images verified at once (sigward.verify MAX_PARALLEL_IMAGES).
POOL_MAXSIZE = 32
# distribution's error codes are upper-case identifiers; anything else from an error body is not echoed.
_ERROR_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD"})
# Sent with every request unless the caller sets its own; no compression, so sizes and digests are of raw bytes.
_DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*"}
_FORM = "application/x-www-form-urlencoded"
# urllib3 neither retries nor follows redirects (this module does both, within the deadline). One shared, immutable
# policy object: given ``retries=False`` urllib3 builds an equal one twice per request (PoolManager and pool).
_NO_RETRIES = urllib3.Retry(total=False, redirect=False)


class Response:
    """One HTTP answer with its body unread: status, headers (case-insensitive), the URL it answers and the
    underlying urllib3 response (``raw``), read only through :class:`Transport`."""

    __slots__ = ("headers", "raw", "status_code", "url")

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str) -> None:
        self.raw = raw
        self.status_code: int = raw.status
        self.headers = raw.headers
        self.url = url

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The ``Link`` header by relation (``rel``), as ``requests`` parses it."""
        value = self.headers.get("Link", "")
        if not value:
            return {}
        from requests.utils import parse_header_links

        found: dict[str, dict[str, str]] = {}
        for link in parse_header_links(value):
            key = link.get("rel") or link.get("url") or ""
            found[key] = link
        return found

    def close(self) -> None:
        """Fully read, the connection is already back in the pool; otherwise it is dropped (it cannot carry
        another request) and its slot returned."""
        self.raw.close()
        self.raw.release_conn()


class RequestStats:
    """Thread-safe counters of HTTP requests sent (by host and by kind) and of TCP connections opened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_host: Counter[str] = Counter()
        self._by_kind: Counter[str] = Counter()
        self._connections: Counter[str] = Counter()

    def record(self, host: str, kind: str) -> None:
        with self._lock:
            self._by_host[host] += 1
            self._by_kind[kind] += 1

    def record_connection(self, host: str) -> None:
        with self._lock:
            self._connections[host] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._by_host.values())

    @property
    def connections(self) -> int:
        with self._lock:
            return sum(self._connections.values())

    def count(self, *, host: str | None = None, kind: str | None = None) -> int:
        with self._lock:
            if host is not None:
                return self._by_host[host]
            if kind is not None:
                return self._by_kind[kind]
            return sum(self._by_host.values())

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "connections", "by_host", "by_kind", "connections_by_host"}``, a copy."""
        with self._lock:
            return {
                "total": sum(self._by_host.values()),
                "connections": sum(self._connections.values()),
                "by_host": dict(self._by_host),
                "by_kind": dict(self._by_kind),
                "connections_by_host": dict(self._connections),
            }

    def reset(self) -> None:
        with self._lock:
            self._by_host.clear()
            self._by_kind.clear()
            self._connections.clear()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait per ``Retry-After`` (delta-seconds or an HTTP-date); ``None`` if absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (parts.scheme, (parts.hostname or "").lower(), port)


class Transport:
    """The one way out to the network for registry, token and storage requests."""

    def __init__(self, config: RegistryConfig, stats: RequestStats) -> None:
        self.config = config
        self.stats = stats
        self.guard = NetworkGuard.create(config.private_registries)
        # No proxies, .netrc or cookies: proxies would bypass the guard, .netrc would attach credentials to any
        # host, and cookies from one registry must not ride along to another. urllib3 uses none of them.
        # The CA bundle comes from the config, or REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (honoured even for a config
        # built in code), or certifi's bundle — what requests would use.
        self.verify: str = (
            config.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE", "") or os.environ.get("CURL_CA_BUNDLE", "")
        )
        if not self.verify:
            import certifi

            self.verify = certifi.where()
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", **_tls_settings(self.verify)}
        # Origins that passed check_url: the rules read only the scheme and netloc and the config is frozen, so an
        # origin that passed once passes again (the connect-time address check still runs for every connection).
        self._checked: dict[tuple[str, str], bool] = {}
        self.pool = guarded_pool_manager(
            self.guard, on_connect=stats.record_connection, num_pools=POOL_HOSTS, maxsize=POOL_MAXSIZE, **tls
        )

    def close(self) -> None:
        self.pool.clear()

    def check_url(self, url: str) -> SplitResult:
        """The scheme rule and the name checks of the guard, before any connection is attempted."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) in self._checked:
            return parts
        shown = f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else "(relative URL)"
        if parts.scheme not in ("http", "https"):
            raise BlockedAddressError(f"refusing to follow a non-HTTP URL ({shown})")
        if "@" in parts.netloc:
            raise BlockedAddressError(f"refusing a URL with embedded credentials ({shown})")
        try:
            port = parts.port
        except ValueError:
            raise BlockedAddressError(f"refusing a URL with an invalid port ({shown})") from None
        host = parts.hostname or ""
        if not host:
            raise BlockedAddressError(f"refusing a URL without a host ({shown})")
        if parts.scheme == "http" and not self.config.is_insecure(parts.netloc):
            raise BlockedAddressError(
                f"refusing plain HTTP to {parts.netloc}: not listed in SIGWARD_INSECURE_REGISTRIES"
            )
        self.guard.check_name(host, port or (443 if parts.scheme == "https" else 80))
        if len(self._checked) >= MAX_CHECKED_ORIGINS:
            self._checked.clear()
        self._checked[(parts.scheme, parts.netloc)] = True
        return parts

    def send(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        kind: str,
        headers: Mapping[str, str] | None = None,
        authorization: str | None = None,
        data: Mapping[str, str] | bytes | None = None,
    ) -> Response:
        """:meth:`_send`, counted by kind and outcome (``sigward_registry_requests_total``) and traced."""
        try:
            with tracing.span("sigward.registry.request", kind=kind, method=method, host=urlsplit(url).netloc) as span:
                resp = self._send(
                    method, url, deadline=deadline, kind=kind, headers=headers, authorization=authorization, data=data
                )
                tracing.set_attributes(span, status=resp.status_code)
        except DeadlineExceededError:
            metrics.record_registry_request(kind, metrics.Outcome.DEADLINE)
            metrics.record_deadline_exhausted(metrics.DeadlineScope.REGISTRY)
            raise
        except SigwardError:
            metrics.record_registry_request(kind, metrics.Outcome.ERROR)
            raise
        metrics.record_registry_request(kind, metrics.outcome_of_status(resp.status_code))
        return resp

    def _send(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        kind: str,
        headers: Mapping[str, str] | None = None,
        authorization: str | None = None,
        data: Mapping[str, str] | bytes | None = None,
    ) -> Response:
        """Send one logical request; returns the final response with its body unread (``stream``).

        Retries idempotent requests once after a 5xx or a connection failure, and any request after a 429 when
        ``Retry-After`` fits the configured cap and the deadline. A 429 that cannot be waited out raises
        :class:`ExternalServiceError`; an exhausted deadline raises :class:`DeadlineExceededError`.
        """
        host = urlsplit(url).netloc
        idempotent = method in _IDEMPOTENT
        attempts = throttles = 0
        while True:
            try:
                resp = self._follow(
                    method,
                    url,
                    deadline=deadline,
                    kind=kind,
                    headers=headers,
                    authorization=authorization,
                    data=data,
                )
            except _TransientError as exc:
                if (
                    idempotent
                    and attempts < self.config.max_retries
                    and self._can_wait(RETRY_BACKOFF_SECONDS, deadline)
                ):
                    attempts += 1
                    time.sleep(RETRY_BACKOFF_SECONDS)
                    continue
                raise ExternalServiceError(f"registry request to {host} failed: {exc.reason}") from exc.__cause__
            status = resp.status_code
            if status == 429:
                delay = parse_retry_after(resp.headers.get("Retry-After"))
                self.discard(resp)
                wait = RETRY_BACKOFF_SECONDS if delay is None else delay
                if (
                    throttles < self.config.max_throttle_retries
                    and wait <= self.config.max_retry_after
                    and self._can_wait(wait, deadline)
                ):
                    throttles += 1
                    time.sleep(wait)
                    continue
                after = "" if delay is None else f"; it asks to retry after {delay:.0f} s"
                raise ExternalServiceError(f"{host} is throttling requests (HTTP 429){after}")
            if (
                status in _RETRYABLE_STATUSES
                and idempotent
                and attempts < self.config.max_retries
                and self._can_wait(RETRY_BACKOFF_SECONDS, deadline)
            ):
                self.discard(resp)
                attempts += 1
                time.sleep(RETRY_BACKOFF_SECONDS)
                continue
            return resp

    @staticmethod
    def _can_wait(seconds: float, deadline: Deadline) -> bool:
        # Leave time for the request itself after waiting.
        return deadline.remaining() > seconds + 0.1

    def _follow(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        kind: str,
        headers: Mapping[str, str] | None,
        authorization: str | None,
        data: Mapping[str, str] | bytes | None,
    ) -> Response:
        auth_origin = origin(url) if authorization else None
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            parts = self.check_url(current)
            hop_headers = dict(headers or {})
            # The Authorization header goes only to the origin it was issued for: a registry redirecting a
            # blob download to storage must not receive our token or password on the storage host.
            if authorization and origin(current) == auth_origin:
                hop_headers["Authorization"] = authorization
            resp = self._send_once(
                method,
                current,
                host=parts.netloc,
                headers=hop_headers,
                data=data,
                deadline=deadline,
                kind=kind,
            )
            if resp.status_code not in _REDIRECT_STATUSES or method not in _IDEMPOTENT:
                return resp
            location = resp.headers.get("Location", "")
            self.discard(resp)
            if not location:
                raise ExternalServiceError(f"{parts.netloc} sent a redirect without a Location")
            current = urljoin(current, location.strip())
        raise ExternalServiceError(f"too many redirects (more than {MAX_REDIRECTS}) starting at {urlsplit(url).netloc}")

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        host: str,
        headers: dict[str, str],
        data: Mapping[str, str] | bytes | None,
        deadline: Deadline,
        kind: str,
    ) -> Response:
        connect = deadline.timeout(self.config.connect_timeout)
        read = deadline.timeout(self.config.read_timeout)
        deadline_bound = read < self.config.read_timeout
        self.stats.record(host, kind)
        all_headers = {**_DEFAULT_HEADERS, **headers}
        body: bytes | str | None
        if isinstance(data, Mapping):
            body = urlencode(list(data.items()))
            all_headers.setdefault("Content-Type", _FORM)
        else:
            body = data
        try:
            raw = self.pool.urlopen(
                method,
                url,
                headers=all_headers,
                body=body,
                timeout=urllib3.Timeout(connect=connect, read=read),
                redirect=False,
                retries=_NO_RETRIES,
                preload_content=False,
                decode_content=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # before timeouts: a subclass of ConnectTimeoutError
            raise _TransientError(_connection_reason(exc)) from exc
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError) as exc:
            if deadline_bound or deadline.expired():
                raise DeadlineExceededError(f"deadline exceeded waiting for {host}") from exc
            raise _TransientError(f"timed out ({type(exc).__name__})") from exc
        except urllib3.exceptions.SSLError as exc:
            raise ExternalServiceError(f"TLS connection to {host} failed (certificate or handshake)") from exc
        except (urllib3.exceptions.ProtocolError, OSError) as exc:
            raise _TransientError(_connection_reason(exc)) from exc
        except (urllib3.exceptions.HTTPError, ValueError) as exc:
            raise ExternalServiceError(f"request to {host} failed ({type(exc).__name__})") from exc
        return Response(raw, url)

    def read_body(self, resp: Response, limit: int, deadline: Deadline, what: str) -> bytes:
        """Read the whole body (at most ``limit`` bytes); the connection then goes back to the pool."""
        try:
            encoding = resp.headers.get("Content-Encoding", "").strip().lower()
            if encoding not in ("", "identity"):
                raise VerificationFailure(
                    f"{what}: the server sent Content-Encoding {encoding[:32]!r} although identity was requested"
                )
            length = resp.headers.get("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > limit:
                raise VerificationFailure(f"{what} is larger than the limit of {limit} bytes")
            buf = bytearray()
            while True:
                self._tighten(resp, deadline)
                # read1: at most one recv, so a trickling server meets the deadline check between reads
                # (read(n) would block until n bytes arrived, however slowly).
                chunk = resp.raw.read1(CHUNK_BYTES, decode_content=False)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > limit:
                    raise VerificationFailure(f"{what} is larger than the limit of {limit} bytes")
            return bytes(buf)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            host = urlsplit(resp.url).netloc
            if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)) and deadline.expired():
                raise DeadlineExceededError(f"deadline exceeded reading {what} from {host}") from exc
            raise ExternalServiceError(f"reading {what} from {host} failed ({type(exc).__name__})") from exc
        finally:
            # Fully read, the connection is already back in the pool and this only tidies up; half read, the
            # connection is dropped, since it cannot carry another request.
            resp.close()

    def _tighten(self, resp: Response, deadline: Deadline) -> None:
        """Let no single read of a trickling body outlast the deadline."""
        conn = getattr(resp.raw, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            sock.settimeout(deadline.timeout(self.config.read_timeout))
        else:
            deadline.check()

    def discard(self, resp: Response) -> None:
        """Drain a small body quickly so the connection can be reused, or else drop the connection."""
        try:
            remaining = resp.raw.length_remaining
            if remaining is None or remaining > MAX_DRAIN_BYTES:
                return  # chunked or large: not worth waiting for
            until = time.monotonic() + MAX_DRAIN_SECONDS
            # Read to the end (b""): only then does urllib3 hand the connection back to the pool.
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    return
                sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
                if sock is not None:
                    sock.settimeout(left)
                if not resp.raw.read1(CHUNK_BYTES, decode_content=False):
                    return
        except (urllib3.exceptions.HTTPError, OSError):
            pass
        finally:
            resp.close()

    def error_detail(self, resp: Response, deadline: Deadline) -> str:
        """distribution's error codes from an error body (``" (MANIFEST_UNKNOWN)"``), never its free text."""
        try:
            body = self.read_body(resp, MAX_ERROR_BODY_BYTES, deadline, "error response")
        except (VerificationFailure, ExternalServiceError):
            return ""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return ""
        errors = data.get("errors") if isinstance(data, dict) else None
        if not isinstance(errors, list):
            return ""
        codes = [e.get("code") for e in errors[:4] if isinstance(e, dict)]
        shown = [c for c in codes if isinstance(c, str) and _ERROR_CODE_RE.match(c)]
        return f" ({', '.join(shown)})" if shown else ""


def _tls_settings(bundle: str) -> dict[str, Any]:
    """One TLS context with the CA bundle loaded once, shared by every connection of the client: loading a bundle
    (certifi's is ~150 KB of PEM) for each new connection costs milliseconds of CPU on a cold path. A bundle that
    cannot be loaded now is left to each connection, which fails as it did before (and only over HTTPS)."""
    is_dir = os.path.isdir(bundle)
    try:
        context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        if is_dir:
            context.load_verify_locations(capath=bundle)
        else:
            context.load_verify_locations(cafile=bundle)
    except (OSError, ValueError):
        return {"ca_cert_dir" if is_dir else "ca_certs": bundle}
    return {"ssl_context": context}


class _TransientError(Exception):
    """A failure worth one retry (connection refused or reset, timeout not caused by the deadline)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _connection_reason(exc: BaseException) -> str:
    """A short cause without the URL (which urllib3 puts in its text) or anything the server said."""
    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(chain) < 16:
        cause = todo.pop()
        if cause in chain:
            continue
        chain.append(cause)
        todo.extend(a for a in cause.args if isinstance(a, BaseException))
        if isinstance(cause, urllib3.exceptions.MaxRetryError) and cause.reason is not None:
            todo.append(cause.reason)
        todo.extend(c for c in (cause.__cause__, cause.__context__) if c is not None)
    reasons: tuple[tuple[type[BaseException], str], ...] = (
        (urllib3.exceptions.NameResolutionError, "host name could not be resolved"),
        (ConnectionRefusedError, "connection refused"),
        (ConnectionResetError, "connection reset"),
        (urllib3.exceptions.NewConnectionError, "could not connect"),
        (urllib3.exceptions.ProtocolError, "connection broken"),
    )
    for kind, reason in reasons:
        if any(isinstance(c, kind) for c in chain):
            return reason
    return "connection failed"

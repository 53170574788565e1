"""TLS for ``sigward serve --tls-cert --tls-key``, picking up rotated certificates without a restart.

cert-manager (and a kubelet updating a mounted Secret) replaces the files in place; the webhook must present the new
certificate before the old one expires, and a restart would drop in-flight admissions. Each handshake's SNI callback
(called for every ClientHello, with or without SNI) hands the connection the current context; the files are looked
at no more than once per :data:`CHECK_SECONDS`, and a pair that does not load (half-written, key not matching the
certificate) is logged and skipped — the previous certificate keeps serving until a good pair appears."""

from __future__ import annotations

import os
import ssl
import threading
import time
from dataclasses import dataclass

from sigward import logs
from sigward.errors import ConfigurationError

# How stale a rotation may be before new handshakes see it; checking costs two stat() calls.
CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class _Stamp:
    cert: tuple[int, int, int]
    key: tuple[int, int, int]


def _stamp(cert: str, key: str) -> _Stamp:
    def one(path: str) -> tuple[int, int, int]:
        st = os.stat(path)  # follows symlinks: a Secret volume swaps its ..data link
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    return _Stamp(one(cert), one(key))


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context for the pair; :class:`ConfigurationError` naming the file on any problem."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path, flag in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not os.path.isfile(path):
            raise ConfigurationError(f"{flag} {path}: no such file")
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        # the reason only (e.g. KEY_VALUES_MISMATCH, PEM_LIB): never the file's content
        raise ConfigurationError(
            f"--tls-cert {cert} / --tls-key {key}: cannot load the pair ({exc.reason or 'invalid PEM'})"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"--tls-cert {cert} / --tls-key {key}: cannot read ({exc.strerror})") from None
    return context


class ReloadingTLS:
    """The context to give the server; new handshakes get the newest good certificate pair."""

    def __init__(self, cert: str, key: str, *, check_seconds: float = CHECK_SECONDS) -> None:
        self.cert = cert
        self.key = key
        self._check_seconds = check_seconds
        self._current = server_context(cert, key)
        self._stamp = _stamp(cert, key)
        self._checked = time.monotonic()
        self._refused: _Stamp | None = None  # a pair that failed to load: logged once, not every second
        self._lock = threading.Lock()
        self.context = server_context(cert, key)  # the listening context; connections are switched in the callback
        self.context.sni_callback = self._on_hello

    @property
    def current(self) -> ssl.SSLContext:
        self._maybe_reload()
        return self._current

    def _on_hello(self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        sock.context = self.current

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._check_seconds:
            return
        with self._lock:
            self._checked = now
            try:
                stamp = _stamp(self.cert, self.key)
            except OSError:
                return  # mid-rotation (a link being swapped): look again next time
            if stamp in (self._stamp, self._refused):
                return
            try:
                fresh = server_context(self.cert, self.key)
            except ConfigurationError as exc:
                self._refused = stamp
                logs.emit(
                    "WARNING", "rotated TLS certificate not loaded; still serving the previous one", error=str(exc)
                )
                return
            self._current, self._stamp = fresh, stamp
            logs.emit("INFO", "TLS certificate reloaded", cert=self.cert)

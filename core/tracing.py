"""OpenTelemetry traces: admission → rule × image verification → registry / KMS requests, when configured.

Off unless the environment configures OpenTelemetry (``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` wins). Off means no import of opentelemetry at all
and, per span site, one global read returning a shared no-op context manager — the import-time budget and the
cached-admission hot path stay as they were.

Verifications run on pool threads, where OpenTelemetry's context does not follow by itself: callers
:func:`capture` the context on the request thread and pass it as ``parent``.

Span attributes name images and policies (traces are sampled and short-lived, unlike metric labels), never tokens,
keys or object bodies.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sigward.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_NOOP: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
_tracer: Any = None  # an opentelemetry Tracer when enabled
_provider: Any = None
_configure_lock = threading.Lock()

SERVICE_NAME = "sigward"
_ENABLING = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def enabled() -> bool:
    return _tracer is not None


def wanted(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENABLING)


def _exporter(environ: Mapping[str, str]) -> Any:
    """The span exporter the environment names; :class:`ConfigurationError` when unknown or not installed."""
    exporter_name = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    try:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
    except ImportError:
        raise ConfigurationError(
            "OpenTelemetry is configured (OTEL_*) but opentelemetry-sdk is not installed: pip install 'sigward[otel]'"
        ) from None
    if exporter_name == "console":
        return ConsoleSpanExporter()
    if exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ConfigurationError(
                "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http: pip install 'sigward[otel]'"
            ) from None
        return OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_* as the SDK documents
    raise ConfigurationError(f"OTEL_TRACES_EXPORTER={exporter_name!r}: sigward supports otlp, console or none")


def check(environ: Mapping[str, str]) -> None:
    """Fail fast (before serve forks) on an OpenTelemetry configuration that cannot work."""
    if wanted(environ):
        _exporter(environ)


def configure_from_env(environ: Mapping[str, str]) -> bool:
    """Start exporting when the environment asks for it (call once per process, after any fork: the batch
    exporter runs a thread). Returns whether tracing is on; :class:`ConfigurationError` as :func:`check`."""
    if not wanted(environ):
        return False
    exporter = _exporter(environ)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = environ.get("OTEL_SERVICE_NAME", "").strip() or SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    use_provider(provider)
    return True


_configured_in: int | None = None  # the process id that last ran ensure_configured


def ensure_configured(environ: Mapping[str, str]) -> bool:
    """:func:`configure_from_env` once per process, for entry points with no start-up hook of their own (the
    function targets: functions-framework may fork workers after importing main.py). A pid check when done."""
    global _configured_in  # noqa: PLW0603 - once per process
    pid = os.getpid()
    if _configured_in == pid:
        return enabled()
    with _configure_lock:
        if _configured_in != pid:
            _configured_in = pid
            configure_from_env(environ)
    return enabled()


def use_provider(provider: TracerProvider | None) -> None:
    """Trace into ``provider`` (tests: an in-memory exporter); None turns tracing off."""
    global _tracer, _provider  # noqa: PLW0603 - one tracer per process, like OpenTelemetry's global provider
    from sigward import __version__

    _provider = provider
    _tracer = None if provider is None else provider.get_tracer("sigward", __version__)


def shutdown() -> None:
    """Flush and stop the exporter (end of a serve process)."""
    if _provider is not None:
        _provider.shutdown()
    use_provider(None)


def capture() -> Any:
    """The current trace context, to hand to work on another thread (None when off)."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def span(
    name: str, parent: Any = None, **attributes: str | int | float | bool
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block (``with tracing.span("sigward.registry.request", kind=...) as s``); ``s`` is None when
    tracing is off. Exceptions are recorded on the span and re-raised."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    cm: contextlib.AbstractContextManager[Any] = tracer.start_as_current_span(
        name, context=parent, attributes=attributes
    )
    return cm


def set_attributes(current: Any, **attributes: str | int | float | bool) -> None:
    if current is not None:
        current.set_attributes(attributes)

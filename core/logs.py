"""Structured logs: one JSON object per line on stdout, with the fields Cloud Logging reads (``severity``,
``message``, ``logging.googleapis.com/trace``). Callers pass facts, never object bodies, tokens or keys."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

_lock = threading.Lock()
_stream: TextIO | None = None


def current_stream() -> TextIO | None:
    """Where log lines go now (None: stdout)."""
    return _stream


def set_stream(stream: TextIO | None) -> None:
    """Send log lines elsewhere (tests capture them); None restores stdout."""
    global _stream  # noqa: PLW0603 - one process-wide sink, like the logging module's root handler
    _stream = stream


def emit(severity: str, message: str, **fields: Any) -> None:
    record: dict[str, Any] = {
        "severity": severity,
        "message": message,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
    }
    record.update(fields)
    line = json.dumps(record, default=str, separators=(",", ":"))
    with _lock:
        stream = _stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()


def trace_field(headers: Mapping[str, str], project: str | None) -> dict[str, str]:
    """Cloud Run's ``X-Cloud-Trace-Context: TRACE/SPAN;o=1`` as Cloud Logging's trace field."""
    value = headers.get("X-Cloud-Trace-Context") or headers.get("x-cloud-trace-context")
    if not value or not project:
        return {}
    trace = value.split("/", 1)[0]
    if not trace.isalnum() or len(trace) > 64:
        return {}
    return {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace}"}

"""Findings notifications: Slack-compatible JSON to an HTTPS webhook, retried within the handler's deadline and never
blocking past it; failures are logged, never raised."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core import logs
from core.deadline import Deadline
from core.errors import ConfigurationError
from core.push.findings import Finding, Notifier, emit_finding
from tests.support.httpservers import SilentServer

FINDING = Finding(
    image="registry.test/app:v1",
    digest="sha256:" + "a" * 64,
    policy="require-signed",
    rule="verify-signature",
    verdict="unsigned",
    message="no signatures found",
    source="distribution",
    event_id="e1",
)


class Hook:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.bodies.append(json.loads(body))
                status = owner.statuses.pop(0) if owner.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.set_stream(stream)
    yield stream
    logs.set_stream(None)


def test_webhook_retried_until_delivered(captured: io.StringIO) -> None:
    hook = Hook([500, 200])
    try:
        assert Notifier(webhook_url=hook.url).notify(FINDING, deadline=Deadline.after(5)) is True
    finally:
        hook.close()
    assert len(hook.bodies) == 2
    body = hook.bodies[-1]
    assert body["text"].startswith(":no_entry: sigward: registry.test/app:v1")
    assert body["sigward"]["verdict"] == "unsigned" and body["sigward"]["event_id"] == "e1"
    assert "finding notification failed" in captured.getvalue()


def test_a_webhook_that_never_answers_does_not_block_past_the_deadline(captured: io.StringIO) -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        delivered = Notifier(webhook_url=f"http://{silent.host}/hook").notify(FINDING, deadline=Deadline.after(1.0))
        elapsed = time.monotonic() - started
    assert delivered is False
    assert elapsed < 1.6, elapsed


def test_finding_log_line(captured: io.StringIO) -> None:
    emit_finding(FINDING)
    record = json.loads(captured.getvalue().splitlines()[-1])
    assert record["severity"] == "WARNING"
    assert record["finding"]["digest"] == FINDING.digest


def test_configuration() -> None:
    assert Notifier.from_env({}) is None
    notifier = Notifier.from_env(
        {"SIGWARD_FINDINGS_WEBHOOK": "https://hooks.example/x", "SIGWARD_FINDINGS_TOPIC": "projects/p/topics/t"}
    )
    assert notifier is not None and notifier.topic == "projects/p/topics/t"
    with pytest.raises(ConfigurationError):
        Notifier.from_env({"SIGWARD_FINDINGS_WEBHOOK": "http://hooks.example/x"})

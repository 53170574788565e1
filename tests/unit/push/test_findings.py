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

from sigward import logs
from sigward.deadline import Deadline
from sigward.errors import ConfigurationError
from sigward.push.findings import Finding, Notifier, emit_finding
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


# Findings URL rules (issue 20 §5): parsed, not prefix-matched.
REFUSED_URLS = [
    ("http://hooks.example/x", "plain http"),
    ("ftp://hooks.example/x", "https://"),
    ("hooks.example/x", "https://"),
    ("https://user:s3cr3t-pw@hooks.example/x", "credentials"),
    ("https://s3cr3t-tok@hooks.example/x", "credentials"),
    ("http://localhost@evil.example/x", "credentials"),
    ("http://127.0.0.1.evil.example/x", "plain http"),
    ("http://127.0.0.1:8080@evil.example/x", "credentials"),
    ("https://169.254.169.254/latest/meta-data", "metadata"),
    ("https://[fd00:ec2::254]/x", "metadata"),
    ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("https://10.0.0.5/hook", "private"),
    ("https://[::ffff:169.254.169.254]/x", "metadata"),
    ("https:///nohost", "no host"),
    ("https://hooks.example:99999/x", "valid URL"),
    ("https://hooks.example/x#frag", "fragment"),
    ("https://hooks.example/x y", "whitespace"),
    ("https://hooks.example\\@evil/x", "backslash"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_findings_url_refused_at_start_up_naming_the_variable(url: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        Notifier.from_env({"SIGWARD_FINDINGS_WEBHOOK": url})
    text = str(err.value)
    assert text.startswith("SIGWARD_FINDINGS_WEBHOOK is not usable: ")
    assert reason in text
    assert "s3cr3t" not in text and "/x" not in text and "meta-data" not in text  # never echoes userinfo or path


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T0/B0/XYZ",
        "https://hooks.example:8443/a?b=c",
        "http://127.0.0.1:9/h",
        "http://[::1]:9/h",
        "http://localhost:9/h",
        "HTTPS://Hooks.Example/x",
    ],
)
def test_findings_url_accepted(url: str) -> None:
    notifier = Notifier.from_env({"SIGWARD_FINDINGS_WEBHOOK": url})
    assert notifier is not None and notifier.target is not None
    assert notifier.target.url == url
    assert "/" not in notifier.target.shown.split("://", 1)[1]


def test_findings_post_passes_the_network_guard_on_resolved_addresses(captured: io.StringIO) -> None:
    """A public-looking name that resolves to a metadata address is refused when connecting, and the log line
    names neither the URL nor its token."""
    notifier = Notifier(webhook_url="https://hooks.example/services/SECRET-TOKEN")
    assert notifier.target is not None
    object.__setattr__(notifier.target.guard, "resolver", lambda host, port: ["169.254.169.254"])
    assert notifier.notify(FINDING, deadline=Deadline.after(2)) is False
    out = captured.getvalue()
    assert "finding notification failed" in out
    assert "BlockedAddressError" in out
    assert "SECRET-TOKEN" not in out


def test_findings_post_carries_no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    hook = Hook([200])
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login user password netrc-secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    seen: list[dict[str, str]] = []
    original = hook.server.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

    def spy(handler: Any) -> None:
        seen.append(dict(handler.headers))
        original(handler)

    hook.server.RequestHandlerClass.do_POST = spy  # type: ignore[attr-defined]
    try:
        assert Notifier(webhook_url=hook.url).notify(FINDING, deadline=Deadline.after(5)) is True
    finally:
        hook.close()
    assert seen and "Authorization" not in seen[0] and "Proxy-Authorization" not in seen[0]
    assert set(seen[0]) <= {
        "Host",
        "Content-Type",
        "Content-Length",
        "Accept-Encoding",
        "Connection",
        "Accept",
        "User-Agent",
    }

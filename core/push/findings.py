"""Findings: every failed push verdict is one structured log line and, when configured, a notification — an HTTPS
webhook with Slack-compatible JSON (``SIGWARD_FINDINGS_WEBHOOK``) or a Pub/Sub topic (``SIGWARD_FINDINGS_TOPIC``,
``projects/P/topics/T``). Delivery retries stay inside the handler's own deadline and never fail the handler."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core import logs
from core.deadline import Deadline

# One notification attempt may take this long; retries only while the handler's deadline allows.
ATTEMPT_TIMEOUT_SECONDS = 3.0
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class Finding:
    image: str
    digest: str
    policy: str
    rule: str
    verdict: str
    message: str
    source: str
    event_id: str

    def as_json(self) -> dict[str, str]:
        return {
            "image": self.image,
            "digest": self.digest,
            "policy": self.policy,
            "rule": self.rule,
            "verdict": self.verdict,
            "message": self.message,
            "source": self.source,
            "event_id": self.event_id,
        }

    def slack(self) -> dict[str, Any]:
        text = (
            f":no_entry: sigward: {self.image} ({self.digest[:19]}…) failed {self.policy}/{self.rule}: {self.message}"
        )
        return {"text": text[:3000], "sigward": self.as_json()}


class FindingSink(Protocol):
    def notify(self, finding: Finding, *, deadline: Deadline) -> bool: ...


class Notifier:
    def __init__(self, *, webhook_url: str = "", topic: str = "") -> None:
        self.webhook_url = webhook_url
        self.topic = topic
        self._publisher: Any = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Notifier | None:
        url = environ.get("SIGWARD_FINDINGS_WEBHOOK", "").strip()
        topic = environ.get("SIGWARD_FINDINGS_TOPIC", "").strip()
        if url and not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
            from core.errors import ConfigurationError

            raise ConfigurationError("SIGWARD_FINDINGS_WEBHOOK must be an https:// URL")
        return cls(webhook_url=url, topic=topic) if (url or topic) else None

    def notify(self, finding: Finding, *, deadline: Deadline) -> bool:
        delivered = True
        if self.webhook_url:
            delivered &= self._retry(lambda timeout: self._post(finding, timeout), deadline, "webhook")
        if self.topic:
            delivered &= self._retry(lambda timeout: self._publish(finding, timeout), deadline, "pubsub")
        return delivered

    def _retry(self, attempt: Any, deadline: Deadline, channel: str) -> bool:
        for n in range(MAX_ATTEMPTS):
            if deadline.remaining() < 0.1:
                break
            try:
                attempt(min(ATTEMPT_TIMEOUT_SECONDS, deadline.remaining()))
                return True
            except Exception as exc:  # any delivery failure is logged, never raised
                logs.emit(
                    "WARNING", "finding notification failed", channel=channel, attempt=n + 1, error=type(exc).__name__
                )
                if deadline.remaining() > BACKOFF_SECONDS * (n + 1) + 0.1:
                    time.sleep(BACKOFF_SECONDS * (n + 1))
        return False

    def _post(self, finding: Finding, timeout: float) -> None:
        import requests

        resp = requests.post(
            self.webhook_url,
            data=json.dumps(finding.slack()),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
            allow_redirects=False,
        )
        if resp.status_code >= 300:
            raise RuntimeError(f"webhook answered HTTP {resp.status_code}")

    def _publish(self, finding: Finding, timeout: float) -> None:
        if self._publisher is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined,import-untyped,unused-ignore]

            self._publisher = pubsub_v1.PublisherClient()
        future = self._publisher.publish(self.topic, json.dumps(finding.as_json()).encode(), kind="sigward-finding")
        future.result(timeout=timeout)


def emit_finding(finding: Finding) -> None:
    logs.emit("WARNING", "sigward finding: image failed verification at push", finding=finding.as_json())

"""Findings: every failed push verdict is one structured log line and, when configured, a notification — an HTTPS
webhook with Slack-compatible JSON (``SIGWARD_FINDINGS_WEBHOOK``) or a Pub/Sub topic (``SIGWARD_FINDINGS_TOPIC``,
``projects/P/topics/T``). Delivery retries stay inside the handler's own deadline and never fail the handler.

The webhook URL is parsed, not prefix-matched (:func:`parse_webhook_url`): ``https``, or plain ``http`` only to an
exact loopback host (tests); no userinfo; the host passes the registry network guard at start-up (no metadata names
or link-local/metadata/private address literals) and again on every connection (resolved addresses). The request
carries only the finding (no ambient credentials: no ``.netrc``, no proxies, no redirects) and is bounded in time.
A webhook URL often is a secret itself (Slack's path), so errors and logs name only its scheme and host."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sigward import logs
from sigward.deadline import Deadline
from sigward.errors import ConfigurationError
from sigward.netguard import BlockedAddressError, NetworkGuard, host_port, normalize_host

# One notification attempt may take this long; retries only while the handler's deadline allows.
ATTEMPT_TIMEOUT_SECONDS = 3.0
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 0.2
# Plain HTTP is accepted only to these exact hosts: a local receiver in tests, never a network hop.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
WEBHOOK_VARIABLE = "SIGWARD_FINDINGS_WEBHOOK"


@dataclass(frozen=True)
class WebhookTarget:
    """A vetted findings webhook: the URL to post to and the guard every connection to it passes."""

    url: str
    scheme: str
    host: str
    port: int
    guard: NetworkGuard

    @property
    def shown(self) -> str:
        """What logs and errors may say about the target (the path and query may hold a token)."""
        return f"{self.scheme}://{host_port(self.host, self.port)}"


def parse_webhook_url(value: str, *, variable: str = WEBHOOK_VARIABLE) -> WebhookTarget:
    """Parse and vet a findings webhook URL; :class:`ConfigurationError` naming ``variable`` (never echoing
    userinfo, path or query) when it is not an https URL (or http to an exact loopback host) to a host the network
    guard allows."""
    from urllib.parse import urlsplit

    def refuse(reason: str) -> ConfigurationError:
        return ConfigurationError(f"{variable} is not usable: {reason}")

    if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in value):
        raise refuse("the URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise refuse("it is not a valid URL (host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise refuse("it must be an https:// URL")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise refuse("the URL must not carry credentials (user information before '@')")
    host = normalize_host(parts.hostname or "")
    if not host:
        raise refuse("the URL has no host")
    if parts.fragment:
        raise refuse("the URL must not have a fragment")
    loopback = host in LOOPBACK_HOSTS
    if scheme == "http" and not loopback:
        raise refuse(f"plain http is only allowed to a loopback host ({', '.join(sorted(LOOPBACK_HOSTS))}); use https")
    port = port or (443 if scheme == "https" else 80)
    guard = NetworkGuard.create([host_port(host, port)] if loopback else [])
    try:
        guard.check_name(host, port)
    except BlockedAddressError as exc:
        raise refuse(exc.message) from None
    return WebhookTarget(url=value, scheme=scheme, host=host, port=port, guard=guard)


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
    reason: str = ""  # the failure's type (FailureKind name) when known: what automation branches on

    def as_json(self) -> dict[str, str]:
        doc = {
            "image": self.image,
            "digest": self.digest,
            "policy": self.policy,
            "rule": self.rule,
            "verdict": self.verdict,
            "message": self.message,
            "source": self.source,
            "event_id": self.event_id,
        }
        if self.reason:
            doc["reason"] = self.reason
        return doc

    def slack(self) -> dict[str, Any]:
        text = (
            f":no_entry: sigward: {self.image} ({self.digest[:19]}…) failed {self.policy}/{self.rule}: {self.message}"
        )
        return {"text": text[:3000], "sigward": self.as_json()}


class FindingSink(Protocol):
    def notify(self, finding: Finding, *, deadline: Deadline) -> bool: ...


class Notifier:
    def __init__(self, *, webhook_url: str = "", topic: str = "") -> None:
        self.target = parse_webhook_url(webhook_url) if webhook_url else None
        self.topic = topic
        self._publisher: Any = None
        self._session: Any = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Notifier | None:
        url = environ.get(WEBHOOK_VARIABLE, "").strip()
        topic = environ.get("SIGWARD_FINDINGS_TOPIC", "").strip()
        return cls(webhook_url=url, topic=topic) if (url or topic) else None

    def notify(self, finding: Finding, *, deadline: Deadline) -> bool:
        delivered = True
        if self.target is not None:
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
        assert self.target is not None
        if self._session is None:
            import requests

            from sigward.netguard import GuardedHTTPAdapter

            session = requests.Session()
            session.trust_env = False  # no proxies, no .netrc credentials from the environment
            session.headers.clear()
            adapter = GuardedHTTPAdapter(self.target.guard)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._session = session
        resp = self._session.post(
            self.target.url,
            data=json.dumps(finding.slack()),
            headers={"Content-Type": "application/json"},
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,  # the answer's body is never read: only its status counts
        )
        resp.close()
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

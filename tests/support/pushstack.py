"""The pieces every "registry notifies `sigward serve`" test shares: the distribution notification endpoint for
sigward, the serve environment for a SQLite-backed push stack, and polling the store for a digest's verdicts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sigward.store import StoredVerdict
from sigward.store.sqlite import SqliteStore


def sigward_notification(serve_port: int, secret: str) -> dict[str, Any]:
    """distribution's `notifications.endpoints` entry delivering to ``sigward serve``'s push webhook."""
    return {
        "name": "sigward",
        "url": f"http://127.0.0.1:{serve_port}/push/webhook",
        "headers": {"Authorization": [f"Bearer {secret}"]},
        "timeout": "2s",
        "threshold": 3,
        "backoff": "1s",
    }


def push_env(
    *, policy: Path, db: Path, secret: str, registry_host: str, grace: str = "0", extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``sigward serve``'s environment for a push stack on the loopback registry ``registry_host``."""
    return {
        "SIGWARD_POLICY": str(policy),
        "SIGWARD_STORE": f"sqlite:///{db}",
        "SIGWARD_PUSH_SECRET": secret,
        "SIGWARD_PUSH_GRACE_SECONDS": grace,
        "SIGWARD_INSECURE_REGISTRIES": registry_host,
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        **(extra or {}),
    }


def stored(db: Path, digest: str) -> list[StoredVerdict]:
    store = SqliteStore(str(db))
    try:
        return list(store.for_digest(digest))
    finally:
        store.close()


def wait_for_verdict(db: Path, digest: str, want: str, timeout: float = 30.0) -> list[StoredVerdict]:
    """The verdicts stored for ``digest``, polled until one is ``want`` or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    seen: list[StoredVerdict] = []
    while time.monotonic() < deadline:
        seen = stored(db, digest)
        if any(v.verdict == want for v in seen):
            return seen
        time.sleep(0.2)
    return seen

"""The verdict store: push-time verdicts that admission reuses, event idempotency and first sightings, behind one
small interface with three implementations — SQLite (embedded default), Firestore (GCP), memory (tests).

A stored verdict is keyed by (image digest, repository, policy content hash, rule, applied entries, inputs) as
:mod:`sigward.verify.plan` computes it for push, admission and the cache alike; ``inputs`` holds the trust-root
fingerprint and the request-specific values (``image.tag``, ...) the rule's conditions read. A changed policy has
another hash and never finds an old verdict. Admission only ever reuses a fresh ``pass``; a recorded failure
can make admission verify again, never allow.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sigward.errors import ConfigurationError

# A push-time pass is trusted by admission this long (signatures can be removed; re-verify now and then).
DEFAULT_VERDICT_TTL_SECONDS = 24 * 3600.0
# Event ids are remembered long enough to outlast every platform's redelivery window (EventBridge: 24 h).
DEFAULT_EVENT_TTL_SECONDS = 48 * 3600.0


@dataclass(frozen=True)
class StoredVerdict:
    digest: str
    repository: str
    policy: str
    policy_hash: str
    rule: str
    entries: str  # indexes of the verifyImages entries that matched the image, e.g. "0,2"
    verdict: str  # pass | fail | error | unsigned | deleted
    message: str
    verified_at: float
    expires_at: float
    source: str = ""
    event_id: str = ""
    image: str = ""
    inputs: str = ""  # canonical text of the trust fingerprint and request-specific values read ("" = none)

    @property
    def key(self) -> str:
        return verdict_key(
            digest=self.digest,
            repository=self.repository,
            policy_hash=self.policy_hash,
            rule=self.rule,
            entries=self.entries,
            inputs=self.inputs,
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def verdict_key(*, digest: str, repository: str, policy_hash: str, rule: str, entries: str, inputs: str = "") -> str:
    """The store's key. Without ``inputs`` it is the key earlier versions wrote, so their verdicts stay usable."""
    parts = (digest, repository, policy_hash, rule, entries, *((inputs,) if inputs else ()))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def entries_key(indexes: Sequence[int]) -> str:
    return ",".join(str(i) for i in indexes)


class VerdictStore(Protocol):
    def record(self, verdict: StoredVerdict) -> None: ...

    def lookup(
        self,
        *,
        digest: str,
        repository: str,
        policy_hash: str,
        rule: str,
        entries: str,
        now: float,
        inputs: str = "",
    ) -> StoredVerdict | None:
        """The unexpired verdict for exactly this key, or None."""
        ...

    def for_digest(self, digest: str) -> list[StoredVerdict]: ...

    def event_done(self, event_id: str, *, now: float) -> bool:
        """Whether the event with this idempotency key (:attr:`sigward.events.PushEvent.idempotency_key`: source,
        action, registry, repository, digest and delivery id, hashed) was handled and has not expired."""
        ...

    def mark_event(self, event_id: str, *, now: float, ttl: float = DEFAULT_EVENT_TTL_SECONDS) -> None:
        """Remember an event's idempotency key (never the bare delivery id: ids are only unique per source)."""
        ...

    def first_seen(self, key: str, *, now: float, ttl: float = DEFAULT_EVENT_TTL_SECONDS) -> float:
        """When ``key`` was first seen (recording ``now`` if never): the start of a signature grace period."""
        ...

    def close(self) -> None: ...


def open_store(uri: str | None = None, *, environ: Mapping[str, str] | None = None) -> VerdictStore:
    """``sqlite:///PATH`` (default ``./.sigward/verdicts.db``), ``memory:``, ``firestore://PROJECT/COLLECTION``."""
    env = os.environ if environ is None else environ
    value = (uri or env.get("SIGWARD_STORE") or "sqlite:///.sigward/verdicts.db").strip()
    if value in ("memory:", "memory://"):
        from sigward.store.memory import MemoryStore

        return MemoryStore()
    if value.startswith("sqlite:///"):
        from sigward.store.sqlite import SqliteStore

        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them
        path = value[len("sqlite:///") :]
        if not path:
            raise ConfigurationError("SIGWARD_STORE=sqlite:/// needs a file path")
        return SqliteStore(path)
    if value.startswith("firestore://"):
        from sigward.store.firestore import FirestoreStore

        rest = value[len("firestore://") :]
        project, _, collection = rest.partition("/")
        if not project or not collection or "/" in collection:
            raise ConfigurationError(
                f"SIGWARD_STORE={value!r}: expected firestore://PROJECT/COLLECTION (one collection name)"
            )
        return FirestoreStore(project=project, collection=collection)
    raise ConfigurationError(
        f"SIGWARD_STORE={value!r} is not supported: use sqlite:///PATH, memory: or firestore://PROJECT/COLLECTION"
    )

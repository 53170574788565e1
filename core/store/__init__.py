"""The verdict store: push-time verdicts that admission reuses, event idempotency and first sightings, behind one
small interface with three implementations — SQLite (embedded default), Firestore (GCP), memory (tests).

A stored verdict is keyed by (image digest, repository, policy content hash, rule, applied entries, inputs) as
:mod:`sigward.verify.plan` computes it for push, admission and the cache alike; ``inputs`` holds the trust-root
fingerprint and the request-specific values (``image.tag``, ...) the rule's conditions read. A changed policy has
another hash and never finds an old verdict. Admission only ever reuses a fresh ``pass``; a recorded failure
can make admission verify again, never allow.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sigward.errors import ConfigurationError, FailureKind
from sigward.verify.plan import VerdictKey, entries_key, parse_entries_key, verdict_key
from sigward.verify.results import RuleVerdict, Verdict

__all__ = [
    "DEFAULT_EVENT_TTL_SECONDS",
    "DEFAULT_VERDICT_TTL_SECONDS",
    "StoredStatus",
    "StoredVerdict",
    "VerdictKey",
    "VerdictStore",
    "entries_key",
    "open_store",
    "parse_scan_position",
    "position_after",
    "scan_position",
    "verdict_key",
]

# A push-time pass is trusted by admission this long (signatures can be removed; re-verify now and then).
DEFAULT_VERDICT_TTL_SECONDS = 24 * 3600.0
# Event ids are remembered long enough to outlast every platform's redelivery window (EventBridge: 24 h).
DEFAULT_EVENT_TTL_SECONDS = 48 * 3600.0


class StoredStatus(enum.StrEnum):
    """What the store remembers of a verdict. Built from a verdict only by :meth:`of` (``deleted`` by a delete
    event, ``pending`` and ``superseded`` by push and re-verification); admission reuses nothing but a fresh
    :attr:`PASS`."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    UNSIGNED = "unsigned"  # a decided failure of kind FailureKind.NO_SIGNATURES
    ERROR = "error"
    DELETED = "deleted"
    # A push whose signature has not arrived yet, acknowledged instead of redelivered; re-verification settles it.
    PENDING = "pending"
    # A record made under another policy (or trust root) that re-verification re-keyed: history, never reused.
    SUPERSEDED = "superseded"

    @classmethod
    def of(cls, verdict: RuleVerdict) -> StoredStatus:
        """The one mapping from a verdict: its kind, never its message, says ``unsigned``."""
        if verdict.verdict is Verdict.PASS:
            return cls.PASS
        if verdict.verdict is Verdict.FAIL:
            return cls.UNSIGNED if verdict.failure is FailureKind.NO_SIGNATURES else cls.FAIL
        if verdict.verdict is Verdict.ERROR:
            return cls.ERROR
        raise ValueError(f"a {verdict.verdict.value} verdict is not stored")

    @classmethod
    def parse(cls, text: str) -> StoredStatus:
        """A row's status as a backend holds it; text no version wrote reads as :attr:`ERROR` (never reusable)."""
        try:
            return cls(text)
        except ValueError:
            return cls.ERROR


@dataclass(frozen=True)
class StoredVerdict:
    digest: str
    repository: str
    policy: str
    policy_hash: str
    rule: str
    entries: str  # indexes of the verifyImages entries that matched the image, e.g. "0,2"
    verdict: StoredStatus
    message: str
    verified_at: float
    expires_at: float
    source: str = ""
    event_id: str = ""
    image: str = ""
    inputs: str = ""  # canonical text of the trust fingerprint and request-specific values read ("" = none)

    @classmethod
    def of(
        cls,
        key: VerdictKey,
        *,
        policy: str,
        verdict: StoredStatus,
        message: str,
        verified_at: float,
        ttl: float,
        source: str = "",
        event_id: str = "",
        image: str = "",
    ) -> StoredVerdict:
        """A verdict recorded under ``key`` (its fields are the key's, so lookup and record cannot disagree)."""
        return cls(
            digest=key.digest,
            repository=key.repository,
            policy=policy,
            policy_hash=key.policy_hash,
            rule=key.rule,
            entries=key.entries_text,
            inputs=key.inputs,
            verdict=verdict,
            message=message,
            verified_at=verified_at,
            expires_at=verified_at + ttl,
            source=source,
            event_id=event_id,
            image=image,
        )

    @property
    def verdict_key(self) -> VerdictKey:
        return VerdictKey(
            policy_hash=self.policy_hash,
            rule=self.rule,
            repository=self.repository,
            digest=self.digest,
            entries=parse_entries_key(self.entries),
            inputs=self.inputs,
        )

    @property
    def key(self) -> str:
        """The store's form of :attr:`verdict_key`: what :meth:`VerdictStore.lookup` finds it by."""
        return self.verdict_key.stored

    @property
    def scan_position(self) -> str:
        """Where :meth:`VerdictStore.scan` places this record: digest first, so one digest's records (one per
        policy and rule) come together and re-verification's per-run signature cache serves all but the first."""
        return scan_position(self.digest, self.key)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = self.verdict.value
        return out


class VerdictStore(Protocol):
    def record(self, verdict: StoredVerdict) -> None: ...

    def lookup(self, key: VerdictKey, *, now: float) -> StoredVerdict | None:
        """The unexpired verdict for exactly this key (:meth:`VerdictKey.stored`), or None."""
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

    def scan(self, *, after: str, limit: int) -> list[StoredVerdict]:
        """At most ``limit`` verdicts whose :attr:`StoredVerdict.scan_position` sorts after ``after`` ("" = from
        the start), in (digest, key) order (:func:`parse_scan_position`): how re-verification walks the store in
        batches with a cursor it can persist, one digest's records together."""
        ...

    def replace(self, current: StoredVerdict, new: StoredVerdict) -> bool:
        """Compare-and-set: write ``new`` (same key as ``current``) only while the stored verdict under that key
        still is ``current`` (same verdict and ``verified_at``); False when another writer got there first. The one
        writer that wins reports the change, so concurrent re-verification runs never report it twice."""
        ...

    def get_state(self, name: str) -> str:
        """A small named value (a re-verification cursor or lease); "" when never set."""
        ...

    def set_state(self, name: str, value: str, *, expected: str) -> bool:
        """Compare-and-set a named value: write ``value`` only while it still is ``expected``."""
        ...

    def close(self) -> None: ...


# Between the digest and the key in a scan position (neither a digest nor a hex key contains it).
_POSITION_SEPARATOR = "|"


def scan_position(digest: str, key: str) -> str:
    """The text form of a scan position (a re-verification cursor persists it)."""
    return f"{digest}{_POSITION_SEPARATOR}{key}"


def parse_scan_position(position: str) -> tuple[str, str] | None:
    """``(digest, key)`` of a scan position; ``("", "")`` for "" (from the start); None for text that is no
    position (a cursor written when scans were in bare key order: the caller starts that walk over)."""
    if not position:
        return ("", "")
    digest, separator, key = position.rpartition(_POSITION_SEPARATOR)
    return (digest, key) if separator else None


def position_after(position: str) -> tuple[str, str]:
    """A store's view of ``scan(after=position)``: the (digest, key) to start after; ValueError for no position."""
    parsed = parse_scan_position(position)
    if parsed is None:
        raise ValueError("scan(after=...) takes a StoredVerdict.scan_position")
    return parsed


def same_version(a: StoredVerdict, b: StoredVerdict) -> bool:
    """Whether two reads of one key saw the same write (the store's compare-and-set condition). Timestamps survive
    Firestore only to the microsecond, so they are compared to the millisecond."""
    return a.verdict == b.verdict and abs(a.verified_at - b.verified_at) < VERSION_TIME_TOLERANCE


# Two writes of one key less than a millisecond apart count as one version (Firestore keeps microseconds).
VERSION_TIME_TOLERANCE = 1e-3


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

"""Firestore verdict store (GCP): one document per verdict key, an ``expires_at`` Timestamp field that a Firestore
TTL policy (set up by Terraform) deletes, and sibling collections for event ids and first sightings.
``FIRESTORE_EMULATOR_HOST`` is honoured by the client library itself."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from typing import Any

from sigward.errors import ExternalServiceError
from sigward.store import (
    DEFAULT_EVENT_TTL_SECONDS,
    StoredStatus,
    StoredVerdict,
    VerdictKey,
    position_after,
    same_version,
)

# Firestore calls are small; past this the store counts as unavailable (admission then verifies itself).
CALL_TIMEOUT_SECONDS = 5.0


def _retry() -> Any:
    """Bounded retries: an unreachable Firestore must answer within CALL_TIMEOUT_SECONDS, not the SDK's minute."""
    from google.api_core import retry

    return retry.Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=CALL_TIMEOUT_SECONDS)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


class FirestoreStore:
    def __init__(self, *, project: str, collection: str) -> None:
        self.project = project
        self.collection = collection
        self._client: Any = None
        self._lock = threading.Lock()

    def _db(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from google.cloud import firestore

                    self._client = firestore.Client(project=self.project)
                except Exception as exc:  # the SDK raises several unrelated types for missing credentials
                    raise ExternalServiceError(f"Firestore client for project {self.project}: {exc}") from exc
            return self._client

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except ExternalServiceError:
            raise
        except Exception as exc:  # google.api_core exceptions and transport errors alike: the store is unavailable
            raise ExternalServiceError(f"Firestore {what} failed ({type(exc).__name__})") from exc

    def record(self, verdict: StoredVerdict) -> None:
        doc = verdict.as_json()
        doc["expires_at"] = _ts(verdict.expires_at)
        doc["verified_at"] = _ts(verdict.verified_at)
        ref = self._db().collection(self.collection).document(verdict.key)
        self._call("write", lambda: ref.set(doc, timeout=CALL_TIMEOUT_SECONDS, retry=_retry()))

    @staticmethod
    def _from_doc(data: dict[str, Any]) -> StoredVerdict:
        return StoredVerdict(
            digest=str(data.get("digest", "")),
            repository=str(data.get("repository", "")),
            policy=str(data.get("policy", "")),
            policy_hash=str(data.get("policy_hash", "")),
            rule=str(data.get("rule", "")),
            entries=str(data.get("entries", "")),
            verdict=StoredStatus.parse(str(data.get("verdict", ""))),
            message=str(data.get("message", "")),
            verified_at=_epoch(data.get("verified_at", 0)),
            expires_at=_epoch(data.get("expires_at", 0)),
            source=str(data.get("source", "")),
            event_id=str(data.get("event_id", "")),
            image=str(data.get("image", "")),
            inputs=str(data.get("inputs", "")),
        )

    def lookup(self, key: VerdictKey, *, now: float) -> StoredVerdict | None:
        stored = key.stored
        ref = self._db().collection(self.collection).document(stored)
        snap = self._call("read", lambda: ref.get(timeout=CALL_TIMEOUT_SECONDS, retry=_retry()))
        if not snap.exists:
            return None
        found = self._from_doc(snap.to_dict() or {})
        return found if found.expires_at > now else None

    def for_digest(self, digest: str) -> list[StoredVerdict]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._db().collection(self.collection).where(filter=FieldFilter("digest", "==", digest))
        docs = self._call("query", lambda: list(query.stream(timeout=CALL_TIMEOUT_SECONDS, retry=_retry())))
        return sorted((self._from_doc(d.to_dict() or {}) for d in docs), key=lambda v: v.verified_at)

    def event_done(self, event_id: str, *, now: float) -> bool:
        ref = self._db().collection(f"{self.collection}-events").document(_doc_id(event_id))
        snap = self._call("read", lambda: ref.get(timeout=CALL_TIMEOUT_SECONDS, retry=_retry()))
        return bool(snap.exists and _epoch((snap.to_dict() or {}).get("expires_at", 0)) > now)

    def mark_event(self, event_id: str, *, now: float, ttl: float = DEFAULT_EVENT_TTL_SECONDS) -> None:
        ref = self._db().collection(f"{self.collection}-events").document(_doc_id(event_id))
        self._call(
            "write", lambda: ref.set({"expires_at": _ts(now + ttl)}, timeout=CALL_TIMEOUT_SECONDS, retry=_retry())
        )

    def first_seen(self, key: str, *, now: float, ttl: float = DEFAULT_EVENT_TTL_SECONDS) -> float:
        db = self._db()
        ref = db.collection(f"{self.collection}-sightings").document(_doc_id(key))

        def run() -> float:
            from google.cloud import firestore

            @firestore.transactional
            def txn(transaction: Any) -> float:
                snap = ref.get(transaction=transaction)
                if snap.exists:
                    data = snap.to_dict() or {}
                    if _epoch(data.get("expires_at", 0)) > now:
                        return _epoch(data.get("first_seen", now))
                transaction.set(ref, {"first_seen": _ts(now), "expires_at": _ts(now + ttl)})
                return now

            result: float = txn(db.transaction())
            return result

        return float(self._call("transaction", run))

    def scan(self, *, after: str, limit: int) -> list[StoredVerdict]:
        """Documents in (digest, id) order (the id is the verdict key), one page after ``after``. Every verdict
        document has a ``digest`` field, so ordering by it leaves none out."""
        digest, key = position_after(after)
        coll = self._db().collection(self.collection)
        query = coll.order_by("digest").order_by("__name__")
        if after:
            query = query.start_after({"digest": digest, "__name__": coll.document(key)})
        query = query.limit(limit)
        docs = self._call("query", lambda: list(query.stream(timeout=CALL_TIMEOUT_SECONDS, retry=_retry())))
        return [self._from_doc(d.to_dict() or {}) for d in docs]

    def replace(self, current: StoredVerdict, new: StoredVerdict) -> bool:
        """A Firestore transaction: read the document, compare, write; Firestore retries it on contention and
        fails it when the document changed after the read, so exactly one of two racing writers wins."""
        if current.key != new.key:
            raise ValueError("replace() keeps the key: current and new must have the same key")
        db = self._db()
        ref = db.collection(self.collection).document(current.key)
        doc = new.as_json()
        doc["expires_at"] = _ts(new.expires_at)
        doc["verified_at"] = _ts(new.verified_at)

        def run() -> bool:
            from google.cloud import firestore

            @firestore.transactional
            def txn(transaction: Any) -> bool:
                snap = ref.get(transaction=transaction)
                if not snap.exists or not same_version(self._from_doc(snap.to_dict() or {}), current):
                    return False
                transaction.set(ref, doc)
                return True

            won: bool = txn(db.transaction())
            return won

        return bool(self._call("transaction", run))

    def get_state(self, name: str) -> str:
        ref = self._db().collection(f"{self.collection}-state").document(_doc_id(name))
        snap = self._call("read", lambda: ref.get(timeout=CALL_TIMEOUT_SECONDS, retry=_retry()))
        return str((snap.to_dict() or {}).get("value", "")) if snap.exists else ""

    def set_state(self, name: str, value: str, *, expected: str) -> bool:
        db = self._db()
        ref = db.collection(f"{self.collection}-state").document(_doc_id(name))

        def run() -> bool:
            from google.cloud import firestore

            @firestore.transactional
            def txn(transaction: Any) -> bool:
                snap = ref.get(transaction=transaction)
                found = str((snap.to_dict() or {}).get("value", "")) if snap.exists else ""
                if found != expected:
                    return False
                transaction.set(ref, {"name": name, "value": value})
                return True

            won: bool = txn(db.transaction())
            return won

        return bool(self._call("transaction", run))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                client.close()


def _doc_id(value: str) -> str:
    """Event ids may contain '/', which Firestore document ids may not."""
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()

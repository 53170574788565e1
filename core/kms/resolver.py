"""Keys named in a policy — PEM or KMS URI — turned into verifiers. KMS public keys are cached with a TTL,
concurrent first uses share one fetch, and a verification failure with a cached key triggers one re-fetch (the key
may have been rotated)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.errors import BadRequestError, DeadlineExceededError, VerificationFailure
from sigward.kms import backends
from sigward.kms.base import DEFAULT_KMS_TIMEOUT_SECONDS, KmsPublicKey
from sigward.policy.kms_uri import is_kms_uri, parse_kms_uri
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem

if TYPE_CHECKING:
    from sigward.policy.models import StaticKeyAttestor

# sigstore's KMS clients cache public keys for 5 minutes; rotation is also caught by the re-fetch on failure.
DEFAULT_KEY_TTL_SECONDS = 300.0
# A re-fetch after a failed verification happens at most this often per key, so unsigned images cannot turn every
# admission into a KMS call.
MIN_REFRESH_INTERVAL_SECONDS = 30.0
MAX_KEYS = 1024


def key_text(keys: StaticKeyAttestor) -> str:
    return (keys.public_keys or keys.kms).strip()


class KeyResolver:
    """Implements :class:`sigward.verify.engine.KeyResolver` for PEM keys and every KMS scheme."""

    def __init__(self, *, ttl: float = DEFAULT_KEY_TTL_SECONDS, timeout: float = DEFAULT_KMS_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout
        self._kms: TTLCache[str, KmsPublicKey] = TTLCache(max_entries=MAX_KEYS, ttl=ttl)
        self._pem: dict[tuple[str, str], PublicKeyVerifier] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def verifier(self, keys: StaticKeyAttestor, *, deadline: Deadline) -> PublicKeyVerifier:
        text = key_text(keys)
        if not text:
            raise VerificationFailure("a public key, kms key or secret is required")
        if is_kms_uri(text):
            return self._kms_verifier(text, deadline)
        if "://" in text.split("\n", 1)[0]:
            raise VerificationFailure(f"key reference {text.split(chr(10), 1)[0]!r} is not supported")
        cache_key = (text, keys.signature_algorithm)
        with self._lock:
            found = self._pem.get(cache_key)
        if found is None:
            found = PublicKeyVerifier(key=load_public_key_pem(text), hash_name=keys.signature_algorithm)
            with self._lock:
                self._pem[cache_key] = found
        return found

    def refreshed(
        self, keys: StaticKeyAttestor, stale: PublicKeyVerifier, *, deadline: Deadline
    ) -> PublicKeyVerifier | None:
        """After a failed verification: a re-fetched KMS key if it differs from ``stale``, else None."""
        text = key_text(keys)
        if not is_kms_uri(text):
            return None
        with self._lock:
            last = self._fetched_at.get(text, 0.0)
        if time.monotonic() - last < MIN_REFRESH_INTERVAL_SECONDS:
            return None
        self._kms.invalidate(text)
        fresh = self._kms_verifier(text, deadline)
        return None if fresh.key_id == stale.key_id else fresh

    def _kms_verifier(self, uri: str, deadline: Deadline) -> PublicKeyVerifier:
        try:
            ref = parse_kms_uri(uri)
        except BadRequestError as exc:
            raise VerificationFailure(exc.message) from None
        timeout = deadline.timeout(self._timeout)

        def fetch() -> KmsPublicKey:
            fetched = backends.backend(ref.scheme).public_key(ref, timeout=timeout)
            with self._lock:
                self._fetched_at[uri] = time.monotonic()
            return fetched

        try:
            kms_key = self._kms.get_or_compute(uri, fetch, timeout=max(deadline.remaining(), 0.001))
        except TimeoutError:
            raise DeadlineExceededError(f"deadline exceeded fetching the public key of {uri}") from None
        return PublicKeyVerifier(
            key=kms_key.key, hash_name=kms_key.hash_name, rsa_padding=kms_key.rsa_padding, source=uri
        )

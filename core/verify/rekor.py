"""Offline Rekor checks for legacy cosign signatures: the SignedEntryTimestamp (SET) in the
``dev.sigstore.cosign/bundle`` annotation, and that the logged entry is *this* signature.

SET = the log key's signature over the RFC 8785 canonical JSON of ``Payload`` (``body``, ``integratedTime``,
``logID``, ``logIndex``). A valid SET with a body about some other signature proves nothing, so the ``hashedrekord``
body must name sha256(payload), the same signature bytes and the same key or certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from core.errors import VerificationFailure
from core.verify.keys import PublicKeyVerifier, SupportedKey, load_public_key_pem, spki_der
from core.verify.trust import LogKey

# 9999-12-31T23:59:59Z: past this, a timestamp is no date at all.
MAX_INTEGRATED_TIME = 253_402_300_799
# A Rekor bundle annotation holds a base64 entry body of a few KiB; cap parsing well above that.
MAX_BUNDLE_BYTES = 256 * 1024


@dataclass(frozen=True)
class RekorEntry:
    body: Mapping[str, Any]
    integrated_time: int
    log_index: int
    log_id: str

    @property
    def integrated_at(self) -> datetime:
        return datetime.fromtimestamp(self.integrated_time, tz=UTC)


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationFailure(f"invalid Rekor bundle: {what} missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:
            standard = value.replace("-", "+").replace("_", "/")
            return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise VerificationFailure(f"invalid Rekor bundle: {what} is not base64") from None


def verify_set(bundle: str | bytes, *, logs: Sequence[LogKey]) -> RekorEntry:
    """Verify the SET of a cosign bundle annotation against the given log keys; return the logged entry."""
    if not logs:
        raise VerificationFailure("no Rekor public keys configured to verify the transparency log entry")
    raw = bundle.encode() if isinstance(bundle, str) else bundle
    if len(raw) > MAX_BUNDLE_BYTES:
        raise VerificationFailure("invalid Rekor bundle: too large")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise VerificationFailure("invalid Rekor bundle: not JSON (or nested too deeply)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Payload"), dict):
        raise VerificationFailure("invalid Rekor bundle: Payload missing")
    payload = doc["Payload"]
    body_b64 = payload.get("body")
    integrated_time = payload.get("integratedTime")
    log_index = payload.get("logIndex")
    log_id = payload.get("logID")
    if not isinstance(body_b64, str) or not isinstance(log_id, str):
        raise VerificationFailure("invalid Rekor bundle: body or logID missing")
    if not isinstance(integrated_time, int) or not isinstance(log_index, int) or isinstance(integrated_time, bool):
        raise VerificationFailure("invalid Rekor bundle: integratedTime or logIndex missing")
    # Canonical JSON carries integers only up to 2^53; a time must also be a real date (before year 10000).
    if not 0 <= integrated_time <= MAX_INTEGRATED_TIME or not 0 <= log_index < 2**53:
        raise VerificationFailure("invalid Rekor bundle: integratedTime or logIndex out of range")
    set_sig = _b64decode(doc.get("SignedEntryTimestamp"), "SignedEntryTimestamp")
    canonical = rfc8785.dumps(
        {"body": body_b64, "integratedTime": integrated_time, "logID": log_id, "logIndex": log_index}
    )
    candidates = [log for log in logs if hmac.compare_digest(log.log_id, log_id.lower())] or list(logs)
    when = datetime.fromtimestamp(integrated_time, tz=UTC)
    last_error = "transparency log entry not signed by a trusted Rekor key"
    for log in candidates:
        try:
            PublicKeyVerifier(key=log.key, source="Rekor").verify(set_sig, canonical)
        except VerificationFailure:
            continue
        if not log.valid_at(when):
            last_error = "Rekor key was not valid at the entry's integrated time"
            continue
        body = _decode_body(body_b64)
        return RekorEntry(body=body, integrated_time=integrated_time, log_index=log_index, log_id=log_id)
    raise VerificationFailure(f"unable to verify SET: {last_error}")


def _decode_body(body_b64: str) -> Mapping[str, Any]:
    try:
        body = json.loads(_b64decode(body_b64, "body"))
    except (ValueError, RecursionError):
        raise VerificationFailure("invalid Rekor entry body: not JSON") from None
    if not isinstance(body, dict):
        raise VerificationFailure("invalid Rekor entry body: not an object")
    return body


def check_hashedrekord(
    entry: RekorEntry,
    *,
    payload: bytes,
    signature: bytes,
    key: SupportedKey | None = None,
    certificate: x509.Certificate | None = None,
) -> None:
    """The logged entry must be this signature over this payload by this key (or certificate)."""
    body = entry.body
    kind = body.get("kind")
    if kind != "hashedrekord":
        raise VerificationFailure(f"unsupported Rekor entry kind {kind!r}, expected hashedrekord")
    spec = _obj(body, "spec")
    hash_obj = _obj(_obj(spec, "data"), "hash")
    if hash_obj.get("algorithm") != "sha256" or not isinstance(hash_obj.get("value"), str):
        raise VerificationFailure("Rekor entry has no sha256 hash of the payload")
    if not hmac.compare_digest(hash_obj["value"].lower(), hashlib.sha256(payload).hexdigest()):
        raise VerificationFailure("Rekor entry hash does not match the signed payload")
    sig_obj = _obj(spec, "signature")
    logged_sig = _b64decode(sig_obj.get("content"), "entry signature")
    if not hmac.compare_digest(logged_sig, signature):
        raise VerificationFailure("Rekor entry signature does not match the image signature")
    pk_obj = _obj(sig_obj, "publicKey")
    logged_pem = _b64decode(pk_obj.get("content"), "entry public key")
    if certificate is not None:
        try:
            logged_cert = x509.load_pem_x509_certificate(logged_pem)
        except ValueError:
            raise VerificationFailure("Rekor entry does not hold the signing certificate") from None
        if logged_cert.public_bytes(serialization.Encoding.DER) != certificate.public_bytes(serialization.Encoding.DER):
            raise VerificationFailure("Rekor entry certificate does not match the signing certificate")
        return
    if key is not None:
        logged_key_der: bytes
        if b"CERTIFICATE" in logged_pem:
            try:
                logged_key_der = spki_der(_cert_key(x509.load_pem_x509_certificate(logged_pem)))
            except ValueError:
                raise VerificationFailure("Rekor entry public key is unreadable") from None
        else:
            logged_key_der = spki_der(load_public_key_pem(logged_pem))
        if logged_key_der != spki_der(key):
            raise VerificationFailure("Rekor entry public key does not match the verification key")


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _cert_key(cert: x509.Certificate) -> SupportedKey:
    from core.verify.keys import check_key

    return check_key(cert.public_key())

"""Offline Rekor checks: the SignedEntryTimestamp (SET) in the ``dev.sigstore.cosign/bundle`` annotation, and --
for every entry kind a cosign signature or attestation can carry -- that the logged entry is *this* signature.

SET = the log key's signature over the RFC 8785 canonical JSON of ``Payload`` (``body``, ``integratedTime``,
``logID``, ``logIndex``). A valid SET with a body about some other signature proves nothing: an entry of another
signer over the same payload would otherwise vouch for a signature the log never saw. So the body must name the
content (hash), the very signature bytes and the very key or certificate that verified. One implementation serves
legacy ``.sig``/``.att`` layers and the v1 entry kinds of Sigstore bundles:

* ``hashedrekord`` 0.0.1 and ``rekord`` 0.0.1 (2021-era keyless signatures; ``x509`` format only): data hash,
  signature content, public key or certificate;
* ``intoto`` 0.0.1 (envelope hash -- which covers its signatures -- payload hash, public key), ``intoto`` 0.0.2
  (payload hash, payload type, each signature with its public key) and ``dsse`` 0.0.1 (payload hash, each signature
  with its verifier).
"""

from __future__ import annotations

import base64
import binascii
import enum
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

from sigward.errors import VerificationFailure
from sigward.policy.models import DEFAULT_REKOR_URL, Rekor
from sigward.verify.dsse import Envelope
from sigward.verify.encoding import decode_base64
from sigward.verify.keys import KeyLoadError, PublicKeyVerifier, SupportedKey, check_key, load_public_key_pem, spki_der
from sigward.verify.trust import LogKey, TrustedRoot, logs_from_pem_keys

# 9999-12-31T23:59:59Z: past this, a timestamp is no date at all.
MAX_INTEGRATED_TIME = 253_402_300_799
# A Rekor bundle annotation holds a base64 entry body of a few KiB; cap parsing well above that.
MAX_BUNDLE_BYTES = 256 * 1024


@dataclass(frozen=True)
class TlogOptions:
    """Whether the Rekor SET must be verified, and with which log keys."""

    required: bool
    logs: tuple[LogKey, ...] = ()


def tlog_options(rekor: Rekor | None, trusted_root: TrustedRoot) -> TlogOptions:
    """The one choice of transparency-log keys, for every attestor and every format (legacy ``.sig``/``.att``
    layers, Sigstore bundles): the log is required unless ``ignoreTlog``; ``pubkey`` replaces the trusted root's
    Rekor keys (valid at all times; an Ed25519 key is named by ``url``'s origin, as signed-note logs are); a ``url``
    naming a log of the trusted root narrows to that log's keys. Kyverno's default ``url`` (public Rekor), written
    or not, narrows nothing: the public-good root lists its Rekor v1 and v2 logs under different URLs, and Kyverno
    verifies entries offline with every TUF key; nor does a URL no trusted log has. Each key's ``validFor`` is
    checked against the entry's time where the entry is verified (:func:`verify_set`; bundles' inclusion proofs via
    :func:`log_for_entry` and ``LogKey.valid_at``)."""
    settings = rekor if rekor is not None else Rekor()
    if settings.ignore_tlog:
        return TlogOptions(required=False)
    url = settings.url.strip().rstrip("/")
    if settings.pub_key.strip():
        return TlogOptions(
            required=True, logs=logs_from_pem_keys([settings.pub_key], signed_note_origin=url or DEFAULT_REKOR_URL)
        )
    narrowing = url if url != DEFAULT_REKOR_URL else ""
    named = tuple(log for log in trusted_root.tlogs if narrowing and log.base_url.rstrip("/") == narrowing)
    return TlogOptions(required=True, logs=named or trusted_root.tlogs)


def log_for_entry(logs: Sequence[LogKey], log_id: bytes) -> LogKey:
    """The chosen log (:func:`tlog_options`) an entry names by its log ID; an entry of any other log is refused."""
    wanted = log_id.hex()
    for log in logs:
        if hmac.compare_digest(log.log_id.lower(), wanted):
            return log
    raise VerificationFailure(
        f"transparency log entry is from log {wanted[:16]}…, which the trusted root does not list"
    )


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
    return decode_base64(
        value,
        missing=f"invalid Rekor bundle: {what} missing",
        invalid=f"invalid Rekor bundle: {what} is not base64",
        any_alphabet=True,
    )


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


class EntryMismatch(enum.Enum):
    """Why a logged entry does not vouch for the signature being verified (the value is the user-facing text)."""

    UNSUPPORTED_KIND = "unsupported transparency log entry kind"
    MALFORMED = "transparency log entry is malformed"
    NO_HASH = "transparency log entry has no usable hash of the signed content"
    HASH = "transparency log entry hash does not match the signed artifact"
    PAYLOAD_HASH = "transparency log entry payload hash does not match the signed payload"
    ENVELOPE_HASH = "transparency log entry envelope hash does not match the attestation's envelope"
    PAYLOAD_TYPE = "transparency log entry payload type does not match the envelope"
    SIGNATURE = "transparency log entry signature does not match the signature being verified"
    SIGNATURES = "transparency log entry signatures do not match the envelope's signatures"
    NO_SIGNER = "transparency log entry names no signer"
    SIGNER = "transparency log entry key or certificate does not match the one that verified the signature"
    FORMAT = "transparency log entry signature format is not x509"


class EntryMismatchError(VerificationFailure):
    """A valid log entry about something else; ``reason`` says what differs."""

    def __init__(self, reason: EntryMismatch, detail: str = "") -> None:
        super().__init__(f"{reason.value}{': ' + detail if detail else ''}")
        self.reason = reason


@dataclass(frozen=True)
class Signer:
    """The key that verified the signature and, when it came in one, its certificate: the log entry must name the
    certificate itself (DER-equal), or -- without one -- a public key or certificate holding this key."""

    key: SupportedKey
    certificate: x509.Certificate | None = None

    def matches_pem(self, pem: bytes) -> bool:
        if self.certificate is not None:
            try:
                logged = x509.load_pem_x509_certificate(pem)
            except (ValueError, x509.InvalidVersion):
                return False
            return logged.public_bytes(serialization.Encoding.DER) == self.certificate.public_bytes(
                serialization.Encoding.DER
            )
        try:
            if b"CERTIFICATE" in pem:
                logged_key = check_key(x509.load_pem_x509_certificate(pem).public_key())
            else:
                logged_key = load_public_key_pem(pem)
        except (ValueError, x509.InvalidVersion, KeyLoadError):
            return False
        return spki_der(logged_key) == spki_der(self.key)


# Hash algorithms a v0.0.1 entry may name for its content.
ENTRY_HASHES = frozenset({"sha256", "sha384", "sha512"})


def _as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _field(parent: Any, key: str) -> Mapping[str, Any]:
    return _as_map(parent.get(key) if isinstance(parent, Mapping) else None)


def _entry_b64(value: Any, what: str) -> bytes:
    return decode_base64(value, missing=f"{what} missing", invalid=f"{what} is not base64", error=_malformed_entry)


def _malformed_entry(detail: str) -> EntryMismatchError:
    return EntryMismatchError(EntryMismatch.MALFORMED, detail)


def _maybe_b64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return data


def _kind_version(body: Mapping[str, Any]) -> str:
    kind, version = body.get("kind"), body.get("apiVersion")
    return f"{kind}/{version}" if isinstance(kind, str) and isinstance(version, str) else f"{kind!r}"


def _check_hash(holder: Mapping[str, Any], data: bytes, reason: EntryMismatch) -> None:
    algorithm, value = holder.get("algorithm"), holder.get("value")
    if algorithm not in ENTRY_HASHES or not isinstance(value, str):
        raise EntryMismatchError(EntryMismatch.NO_HASH)
    if not hmac.compare_digest(value.lower(), hashlib.new(str(algorithm), data).hexdigest()):
        raise EntryMismatchError(reason)


def _check_signer(signer: Signer, pem: bytes) -> None:
    if not signer.matches_pem(pem):
        raise EntryMismatchError(EntryMismatch.SIGNER)


def check_signature_entry(
    body: Mapping[str, Any],
    *,
    signature: bytes,
    signer: Signer,
    payload: bytes | None = None,
    digest: tuple[str, bytes] | None = None,
) -> None:
    """A ``hashedrekord``/``rekord`` 0.0.1 entry must log ``signature`` by ``signer`` over this content: the signed
    ``payload`` (legacy ``.sig`` layers; any entry hash algorithm is recomputed) or its ``digest`` (algorithm,
    bytes) when only that is known (message-signature bundles)."""
    kv = _kind_version(body)
    if kv not in ("hashedrekord/0.0.1", "rekord/0.0.1"):
        raise EntryMismatchError(EntryMismatch.UNSUPPORTED_KIND, f"{kv[:60]} cannot log a signature")
    spec = _field(body, "spec")
    data = _field(spec, "data")
    hash_obj = _field(data, "hash")
    sig = _field(spec, "signature")
    if kv == "rekord/0.0.1":
        if sig.get("format") != "x509":
            raise EntryMismatchError(EntryMismatch.FORMAT, f"{str(sig.get('format'))[:20]!r}")
        if data.get("content") is not None:
            if payload is None or _entry_b64(data.get("content"), "data content") != payload:
                raise EntryMismatchError(EntryMismatch.HASH)
        elif not hash_obj:
            raise EntryMismatchError(EntryMismatch.NO_HASH)
    if hash_obj or kv == "hashedrekord/0.0.1":
        if payload is not None:
            _check_hash(hash_obj, payload, EntryMismatch.HASH)
        else:
            assert digest is not None, "a payload or its digest is needed"
            algorithm, value = digest
            if hash_obj.get("algorithm") != algorithm or not isinstance(hash_obj.get("value"), str):
                raise EntryMismatchError(EntryMismatch.HASH)
            if not hmac.compare_digest(str(hash_obj["value"]).lower(), value.hex()):
                raise EntryMismatchError(EntryMismatch.HASH)
    if not hmac.compare_digest(_entry_b64(sig.get("content"), "signature content"), signature):
        raise EntryMismatchError(EntryMismatch.SIGNATURE)
    _check_signer(signer, _entry_b64(_field(sig, "publicKey").get("content"), "public key"))


def _same_signatures(logged: Sequence[bytes], envelope: Envelope) -> bool:
    """The logged signatures are exactly the envelope's (Rekor stores some base64-encoded once more)."""
    normalised = [sig if sig in envelope.signatures else _maybe_b64(sig) for sig in logged]
    return bool(normalised) and sorted(normalised) == sorted(envelope.signatures)


def check_envelope_entry(
    body: Mapping[str, Any], *, envelope: Envelope, signer: Signer, raw_envelope: bytes | None = None
) -> None:
    """An ``intoto`` 0.0.1/0.0.2 or ``dsse`` 0.0.1 entry must log this envelope's payload and signatures by
    ``signer``. ``intoto`` 0.0.1 logs no signatures but the hash of the envelope bytes (``raw_envelope``: the
    ``.att`` layer blob, which cosign uploads as it logs it), which covers them."""
    kv = _kind_version(body)
    spec = _field(body, "spec")
    logged: list[bytes] = []
    if kv == "intoto/0.0.1":
        content = _field(spec, "content")
        _check_hash(_field(content, "payloadHash"), envelope.payload, EntryMismatch.PAYLOAD_HASH)
        if raw_envelope is None:
            raise EntryMismatchError(EntryMismatch.UNSUPPORTED_KIND, "intoto/0.0.1 needs the envelope as logged")
        _check_hash(_field(content, "hash"), raw_envelope, EntryMismatch.ENVELOPE_HASH)
        if spec.get("publicKey") is None:
            raise EntryMismatchError(EntryMismatch.NO_SIGNER)
        _check_signer(signer, _entry_b64(spec.get("publicKey"), "public key"))
        return
    if kv == "intoto/0.0.2":
        content = _field(spec, "content")
        _check_hash(_field(content, "payloadHash"), envelope.payload, EntryMismatch.PAYLOAD_HASH)
        logged_env = _field(content, "envelope")
        if logged_env.get("payloadType") not in (None, envelope.payload_type):
            raise EntryMismatchError(EntryMismatch.PAYLOAD_TYPE)
        items = logged_env.get("signatures")
        for item in items if isinstance(items, list) else []:
            _check_signer(signer, _entry_b64(_as_map(item).get("publicKey"), "public key"))
            logged.append(_entry_b64(_as_map(item).get("sig"), "signature"))
    elif kv == "dsse/0.0.1":
        _check_hash(_field(spec, "payloadHash"), envelope.payload, EntryMismatch.PAYLOAD_HASH)
        items = spec.get("signatures")
        for item in items if isinstance(items, list) else []:
            _check_signer(signer, _entry_b64(_as_map(item).get("verifier"), "verifier"))
            logged.append(_entry_b64(_as_map(item).get("signature"), "signature"))
    else:
        raise EntryMismatchError(EntryMismatch.UNSUPPORTED_KIND, f"{kv[:60]} cannot log an attestation")
    if not _same_signatures(logged, envelope):
        raise EntryMismatchError(EntryMismatch.SIGNATURES)

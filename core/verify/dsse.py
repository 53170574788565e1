"""DSSE envelopes (https://github.com/secure-systems-lab/dsse) and the in-toto statements they carry.

The signature covers PAE(payloadType, payload) = ``"DSSEv1" SP len(type) SP type SP len(body) SP body``; only after a
signature verifies is the payload parsed, and a statement counts for an image only when one of its subjects names
that image's digest (else an attestation of image A would vouch for image B).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sigward.errors import VerificationFailure
from sigward.verify.encoding import decode_base64
from sigward.verify.keys import PublicKeyVerifier

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v1.0"}
)
# cosign's custom predicate stores its data as a string in `Data`.
COSIGN_CUSTOM_PREDICATE = "https://cosign.sigstore.dev/attestation/v1"
# SBOMs make attestations large; 16 MiB covers real SPDX/CycloneDX documents of big images.
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_SIGNATURES = 16


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]


@dataclass(frozen=True)
class Subject:
    name: str
    digests: Mapping[str, str]


@dataclass(frozen=True)
class Statement:
    type: str
    predicate_type: str
    subjects: tuple[Subject, ...]
    predicate: Any
    raw: Mapping[str, Any]

    def names_digest(self, image_digest: str) -> bool:
        algorithm, _, hex_value = image_digest.partition(":")
        return any(s.digests.get(algorithm, "").lower() == hex_value.lower() for s in self.subjects)

    def as_context(self) -> dict[str, Any]:
        """The statement as Kyverno exposes it (predicateType, subject, predicate, _type)."""
        return dict(self.raw)


def b64decode_any(value: str, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (both appear in real envelopes)."""
    return decode_base64(
        value, missing=f"{what} is not a base64 string", invalid=f"{what} is not base64", any_alphabet=True
    )


def pae(payload_type: str, payload: bytes) -> bytes:
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def parse_envelope(raw: bytes | Mapping[str, Any]) -> Envelope:
    if isinstance(raw, bytes):
        if len(raw) > MAX_ENVELOPE_BYTES:
            raise VerificationFailure(f"DSSE envelope larger than {MAX_ENVELOPE_BYTES} bytes")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise VerificationFailure("DSSE envelope is not JSON (or nested too deeply)") from None
    else:
        doc = raw
    if not isinstance(doc, Mapping):
        raise VerificationFailure("DSSE envelope is not a JSON object")
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str):
        raise VerificationFailure("DSSE envelope has no payloadType")
    payload = b64decode_any(doc.get("payload", None), "DSSE payload")
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise VerificationFailure("DSSE envelope has no signatures")
    decoded = []
    for i, item in enumerate(sigs[:MAX_SIGNATURES]):
        if not isinstance(item, Mapping):
            raise VerificationFailure(f"DSSE signature {i} is not an object")
        decoded.append(b64decode_any(item.get("sig", None), f"DSSE signature {i}"))
    return Envelope(payload_type=payload_type, payload=payload, signatures=tuple(decoded))


def verify_envelope(envelope: Envelope, verifier: PublicKeyVerifier) -> None:
    """Some signature of the envelope must verify over its PAE with ``verifier``."""
    message = pae(envelope.payload_type, envelope.payload)
    last = "no signatures"
    for signature in envelope.signatures:
        try:
            verifier.verify(signature, message)
        except VerificationFailure as exc:
            last = exc.message
            continue
        return
    raise VerificationFailure(f"invalid DSSE signature: {last}")


def parse_statement(envelope: Envelope) -> Statement:
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationFailure(
            f"DSSE payloadType {envelope.payload_type!r} is not an in-toto statement ({INTOTO_PAYLOAD_TYPE})"
        )
    try:
        doc = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise VerificationFailure("in-toto statement is not JSON (or nested too deeply)") from None
    if not isinstance(doc, dict):
        raise VerificationFailure("in-toto statement is not a JSON object")
    stype = doc.get("_type")
    if not isinstance(stype, str) or stype not in STATEMENT_TYPES:
        raise VerificationFailure(f"unknown in-toto statement _type {stype!r}")
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise VerificationFailure("in-toto statement has no predicateType")
    subjects_doc = doc.get("subject")
    if not isinstance(subjects_doc, list) or not subjects_doc:
        raise VerificationFailure("in-toto statement has no subject")
    subjects = []
    for item in subjects_doc:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), dict):
            raise VerificationFailure("in-toto statement subject without a digest")
        digests = {str(k): str(v) for k, v in item["digest"].items()}
        subjects.append(Subject(name=str(item.get("name", "")), digests=digests))
    predicate = doc.get("predicate")
    if predicate_type == COSIGN_CUSTOM_PREDICATE and isinstance(predicate, dict):
        data = predicate.get("Data")
        if isinstance(data, str):
            try:
                parsed = json.loads(data)
            except (ValueError, RecursionError):
                parsed = None
            if isinstance(parsed, dict):
                predicate = {**predicate, "Data": parsed}
                doc = {**doc, "predicate": predicate}
    return Statement(type=stype, predicate_type=predicate_type, subjects=tuple(subjects), predicate=predicate, raw=doc)


def check_subject(statement: Statement, *, image_digest: str) -> None:
    if not statement.names_digest(image_digest):
        names = ", ".join(f"{a}:{h[:12]}…" for s in statement.subjects for a, h in list(s.digests.items())[:1])
        raise VerificationFailure(f"in-toto statement subject ({names}) does not name the image digest {image_digest}")

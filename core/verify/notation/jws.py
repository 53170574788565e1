"""JWS envelopes (specs/signature-envelope-jws.md): the flattened JSON serialization, never the compact form.

Signature input is ``protected + "." + payload`` exactly as sent (RFC 7515 §5.2), so the bytes are never
re-encoded. The protected header is JSON whose registered names (``alg``, ``cty``, ``crit``) may not be listed as
critical; Notary Project times are RFC 3339 strings.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sigward.verify.encoding import decode_base64
from sigward.verify.notation.envelope import (
    ALGORITHMS,
    H_AUTHENTIC_SIGNING_TIME,
    H_EXPIRY,
    H_SIGNING_AGENT,
    H_SIGNING_SCHEME,
    H_SIGNING_TIME,
    H_TIMESTAMP,
    JWS_MEDIA_TYPE,
    MAX_ENVELOPE_CERTS,
    MAX_HEADER_ENTRIES,
    MAX_TIMESTAMP_BYTES,
    Envelope,
    SignedAttributes,
    check_critical,
    fail,
    load_der_chain,
)

_REGISTERED = frozenset({"alg", "cty", "crit"})
_KNOWN_FIELDS = frozenset({"payload", "protected", "header", "signature"})
_KNOWN_UNPROTECTED = frozenset({"x5c", H_SIGNING_AGENT, H_TIMESTAMP})


def _b64url(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise fail(f"signature is invalid. Error: {where} is not a base64url string")
    if "=" in value:
        raise fail(f"signature is invalid. Error: {where} is padded (JWS uses unpadded base64url)")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise fail(f"signature is invalid. Error: illegal base64 data in {where}") from None


def _std_b64(value: Any, where: str) -> bytes:
    return decode_base64(
        value, missing=f"{where} is not a base64 string", invalid=f"illegal base64 data in {where}", error=fail
    )


def _time(header: dict[str, Any], name: str) -> datetime | None:
    value = header.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise fail(f'header "{name}" is not an RFC 3339 time')
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f'header "{name}" is not an RFC 3339 time') from None
    if when.tzinfo is None:
        raise fail(f'header "{name}" has no time zone')
    return when


def parse_jws(raw: bytes) -> Envelope:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise fail("signature is invalid. Error: the JWS envelope is not JSON") from None
    if not isinstance(doc, dict):
        raise fail("signature is invalid. Error: the JWS envelope is not a JSON object")
    if "signatures" in doc:
        raise fail("signature is invalid. Error: JWS general serialization is not supported (flattened only)")
    unknown = set(doc) - _KNOWN_FIELDS
    if unknown:
        raise fail(f"signature is invalid. Error: unexpected JWS member {sorted(unknown)[0][:50]!r}")
    protected_b64, payload_b64 = doc.get("protected"), doc.get("payload")
    protected_raw = _b64url(protected_b64, "protected")
    payload = _b64url(payload_b64, "payload")
    signature = _b64url(doc.get("signature"), "signature")
    try:
        header = json.loads(protected_raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise fail("signature is invalid. Error: the protected header is not JSON") from None
    if not isinstance(header, dict) or len(header) > MAX_HEADER_ENTRIES:
        raise fail("signature is invalid. Error: the protected header is not a JSON object of a sane size")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise fail(f"signature algorithm {str(alg)[:20]!r} is not supported")
    crit = header.get("crit")
    if not isinstance(crit, list) or not all(isinstance(c, str) for c in crit) or not crit:
        raise fail('signature is invalid. Error: the protected header has no "crit" list of names')
    if _REGISTERED & set(crit):
        raise fail("signature is invalid. Error: registered headers may not be marked critical")
    scheme, cty = header.get(H_SIGNING_SCHEME), header.get("cty")
    if not isinstance(scheme, str) or not isinstance(cty, str):
        raise fail(f'signature is invalid. Error: the protected header lacks "{H_SIGNING_SCHEME}" or "cty"')
    known = {"alg", "cty", "crit", H_SIGNING_SCHEME, H_SIGNING_TIME, H_AUTHENTIC_SIGNING_TIME, H_EXPIRY}
    attrs = SignedAttributes(
        signing_scheme=scheme,
        content_type=cty,
        critical=tuple(crit),
        signing_time=_time(header, H_SIGNING_TIME),
        authentic_signing_time=_time(header, H_AUTHENTIC_SIGNING_TIME),
        expiry=_time(header, H_EXPIRY),
        extended={k: v for k, v in header.items() if k not in known},
    )
    check_critical(attrs, set(header))
    unprotected = doc.get("header") or {}
    if not isinstance(unprotected, dict):
        raise fail("signature is invalid. Error: the unprotected header is not a JSON object")
    extra = set(unprotected) - _KNOWN_UNPROTECTED
    if extra:
        raise fail(f"signature is invalid. Error: unexpected unprotected header {sorted(extra)[0][:50]!r}")
    x5c = unprotected.get("x5c")
    if not isinstance(x5c, list):
        raise fail("signature is invalid. Error: the unprotected header has no x5c certificate chain")
    if len(x5c) > MAX_ENVELOPE_CERTS:
        raise fail(f"x5c: certificate chain too long ({len(x5c)}), maximum allowed is {MAX_ENVELOPE_CERTS}")
    chain = load_der_chain([_std_b64(c, f"x5c[{i}]") for i, c in enumerate(x5c)], "x5c")
    agent = unprotected.get(H_SIGNING_AGENT, "")
    token = unprotected.get(H_TIMESTAMP)
    timestamp = None
    if token is not None:
        timestamp = _std_b64(token, H_TIMESTAMP)
        if len(timestamp) > MAX_TIMESTAMP_BYTES:
            raise fail(f"timestamp countersignature is larger than {MAX_TIMESTAMP_BYTES} bytes")
    return Envelope(
        media_type=JWS_MEDIA_TYPE,
        algorithm=alg,
        signed_bytes=f"{protected_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
        payload=payload,
        attributes=attrs,
        chain=chain,
        signing_agent=agent if isinstance(agent, str) else "",
        timestamp_token=timestamp,
    )

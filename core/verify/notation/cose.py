"""COSE envelopes (specs/signature-envelope-cose.md): ``COSE_Sign1_Tagged`` with the payload attached.

CBOR is decoded by ``cbor2`` with duplicate keys refused and nesting bounded; the to-be-signed bytes are the
``Sig_structure`` ``["Signature1", protected bstr as sent, h'', payload]`` (RFC 9052 §4.4), so the protected header
is verified exactly as it was signed. Notary Project times are CBOR tag 1 (epoch) values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import cbor2

from sigward.verify.notation.envelope import (
    ALGORITHMS,
    COSE_MEDIA_TYPE,
    H_AUTHENTIC_SIGNING_TIME,
    H_EXPIRY,
    H_SIGNING_AGENT,
    H_SIGNING_SCHEME,
    H_SIGNING_TIME,
    H_TIMESTAMP,
    MAX_ENVELOPE_CERTS,
    MAX_HEADER_ENTRIES,
    MAX_TIMESTAMP_BYTES,
    Envelope,
    SignedAttributes,
    check_critical,
    fail,
    load_der_chain,
)

COSE_SIGN1_TAG = 18
# COSE header labels (RFC 9052 §3.1, RFC 9360) and algorithm identifiers (RFC 9053, RFC 8230).
LABEL_ALG, LABEL_CRIT, LABEL_CONTENT_TYPE, LABEL_X5CHAIN = 1, 2, 3, 33
ALG_BY_ID = {-37: "PS256", -38: "PS384", -39: "PS512", -7: "ES256", -35: "ES384", -36: "ES512"}
ALG_IDS = {name: ident for ident, name in ALG_BY_ID.items()}
# A Notary envelope nests a few levels (array → map → array of bstr); anything deeper is hostile.
MAX_CBOR_DEPTH = 8
_REGISTERED = frozenset({LABEL_ALG, LABEL_CRIT, LABEL_CONTENT_TYPE})


def _decode(raw: bytes, what: str) -> Any:
    try:
        return cbor2.loads(raw, max_depth=MAX_CBOR_DEPTH, allow_duplicate_keys=False, allow_indefinite=False)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise fail(f"signature is invalid. Error: {what} is not valid CBOR ({str(exc)[:120]})") from None


def _time(header: Mapping[Any, Any], name: str) -> datetime | None:
    if name not in header:
        return None
    value = header[name]
    if not isinstance(value, datetime):  # cbor2 turns tag 1 into an aware datetime; anything else is wrong
        raise fail(f'header "{name}" is not a CBOR tag 1 time')
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_cose(raw: bytes) -> Envelope:
    obj = _decode(raw, "the COSE envelope")
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != COSE_SIGN1_TAG:
        raise fail("signature is invalid. Error: not a COSE_Sign1_Tagged message (CBOR tag 18)")
    msg = obj.value
    if not isinstance(msg, list | tuple) or len(msg) != 4:
        raise fail("signature is invalid. Error: COSE_Sign1 must be an array of four items")
    protected_raw, unprotected, payload, signature = msg
    if not isinstance(protected_raw, bytes) or not isinstance(unprotected, Mapping):
        raise fail("signature is invalid. Error: COSE_Sign1 headers are malformed")
    if not isinstance(payload, bytes):
        raise fail("signature is invalid. Error: COSE_Sign1 payload is detached or not a byte string")
    if not isinstance(signature, bytes):
        raise fail("signature is invalid. Error: COSE_Sign1 signature is not a byte string")
    header = _decode(protected_raw, "the protected header")
    if not isinstance(header, Mapping) or len(header) > MAX_HEADER_ENTRIES:
        raise fail("signature is invalid. Error: the protected header is not a CBOR map of a sane size")
    alg_id = header.get(LABEL_ALG)
    alg = ALG_BY_ID.get(alg_id) if isinstance(alg_id, int) and not isinstance(alg_id, bool) else None
    if alg is None or alg not in ALGORITHMS:
        raise fail(f"signature algorithm {str(header.get(LABEL_ALG))[:20]!r} is not supported")
    crit = header.get(LABEL_CRIT)
    if not isinstance(crit, list | tuple) or not crit or not all(isinstance(c, str | int) for c in crit):
        raise fail("signature is invalid. Error: the protected header has no crit list")
    if any(isinstance(c, int) for c in crit) and _REGISTERED & {c for c in crit if isinstance(c, int)}:
        raise fail("signature is invalid. Error: registered headers may not be marked critical")
    if any(isinstance(c, int) for c in crit):
        raise fail("signature contains unsupported critical header (integer label)")
    scheme, cty = header.get(H_SIGNING_SCHEME), header.get(LABEL_CONTENT_TYPE)
    if not isinstance(scheme, str) or not isinstance(cty, str):
        raise fail(f'signature is invalid. Error: the protected header lacks "{H_SIGNING_SCHEME}" or content type')
    known = {LABEL_ALG, LABEL_CRIT, LABEL_CONTENT_TYPE, H_SIGNING_SCHEME, H_SIGNING_TIME}
    known |= {H_AUTHENTIC_SIGNING_TIME, H_EXPIRY}
    attrs = SignedAttributes(
        signing_scheme=scheme,
        content_type=cty,
        critical=tuple(str(c) for c in crit),
        signing_time=_time(header, H_SIGNING_TIME),
        authentic_signing_time=_time(header, H_AUTHENTIC_SIGNING_TIME),
        expiry=_time(header, H_EXPIRY),
        extended={str(k): v for k, v in header.items() if k not in known},
    )
    check_critical(attrs, {k for k in header if isinstance(k, str)})
    chain_items = unprotected.get(LABEL_X5CHAIN)
    if isinstance(chain_items, bytes):
        chain_items = [chain_items]  # RFC 9360: a single certificate may be a bare bstr
    if not isinstance(chain_items, list | tuple) or not all(isinstance(c, bytes) for c in chain_items):
        raise fail("signature is invalid. Error: the unprotected header has no x5chain certificate chain")
    if len(chain_items) > MAX_ENVELOPE_CERTS:
        raise fail(f"x5chain: certificate chain too long ({len(chain_items)}), maximum allowed is {MAX_ENVELOPE_CERTS}")
    chain = load_der_chain(list(chain_items), "x5chain")
    agent = unprotected.get(H_SIGNING_AGENT, "")
    token = unprotected.get(H_TIMESTAMP)
    if token is not None and (not isinstance(token, bytes) or len(token) > MAX_TIMESTAMP_BYTES):
        raise fail(f"timestamp countersignature must be a byte string of at most {MAX_TIMESTAMP_BYTES} bytes")
    to_be_signed = cbor2.dumps(["Signature1", protected_raw, b"", payload])
    return Envelope(
        media_type=COSE_MEDIA_TYPE,
        algorithm=alg,
        signed_bytes=to_be_signed,
        signature=signature,
        payload=payload,
        attributes=attrs,
        chain=chain,
        signing_agent=agent if isinstance(agent, str) else "",
        timestamp_token=token,
    )

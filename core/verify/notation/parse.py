"""Which parser reads a Notation signature envelope: chosen by the signature layer's media type (JWS or COSE).

Apart from envelope.py (the model both parsers build) so the formats import the model and nothing imports back."""

from __future__ import annotations

from sigward.verify.notation.cose import parse_cose
from sigward.verify.notation.envelope import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, MAX_ENVELOPE_BYTES, Envelope, fail
from sigward.verify.notation.jws import parse_jws


def parse_envelope(media_type: str, raw: bytes) -> Envelope:
    """The envelope in ``raw`` of ``media_type`` (the signature layer's media type), or a failure in notation-go's
    words."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise fail(f"signature envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
    if media_type == JWS_MEDIA_TYPE:
        return parse_jws(raw)
    if media_type == COSE_MEDIA_TYPE:
        return parse_cose(raw)
    raise fail(
        "unable to parse the digital signature, error : signature envelope format with media type "
        f'"{media_type[:100]}" is not supported'
    )

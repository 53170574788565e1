"""Asking an RFC 3161 timestamp authority for a token over signature bytes (``sigward sign --notation --tsa-url``).

The request carries a SHA-256 imprint, a fresh nonce and ``certReq`` (so the token embeds the TSA chain, as
notation's requests do and as root-only ``tsa`` trust stores need). The answer is hostile until checked: HTTP 200
with ``application/timestamp-reply``, bounded size, status granted, the same nonce and imprint. What is returned is
the bare TimeStampToken the Notary Project envelopes carry; its trust is the verifier's business.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from sigward.deadline import Deadline
from sigward.errors import BadRequestError, ExternalServiceError
from sigward.verify.timestamps import MAX_TIMESTAMP_BYTES

TIMESTAMP_QUERY = "application/timestamp-query"
TIMESTAMP_REPLY = "application/timestamp-reply"
# A TSA answers in well under a second; the signer should not hang on one that does not.
MAX_TSA_SECONDS = 30.0


def request_timestamp(url: str, data: bytes, *, deadline: Deadline) -> bytes:
    """The TimeStampToken (CMS ContentInfo DER) the TSA at ``url`` grants over ``data``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequestError(f"--tsa-url {url[:200]!r}: expected an http(s) URL")
    import requests
    from rfc3161_client import HashAlgorithm, PKIStatus, TimestampRequestBuilder, decode_timestamp_response

    request = TimestampRequestBuilder(hash_algorithm=HashAlgorithm.SHA256, nonce=True, cert_req=True).data(data).build()
    where = f"timestamp authority {parts.hostname}"
    try:
        response = requests.post(
            url,
            data=request.as_bytes(),
            headers={"Content-Type": TIMESTAMP_QUERY, "Accept": TIMESTAMP_REPLY},
            timeout=deadline.timeout(MAX_TSA_SECONDS),
            allow_redirects=False,
            stream=True,
        )
        body = response.raw.read(MAX_TIMESTAMP_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise ExternalServiceError(f"{where}: request failed ({type(exc).__name__})") from exc
    if response.status_code != 200:
        raise ExternalServiceError(f"{where}: HTTP {response.status_code}")
    if len(body) > MAX_TIMESTAMP_BYTES:
        raise ExternalServiceError(f"{where}: the reply is larger than {MAX_TIMESTAMP_BYTES} bytes")
    try:
        reply = decode_timestamp_response(body)
    except ValueError:
        raise ExternalServiceError(f"{where}: the reply is not an RFC 3161 timestamp response") from None
    if reply.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise ExternalServiceError(f"{where}: the timestamp was not granted (status {reply.status})")
    info = reply.tst_info
    if info.nonce != request.nonce:
        raise ExternalServiceError(f"{where}: the reply's nonce is not the request's")
    if info.message_imprint.message != hashlib.sha256(data).digest():
        raise ExternalServiceError(f"{where}: the reply timestamps other bytes than the signature")
    return reply.time_stamp_token()

"""Writing Notation signatures (JWS or COSE envelope, local key + certificate chain) so CI and tests can sign
without the notation binary. Every envelope is parsed and verified by sigward's own verifier before it is pushed;
the signature manifest is the OCI 1.1 form and the ``sha256-<hex>`` referrers index is updated for registries
without the referrers API.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sigward.errors import BadRequestError
from sigward.verify.notation.cose import (
    ALG_IDS,
    COSE_SIGN1_TAG,
    LABEL_ALG,
    LABEL_CONTENT_TYPE,
    LABEL_CRIT,
    LABEL_X5CHAIN,
)
from sigward.verify.notation.envelope import (
    ALGORITHMS,
    COSE_MEDIA_TYPE,
    H_AUTHENTIC_SIGNING_TIME,
    H_EXPIRY,
    H_SIGNING_AGENT,
    H_SIGNING_SCHEME,
    H_SIGNING_TIME,
    H_TIMESTAMP,
    JWS_MEDIA_TYPE,
    PAYLOAD_CONTENT_TYPE,
    SCHEME_SIGNING_AUTHORITY,
    SCHEME_X509,
    SIGNING_SCHEMES,
)
from sigward.verify.notation.verify import HASHES, algorithm_for_key
from sigward.verify.x509chain import der

SIGNING_AGENT = "sigward"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def payload_for(media_type: str, digest: str, size: int, annotations: Mapping[str, str] | None = None) -> bytes:
    target: dict[str, object] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        target["annotations"] = dict(annotations)
    return json.dumps({"targetArtifact": target}, separators=(",", ":")).encode()


def _sign(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, alg: str, data: bytes) -> bytes:
    _, hash_name, size = ALGORITHMS[alg]
    algorithm = HASHES[hash_name]()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size), algorithm)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm)))
    half = (size + 7) // 8
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")


def build_envelope(
    envelope_format: str,
    *,
    payload: bytes,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    chain: Sequence[x509.Certificate],
    signing_time: datetime | None = None,
    expiry: datetime | None = None,
    signing_scheme: str = SCHEME_X509,
    timestamper: Callable[[bytes], bytes] | None = None,
) -> tuple[str, bytes]:
    """``(media type, envelope bytes)`` of a signature over ``payload``. ``notary.x509`` signs ``signingTime``;
    ``notary.x509.signingAuthority`` signs it as the critical ``authenticSigningTime``. ``timestamper`` turns the raw
    signature bytes into an RFC 3161 TimeStampToken, carried as the unprotected ``timestampSignature``."""
    if signing_scheme not in SIGNING_SCHEMES:
        raise BadRequestError(f"unknown Notation signing scheme {signing_scheme!r}")
    authority = signing_scheme == SCHEME_SIGNING_AUTHORITY
    time_header = H_AUTHENTIC_SIGNING_TIME if authority else H_SIGNING_TIME
    if not chain:
        raise BadRequestError("a Notation signature needs the signing certificate chain (leaf first)")
    alg = algorithm_for_key(key.public_key())
    if not alg:
        raise BadRequestError("the key cannot sign Notation signatures (RSA 2048/3072/4096 or EC P-256/384/521)")
    when = (signing_time or datetime.now(UTC)).replace(microsecond=0)
    crit = [H_SIGNING_SCHEME] + ([H_AUTHENTIC_SIGNING_TIME] if authority else [])
    crit += [H_EXPIRY] if expiry is not None else []
    if envelope_format == "jws":
        header: dict[str, object] = {
            "alg": alg,
            "crit": crit,
            "cty": PAYLOAD_CONTENT_TYPE,
            H_SIGNING_SCHEME: signing_scheme,
            time_header: when.isoformat(),
        }
        if expiry is not None:
            header[H_EXPIRY] = expiry.replace(microsecond=0).isoformat()
        protected = _b64url(json.dumps(header, separators=(",", ":")).encode())
        body = _b64url(payload)
        signature = _sign(key, alg, f"{protected}.{body}".encode())
        unprotected: dict[str, object] = {
            "x5c": [base64.b64encode(der(c)).decode() for c in chain],
            H_SIGNING_AGENT: SIGNING_AGENT,
        }
        if timestamper is not None:
            unprotected[H_TIMESTAMP] = base64.b64encode(timestamper(signature)).decode()
        doc = {"payload": body, "protected": protected, "header": unprotected, "signature": _b64url(signature)}
        return JWS_MEDIA_TYPE, json.dumps(doc).encode()
    if envelope_format == "cose":
        cose_header: dict[object, object] = {
            LABEL_ALG: ALG_IDS[alg],
            LABEL_CRIT: crit,
            LABEL_CONTENT_TYPE: PAYLOAD_CONTENT_TYPE,
            H_SIGNING_SCHEME: signing_scheme,
            time_header: cbor2.CBORTag(1, int(when.timestamp())),
        }
        if expiry is not None:
            cose_header[H_EXPIRY] = cbor2.CBORTag(1, int(expiry.timestamp()))
        protected_raw = cbor2.dumps(cose_header)
        to_sign = cbor2.dumps(["Signature1", protected_raw, b"", payload])
        signature = _sign(key, alg, to_sign)
        cose_unprotected: dict[object, object] = {
            LABEL_X5CHAIN: [der(c) for c in chain],
            H_SIGNING_AGENT: SIGNING_AGENT,
        }
        if timestamper is not None:
            cose_unprotected[H_TIMESTAMP] = timestamper(signature)
        message = cbor2.CBORTag(COSE_SIGN1_TAG, [protected_raw, cose_unprotected, payload, signature])
        return COSE_MEDIA_TYPE, cbor2.dumps(message)
    raise BadRequestError(f"unknown Notation envelope format {envelope_format!r}: use jws or cose")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

"""A local RFC 3161 timestamp authority for tests (what real data cannot give: expired TSAs, early tokens, several
tokens, tokens with embedded certificates). rfc3161-client only builds requests and verifies responses, and no
maintained Python library signs them, so this writes the DER of a TimeStampResp by hand (RFC 3161 §2.4.2, CMS
SignedData of RFC 5652 with signed attributes contentType, messageDigest and ESS signingCertificateV2) and signs it
with `cryptography`. Shaped like GitHub's `timestamp.githubapp.com`: root → intermediate → TSA leaf (EKU
timeStamping, critical), tokens without certificates unless asked."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.fulcio import CA_NOT_AFTER, CA_NOT_BEFORE, ca_certificate
from tests.support.signing import SigningKey, new_key

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OID_POLICY = "1.3.6.1.4.1.57264.2"  # any policy OID; Sigstore's timestamp authority uses this arc


# -- minimal DER


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return _tlv(0x31, b"".join(sorted(items)))  # DER: SET OF sorted by encoding


def integer(n: int) -> bytes:
    raw = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)
    return _tlv(0x02, raw)


def octets(data: bytes) -> bytes:
    return _tlv(0x04, data)


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def gentime(when: datetime) -> bytes:
    return _tlv(0x18, when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode())


def explicit(n: int, content: bytes) -> bytes:
    return _tlv(0xA0 + n, content)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# -- the authority


@dataclass(frozen=True)
class LocalTSA:
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: SigningKey

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Leaf-most first, as trusted roots list ``timestampAuthorities[].certChain``."""
        return (self.leaf, self.intermediate, self.root)

    def authority(self, *, start: datetime = CA_NOT_BEFORE, end: datetime | None = None) -> dict[str, Any]:
        """This TSA as a trusted root's ``timestampAuthorities`` entry with the given ``validFor``."""
        valid: dict[str, str] = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if end is not None:
            valid["end"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "subject": {"organization": "sigward.test", "commonName": "test TSA"},
            "uri": "https://timestamp.example.test",
            "certChain": {"certificates": [{"rawBytes": base64.b64encode(der(c)).decode()} for c in self.chain]},
            "validFor": valid,
        }

    def stamp(
        self,
        data: bytes,
        *,
        gen_time: datetime,
        embed: Sequence[x509.Certificate] = (),
        serial: int = 1,
        imprint: bytes | None = None,
        nonce: int | None = None,
    ) -> bytes:
        """A granted TimeStampResp over ``data`` (SHA-256 imprint, or ``imprint`` as given) at ``gen_time``;
        ``embed``: certificates carried in the token's ``certificates`` field; ``nonce`` echoed when given."""
        tst_info = seq(
            integer(1),
            oid(OID_POLICY),
            seq(seq(oid(OID_SHA256)), octets(imprint if imprint is not None else hashlib.sha256(data).digest())),
            integer(serial),
            gentime(gen_time),
            *([integer(nonce)] if nonce is not None else []),
        )
        ess = seq(seq(seq(octets(hashlib.sha256(der(self.leaf)).digest()))))
        attributes = [
            seq(oid(OID_CONTENT_TYPE), set_of(oid(OID_TST_INFO))),
            seq(oid(OID_MESSAGE_DIGEST), set_of(octets(hashlib.sha256(tst_info).digest()))),
            seq(oid(OID_SIGNING_CERTIFICATE_V2), set_of(ess)),
        ]
        attrs = b"".join(sorted(attributes))
        signed_attrs = _tlv(0x31, attrs)  # signed as a SET OF, carried as [0] IMPLICIT
        assert isinstance(self.leaf_key.private, ec.EllipticCurvePrivateKey)
        signature = self.leaf_key.private.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
        signer_info = seq(
            integer(1),
            seq(self.leaf.issuer.public_bytes(), integer(self.leaf.serial_number)),
            seq(oid(OID_SHA256)),
            _tlv(0xA0, attrs),
            seq(oid(OID_ECDSA_SHA256)),
            octets(signature),
        )
        parts = [
            integer(3),
            set_of(seq(oid(OID_SHA256))),
            seq(oid(OID_TST_INFO), explicit(0, octets(tst_info))),
        ]
        if embed:
            parts.append(_tlv(0xA0, b"".join(sorted(der(c) for c in embed))))  # SET OF: DER order
        parts.append(set_of(signer_info))
        token = seq(oid(OID_SIGNED_DATA), explicit(0, seq(*parts)))
        return seq(seq(integer(0)), token)


@lru_cache(maxsize=8)
def make_tsa(slot: int = 0, *, not_before: datetime = CA_NOT_BEFORE, not_after: datetime = CA_NOT_AFTER) -> LocalTSA:
    """A TSA with keys from ``new_key`` slots ``300 + 10*slot ...``; the leaf is valid from ``not_before`` to
    ``not_after`` (an expired TSA is one whose leaf ended before the token's time)."""
    base = 300 + 10 * slot
    root_key = new_key("p384", slot=base)
    intermediate_key = new_key("p256", slot=base + 1)
    leaf_key = new_key("p256", slot=base + 2)
    root = ca_certificate(f"test-tsa-root-{slot}", root_key)
    intermediate = ca_certificate(f"test-tsa-intermediate-{slot}", intermediate_key, issuer=(root, root_key))
    leaf = ca_certificate(
        f"test-tsa-timestamping-{slot}",
        leaf_key,
        issuer=(intermediate, intermediate_key),
        ca=False,
        key_cert_sign=None,
        not_before=not_before,
        not_after=not_after,
        extra=[(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True)],
    )
    return LocalTSA(root=root, intermediate=intermediate, leaf=leaf, leaf_key=leaf_key)

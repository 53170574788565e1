"""The format-free model of a Notation signature envelope, its limits, and the parser dispatch by media type.

Every envelope is hostile input: sizes and chain length are bounded before anything is decoded, times must be
well-formed, and every critical header must be one sigward understands (specs/signature-specification.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from sigward.errors import VerificationFailure

JWS_MEDIA_TYPE = "application/jose+json"
COSE_MEDIA_TYPE = "application/cose"
ENVELOPE_MEDIA_TYPES = (JWS_MEDIA_TYPE, COSE_MEDIA_TYPE)
PAYLOAD_CONTENT_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SIGNATURE_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"

SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"
SIGNING_SCHEMES = (SCHEME_X509, SCHEME_SIGNING_AUTHORITY)

H_SIGNING_SCHEME = "io.cncf.notary.signingScheme"
H_SIGNING_TIME = "io.cncf.notary.signingTime"
H_AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
H_EXPIRY = "io.cncf.notary.expiry"
H_PLUGIN = "io.cncf.notary.verificationPlugin"
H_PLUGIN_MIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
H_SIGNING_AGENT = "io.cncf.notary.signingAgent"
H_TIMESTAMP = "io.cncf.notary.timestampSignature"
# Critical headers sigward evaluates. A verification plugin is never run here, so a signature that needs one is
# refused as an unknown critical header would be (notation-go fails without the plugin installed too).
UNDERSTOOD_CRITICAL = frozenset({H_SIGNING_SCHEME, H_SIGNING_TIME, H_AUTHENTIC_SIGNING_TIME, H_EXPIRY})

# notation-go caps a signature blob at 32 MiB (registry/repository.go); a real envelope is a payload descriptor plus
# a certificate chain, a few KiB. 1 MiB leaves room for an 11-certificate chain with large keys and a timestamp.
MAX_ENVELOPE_BYTES = 1024 * 1024
# The payload is one OCI descriptor with optional annotations (notation sign -m k=v): 64 KiB is generous.
MAX_PAYLOAD_BYTES = 64 * 1024
# The envelope's x5c / x5chain: leaf + at most 10 intermediates + root, the same cap as Kyverno's certChain.
MAX_ENVELOPE_CERTS = 11
# An RFC 3161 token is a CMS SignedData with the TSA chain: well under 64 KiB.
MAX_TIMESTAMP_BYTES = 64 * 1024
# Protected-header entries: the registered ones plus a handful of signer-defined extended attributes.
MAX_HEADER_ENTRIES = 64

# Signature algorithms of the Notary Project, with the hash each uses and the key they require.
ALGORITHMS: Mapping[str, tuple[str, str, int]] = {
    # name: (key kind, hash, RSA bits or EC curve size)
    "PS256": ("rsa", "sha256", 2048),
    "PS384": ("rsa", "sha384", 3072),
    "PS512": ("rsa", "sha512", 4096),
    "ES256": ("ec", "sha256", 256),
    "ES384": ("ec", "sha384", 384),
    "ES512": ("ec", "sha512", 521),
}


def fail(message: str) -> VerificationFailure:
    return VerificationFailure(message)


@dataclass(frozen=True)
class SignedAttributes:
    """The protected (signed) header, format-free. Times are timezone-aware."""

    signing_scheme: str
    content_type: str
    critical: tuple[str, ...]
    signing_time: datetime | None = None
    authentic_signing_time: datetime | None = None
    expiry: datetime | None = None
    extended: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Envelope:
    """One parsed envelope: what the signature covers (``signed_bytes``), the raw signature, the payload, the signed
    attributes and the unsigned certificate chain (leaf first)."""

    media_type: str
    algorithm: str
    signed_bytes: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    payload: bytes = field(repr=False)
    attributes: SignedAttributes
    chain: tuple[x509.Certificate, ...]
    signing_agent: str = ""
    timestamp_token: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TargetArtifact:
    """The descriptor the payload says was signed."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)


def check_critical(attrs: SignedAttributes, present: set[str]) -> None:
    """notation-core-go's rules: ``crit`` lists the signing scheme, and expiry / authentic signing time when present;
    every listed name must be present; a name sigward does not understand is refused."""
    crit = attrs.critical
    if len(set(crit)) != len(crit):
        raise fail("signature envelope has duplicate critical headers")
    if H_SIGNING_SCHEME not in crit:
        raise fail(f'missing "{H_SIGNING_SCHEME}" in critical headers')
    for name in (H_EXPIRY, H_AUTHENTIC_SIGNING_TIME):
        if name in present and name not in crit:
            raise fail(f'header "{name}" is present but not marked critical')
    for name in crit:
        if name not in present:
            raise fail(f'critical header "{name[:100]}" is not present in the protected headers')
        if name not in UNDERSTOOD_CRITICAL:
            raise fail(f'signature contains unsupported critical header "{name[:100]}"')
    if attrs.signing_scheme not in SIGNING_SCHEMES:
        raise fail(f'signing scheme "{attrs.signing_scheme[:100]}" is not supported')
    if attrs.signing_scheme == SCHEME_X509:
        if attrs.signing_time is None:
            raise fail(f'missing "{H_SIGNING_TIME}" for signing scheme "{SCHEME_X509}"')
        if attrs.authentic_signing_time is not None:
            raise fail(f'authentic signing time not supported under signing scheme "{SCHEME_X509}"')
    if attrs.signing_scheme == SCHEME_SIGNING_AUTHORITY and attrs.authentic_signing_time is None:
        raise fail(f'missing "{H_AUTHENTIC_SIGNING_TIME}" for signing scheme "{SCHEME_SIGNING_AUTHORITY}"')
    if attrs.content_type != PAYLOAD_CONTENT_TYPE:
        raise fail(f'payload content type "{attrs.content_type[:100]}" is not "{PAYLOAD_CONTENT_TYPE}"')


def load_der_chain(items: list[bytes], where: str) -> tuple[x509.Certificate, ...]:
    if not items:
        raise fail(f"{where}: the signature envelope has no certificate chain")
    if len(items) > MAX_ENVELOPE_CERTS:
        raise fail(f"{where}: certificate chain too long ({len(items)}), maximum allowed is {MAX_ENVELOPE_CERTS}")
    certs = []
    for i, item in enumerate(items):
        try:
            cert = x509.load_der_x509_certificate(item)
            # cryptography parses fields lazily: touch every one a later check reads, so a malformed certificate
            # fails here, as a parse error, not as an exception from deep inside a check.
            _ = (cert.public_key(), cert.subject, cert.issuer, cert.extensions, cert.not_valid_after_utc)
            _ = (cert.not_valid_before_utc, cert.signature_algorithm_oid)
            certs.append(cert)
        except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
            raise fail(f"{where}[{i}]: not a DER certificate ({str(exc)[:100]})") from None
    return tuple(certs)


def parse_payload(raw: bytes) -> TargetArtifact:
    """``{"targetArtifact": {mediaType, digest, size, annotations?}}``."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise fail(f"signature payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise fail("signature payload is not JSON") from None
    target = doc.get("targetArtifact") if isinstance(doc, dict) else None
    if not isinstance(target, dict):
        raise fail("signature payload has no targetArtifact descriptor")
    media_type, digest, size = target.get("mediaType"), target.get("digest"), target.get("size")
    if not isinstance(media_type, str) or not media_type or not isinstance(digest, str) or not digest:
        raise fail("signature payload targetArtifact lacks mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise fail("signature payload targetArtifact has no valid size")
    annotations = target.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise fail("signature payload targetArtifact annotations must map strings to strings")
    return TargetArtifact(media_type=media_type, digest=digest, size=size, annotations=annotations)

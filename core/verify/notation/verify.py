"""Verifying Notation signatures the way Kyverno's ``type: Notary`` does (notation-go with a trust policy built in
code: scope ``*``, level **strict**, trusted identities ``*``, the attestor's certificates as the one ``ca`` store).

Checks run in notation-go's order -- integrity (envelope signature with the leaf key, algorithm bound to the key,
payload ``targetArtifact`` = the image descriptor), critical headers, authenticity (certificate requirements,
ordered chain, a trusted certificate in it), authenticTimestamp (chain valid now, at a verified RFC 3161 timestamp's
time when a ``tsa`` store is configured, or at the authentic signing time under ``notary.x509.signingAuthority``; see
``timestamp``), expiry -- all enforced (strict). Signatures are tried in registry order and
the first that passes wins; none → the failures of each. Revocation (OCSP/CRL fetching) is not performed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sigward.errors import FailureKind, VerificationFailure
from sigward.verify.notation.certs import check_authentic_chain, check_chain_path, go_time
from sigward.verify.notation.envelope import (
    ALGORITHMS,
    SCHEME_SIGNING_AUTHORITY,
    Envelope,
    TargetArtifact,
    parse_payload,
)
from sigward.verify.notation.parse import parse_envelope
from sigward.verify.notation.timestamp import VerifyTimestamp, authentic_time
from sigward.verify.trust import CertificateAuthority

HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# notation-go (and Kyverno, which passes 10) stop after this many signatures: each costs a download and checks.
MAX_SIGNATURE_ATTEMPTS = 10


@dataclass(frozen=True)
class NotationTrust:
    """The trust stores of Kyverno's in-code trust policy: ``ca`` (attestor ``certificates.cert`` + ``certChain``),
    ``signingAuthority`` (empty under Kyverno: signing-authority signatures then fail authenticity) and ``tsa``
    (``certificates.ctlog.tsaCertChain``), with the policy's ``verifyTimestamp`` option."""

    ca: tuple[x509.Certificate, ...]
    signing_authority: tuple[x509.Certificate, ...] = ()
    tsa: tuple[CertificateAuthority, ...] = ()
    verify_timestamp: VerifyTimestamp = VerifyTimestamp.ALWAYS


@dataclass(frozen=True)
class NotationLayer:
    """A signature fetched from a registry: its manifest digest, envelope media type and bytes, or a ``problem``
    saying why it could not be read."""

    manifest_digest: str
    media_type: str
    raw: bytes
    problem: str = ""


@dataclass(frozen=True)
class Target:
    """The descriptor of the image manifest that was verified against."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class VerifiedNotation:
    manifest_digest: str
    envelope: Envelope
    target: TargetArtifact


def algorithm_for_key(key: object) -> str:
    """The only Notary algorithm a key may sign with (RSA 2048/3072/4096 → PS256/384/512; P-256/384/521 → ES…)."""
    if isinstance(key, rsa.RSAPublicKey):
        return {2048: "PS256", 3072: "PS384", 4096: "PS512"}.get(key.key_size, "")
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}.get(key.curve.key_size, "")
    return ""


def verify_envelope_signature(env: Envelope) -> None:
    """Integrity: the signature over the signed bytes verifies with the leaf key, and ``alg`` is the leaf's."""
    key = env.chain[0].public_key()
    expected = algorithm_for_key(key)
    if env.algorithm != expected:
        raise VerificationFailure(
            f"signature is invalid. Error: algorithm {env.algorithm} does not match the signing certificate's key"
            f" ({expected or 'unsupported key'})"
        )
    _, hash_name, size = ALGORITHMS[env.algorithm]
    algorithm = HASHES[hash_name]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                env.signature,
                env.signed_bytes,
                padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size),
                algorithm,
            )
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            half = (size + 7) // 8
            if len(env.signature) != 2 * half:
                raise InvalidSignature
            r = int.from_bytes(env.signature[:half], "big")
            s = int.from_bytes(env.signature[half:], "big")
            key.verify(encode_dss_signature(r, s), env.signed_bytes, ec.ECDSA(algorithm))
    except InvalidSignature:
        raise VerificationFailure(
            "signature is invalid. Error: crypto/rsa: verification error"
            if isinstance(key, rsa.RSAPublicKey)
            else "signature is invalid. Error: ecdsa: verification error"
        ) from None


def check_target(found: TargetArtifact, target: Target) -> None:
    """The signed descriptor must be the image's: a different digest is a replayed signature."""
    if found.digest != target.digest or found.media_type != target.media_type or found.size != target.size:
        raise VerificationFailure(
            "integrity check failed: the signature's targetArtifact "
            f"{json.dumps({'mediaType': found.media_type[:100], 'digest': found.digest[:80], 'size': found.size})}"
            f" does not match the artifact {json.dumps(target.__dict__)}"
        )


def verify_envelope(env: Envelope, *, target: Target, trust: NotationTrust, now: datetime) -> TargetArtifact:
    verify_envelope_signature(env)
    artifact = parse_payload(env.payload)
    check_target(artifact, target)
    attrs = env.attributes
    signing_authority = attrs.signing_scheme == SCHEME_SIGNING_AUTHORITY
    check_authentic_chain(env.chain, trust.signing_authority if signing_authority else trust.ca)
    at = authentic_time(env, tsa=trust.tsa, verify_timestamp_option=trust.verify_timestamp, now=now)
    check_chain_path(env.chain, at)
    if attrs.expiry is not None and now >= attrs.expiry:
        raise VerificationFailure(f'digital signature has expired on "{go_time(attrs.expiry)}"')
    return artifact


def verify_notation_signatures(
    layers: Sequence[NotationLayer], *, target: Target, trust: NotationTrust, now: datetime, reference: str
) -> VerifiedNotation:
    """The first signature (registry order, at most :data:`MAX_SIGNATURE_ATTEMPTS`) that passes; else a failure
    listing why each did not (notation-go's outcome rule)."""
    if not layers:
        raise VerificationFailure(
            f'no signature is associated with "{reference}", make sure the artifact was signed successfully',
            kind=FailureKind.NO_SIGNATURES,
        )
    errors: list[str] = []
    for layer in layers[:MAX_SIGNATURE_ATTEMPTS]:
        try:
            if layer.problem:
                raise VerificationFailure(layer.problem)
            env = parse_envelope(layer.media_type, layer.raw)
            artifact = verify_envelope(env, target=target, trust=trust, now=now)
        except VerificationFailure as exc:
            message = exc.message
            if message not in errors:
                errors.append(message)
            continue
        return VerifiedNotation(manifest_digest=layer.manifest_digest, envelope=env, target=artifact)
    raise VerificationFailure(
        f"signature verification failed for all the signatures associated with {reference}: " + "; ".join(errors)
    )

"""Public keys and the signature schemes cosign uses, verified with ``cryptography``.

cosign signs with ECDSA (ASN.1 DER signatures), RSA PKCS#1 v1.5 (PSS for some KMS keys) and Ed25519 (pure). The hash
comes from the policy's ``signatureAlgorithm`` (Kyverno default sha256); for ECDSA keys on P-384/P-521 newer cosign
releases hash with the curve's own size, so that hash is accepted too — it is as strong as the configured one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigward.errors import VerificationFailure

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_CURVE_HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
# RSA keys below 2048 bits are refused: no KMS or cosign release makes them and they are breakable.
MIN_RSA_BITS = 2048
# A PEM public key larger than this is not a public key (RSA-8192 SPKI PEM is ~1.5 KiB).
MAX_PEM_BYTES = 16 * 1024

SupportedKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
RSAPadding = Literal["pkcs1v15", "pss"]


class KeyLoadError(VerificationFailure):
    """A public key could not be loaded or is of a kind cosign does not sign with."""


def load_public_key_pem(pem: str | bytes) -> SupportedKey:
    """Load one PEM ``PUBLIC KEY`` and refuse kinds and sizes cosign does not use."""
    raw = pem.encode() if isinstance(pem, str) else pem
    if len(raw) > MAX_PEM_BYTES:
        raise KeyLoadError("failed to load public key from PEM: larger than a public key can be")
    try:
        key = serialization.load_pem_public_key(raw.strip())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(f"failed to load public key from PEM: {exc}") from exc
    return check_key(key)


def load_public_key_der(der: bytes) -> SupportedKey:
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(f"failed to load public key from DER: {exc}") from exc
    return check_key(key)


def check_key(key: PublicKeyTypes) -> SupportedKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_HASH:
            raise KeyLoadError(f"unsupported elliptic curve {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyLoadError(f"RSA key of {key.key_size} bits is too small (minimum {MIN_RSA_BITS})")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise KeyLoadError(f"unsupported public key type {type(key).__name__}")


def spki_der(key: SupportedKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_pem(key: SupportedKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(key: SupportedKey) -> str:
    """sha256 of the DER SubjectPublicKeyInfo, hex: how Rekor and trusted roots name keys."""
    return hashlib.sha256(spki_der(key)).hexdigest()


def describe_key(key: SupportedKey) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    return "Ed25519"


@dataclass(frozen=True)
class PublicKeyVerifier:
    """A public key plus how signatures made with it are checked."""

    key: SupportedKey
    hash_name: str = "sha256"
    rsa_padding: RSAPadding = "pkcs1v15"
    # Where the key came from (PEM, KMS URI): named in messages, never secret.
    source: str = "PEM"
    _hashes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hash_name not in HASHES:
            raise KeyLoadError(f"unsupported signature algorithm {self.hash_name!r}")
        names = [self.hash_name]
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            curve_default = _CURVE_HASH[self.key.curve.name]
            if curve_default not in names:
                names.append(curve_default)
        object.__setattr__(self, "_hashes", tuple(names))

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise :class:`VerificationFailure` with cosign's wording unless ``signature`` is valid over ``data``."""
        key = self.key
        if isinstance(key, ed25519.Ed25519PublicKey):
            try:
                key.verify(signature, data)
            except InvalidSignature:
                raise VerificationFailure("ed25519: invalid signature") from None
            return
        if isinstance(key, ec.EllipticCurvePublicKey):
            for name in self._hashes:
                try:
                    key.verify(signature, data, ec.ECDSA(HASHES[name]()))
                except (InvalidSignature, ValueError):
                    continue
                return
            raise VerificationFailure("invalid signature when validating ASN.1 encoded signature")
        algorithm = HASHES[self.hash_name]()
        pad: padding.AsymmetricPadding
        if self.rsa_padding == "pss":
            pad = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO)
        else:
            pad = padding.PKCS1v15()
        try:
            key.verify(signature, data, pad, algorithm)
        except (InvalidSignature, ValueError):
            raise VerificationFailure("crypto/rsa: verification error") from None


def split_pem_public_keys(text: str) -> tuple[str, ...]:
    """Split several PEM public keys in one string, as Kyverno's ``splitPEM`` does (text after the last END dropped)."""
    marker = "-----END PUBLIC KEY-----"
    parts = text.split(marker)
    return tuple(p.strip() + "\n" + marker + "\n" for p in parts[:-1] if p.strip())

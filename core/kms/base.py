"""What every KMS backend provides: the public key of a key reference (with the algorithm it signs with), and a
signature over a payload for ``sigward sign``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sigward.policy.kms_uri import KmsKeyRef, Scheme
from sigward.verify.keys import RSAPadding, SupportedKey

# One KMS call may take this long at most (the admission deadline may cut it shorter).
DEFAULT_KMS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class KmsPublicKey:
    key: SupportedKey
    hash_name: str  # sha256 | sha384 | sha512: the hash the key's signing algorithm uses
    rsa_padding: RSAPadding = "pkcs1v15"
    version: str = ""  # the key version fetched (GCP/Azure/Vault version, AWS key ARN), for messages


class KmsBackend(Protocol):
    """One per scheme and process; thread-safe; SDK clients created once and reused."""

    scheme: Scheme

    def public_key(self, ref: KmsKeyRef, *, timeout: float) -> KmsPublicKey:
        """Fetch the verification key. Raise NotFoundError / AccessDeniedError (decided failures that name the key
        and the missing permission), KeyLoadError for a key not meant for signing, ExternalServiceError otherwise."""
        ...

    def sign(self, ref: KmsKeyRef, payload: bytes, *, timeout: float) -> bytes:
        """Sign ``payload`` with the key (the KMS hashes with the key's algorithm); ECDSA signatures ASN.1 DER, as
        cosign stores them."""
        ...

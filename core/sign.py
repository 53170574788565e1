"""``sigward sign``: write a cosign-compatible ``.sig`` signature for an image with a KMS key or a local PEM key,
so CI can sign without the cosign binary. The signature is verified with the same key before it is pushed.

A ``.sig`` manifest holds one layer per signature; an existing manifest is extended (the same signature twice is
not added again), as cosign does.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from sigward.deadline import Deadline
from sigward.errors import BadRequestError, ConfigurationError, NotFoundError, VerificationFailure
from sigward.policy.kms_uri import is_kms_uri, parse_kms_uri
from sigward.references import Repository, parse_image_reference, parse_repository
from sigward.registry import OCI_MANIFEST, RegistryClient
from sigward.verify.cosign import ANNOTATION_SIGNATURE, SignatureLayer, TlogOptions, verify_signatures_with_key
from sigward.verify.keys import PublicKeyVerifier, check_key
from sigward.verify.oci import signature_tag
from sigward.verify.simplesigning import SIMPLESIGNING_MEDIA_TYPE, make_payload

# A private key file larger than this is not a PEM key (RSA-4096 PKCS#8 PEM is ~3.3 KiB).
MAX_KEY_FILE_BYTES = 64 * 1024
ENV_KEY_PASSWORD = "SIGWARD_KEY_PASSWORD"  # noqa: S105 - the variable's name
# Cosign's own encrypted key format (scrypt + NaCl secretbox) needs a library sigward does not ship.
_COSIGN_ENCRYPTED = b"ENCRYPTED SIGSTORE PRIVATE KEY"
_CURVE_HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


@dataclass(frozen=True)
class SignResult:
    image: str
    digest: str
    signature_repository: str
    signature_tag: str
    manifest_digest: str
    key: str
    added: bool  # False when the same signature was already there


class Signer:
    """Signs payload bytes; ``verifier`` checks the result before anything is pushed."""

    def __init__(self, key: str, *, environ: Mapping[str, str] | None = None) -> None:
        self.key = key
        self._env = os.environ if environ is None else environ
        self._private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | None = None
        if not is_kms_uri(key):
            self._private = load_private_key(Path(key), self._env.get(ENV_KEY_PASSWORD))

    def sign(self, payload: bytes, *, deadline: Deadline) -> tuple[bytes, PublicKeyVerifier]:
        if self._private is None:
            from sigward.kms import backends
            from sigward.kms.base import DEFAULT_KMS_TIMEOUT_SECONDS

            ref = parse_kms_uri(self.key)
            backend = backends.backend(ref.scheme)
            signature = backend.sign(ref, payload, timeout=deadline.timeout(DEFAULT_KMS_TIMEOUT_SECONDS))
            public = backend.public_key(ref, timeout=deadline.timeout(DEFAULT_KMS_TIMEOUT_SECONDS))
            verifier = PublicKeyVerifier(
                key=public.key, hash_name=public.hash_name, rsa_padding=public.rsa_padding, source=self.key
            )
            return signature, verifier
        private = self._private
        public_key = check_key(private.public_key())
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return private.sign(payload), PublicKeyVerifier(key=public_key, source="local key")
        if isinstance(private, ec.EllipticCurvePrivateKey):
            hash_name = _CURVE_HASH.get(private.curve.name, "sha256")
            signature = private.sign(payload, ec.ECDSA(_HASHES[hash_name]()))
            return signature, PublicKeyVerifier(key=public_key, hash_name=hash_name, source="local key")
        signature = private.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        return signature, PublicKeyVerifier(key=public_key, source="local key")


def load_private_key(
    path: Path, password: str | None
) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise BadRequestError(f"--key {path}: not a KMS URI and not a readable key file ({exc.strerror})") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise BadRequestError(f"--key {path}: larger than a private key file can be")
    if _COSIGN_ENCRYPTED in raw:
        raise BadRequestError(
            f"--key {path}: cosign's encrypted key format is not supported; export it as PKCS#8 PEM "
            "(openssl pkcs8) or keep the key in a KMS"
        )
    try:
        key = serialization.load_pem_private_key(raw, password=password.encode() if password else None)
    except TypeError:
        raise ConfigurationError(f"--key {path} is encrypted: set {ENV_KEY_PASSWORD}") from None
    except ValueError as exc:
        reason = str(exc).split("\n", 1)[0]
        raise BadRequestError(f"--key {path}: not a usable PEM private key ({reason})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise BadRequestError(f"--key {path}: {type(key).__name__} keys cannot sign cosign signatures")
    return key


def sign_image(
    image: str,
    *,
    signer: Signer,
    client: RegistryClient,
    deadline: Deadline,
    annotations: Mapping[str, str] | None = None,
    repository: str | None = None,
) -> SignResult:
    ref = parse_image_reference(image)
    digest = client.resolve(ref, deadline=deadline).digest
    payload = make_payload(docker_reference=ref.repository, manifest_digest=digest, annotations=annotations)
    signature, verifier = signer.sign(payload, deadline=deadline)
    signature_b64 = base64.b64encode(signature).decode()
    layer = SignatureLayer(
        media_type=SIMPLESIGNING_MEDIA_TYPE, payload=payload, annotations={ANNOTATION_SIGNATURE: signature_b64}
    )
    # the signature must verify with the same key before it is published
    verify_signatures_with_key(
        [layer], image_digest=digest, verifier=verifier, annotations={}, tlog=TlogOptions(required=False)
    )
    target: Repository = parse_repository(repository) if repository else ref.repo
    tag = signature_tag(digest)
    manifest_digest, added = _append_signature(client, target, tag, payload, signature_b64, verifier, deadline)
    return SignResult(
        image=ref.reference,
        digest=digest,
        signature_repository=str(target),
        signature_tag=tag,
        manifest_digest=manifest_digest,
        key=signer.key,
        added=added,
    )


def _append_signature(
    client: RegistryClient,
    repo: Repository,
    tag: str,
    payload: bytes,
    signature_b64: str,
    verifier: PublicKeyVerifier,
    deadline: Deadline,
) -> tuple[str, bool]:
    """Add the signature layer unless a layer with the same payload already verifies with the same key (ECDSA
    signatures differ each time, so equal bytes alone would not catch a re-run)."""
    layers: list[dict[str, object]] = []
    try:
        existing = client.get_manifest(repo, tag, deadline=deadline)
    except NotFoundError:
        existing = None
    if existing is not None and not existing.is_index:
        existing_layers = existing.data.get("layers")
        if isinstance(existing_layers, list):
            layers = [dict(x) for x in existing_layers if isinstance(x, dict)]
    payload_digest = client.push_blob(repo, payload, deadline=deadline)
    for desc in layers:
        ann = desc.get("annotations")
        if desc.get("digest") != payload_digest or not isinstance(ann, dict):
            continue
        try:
            verifier.verify(base64.b64decode(str(ann.get(ANNOTATION_SIGNATURE, "")), validate=True), payload)
        except (VerificationFailure, ValueError):
            continue
        return (existing.digest if existing is not None else ""), False
    layers.append(
        {
            "mediaType": SIMPLESIGNING_MEDIA_TYPE,
            "size": len(payload),
            "digest": payload_digest,
            "annotations": {ANNOTATION_SIGNATURE: signature_b64},
        }
    )
    config = json.dumps(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [str(x.get("digest")) for x in layers]},
        },
        separators=(",", ":"),
    ).encode()
    config_digest = client.push_blob(repo, config, deadline=deadline)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
        "layers": layers,
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    return client.push_manifest(repo, tag, raw, OCI_MANIFEST, deadline=deadline), True

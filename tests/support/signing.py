"""Make cosign-format signatures with ``cryptography`` (no cosign binary here): simple-signing payloads, layer
annotations, ``.sig`` manifests, and Rekor SET bundles signed by a test log key."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from sigward.verify.cosign import ANNOTATION_BUNDLE, ANNOTATION_SIGNATURE
from sigward.verify.simplesigning import SIMPLESIGNING_MEDIA_TYPE, make_payload

KeyKind = Literal["p256", "p384", "p521", "rsa2048", "rsa3072", "ed25519"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class SigningKey:
    private: PrivateKey
    kind: KeyKind

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    @property
    def public_der(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes, *, hash_name: str = "sha256", pss: bool = False) -> bytes:
        key = self.private
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        algorithm = HASHES[hash_name]()
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(algorithm))
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.MAX_LENGTH) if pss else padding.PKCS1v15()
        )
        return key.sign(data, pad, algorithm)


_KEY_CACHE: dict[tuple[KeyKind, int], SigningKey] = {}


def new_key(kind: KeyKind = "p256", *, slot: int = 0) -> SigningKey:
    """A key of ``kind``; the same (kind, slot) gives the same key within a test run (RSA generation is slow)."""
    cached = _KEY_CACHE.get((kind, slot))
    if cached is not None:
        return cached
    private: PrivateKey
    if kind == "p256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif kind == "p384":
        private = ec.generate_private_key(ec.SECP384R1())
    elif kind == "p521":
        private = ec.generate_private_key(ec.SECP521R1())
    elif kind == "rsa2048":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "rsa3072":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    made = SigningKey(private=private, kind=kind)
    _KEY_CACHE[(kind, slot)] = made
    return made


@dataclass(frozen=True)
class SignedLayer:
    payload: bytes
    annotations: Mapping[str, str]
    media_type: str = SIMPLESIGNING_MEDIA_TYPE


def signed_layer(
    key: SigningKey,
    *,
    image_digest: str,
    docker_reference: str = "example.test/app",
    annotations: Mapping[str, str] | None = None,
    payload: bytes | None = None,
    hash_name: str = "sha256",
    pss: bool = False,
    extra_annotations: Mapping[str, str] | None = None,
) -> SignedLayer:
    body = (
        payload
        if payload is not None
        else make_payload(docker_reference=docker_reference, manifest_digest=image_digest, annotations=annotations)
    )
    sig = key.sign(body, hash_name=hash_name, pss=pss)
    ann = {ANNOTATION_SIGNATURE: base64.b64encode(sig).decode()}
    if extra_annotations:
        ann.update(extra_annotations)
    return SignedLayer(payload=body, annotations=ann)


def tampered(layer: SignedLayer, payload: bytes) -> SignedLayer:
    """The same signature annotation over different payload bytes."""
    return SignedLayer(payload=payload, annotations=dict(layer.annotations), media_type=layer.media_type)


def rekor_bundle(
    log_key: SigningKey,
    *,
    payload: bytes,
    signature_b64: str,
    signer_public_pem: str,
    integrated_time: int = 1_700_000_000,
    log_index: int = 42,
    log_id: str | None = None,
) -> str:
    """A cosign ``dev.sigstore.cosign/bundle`` annotation whose SET is signed by ``log_key``."""
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
            "signature": {
                "content": signature_b64,
                "publicKey": {"content": base64.b64encode(signer_public_pem.encode()).decode()},
            },
        },
    }
    body_b64 = base64.b64encode(json.dumps(body).encode()).decode()
    the_log_id = log_id or hashlib.sha256(log_key.public_der).hexdigest()
    signed: dict[str, str | int] = {
        "body": body_b64,
        "integratedTime": integrated_time,
        "logID": the_log_id,
        "logIndex": log_index,
    }
    set_sig = log_key.sign(rfc8785.dumps(signed))
    return json.dumps({"SignedEntryTimestamp": base64.b64encode(set_sig).decode(), "Payload": signed})


def with_rekor_bundle(layer: SignedLayer, log_key: SigningKey, signer: SigningKey, **kwargs: Any) -> SignedLayer:
    bundle = rekor_bundle(
        log_key,
        payload=layer.payload,
        signature_b64=layer.annotations[ANNOTATION_SIGNATURE],
        signer_public_pem=signer.public_pem,
        **kwargs,
    )
    return SignedLayer(
        payload=layer.payload,
        annotations={**layer.annotations, ANNOTATION_BUNDLE: bundle},
        media_type=layer.media_type,
    )


class BlobPusher(Protocol):
    def push_blob(self, repo: str, data: bytes) -> str: ...

    def push_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str: ...


def attach_signatures(
    registry: BlobPusher, repo: str, image_digest: str, layers: list[SignedLayer], *, tag_prefix: str = ""
) -> str:
    """Push a cosign ``[tag_prefix]sha256-<hex>.sig`` manifest with one layer per signature; returns its digest."""
    config = b"{}"
    config_digest = registry.push_blob(repo, config)
    descriptors = []
    for layer in layers:
        digest = registry.push_blob(repo, layer.payload)
        descriptors.append(
            {
                "mediaType": layer.media_type,
                "size": len(layer.payload),
                "digest": digest,
                "annotations": dict(layer.annotations),
            }
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": config_digest,
        },
        "layers": descriptors,
    }
    raw = json.dumps(manifest).encode()
    tag = tag_prefix + image_digest.replace(":", "-") + ".sig"
    return registry.push_manifest(repo, tag, raw, "application/vnd.oci.image.manifest.v1+json")


def in_toto_statement(
    image_digest: str, predicate_type: str, predicate: Any, *, name: str = "image", statement_type: str = "v1"
) -> dict[str, Any]:
    algorithm, _, hex_value = image_digest.partition(":")
    return {
        "_type": "https://in-toto.io/Statement/v1" if statement_type == "v1" else "https://in-toto.io/Statement/v0.1",
        "subject": [{"name": name, "digest": {algorithm: hex_value}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def dsse_envelope(key: SigningKey, payload: bytes, payload_type: str = "application/vnd.in-toto+json") -> bytes:
    from sigward.verify.dsse import pae

    sig = key.sign(pae(payload_type, payload))
    return json.dumps(
        {
            "payloadType": payload_type,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
        }
    ).encode()


def attestation_layer(key: SigningKey, statement: dict[str, Any] | bytes) -> SignedLayer:
    """A cosign ``.att`` layer: the DSSE envelope as the blob, ``predicateType`` annotation, empty signature."""
    payload = statement if isinstance(statement, bytes) else json.dumps(statement).encode()
    predicate_type = "" if isinstance(statement, bytes) else str(statement.get("predicateType", ""))
    return SignedLayer(
        payload=dsse_envelope(key, payload),
        annotations={ANNOTATION_SIGNATURE: "", "predicateType": predicate_type},
        media_type="application/vnd.dsse.envelope.v1+json",
    )


def attach_attestations(
    registry: BlobPusher, repo: str, image_digest: str, layers: list[SignedLayer], *, tag_prefix: str = ""
) -> str:
    """Push a cosign ``[tag_prefix]sha256-<hex>.att`` manifest, one DSSE layer per attestation."""
    config = b"{}"
    config_digest = registry.push_blob(repo, config)
    descriptors = [
        {
            "mediaType": layer.media_type,
            "size": len(layer.payload),
            "digest": registry.push_blob(repo, layer.payload),
            "annotations": dict(layer.annotations),
        }
        for layer in layers
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": config_digest,
        },
        "layers": descriptors,
    }
    tag = tag_prefix + image_digest.replace(":", "-") + ".att"
    return registry.push_manifest(
        repo, tag, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json"
    )

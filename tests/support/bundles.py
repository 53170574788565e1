"""Make Sigstore bundles the way cosign v3 does with ``--key`` (no cosign binary here), a small transparency log to
log them in, and the OCI 1.1 referrer layout to attach them to images.

:class:`TestLog` is a Rekor stand-in: an RFC 6962 Merkle tree whose inclusion proofs are computed with the
recursive definition of RFC 6962 §2.1.1 (independently of the verifier's iterative algorithm), checkpoints as
C2SP signed notes, and (for a v1-style ECDSA log) signed entry timestamps over RFC 8785 canonical JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sigward.verify.bundles import BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE
from sigward.verify.dsse import INTOTO_PAYLOAD_TYPE, pae
from tests.support.registry import OCI_INDEX, OCI_MANIFEST, LocalRegistry, sha256_digest
from tests.support.signing import SigningKey, new_key

EntryKind = Literal["dsse/0.0.1", "hashedrekord/0.0.2", "dsse/0.0.2", "intoto/0.0.2", "hashedrekord/0.0.1"]
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def statement(
    subject_digest: str, predicate_type: str = COSIGN_SIGN_PREDICATE, predicate: Any = None, name: str = "image"
) -> bytes:
    algorithm, _, hex_value = subject_digest.partition(":")
    doc = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {algorithm: hex_value}}],
        "predicateType": predicate_type,
        "predicate": predicate if predicate is not None else {},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962 §2.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return _leaf_hash(leaves[0])
    k = _split(len(leaves))
    return _node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), leaf-most hash first."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


@dataclass
class TestLog:
    """A transparency log: ``v1`` signs checkpoints and SETs with ECDSA P-256 (Rekor v1), ``v2`` signs checkpoints
    with Ed25519 and has no SET (Rekor v2)."""

    __test__ = False  # not a pytest test class

    style: Literal["v1", "v2"] = "v1"
    origin: str = "rekor.test.example"
    slot: int = 7
    leaves: list[bytes] = field(default_factory=list)
    tree_id: int = 4242

    def __post_init__(self) -> None:
        self.key: SigningKey = new_key("p256" if self.style == "v1" else "ed25519", slot=self.slot)

    @property
    def log_id(self) -> bytes:
        if self.style == "v2":
            private = self.key.private
            assert isinstance(private, ed25519.Ed25519PrivateKey)
            raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return hashlib.sha256(self.origin.encode() + b"\n\x01" + raw).digest()
        return hashlib.sha256(self.key.public_der).digest()

    @property
    def checkpoint_origin(self) -> str:
        return f"{self.origin} - {self.tree_id}" if self.style == "v1" else self.origin

    def append(self, body: bytes) -> int:
        self.leaves.append(body)
        return len(self.leaves) - 1

    def filler(self, count: int) -> None:
        for _ in range(count):
            self.append(os.urandom(24))

    def root(self, size: int | None = None) -> bytes:
        return _mth(self.leaves[: size or len(self.leaves)])

    def proof(self, index: int, size: int | None = None) -> list[bytes]:
        return _path(index, self.leaves[: size or len(self.leaves)])

    def checkpoint(
        self, size: int | None = None, *, extra_lines: Sequence[str] = (), signer: SigningKey | None = None
    ) -> str:
        size = size or len(self.leaves)
        text = f"{self.checkpoint_origin}\n{size}\n{b64(self.root(size))}\n" + "".join(f"{x}\n" for x in extra_lines)
        signature = (signer or self.key).sign(text.encode())
        return f"{text}\n\u2014 {self.origin} {b64(self.log_id[:4] + signature)}\n"

    def signed_entry_timestamp(self, body: bytes, *, integrated_time: int, log_index: int) -> bytes:
        payload: dict[str, str | int] = {
            "body": b64(body),
            "integratedTime": integrated_time,
            "logID": self.log_id.hex(),
            "logIndex": log_index,
        }
        return self.key.sign(rfc8785.dumps(payload))

    def trust_entry(self, *, start: str = "2020-01-01T00:00:00Z", end: str | None = None) -> dict[str, Any]:
        valid: dict[str, str] = {"start": start}
        if end:
            valid["end"] = end
        return {
            "baseUrl": f"https://{self.origin}",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(self.key.public_der),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256" if self.style == "v1" else "PKIX_ED25519",
                "validFor": valid,
            },
            "logId": {"keyId": b64(self.log_id)},
        }


def trusted_root(*logs: TestLog, entries: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """A trusted root JSON naming ``logs`` (or explicit tlog ``entries``) and nothing else."""
    doc = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [log.trust_entry() for log in logs] + [dict(e) for e in entries],
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": [],
    }
    return json.dumps(doc).encode()


def _verifier_v2(key: SigningKey) -> dict[str, Any]:
    details = {"p256": "PKIX_ECDSA_P256_SHA_256", "ed25519": "PKIX_ED25519"}.get(
        key.kind, "PKIX_RSA_PKCS1V15_2048_SHA256"
    )
    return {"keyDetails": details, "publicKey": {"rawBytes": b64(key.public_der)}}


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return rfc8785.dumps(dict(doc))


def entry_body(
    kind: EntryKind,
    key: SigningKey,
    *,
    payload: bytes = b"",
    signature: bytes,
    digest: bytes = b"",
    payload_type: str = INTOTO_PAYLOAD_TYPE,
) -> bytes:
    """The canonicalized body Rekor would log for a DSSE envelope (``payload``) or a message ``digest``."""
    pem_b64 = b64(key.public_pem.encode())
    if kind == "dsse/0.0.1":
        spec: dict[str, Any] = {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(b"envelope").hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": b64(signature), "verifier": pem_b64}],
        }
        api = "0.0.1"
    elif kind == "dsse/0.0.2":
        spec = {
            "dsseV002": {
                "payloadHash": {"algorithm": "SHA2_256", "digest": b64(hashlib.sha256(payload).digest())},
                "signatures": [{"content": b64(signature), "verifier": _verifier_v2(key)}],
            }
        }
        api = "0.0.2"
    elif kind == "intoto/0.0.2":
        spec = {
            "content": {
                "envelope": {
                    "payload": b64(b64(payload).encode()),
                    "payloadType": payload_type,
                    "signatures": [{"publicKey": pem_b64, "sig": b64(b64(signature).encode())}],
                },
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(b"envelope").hexdigest()},
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            }
        }
        api = "0.0.2"
    elif kind == "hashedrekord/0.0.2":
        logged = hashlib.sha256(pae(payload_type, payload)).digest() if payload else digest
        spec = {
            "hashedRekordV002": {
                "data": {"algorithm": "SHA2_256", "digest": b64(logged)},
                "signature": {"content": b64(signature), "verifier": _verifier_v2(key)},
            }
        }
        api = "0.0.2"
    else:
        spec = {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {"content": b64(signature), "publicKey": {"content": pem_b64}},
        }
        api = "0.0.1"
    return _canonical({"apiVersion": api, "kind": kind.partition("/")[0], "spec": spec})


def log_entry(
    log: TestLog,
    body: bytes,
    *,
    kind: str,
    integrated_time: int = 1_760_000_000,
    filler_after: int = 3,
    promise: bool | None = None,
) -> dict[str, Any]:
    """Log ``body`` (after whatever the log holds) and return the bundle's ``tlogEntries[]`` item for it."""
    index = log.append(body)
    log.filler(filler_after)
    size = len(log.leaves)
    entry: dict[str, Any] = {
        "logIndex": str(index + 1_000_000),  # a sharded log's global index differs from the tree index
        "logId": {"keyId": b64(log.log_id)},
        "kindVersion": {"kind": kind.partition("/")[0], "version": kind.partition("/")[2]},
        "inclusionProof": {
            "logIndex": str(index),
            "rootHash": b64(log.root(size)),
            "treeSize": str(size),
            "hashes": [b64(h) for h in log.proof(index, size)],
            "checkpoint": {"envelope": log.checkpoint(size)},
        },
        "canonicalizedBody": b64(body),
    }
    if promise if promise is not None else log.style == "v1":
        entry["integratedTime"] = str(integrated_time)
        sig = log.signed_entry_timestamp(body, integrated_time=integrated_time, log_index=index + 1_000_000)
        entry["inclusionPromise"] = {"signedEntryTimestamp": b64(sig)}
    return entry


def dsse_bundle(
    key: SigningKey,
    payload: bytes,
    *,
    log: TestLog | None = None,
    kind: EntryKind = "dsse/0.0.1",
    payload_type: str = INTOTO_PAYLOAD_TYPE,
    sign_with: SigningKey | None = None,
    media_type: str = BUNDLE_MEDIA_TYPE,
) -> dict[str, Any]:
    """A v0.3 managed-key bundle of a DSSE envelope over ``payload``, logged in ``log`` when given."""
    signature = (sign_with or key).sign(pae(payload_type, payload))
    material: dict[str, Any] = {"publicKey": {"hint": b64(hashlib.sha256(key.public_der).digest())}, "tlogEntries": []}
    if log is not None:
        body = entry_body(kind, key, payload=payload, signature=signature, payload_type=payload_type)
        material["tlogEntries"].append(log_entry(log, body, kind=kind))
    return {
        "mediaType": media_type,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(signature), "keyid": ""}],
        },
    }


def message_bundle(
    key: SigningKey, digest: bytes, *, log: TestLog | None = None, kind: EntryKind = "hashedrekord/0.0.1"
) -> dict[str, Any]:
    """A v0.3 managed-key bundle of a message signature over a sha256 ``digest`` (the image digest for images)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    private = key.private
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    signature = private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    material: dict[str, Any] = {"publicKey": {"hint": ""}, "tlogEntries": []}
    if log is not None:
        body = entry_body(kind, key, signature=signature, digest=digest)
        material["tlogEntries"].append(log_entry(log, body, kind=kind))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
            "signature": b64(signature),
        },
    }


def encode(bundle: Mapping[str, Any]) -> bytes:
    return json.dumps(bundle).encode()


# -- OCI 1.1 referrers


def push_bundle_referrer(
    registry: LocalRegistry,
    repo: str,
    image_digest: str,
    bundle: bytes,
    *,
    artifact_type: str = BUNDLE_MEDIA_TYPE,
    predicate_type: str = COSIGN_SIGN_PREDICATE,
    created: str = "2026-01-01T00:00:00Z",
    fallback: bool = True,
    subject_digest: str | None = None,
) -> str:
    """Attach ``bundle`` to the image as cosign v3 does: a referrer manifest (empty config, one bundle layer,
    ``subject`` = the image) and, like clients facing a registry without the referrers API, the ``sha256-<hex>``
    index updated with its descriptor. Returns the referrer manifest digest."""
    image = registry.pushed[image_digest]
    annotations = {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": predicate_type,
        "org.opencontainers.image.created": created,
    }
    subject = {"mediaType": image.media_type, "digest": subject_digest or image_digest, "size": image.size}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": registry.push_blob(repo, b"{}"), "size": 2},
        "layers": [
            {
                "mediaType": artifact_type,
                "digest": registry.push_blob(repo, bundle),
                "size": len(bundle),
                "annotations": {"org.opencontainers.image.title": "bundle.sigstore.json"},
            }
        ],
        "subject": subject,
        "annotations": annotations,
    }
    raw = json.dumps(manifest).encode()
    digest = registry.push_manifest(repo, sha256_digest(raw), raw, OCI_MANIFEST)
    if fallback:
        add_to_fallback_index(
            registry,
            repo,
            image_digest,
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(raw),
                "artifactType": artifact_type,
                "annotations": annotations,
            },
        )
    return digest


def add_to_fallback_index(registry: LocalRegistry, repo: str, image_digest: str, descriptor: Mapping[str, Any]) -> str:
    """Read-modify-write the referrers tag schema index ``sha256-<hex>`` as clients (cosign, oras) maintain it."""
    import requests

    tag = image_digest.replace(":", "-")
    with requests.Session() as session:
        session.trust_env = False
        resp = session.get(f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_INDEX}, timeout=10)
    index: dict[str, Any] = (
        resp.json() if resp.status_code == 200 else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    )
    index["manifests"] = [m for m in index["manifests"] if m.get("digest") != descriptor["digest"]] + [dict(descriptor)]
    return registry.push_manifest(repo, tag, json.dumps(index).encode(), OCI_INDEX)

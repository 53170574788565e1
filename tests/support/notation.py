"""Notation test helpers: push a Notary Project OCI image layout (the vectors) into the real registry, a test CA
(root → leaf with the codeSigning EKU, Notary certificate profile), and signing an image with sigward's own
envelope builder (OCI 1.1 signature manifest + the ``sha256-<hex>`` referrers index)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sigward.verify.notation.envelope import SIGNATURE_ARTIFACT_TYPE
from sigward.verify.notation.sign import build_envelope, payload_for
from tests.support.bundles import add_to_fallback_index
from tests.support.registry import LocalRegistry, sha256_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def push_layout(registry: LocalRegistry, repo: str, layout: Path) -> None:
    """Every blob, then manifests (images before indexes), each tag from ``org.opencontainers.image.ref.name``."""
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    descs = sorted(index["manifests"], key=lambda d: d["mediaType"] == OCI_INDEX)
    for blob in blobs.iterdir():
        if f"sha256:{blob.name}" not in {d["digest"] for d in descs}:
            registry.push_blob(repo, blob.read_bytes())
    for desc in descs:
        raw = (blobs / desc["digest"].split(":", 1)[1]).read_bytes()
        ref = desc.get("annotations", {}).get("org.opencontainers.image.ref.name", desc["digest"])
        registry.push_manifest(repo, ref, raw, desc["mediaType"])


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Notary"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ku(*, sign: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(sign, False, False, False, False, cert_sign, False, False, False)


@dataclass(frozen=True)
class TestCA:
    __test__ = False  # a helper, not a pytest test class

    root: x509.Certificate
    leaf: x509.Certificate
    leaf_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @property
    def root_pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.leaf, self.root]


def make_ca(
    name: str = "sigward test",
    *,
    ec_key: bool = False,
    leaf_eku: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.CODE_SIGNING,
    leaf_not_after: datetime | None = None,
) -> TestCA:
    """Root (CA, keyCertSign, critical) → leaf (digitalSignature critical, EKU ``leaf_eku``)."""
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} root"))
        .issuer_name(_name(f"{name} root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ku(sign=False, cert_sign=True), critical=True)
        .sign(root_key, hashes.SHA384())
    )
    leaf_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if ec_key else rsa.generate_private_key(65537, 2048)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} leaf"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(leaf_not_after or now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_ku(sign=True, cert_sign=False), critical=True)
    )
    if leaf_eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([leaf_eku]), critical=False)
    return TestCA(root=root, leaf=builder.sign(root_key, hashes.SHA384()), leaf_key=leaf_key)


def sign_pushed(
    registry: LocalRegistry,
    repo: str,
    digest: str,
    ca: TestCA,
    *,
    envelope_format: str = "jws",
    expiry: datetime | None = None,
    tamper: bool = False,
    subject_digest: str | None = None,
    timestamper: Callable[[bytes], bytes] | None = None,
) -> str:
    """Sign the pushed manifest ``digest`` and attach the signature as an OCI 1.1 referrer (plus the tag-schema
    index); ``tamper`` flips a byte of the envelope's signature after signing. Returns the signature manifest."""
    image = registry.pushed[digest]
    payload = payload_for(image.media_type, subject_digest or digest, image.size)
    media_type, envelope = build_envelope(
        envelope_format, payload=payload, key=ca.leaf_key, chain=ca.chain, expiry=expiry, timestamper=timestamper
    )
    if tamper:
        envelope = _tampered(media_type, envelope)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": registry.push_blob(repo, b"{}"), "size": 2},
        "layers": [{"mediaType": media_type, "digest": registry.push_blob(repo, envelope), "size": len(envelope)}],
        "subject": {"mediaType": image.media_type, "digest": digest, "size": image.size},
    }
    raw = json.dumps(manifest).encode()
    sig = registry.push_manifest(repo, sha256_digest(raw), raw, OCI_MANIFEST)
    add_to_fallback_index(
        registry,
        repo,
        digest,
        {"mediaType": OCI_MANIFEST, "digest": sig, "size": len(raw), "artifactType": SIGNATURE_ARTIFACT_TYPE},
    )
    return sig


def _tampered(media_type: str, envelope: bytes) -> bytes:
    if media_type == "application/jose+json":
        doc = json.loads(envelope)
        sig = doc["signature"]
        doc["signature"] = ("B" if sig[0] != "B" else "C") + sig[1:]
        return json.dumps(doc).encode()
    return envelope[:-1] + bytes([envelope[-1] ^ 1])  # last byte of the COSE signature


def write_signing_files(ca: TestCA, directory: Path) -> tuple[Path, Path]:
    """``(private key PEM, chain PEM leaf first)`` for ``sigward sign --notation``."""
    key = directory / "notation-key.pem"
    key.write_bytes(
        ca.leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    chain = directory / "notation-chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ca.chain))
    return key, chain


def push_notary_attestation(
    registry: LocalRegistry,
    repo: str,
    digest: str,
    artifact_type: str,
    document: dict[str, object],
    ca: TestCA | None,
    *,
    envelope_format: str = "jws",
    layer_media_type: str = "application/json",
) -> str:
    """A Notary attestation as Kyverno reads it: a referrer of ``digest`` whose artifactType is the attestation type
    and whose one layer is the JSON document, signed with Notation by ``ca`` (unsigned when ``ca`` is None)."""
    image = registry.pushed[digest]
    body = json.dumps(document).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": registry.push_blob(repo, b"{}"), "size": 2},
        "layers": [{"mediaType": layer_media_type, "digest": registry.push_blob(repo, body), "size": len(body)}],
        "subject": {"mediaType": image.media_type, "digest": digest, "size": image.size},
    }
    raw = json.dumps(manifest).encode()
    att = registry.push_manifest(repo, sha256_digest(raw), raw, OCI_MANIFEST)
    add_to_fallback_index(
        registry,
        repo,
        digest,
        {"mediaType": OCI_MANIFEST, "digest": att, "size": len(raw), "artifactType": artifact_type},
    )
    if ca is not None:
        sign_pushed(registry, repo, att, ca, envelope_format=envelope_format)
    return att

"""GitHub artifact attestation vectors (../shared/vectors/github-attestations) served from the real registry.

The attested subjects are files, not image manifests, so each bundle is attached as an OCI 1.1 referrer (artifactType
``application/vnd.dev.sigstore.bundle.v0.3+json``, listed in the ``sha256-<hex>`` fallback index as
``actions/attest-build-provenance`` + ``gh attestation`` clients do on a registry without the referrers API) of an
image named ``repo@sha256:<subject digest>``: the digest is pinned, so no manifest with that digest has to exist.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.bundles import OCI_EMPTY, add_to_fallback_index
from tests.support.registry import OCI_MANIFEST, LocalRegistry, sha256_digest
from tests.support.vectors import vectors_dir

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SAN = "https://github.com/actions/attest-build-provenance/.github/workflows/prober.yml@refs/heads/main"
ACTIONS = "https://token.actions.githubusercontent.com"
OWNER_REPO = "actions/attest-build-provenance"
REKOR = "https://rekor.sigstore.dev"  # Kyverno requires rekor.url (or roots) on a keyless attestor


@dataclass(frozen=True)
class Vector:
    path: str
    digest: str


GH_1 = Vector(
    "github-instance/actions-attest-build-provenance-attestation-13531551.sigstore.json",
    "sha256:b03d18ed0a16864ef2d2e559c660159a2170b9d086a1f42f570b1679326b90e6",
)
GH_2 = Vector(
    "github-instance/actions-attest-build-provenance-attestation-13581567.sigstore.json",
    "sha256:658913cfebe8a49165264e2b5e54ad99b3bdbfbc8cd281b3cfaa949a21588f18",
)
PG = Vector(
    "public-good/actions-attest-build-provenance-attestation-13532655.sigstore.json",
    "sha256:bb030cb9e028ff6d4051f2103b3b08f7e3928aa80a7d3626cef6e2553dc714b8",
)


def folder() -> Path:
    path = vectors_dir() / "github-attestations"
    if not path.is_dir():
        pytest.skip(f"GitHub attestation vectors not present at {path} (SIGWARD_VECTORS)")
    return path


def root_path(name: str) -> Path:
    return folder() / "trusted-roots" / name


def bundle_doc(vector: Vector) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((folder() / vector.path).read_bytes())
    return doc


def no_timestamps(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["verificationMaterial"].pop("timestampVerificationData")
    return out


def altered_token(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    stamp = out["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
    raw = bytearray(base64.b64decode(stamp["signedTimestamp"]))
    raw[-40] ^= 0x01  # inside the CMS signature
    stamp["signedTimestamp"] = base64.b64encode(bytes(raw)).decode()
    return out


def altered_payload(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    statement = json.loads(base64.b64decode(out["dsseEnvelope"]["payload"]))
    statement["predicate"]["buildDefinition"]["buildType"] = "https://evil.example/build"
    out["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return out


def _chain_pem(authority: dict[str, Any]) -> str:
    certs = [
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])) for c in authority["certChain"]["certificates"]
    ]
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def github_policy_pems() -> tuple[str, str]:
    """(Fulcio chain PEM, TSA chain PEM) of GitHub's current generation: what a ClusterPolicy pastes into
    ``keyless.roots`` and ``ctlog.tsaCertChain`` (the ``validFor`` that the trusted root carries is lost)."""
    doc = json.loads(root_path("github.json").read_bytes())
    return _chain_pem(doc["certificateAuthorities"][-1]), _chain_pem(doc["timestampAuthorities"][-1])


def serve(registry: LocalRegistry, repo: str, subject_digest: str, bundle: bytes) -> str:
    """Attach ``bundle`` as a referrer of ``repo@subject_digest``; returns that pinned image reference."""
    annotations = {"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": SLSA_V1}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": {"mediaType": OCI_EMPTY, "digest": registry.push_blob(repo, b"{}"), "size": 2},
        "layers": [{"mediaType": BUNDLE_V03, "digest": registry.push_blob(repo, bundle), "size": len(bundle)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": 1000},
        "annotations": annotations,
    }
    raw = json.dumps(manifest).encode()
    digest = registry.push_manifest(repo, sha256_digest(raw), raw, OCI_MANIFEST)
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": len(raw),
        "artifactType": BUNDLE_V03,
        "annotations": annotations,
    }
    add_to_fallback_index(registry, repo, subject_digest, descriptor)
    return f"{registry.host}/{repo}@{subject_digest}"


def bundle_entry(
    image_pattern: str,
    *,
    subject: str = SAN,
    issuer: str = ACTIONS,
    extensions: dict[str, str] | None = None,
    keyless_extra: dict[str, Any] | None = None,
    predicate_type: str | None = None,
) -> dict[str, Any]:
    """A ``type: SigstoreBundle`` verifyImages entry as Kyverno's docs write it for GitHub attestations."""
    keyless: dict[str, Any] = {"subject": subject, "issuer": issuer, "rekor": {"url": REKOR}, **(keyless_extra or {})}
    if extensions:
        keyless["additionalExtensions"] = extensions
    attestors = [{"entries": [{"keyless": keyless}]}]
    iv: dict[str, Any] = {"imageReferences": [image_pattern], "type": "SigstoreBundle", "required": True}
    if predicate_type is None:
        iv["attestors"] = attestors
    else:
        iv["attestations"] = [{"type": predicate_type, "attestors": attestors}]
    return iv

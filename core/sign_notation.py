"""``sigward sign --notation jws|cose``: write a Notary Project signature (``notary.x509``) for an image with a local
PEM key and its certificate chain, so CI can sign without the notation binary.

The envelope is checked with sigward's own verifier (signature with the leaf key, ``targetArtifact`` = the image
descriptor) before anything is pushed. The signature manifest is the OCI 1.1 form (``artifactType``
``application/vnd.cncf.notary.signature``, empty config, ``subject`` = the image); when the registry does not list
it through the referrers API (docker-registry 2.8 has none), the ``sha256-<hex>`` tag-schema index is updated as
notation and oras do. With ``--tsa-url`` the signature bytes are countersigned by that RFC 3161 timestamp authority
(the token goes in the envelope's unprotected ``io.cncf.notary.timestampSignature``), so the signature keeps
verifying after the signing certificate expires for verifiers that trust that TSA.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from hashlib import sha256
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sigward.deadline import Deadline
from sigward.errors import BadRequestError, NotFoundError, VerificationFailure
from sigward.references import Repository, parse_image_reference, parse_repository
from sigward.registry import OCI_INDEX, OCI_MANIFEST, RegistryClient
from sigward.registry.hints import referrers_tag
from sigward.sign import ENV_KEY_PASSWORD, load_private_key
from sigward.tsa_client import request_timestamp
from sigward.verify.notation.envelope import SIGNATURE_ARTIFACT_TYPE, parse_payload
from sigward.verify.notation.parse import parse_envelope
from sigward.verify.notation.sign import build_envelope, payload_for
from sigward.verify.notation.verify import Target, check_target, verify_envelope_signature
from sigward.verify.referrers import OCI_EMPTY_MEDIA_TYPE
from sigward.verify.x509chain import load_certificates_pem

EMPTY_CONFIG = b"{}"
ENVELOPE_FORMATS = ("jws", "cose")
# A certificate chain file larger than this is not a chain (11 certificates of ~2 KiB PEM each).
MAX_CHAIN_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class NotationSignResult:
    image: str
    digest: str
    signature_repository: str
    signature_manifest: str
    envelope: str  # jws | cose
    media_type: str
    fallback_index: bool  # True when the sha256-<hex> tag-schema index was written
    timestamped: bool = False  # True when an RFC 3161 countersignature (--tsa-url) is in the envelope


def read_chain(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CHAIN_FILE_BYTES + 1)
    except OSError as exc:
        raise BadRequestError(f"--cert-chain {path}: not a readable file ({exc.strerror})") from None
    if len(raw) > MAX_CHAIN_FILE_BYTES:
        raise BadRequestError(f"--cert-chain {path}: larger than a certificate chain can be")
    return raw.decode("ascii", errors="replace")


def sign_image_notation(
    image: str,
    *,
    key_path: Path,
    chain_path: Path,
    envelope_format: str,
    client: RegistryClient,
    deadline: Deadline,
    annotations: Mapping[str, str] | None = None,
    repository: str | None = None,
    expiry: datetime | None = None,
    environ: Mapping[str, str] | None = None,
    tsa_url: str | None = None,
) -> NotationSignResult:
    if envelope_format not in ENVELOPE_FORMATS:
        raise BadRequestError(f"--notation {envelope_format!r}: use jws or cose")
    env = environ or {}
    key = load_private_key(key_path, env.get(ENV_KEY_PASSWORD))
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise BadRequestError(f"--key {key_path}: Notation signs with RSA or ECDSA keys only")
    try:
        chain = load_certificates_pem(read_chain(chain_path), what=f"--cert-chain {chain_path}")
    except VerificationFailure as exc:
        raise BadRequestError(exc.message) from None
    if not chain:
        raise BadRequestError(f"--cert-chain {chain_path}: no certificate in it")
    if _spki(chain[0].public_key()) != _spki(key.public_key()):
        raise BadRequestError(f"--cert-chain {chain_path}: its first certificate is not for the key {key_path}")
    ref = parse_image_reference(image)
    manifest = client.get_manifest(ref.repo, client.resolve(ref, deadline=deadline).digest, deadline=deadline)
    target = Target(media_type=manifest.media_type, digest=manifest.digest, size=len(manifest.raw))
    payload = payload_for(target.media_type, target.digest, target.size, annotations)
    timestamper = partial(request_timestamp, tsa_url, deadline=deadline) if tsa_url else None

    media_type, envelope = build_envelope(
        envelope_format, payload=payload, key=key, chain=chain, expiry=expiry, timestamper=timestamper
    )
    # what is published must verify (integrity and target); trust in the chain is the verifier's business
    parsed = parse_envelope(media_type, envelope)
    verify_envelope_signature(parsed)
    check_target(parse_payload(parsed.payload), target)
    repo: Repository = parse_repository(repository) if repository else ref.repo
    signature = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": {
            "mediaType": OCI_EMPTY_MEDIA_TYPE,
            "digest": client.push_blob(repo, EMPTY_CONFIG, deadline=deadline),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [
            {
                "mediaType": media_type,
                "digest": client.push_blob(repo, envelope, deadline=deadline),
                "size": len(envelope),
            }
        ],
        "subject": {"mediaType": target.media_type, "digest": target.digest, "size": target.size},
    }
    raw = json.dumps(signature, separators=(",", ":")).encode()
    signature_digest = client.push_manifest(
        repo, f"sha256:{sha256(raw).hexdigest()}", raw, OCI_MANIFEST, deadline=deadline
    )
    listed = client.referrers(repo, target.digest, deadline=deadline, artifact_type=SIGNATURE_ARTIFACT_TYPE)
    fallback = signature_digest not in {d.digest for d in listed}
    if fallback:
        _add_to_tag_schema_index(
            client,
            repo,
            target.digest,
            {
                "mediaType": OCI_MANIFEST,
                "digest": signature_digest,
                "size": len(raw),
                "artifactType": SIGNATURE_ARTIFACT_TYPE,
            },
            deadline,
        )
    return NotationSignResult(
        image=ref.reference,
        digest=target.digest,
        signature_repository=str(repo),
        signature_manifest=signature_digest,
        envelope=envelope_format,
        media_type=media_type,
        fallback_index=fallback,
        timestamped=parsed.timestamp_token is not None,
    )


def _add_to_tag_schema_index(
    client: RegistryClient, repo: Repository, subject: str, descriptor: Mapping[str, object], deadline: Deadline
) -> None:
    """Read-modify-write of the referrers tag-schema index ``sha256-<hex>`` (OCI distribution spec)."""
    tag = referrers_tag(subject)  # the reader's one rule (sigward.registry.hints), also for sha512 subjects
    manifests: list[object] = []
    try:
        existing = client.get_manifest(repo, tag, deadline=deadline)
    except NotFoundError:
        existing = None
    if existing is not None and existing.is_index:
        listed = existing.data.get("manifests")
        if isinstance(listed, list):
            manifests = [m for m in listed if isinstance(m, dict) and m.get("digest") != descriptor["digest"]]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*manifests, dict(descriptor)]}
    client.push_manifest(repo, tag, json.dumps(index, separators=(",", ":")).encode(), OCI_INDEX, deadline=deadline)


def _spki(key: object) -> bytes:
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

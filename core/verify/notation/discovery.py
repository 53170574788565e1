"""Reading Notation signatures and Notary attestations from a registry, through the referrers discovery bundles
use (referrers API, or the ``sha256-<hex>`` tag-schema index on registries without it).

Signature manifest (specs/signature-specification.md "Storage"): ``subject`` = the signed manifest, exactly one
layer = the envelope (its media type says JWS or COSE); OCI 1.1 form ``artifactType`` =
``application/vnd.cncf.notary.signature`` with the empty config, or OCI 1.0 form with that type as the config
media type. Everything a registry says is hostile: subjects are checked, counts and sizes bounded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sigward.deadline import Deadline
from sigward.errors import NotFoundError
from sigward.references import Repository
from sigward.registry.models import Descriptor, Manifest
from sigward.verify.notation.envelope import MAX_ENVELOPE_BYTES, SIGNATURE_ARTIFACT_TYPE
from sigward.verify.notation.verify import MAX_SIGNATURE_ATTEMPTS, NotationLayer, Target
from sigward.verify.referrers import OCI_EMPTY_MEDIA_TYPE

if TYPE_CHECKING:
    from sigward.registry import RegistryClient

# Kyverno lists at most 50 referrers of an image for Notary attestations and caps each attestation layer at 10 MB
# (pkg/image/verifiers/cpol/notary/notary.go); sigward keeps the same bounds.
MAX_ATTESTATION_REFERRERS = 50
MAX_ATTESTATION_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class NotaryReferrer:
    """An attestation referrer: its own descriptor (the target its Notation signature must name) and the JSON of
    its single layer, or a ``problem``."""

    target: Target
    artifact_type: str
    media_type: str = ""
    document: Any = None
    problem: str = ""


@runtime_checkable
class NotationSource(Protocol):
    """What ``type: Notary`` needs of a signature source (the registry source implements it)."""

    def notation_target(self, repo: Repository, digest: str, *, deadline: Deadline) -> Target: ...

    def notation_signatures(
        self, repo: Repository, subject_digest: str, *, deadline: Deadline
    ) -> tuple[NotationLayer, ...]: ...

    def notary_referrers(
        self, repo: Repository, subject_digest: str, artifact_type: str, *, deadline: Deadline
    ) -> tuple[NotaryReferrer, ...]: ...


def fetch_target(client: RegistryClient, repo: Repository, digest: str, *, deadline: Deadline) -> Target:
    manifest = client.get_manifest(repo, digest, deadline=deadline)
    return Target(media_type=manifest.media_type, digest=manifest.digest, size=len(manifest.raw))


def _single_layer(manifest: Manifest, kind: str, noun: str, limit: int) -> Descriptor | str:
    """The one layer a Notation signature or Notary attestation manifest has, or what is wrong (a problem text)."""
    layers = manifest.layers
    if len(layers) != 1:
        return f"has {len(layers)} layers, {kind} has exactly one"
    if layers[0].size > limit:
        return f"{noun} of {layers[0].size} bytes is larger than the limit of {limit}"
    return layers[0]


def _signature_layer(
    client: RegistryClient, repo: Repository, subject_digest: str, desc: Descriptor, deadline: Deadline
) -> NotationLayer:
    where = f"signature manifest {desc.digest}"

    def problem(message: str) -> NotationLayer:
        return NotationLayer(manifest_digest=desc.digest, media_type="", raw=b"", problem=f"{where}: {message}")

    try:
        manifest = client.get_manifest(repo, desc.digest, deadline=deadline)
    except NotFoundError:
        return problem(f"listed but not found in {repo}")
    if manifest.is_index:
        return problem("is an index, not a signature manifest")
    if manifest.subject is None or manifest.subject.digest != subject_digest:
        return problem(f"is not about {subject_digest} (its subject is another manifest)")
    config = manifest.config
    config_type = config.media_type if config is not None else ""
    artifact_type = str(manifest.data.get("artifactType") or "")
    if artifact_type:
        if artifact_type != SIGNATURE_ARTIFACT_TYPE or config_type not in (
            OCI_EMPTY_MEDIA_TYPE,
            SIGNATURE_ARTIFACT_TYPE,
        ):
            return problem(f"artifactType {artifact_type[:100]!r} with config {config_type[:100]!r} is not a signature")
    elif config_type != SIGNATURE_ARTIFACT_TYPE:
        return problem(f"config media type {config_type[:100]!r} is not {SIGNATURE_ARTIFACT_TYPE}")
    layer = _single_layer(manifest, "a signature manifest", "envelope", MAX_ENVELOPE_BYTES)
    if isinstance(layer, str):
        return problem(layer)
    try:
        raw = client.get_blob(repo, layer.digest, deadline=deadline, max_bytes=MAX_ENVELOPE_BYTES)
    except NotFoundError:
        return problem(f"envelope blob {layer.digest} not found in {repo}")
    return NotationLayer(manifest_digest=desc.digest, media_type=layer.media_type, raw=raw)


def fetch_notation_signatures(
    client: RegistryClient, repo: Repository, subject_digest: str, *, deadline: Deadline
) -> tuple[NotationLayer, ...]:
    """The Notation signatures of ``subject_digest`` in registry order, at most ``MAX_SIGNATURE_ATTEMPTS``."""
    listed = client.referrers(repo, subject_digest, deadline=deadline, artifact_type=SIGNATURE_ARTIFACT_TYPE)
    return tuple(_signature_layer(client, repo, subject_digest, d, deadline) for d in listed[:MAX_SIGNATURE_ATTEMPTS])


def _referrer(
    client: RegistryClient, repo: Repository, subject_digest: str, desc: Descriptor, deadline: Deadline
) -> NotaryReferrer:
    where = f"referrer {desc.digest}"
    placeholder = Target(media_type=desc.media_type, digest=desc.digest, size=desc.size)

    def problem(message: str) -> NotaryReferrer:
        return NotaryReferrer(target=placeholder, artifact_type=desc.artifact_type, problem=f"{where}: {message}")

    try:
        manifest = client.get_manifest(repo, desc.digest, deadline=deadline)
    except NotFoundError:
        return problem(f"listed but not found in {repo}")
    if manifest.is_index or manifest.subject is None or manifest.subject.digest != subject_digest:
        return problem(f"is not an attestation manifest about {subject_digest}")
    layer = _single_layer(manifest, "a Notary attestation", "layer", MAX_ATTESTATION_BYTES)
    if isinstance(layer, str):
        return problem(layer)
    try:
        raw = client.get_blob(repo, layer.digest, deadline=deadline, max_bytes=MAX_ATTESTATION_BYTES)
        document = json.loads(raw)
    except NotFoundError:
        return problem(f"layer {layer.digest} not found in {repo}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return problem("layer is not JSON")
    target = Target(media_type=manifest.media_type, digest=manifest.digest, size=len(manifest.raw))
    return NotaryReferrer(
        target=target, artifact_type=desc.artifact_type, media_type=layer.media_type, document=document
    )


def fetch_notary_referrers(
    client: RegistryClient, repo: Repository, subject_digest: str, artifact_type: str, *, deadline: Deadline
) -> tuple[NotaryReferrer, ...]:
    """Referrers of ``subject_digest`` whose artifactType is exactly ``artifact_type`` (Kyverno's attestation
    ``type``), at most :data:`MAX_ATTESTATION_REFERRERS`."""
    listed = client.referrers(repo, subject_digest, deadline=deadline, artifact_type=artifact_type)
    return tuple(_referrer(client, repo, subject_digest, d, deadline) for d in listed[:MAX_ATTESTATION_REFERRERS])

"""Sigstore bundles attached to an image as OCI 1.1 referrers (cosign v3's default; GitHub artifact attestations).

Layout (cosign ``specs/BUNDLE_SPEC.md``): a manifest with ``artifactType`` = the bundle media type, the empty config
``application/vnd.oci.empty.v1+json``, one layer holding the bundle JSON, ``subject`` = the image descriptor, and
annotations ``dev.sigstore.bundle.content`` / ``dev.sigstore.bundle.predicateType``. Registries list it through the
referrers API; on registries without it, clients maintain an index under the tag ``sha256-<hex>``
(:meth:`sigward.registry.RegistryClient.referrers` reads either).

Every answer is hostile: the referrer manifest must be about *this* image (its ``subject`` digest), at most
:data:`MAX_BUNDLE_REFERRERS` are read, and each bundle blob is size-capped and digest-checked. A referrer that
cannot be used becomes a :class:`~sigward.verify.bundles.BundleLayer` with a ``problem``, so the verdict can say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sigward.deadline import Deadline
from sigward.errors import NotFoundError, VerificationFailure
from sigward.references import Repository
from sigward.registry.models import Descriptor
from sigward.verify.bundles import BUNDLE_MEDIA_TYPES, MAX_BUNDLE_BYTES, BundleLayer

if TYPE_CHECKING:
    from sigward.registry import RegistryClient

OCI_EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
ANNOTATION_CREATED = "org.opencontainers.image.created"
# An image carries a signature and a few attestations; hundreds of referrers are an attack on our time.
MAX_BUNDLE_REFERRERS = 32
# Referrer manifests and blobs are fetched this many at a time (each mostly waits on the network).
MAX_PARALLEL_FETCHES = 8


def is_bundle_media_type(value: str) -> bool:
    """A Sigstore bundle media type: ``…bundle.v0.3+json`` or the older ``…bundle+json;version=0.x``."""
    normalized = value.replace(" ", "")
    return normalized in BUNDLE_MEDIA_TYPES


def _newest_first(descriptors: tuple[Descriptor, ...]) -> list[Descriptor]:
    # RFC 3339 timestamps in one format sort as strings; undated referrers keep their order, after dated ones.
    dated = [d for d in descriptors if d.annotations.get(ANNOTATION_CREATED)]
    undated = [d for d in descriptors if not d.annotations.get(ANNOTATION_CREATED)]
    dated.sort(key=lambda d: d.annotations[ANNOTATION_CREATED], reverse=True)
    return dated + undated


def _problem(desc: Descriptor, message: str) -> BundleLayer:
    return BundleLayer(raw=b"", manifest_digest=desc.digest, artifact_type=desc.artifact_type, problem=message)


def _fetch_one(
    client: RegistryClient, repo: Repository, image_digest: str, desc: Descriptor, deadline: Deadline
) -> BundleLayer:
    where = f"referrer {desc.digest}"
    try:
        manifest = client.get_manifest(repo, desc.digest, deadline=deadline)
    except NotFoundError:
        return _problem(desc, f"{where} is listed but not found in {repo}")
    except VerificationFailure as exc:
        return _problem(desc, f"{where}: {exc.message}")
    if manifest.is_index:
        return _problem(desc, f"{where} is an index, not a bundle manifest")
    subject = manifest.subject
    if subject is None or subject.digest != image_digest:
        return _problem(desc, f"{where} is not about image {image_digest} (its subject is another manifest)")
    artifact_type = manifest.artifact_type
    if not is_bundle_media_type(artifact_type):
        return _problem(desc, f"{where} has artifactType {artifact_type[:100]!r}, not a Sigstore bundle")
    layers = [layer for layer in manifest.layers if is_bundle_media_type(layer.media_type)]
    if len(layers) != 1:
        return _problem(desc, f"{where} has {len(layers)} Sigstore bundle layers (expected one)")
    layer = layers[0]
    annotations: Mapping[str, str] = manifest.annotations or desc.annotations
    predicate_type = annotations.get(ANNOTATION_PREDICATE_TYPE, "")
    if layer.size > MAX_BUNDLE_BYTES:
        return _problem(desc, f"{where}: bundle of {layer.size} bytes is larger than the limit of {MAX_BUNDLE_BYTES}")
    try:
        raw = client.get_blob(repo, layer.digest, deadline=deadline, max_bytes=MAX_BUNDLE_BYTES)
    except NotFoundError:
        return _problem(desc, f"{where}: bundle blob {layer.digest} not found in {repo}")
    except VerificationFailure as exc:
        return _problem(desc, f"{where}: {exc.message}")
    return BundleLayer(raw=raw, manifest_digest=desc.digest, artifact_type=artifact_type, predicate_type=predicate_type)


def fetch_bundle_layers(
    client: RegistryClient, repo: Repository, image_digest: str, *, deadline: Deadline
) -> tuple[BundleLayer, ...]:
    """The Sigstore bundles referring to ``image_digest`` in ``repo`` (newest first, at most
    :data:`MAX_BUNDLE_REFERRERS`). Registry outages raise; unusable referrers come back with a ``problem``."""
    listed = client.referrers(repo, image_digest, deadline=deadline)
    wanted = [d for d in listed if is_bundle_media_type(d.artifact_type)]
    chosen = _newest_first(tuple(wanted))[:MAX_BUNDLE_REFERRERS]
    if len(chosen) <= 1:
        return tuple(_fetch_one(client, repo, image_digest, d, deadline) for d in chosen)
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_FETCHES, len(chosen))) as pool:
        futures = [pool.submit(_fetch_one, client, repo, image_digest, d, deadline) for d in chosen]
        return tuple(f.result() for f in futures)

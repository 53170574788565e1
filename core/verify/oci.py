"""Signatures as cosign stores them in an OCI registry: the ``sha256-<hex>.sig`` manifest next to the image."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sigward.deadline import Deadline
from sigward.errors import ConfigurationError, NotFoundError, VerificationFailure
from sigward.references import ImageReference, Repository
from sigward.registry.hints import TagHints, cosign_tag
from sigward.registry.secretcreds import SECRET_MARKER, SecretCredentials, SecretReader, split_selection
from sigward.verify.bundles import BundleLayer
from sigward.verify.cosign import SignatureLayer
from sigward.verify.dsse import MAX_ENVELOPE_BYTES
from sigward.verify.notation.discovery import (
    NotaryReferrer,
    fetch_notary_referrers,
    fetch_notation_signatures,
    fetch_target,
)
from sigward.verify.notation.verify import NotationLayer, Target
from sigward.verify.referrers import fetch_bundle_layers
from sigward.verify.simplesigning import MAX_PAYLOAD_BYTES

if TYPE_CHECKING:
    from sigward.registry import RegistryClient
    from sigward.verify.engine import SignatureSource

# cosign appends one layer per signature; real images carry a handful. Thousands of layers are an attack on our
# time and memory, so only the first ones are read.
MAX_SIGNATURE_LAYERS = 32


def signature_tag(image_digest: str, suffix: str = "sig", prefix: str = "") -> str:
    """cosign's tag scheme: ``sha256:abc…`` → ``[prefix]sha256-abc….sig`` (see
    :func:`sigward.registry.hints.cosign_tag`, the one place tag names are computed)."""
    return cosign_tag(image_digest, suffix, prefix)


class ProviderSources:
    """Signature sources restricted to a rule's credential providers, one per distinct selection, all on the same
    registry client (connections and token cache shared; cache keys carry the credential identity).

    ``secrets``: reads a rule's ``imageRegistryCredentials.secrets`` (live cluster only) and their namespace; without
    it a rule naming Secrets is a configuration error, never a silent anonymous pull."""

    def __init__(
        self,
        client: RegistryClient,
        wrap: Callable[[SignatureSource], SignatureSource] = lambda s: s,
        *,
        secrets: tuple[SecretReader, str] | None = None,
    ) -> None:
        self._client = client
        self._wrap = wrap
        self._secrets = secrets
        self._lock = threading.Lock()
        self._sources: dict[tuple[str, ...], SignatureSource] = {}

    def __call__(self, providers: tuple[str, ...]) -> SignatureSource:
        from sigward.registry.providers import selection

        wanted, secret_names = split_selection(providers)
        names = selection(wanted)
        key = tuple(n.value for n in names) + tuple(SECRET_MARKER + s for s in secret_names)
        with self._lock:
            found = self._sources.get(key)
            if found is None:
                client = self._client.with_providers(names)
                if secret_names:
                    client = self._with_secrets(client, secret_names)
                found = self._wrap(RegistrySignatureSource(client))
                self._sources[key] = found
            return found

    def _with_secrets(self, client: RegistryClient, names: tuple[str, ...]) -> RegistryClient:
        if self._secrets is None:
            raise ConfigurationError(
                "imageRegistryCredentials.secrets needs a cluster connection (SIGWARD_KUBECONFIG, or in-cluster "
                "service account)"
            )
        read, namespace = self._secrets
        return client.with_credentials_first(
            lambda chain: SecretCredentials(names=names, namespace=namespace, read=read, fallback=chain)
        )


class RegistrySignatureSource:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def resolve_digest(self, ref: ImageReference, *, deadline: Deadline) -> str:
        return self.client.resolve(ref, deadline=deadline).digest

    def with_tag_hints(self, hints: TagHints) -> RegistrySignatureSource:
        """This source for one evaluation: tags the push event named are read by digest while still unlinked
        (:mod:`sigward.registry.hints`); every fetched manifest is verified as usual."""
        return RegistrySignatureSource(self.client.with_tag_hints(hints)) if hints else self

    def signature_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        return self._layers(repo, signature_tag(image_digest, "sig", tag_prefix), MAX_PAYLOAD_BYTES, deadline)

    def attestation_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        return self._layers(repo, signature_tag(image_digest, "att", tag_prefix), MAX_ENVELOPE_BYTES, deadline)

    def bundles(self, repo: Repository, image_digest: str, *, deadline: Deadline) -> tuple[BundleLayer, ...]:
        """Sigstore bundles attached to the image as OCI 1.1 referrers (cosign v3), via the referrers API or the
        ``sha256-<hex>`` tag schema; see :mod:`sigward.verify.referrers`."""
        return fetch_bundle_layers(self.client, repo, image_digest, deadline=deadline)

    # type: Notary (sigward.verify.notation.discovery.NotationSource)
    def notation_target(self, repo: Repository, digest: str, *, deadline: Deadline) -> Target:
        return fetch_target(self.client, repo, digest, deadline=deadline)

    def notation_signatures(
        self, repo: Repository, subject_digest: str, *, deadline: Deadline
    ) -> tuple[NotationLayer, ...]:
        return fetch_notation_signatures(self.client, repo, subject_digest, deadline=deadline)

    def notary_referrers(
        self, repo: Repository, subject_digest: str, artifact_type: str, *, deadline: Deadline
    ) -> tuple[NotaryReferrer, ...]:
        return fetch_notary_referrers(self.client, repo, subject_digest, artifact_type, deadline=deadline)

    def _layers(self, repo: Repository, tag: str, max_bytes: int, deadline: Deadline) -> tuple[SignatureLayer, ...]:
        try:
            manifest = self.client.get_manifest(repo, tag, deadline=deadline)
        except NotFoundError:
            return ()
        if manifest.is_index:
            raise VerificationFailure(f"signature manifest {tag} in {repo} is an index")
        descriptors = manifest.layers[:MAX_SIGNATURE_LAYERS]
        layers = []
        for desc in descriptors:
            if desc.size > max_bytes:
                layers.append(
                    SignatureLayer(media_type=desc.media_type, payload=b"", annotations={}, digest=desc.digest)
                )
                continue
            blob = self.client.get_blob(repo, desc.digest, deadline=deadline, max_bytes=max_bytes)
            layers.append(
                SignatureLayer(
                    media_type=desc.media_type,
                    payload=blob,
                    annotations=dict(desc.annotations),
                    digest=desc.digest,
                )
            )
        return tuple(layers)

"""Kyverno's ``imageRegistry`` context data (``pkg/engine/context/loaders/imagedata.go``): what a rule can read about
an image it names, fetched through the same hardened registry client and credentials as verification."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sigward.deadline import Deadline
from sigward.errors import VerificationFailure
from sigward.references import parse_image_reference
from sigward.registry.client import RegistryClient

# An image config is a few KiB; bounded well above any real one.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# The platform ggcr's Descriptor.Image() picks from an index by default.
DEFAULT_PLATFORM = ("linux", "amd64")


class RegistryImageData:
    """``image_data(reference, providers)`` for :func:`sigward.verify.rulecontext.resolve_rule`."""

    def __init__(self, client: RegistryClient, *, seconds: float = 5.0) -> None:
        self._client = client
        self._seconds = seconds

    def __call__(self, reference: str, providers: tuple[str, ...] | None = None) -> Mapping[str, Any]:
        ref = parse_image_reference(reference)
        from sigward.registry.providers import selection

        client = self._client.with_providers(selection(providers)) if providers is not None else self._client
        deadline = Deadline.after(self._seconds)
        descriptor = client.resolve(ref, deadline=deadline)
        top = client.get_manifest(ref.repo, descriptor.digest, deadline=deadline)
        manifest, index = top, None
        if top.is_index:
            index = top
            chosen = _platform_manifest(top.data)
            manifest = client.get_manifest(ref.repo, chosen, deadline=deadline)
        config_digest = ((manifest.data.get("config") or {}) if isinstance(manifest.data, Mapping) else {}).get(
            "digest"
        )
        config: Any = None
        if isinstance(config_digest, str):
            raw = client.get_blob(ref.repo, config_digest, deadline=deadline, max_bytes=MAX_CONFIG_BYTES)
            try:
                config = json.loads(raw)
            except ValueError:
                raise VerificationFailure(f"image config {config_digest} of {reference} is not JSON") from None
        identifier = ref.tag + ("@" + ref.digest if ref.digest else "") if ref.tag else ref.digest
        return {
            "image": reference,
            "resolvedImage": f"{ref.repository}@{descriptor.digest}",
            "registry": ref.registry,
            "repository": ref.path,
            "identifier": identifier,
            "manifest": json.loads(manifest.raw),
            "configData": config,
            "manifestList": json.loads(index.raw) if index is not None else None,
        }


def _platform_manifest(index: Mapping[str, Any]) -> str:
    for entry in index.get("manifests") or ():
        platform = entry.get("platform") or {}
        if (platform.get("os"), platform.get("architecture")) == DEFAULT_PLATFORM and isinstance(
            entry.get("digest"), str
        ):
            return str(entry["digest"])
    raise VerificationFailure(f"no {'/'.join(DEFAULT_PLATFORM)} image in the index")

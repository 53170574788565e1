"""Registry client settings: which hosts may be reached how, and the bounds on every answer."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sigward.errors import ConfigurationError
from sigward.references import normalize_registry_host
from sigward.registry.providers import ENV_PROVIDERS, ProviderName, parse_provider_map

ENV_INSECURE = "SIGWARD_INSECURE_REGISTRIES"
ENV_PRIVATE = "SIGWARD_PRIVATE_REGISTRIES"

# Distribution refuses manifests above 4 MiB when they are pushed; anything larger did not come from a
# registry acting in good faith.
DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Signature payloads, attestation envelopes and Sigstore bundles are kilobytes; 16 MiB leaves room for large
# SBOM attestations while keeping a hostile blob from exhausting a function's memory.
DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024
# Per-call caps; the shared deadline usually cuts them shorter.
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
# One retry of an idempotent request after a 5xx or a dropped connection: enough to ride out a restarting pod
# without doubling the time to report a real outage.
DEFAULT_MAX_RETRIES = 1
# Throttled (429) requests are retried at most this often, and only when Retry-After fits the cap below.
DEFAULT_MAX_THROTTLE_RETRIES = 2
# Waiting longer than this for a throttled registry would eat an admission deadline of a few seconds.
DEFAULT_MAX_RETRY_AFTER = 5.0


def _split_hosts(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class RegistryConfig:
    """How the client reaches registries. Plain HTTP and private addresses are opt-in, host by host."""

    insecure_registries: frozenset[str] = frozenset()
    private_registries: frozenset[str] = frozenset()
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES
    max_retries: int = DEFAULT_MAX_RETRIES
    max_throttle_retries: int = DEFAULT_MAX_THROTTLE_RETRIES
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    # A CA bundle path for HTTPS verification (REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE); empty = certifi's bundle.
    ca_bundle: str = ""
    # SIGWARD_REGISTRY_PROVIDERS: host[:port] → credential provider, beyond the built-in cloud host patterns.
    provider_map: Mapping[str, ProviderName] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept any iterable of names (a set literal in tests) but store normalized frozensets.
        # Entries are spelled as image references spell registries: `Host:443` is `host`, Docker Hub's aliases are
        # `docker.io`. The network guard normalises the private list the same way (it also takes URLs).
        insecure = frozenset(normalize_registry_host(h) for h in self.insecure_registries if h.strip())
        object.__setattr__(self, "insecure_registries", insecure)
        object.__setattr__(self, "private_registries", frozenset(h.strip() for h in self.private_registries))
        for name in ("connect_timeout", "read_timeout", "max_retry_after"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"registry {name} must be positive")
        if self.max_manifest_bytes <= 0 or self.max_blob_bytes <= 0:
            raise ConfigurationError("registry size limits must be positive")
        if self.max_retries < 0 or self.max_throttle_retries < 0:
            raise ConfigurationError("registry retry counts must not be negative")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryConfig:
        env = os.environ if environ is None else environ
        return cls(
            insecure_registries=_split_hosts(env.get(ENV_INSECURE, "")),
            private_registries=_split_hosts(env.get(ENV_PRIVATE, "")),
            ca_bundle=env.get("REQUESTS_CA_BUNDLE", "") or env.get("CURL_CA_BUNDLE", ""),
            provider_map=parse_provider_map(env.get(ENV_PROVIDERS, "")),
        )

    def is_insecure(self, netloc: str) -> bool:
        """Plain HTTP is allowed only for an exact ``host:port`` (or bare host for port 80) in the list, both sides
        normalised (:func:`~sigward.references.normalize_registry_host`)."""
        return normalize_registry_host(netloc) in self.insecure_registries

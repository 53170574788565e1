"""Registry credentials from the workload's own identity: which provider serves a registry host, and a chain that
asks the selected providers in Kyverno's order (``default, google, amazon, azure, github``), first answer wins.

A cloud provider answers only for its own registries (built-in host patterns, or ``SIGWARD_REGISTRY_PROVIDERS``),
so a Google token never reaches an ECR host and vice versa. Every provider caches its credential until shortly
before it expires, with one fetch at a time per key (single flight). Cloud SDKs are imported on first use.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sigward.errors import ConfigurationError
from sigward.references import normalize_registry_host
from sigward.registry.credentials import Credentials

ENV_PROVIDERS = "SIGWARD_REGISTRY_PROVIDERS"
# A host[:port] as the registry client accepts it (client._REGISTRY_RE), lower-cased before matching.
_HOST_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")
# ECR private hosts (amazon-ecr-credential-helper's pattern): account, optional -fips, region, partition suffix.
ECR_HOST_RE = re.compile(
    r"^(\d{12})\.dkr[.-]ecr(-fips)?\.([a-z0-9][a-z0-9_-]*)\."
    r"(?:amazonaws\.(?:com(?:\.cn)?|eu)|on\.(?:aws|amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|c2s\.ic\.gov"
    r"|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$"
)
# ECR Public (us-east-1's ecr-public API) and its alias host: the amazon provider's, not private ECR's pattern.
ECR_PUBLIC_HOSTS = frozenset({"public.ecr.aws", "ecr-public.aws.com"})
# ACR in the public cloud and the sovereign clouds (China, US Government, legacy Germany).
_ACR_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.azurecr\.(?:io|cn|us|de)$")
# Google: Container Registry (gcr.io and its regional hosts) and Artifact Registry (LOC-docker.pkg.dev, and the
# regional endpoints docker.LOC.rep.pkg.dev). Nothing else under pkg.dev or google.com gets a Google token.
_GOOGLE_RE = re.compile(r"^(?:(?:[a-z0-9-]+\.)?gcr\.io|[a-z0-9-]+-docker\.pkg\.dev|docker\.[a-z0-9-]+\.rep\.pkg\.dev)$")


class ProviderName(enum.StrEnum):
    """Kyverno's ``imageRegistryCredentials.providers`` values, in the order a chain asks them."""

    DEFAULT = "default"
    GOOGLE = "google"
    AMAZON = "amazon"
    AZURE = "azure"
    GITHUB = "github"


ALL_PROVIDERS: tuple[ProviderName, ...] = tuple(ProviderName)


def selection(names: Iterable[str] | None) -> tuple[ProviderName, ...]:
    """A canonical provider selection (Kyverno's order, no duplicates): ``None`` = all providers."""
    if names is None:
        return ALL_PROVIDERS
    wanted = {ProviderName(n) for n in names}
    return tuple(p for p in ALL_PROVIDERS if p in wanted)


def builtin_provider(host: str) -> ProviderName | None:
    """The cloud provider whose registry ``host`` is by name, or ``None``."""
    name = host.lower()
    bare = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    if name != bare and not name.endswith(":443"):
        return None  # a cloud registry is served on 443 only; another port is some other server
    if _GOOGLE_RE.match(bare):
        return ProviderName.GOOGLE
    if ECR_HOST_RE.match(bare) or bare in ECR_PUBLIC_HOSTS:
        return ProviderName.AMAZON
    if _ACR_RE.match(bare):
        return ProviderName.AZURE
    if bare == "ghcr.io":
        return ProviderName.GITHUB
    return None


def parse_provider_map(value: str, *, variable: str = ENV_PROVIDERS) -> Mapping[str, ProviderName]:
    """``host[:port]=provider,...`` → mapping; a malformed item is a :class:`ConfigurationError` naming it."""
    out: dict[str, ProviderName] = {}
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, provider = item.partition("=")
        host, provider = host.strip().lower(), provider.strip().lower()
        shown = item[:120]
        if not sep or not host or not provider:
            raise ConfigurationError(f"{variable}: item {shown!r} is not host[:port]=provider")
        if not _HOST_RE.match(host):
            raise ConfigurationError(f"{variable}: item {shown!r} does not name a registry host[:port]")
        try:
            name = ProviderName(provider)
        except ValueError:
            known = ", ".join(p.value for p in ProviderName)
            raise ConfigurationError(f"{variable}: item {shown!r} names an unknown provider (known: {known})") from None
        host = normalize_registry_host(host)  # `Host:443` is `host`, as in image references
        if host in out and out[host] != name:
            raise ConfigurationError(f"{variable}: host {host!r} is mapped to two providers")
        out[host] = name
    return out


class CredentialProvider(Protocol):
    """One source of registry credentials; ``None`` means "nothing for this host" (the chain asks the next)."""

    def get(self, host: str) -> Credentials | None: ...


class CredentialSource(Protocol):
    """What the authenticator asks: credentials for a registry host, or ``None`` for anonymous access."""

    def get(self, host: str) -> Credentials | None: ...


class ExpiringCache:
    """Credentials by key until their own expiry minus a margin; one fetch per key at a time (single flight).

    ``fetch`` returns the credentials and their absolute expiry (``time.time()`` seconds) or ``None`` for "do not
    cache". Nothing here is ever logged or shown: ``repr`` names the number of entries only.
    """

    def __init__(self, margin_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        self._margin = margin_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Credentials]] = {}
        self._key_locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        with self._lock:
            return f"ExpiringCache(entries={len(self._entries)})"

    def _fresh(self, key: str) -> Credentials | None:
        hit = self._entries.get(key)
        if hit is not None and hit[0] - self._margin > self._clock():
            return hit[1]
        return None

    def get(self, key: str, fetch: Callable[[], tuple[Credentials, float | None]]) -> Credentials:
        with self._lock:
            found = self._fresh(key)
            if found is not None:
                return found
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found = self._fresh(key)
                if found is not None:
                    return found
            creds, expires_at = fetch()
            if expires_at is not None:
                with self._lock:
                    self._entries[key] = (expires_at, creds)
            return creds

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True)
class ProviderChain:
    """The credentials a selection of providers yields for a host: Kyverno's MultiKeychain, first answer wins.

    ``default`` (the docker config) answers for any host it lists; a cloud provider only for the hosts that are
    its registries by name or by ``SIGWARD_REGISTRY_PROVIDERS``.
    """

    providers: Mapping[ProviderName, CredentialProvider]
    host_map: Mapping[str, ProviderName]
    selected: tuple[ProviderName, ...] = ALL_PROVIDERS

    def provider_for(self, host: str) -> ProviderName | None:
        host = host.lower()
        mapped = self.host_map.get(normalize_registry_host(host))
        return mapped if mapped is not None else builtin_provider(host)

    def get(self, host: str) -> Credentials | None:
        owner = self.provider_for(host)
        for name in self.selected:
            if name is not ProviderName.DEFAULT and name is not owner:
                continue
            provider = self.providers.get(name)
            found = provider.get(host) if provider is not None else None
            if found is not None:
                return found
        return None

    def narrowed(self, names: tuple[ProviderName, ...]) -> ProviderChain:
        return ProviderChain(providers=self.providers, host_map=self.host_map, selected=names)

    def __repr__(self) -> str:
        return f"ProviderChain(selected={[p.value for p in self.selected]})"

"""Registry credentials from cluster Secrets (``imageRegistryCredentials.secrets``), Kyverno's way.

Kyverno reads the named ``kubernetes.io/dockerconfigjson`` Secrets from its own namespace and uses their ``auths``
for that rule's registry requests. sigward reads them from the live cluster connection only (shipped manifests must
never carry credentials), in ``SIGWARD_SECRETS_NAMESPACE`` (default ``kyverno``), and gives each credential only to
the registry host its ``auths`` key names, normalised like an image reference. Nothing here is ever logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sigward.errors import ConfigurationError
from sigward.references import normalize_registry_host
from sigward.registry.credentials import Credentials, _from_auth_entry, config_hostname
from sigward.registry.providers import CredentialSource

SECRETS_NAMESPACE_ENV = "SIGWARD_SECRETS_NAMESPACE"
# Kyverno reads pull secrets from the namespace its controller runs in; that is `kyverno` in its Helm chart.
DEFAULT_SECRETS_NAMESPACE = "kyverno"
# How a rule's Secret names travel with its provider names through the per-rule credential plumbing.
SECRET_MARKER = "secret:"  # noqa: S105 - a marker, not a secret
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"

#: Reads one Secret (``namespace``, ``name``) from the live cluster, data decoded; raises when it cannot.
SecretReader = Callable[[str, str], Mapping[str, Any]]


def split_selection(selection: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(provider names, Secret names) of a rule's credential selection."""
    providers = tuple(s for s in selection if not s.startswith(SECRET_MARKER))
    secrets = tuple(s[len(SECRET_MARKER) :] for s in selection if s.startswith(SECRET_MARKER))
    return providers, secrets


def parse_dockerconfigjson(text: str, source: str) -> dict[str, Credentials]:
    """The ``auths`` of a dockerconfigjson document by normalised registry host; ``source`` names it in errors
    (never the content)."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"{source}: {DOCKERCONFIGJSON_KEY} is not JSON") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise ConfigurationError(f"{source}: {DOCKERCONFIGJSON_KEY} has no 'auths' object")
    out: dict[str, Credentials] = {}
    for key, entry in auths.items():
        creds = _from_auth_entry(entry, source)
        host = config_hostname(str(key))
        if creds is not None and host:
            out.setdefault(normalize_registry_host(host), creds)
    return out


@dataclass(frozen=True)
class SecretCredentials:
    """A :class:`CredentialSource` asking the rule's Secrets first (in order), then ``fallback`` (its providers)."""

    names: tuple[str, ...]
    namespace: str
    read: SecretReader = field(repr=False)
    fallback: CredentialSource = field(repr=False)

    def get(self, host: str) -> Credentials | None:
        wanted = normalize_registry_host(host.lower())
        for name in self.names:
            source = f"secret {self.namespace}/{name}"
            obj = self.read(self.namespace, name)
            data = obj.get("data")
            text = data.get(DOCKERCONFIGJSON_KEY) if isinstance(data, Mapping) else None
            if not isinstance(text, str):
                raise ConfigurationError(
                    f"{source} has no {DOCKERCONFIGJSON_KEY} (a kubernetes.io/dockerconfigjson Secret is needed)"
                )
            found = parse_dockerconfigjson(text, source).get(wanted)
            if found is not None:
                return found
        return self.fallback.get(host)

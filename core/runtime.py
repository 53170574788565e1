"""Process-wide services built once from the environment and shared by every request of a function instance:
one registry client (connections and tokens reused), one verifier with its caches, the loaded policies."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from core.admission.service import AdmissionService
    from core.policy.loader import PolicySet
    from core.registry import RegistryClient
    from core.verify.engine import Verifier

_lock = threading.RLock()
_registry: RegistryClient | None = None
_verifier: Verifier | None = None
_policies: PolicySet | None = None
_admission: AdmissionService | None = None


def environ() -> Mapping[str, str]:
    return os.environ


def registry_client() -> RegistryClient:
    global _registry  # noqa: PLW0603 - per-process singleton by design
    with _lock:
        if _registry is None:
            from core.registry import RegistryClient, RegistryConfig

            _registry = RegistryClient(RegistryConfig.from_env(environ()))
        return _registry


def verifier() -> Verifier:
    global _verifier  # noqa: PLW0603
    with _lock:
        if _verifier is None:
            from core.verify.caching import CachingSignatureSource
            from core.verify.engine import Verifier
            from core.verify.oci import RegistrySignatureSource

            _verifier = Verifier(source=CachingSignatureSource(RegistrySignatureSource(registry_client())))
        return _verifier


def policies() -> PolicySet:
    global _policies  # noqa: PLW0603
    with _lock:
        if _policies is None:
            from core.policy.loader import load_policies, policy_paths_from_env

            paths = list(policy_paths_from_env(environ()))
            if not paths:
                raise ConfigurationError("no policy configured: set SIGWARD_POLICY to a policy file or directory")
            _policies = load_policies(paths)
        return _policies


def admission_service() -> AdmissionService:
    global _admission  # noqa: PLW0603
    with _lock:
        if _admission is None:
            from core.admission.service import AdmissionService, AdmissionSettings

            loaded = policies()
            _admission = AdmissionService(
                policies=lambda: loaded.policies,
                verifier=verifier(),
                settings=AdmissionSettings.from_env(environ()),
                jmespath_search=jmespath_search,
            )
        return _admission


def jmespath_search(expression: str, value: str) -> object:
    """Kyverno-flavoured JMESPath, imported on first use (extractors with ``jmesPath`` are rare)."""
    from core.policy.jmes import search

    return search(expression, value)


def reset() -> None:
    """Forget every service (tests change the environment between cases)."""
    global _registry, _verifier, _policies, _admission  # noqa: PLW0603
    with _lock:
        if _admission is not None:
            _admission.close()
        if _registry is not None:
            _registry.close()
        _registry = _verifier = _policies = _admission = None

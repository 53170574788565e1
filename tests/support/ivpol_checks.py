"""IVPOL checks over a real registry for tests: the one way these tests build the admission-side
:class:`~sigward.admission.ivpol_cache.CachedChecks` (no store, a small fresh cache unless one is given)."""

from __future__ import annotations

from typing import Any

from sigward.admission.ivpol_cache import CachedChecks
from sigward.cache import TTLCache
from sigward.registry import RegistryClient
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource
from sigward.verify.results import RuleVerdict


def checks_for(
    client: RegistryClient, cache: TTLCache[Any, RuleVerdict] | None = None, **verifier: Any
) -> CachedChecks:
    """Checks whose verifier reads signatures through ``client``; ``verifier``: further :class:`Verifier` collaborators
    (``cluster``, ``trusted_root``, ``github_root`` …)."""
    return CachedChecks(
        verifier=Verifier(source=RegistrySignatureSource(client), **verifier),
        cache=TTLCache(max_entries=10, ttl=60) if cache is None else cache,
        store=None,
        pass_ttl=60,
    )

"""Process-wide services built once from the environment and shared by every request of a function instance:
one registry client (connections and tokens reused), one verifier with its caches, the loaded policies."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from sigward.errors import ConfigurationError, SigwardError

if TYPE_CHECKING:
    from sigward.admission.service import AdmissionService
    from sigward.deadline import Deadline
    from sigward.events import PushEvent
    from sigward.policy.loader import PolicySet
    from sigward.push.service import PushService
    from sigward.registry import RegistryClient
    from sigward.reverify.service import ReverifyService
    from sigward.store import VerdictStore
    from sigward.verify.engine import Verifier

_lock = threading.RLock()
_registry: RegistryClient | None = None
_verifier: Verifier | None = None
_policies: PolicySet | None = None
_admission: AdmissionService | None = None
_store: VerdictStore | None = None
_push: PushService | None = None


def environ() -> Mapping[str, str]:
    return os.environ


def registry_client() -> RegistryClient:
    global _registry  # noqa: PLW0603 - per-process singleton by design
    with _lock:
        if _registry is None:
            from sigward.registry import RegistryClient, RegistryConfig

            _registry = RegistryClient(RegistryConfig.from_env(environ()))
        return _registry


def verifier() -> Verifier:
    global _verifier  # noqa: PLW0603
    with _lock:
        if _verifier is None:
            from sigward.verify.caching import CachingSignatureSource
            from sigward.verify.engine import Verifier
            from sigward.verify.oci import ProviderSources, RegistrySignatureSource

            client = registry_client()
            # A rule's imageRegistryCredentials.providers gets its own (cached) source on the same client, so the
            # CLI, admission and push events fetch with the same providers. Its trusted root (SIGWARD_TRUSTED_ROOT,
            # else the one kept current over TUF) is what admission and push snapshot once per verification and
            # put in every verdict key, so a verdict made under a rotated root is never reused.
            _verifier = Verifier(
                source=CachingSignatureSource(RegistrySignatureSource(client)),
                source_for_providers=ProviderSources(client, CachingSignatureSource),
            )
            _start_trust_root_refresh()
        return _verifier


def _start_trust_root_refresh() -> None:
    """Load the trusted root at cold start and start its TUF refresh in the background, so the first verification
    finds it ready (nothing when ``SIGWARD_TRUSTED_ROOT`` pins a file). A configuration error surfaces here."""
    if environ().get("SIGWARD_TRUSTED_ROOT"):
        return
    from sigward.verify.tuf import default_holder

    default_holder(environ()).start()


def policies() -> PolicySet:
    global _policies  # noqa: PLW0603
    with _lock:
        if _policies is None:
            from sigward.policy.loader import load_policies, policy_paths_from_env

            paths = list(policy_paths_from_env(environ()))
            if not paths:
                raise ConfigurationError("no policy configured: set SIGWARD_POLICY to a policy file or directory")
            _policies = load_policies(paths)
        return _policies


def store() -> VerdictStore:
    global _store  # noqa: PLW0603
    with _lock:
        if _store is None:
            from sigward.store import open_store

            _store = open_store(environ=environ())
        return _store


def store_or_none() -> VerdictStore | None:
    """The store for admission, which can do without it (an unusable store is logged, not fatal)."""
    try:
        return store()
    except Exception as exc:  # any store failure only costs caching
        from sigward import logs

        logs.emit("WARNING", "verdict store unavailable; admission verifies without it", error=str(exc))
        return None


def push_service() -> PushService:
    global _push  # noqa: PLW0603
    with _lock:
        if _push is None:
            from sigward.push.findings import Notifier
            from sigward.push.service import PushService, PushSettings

            loaded = policies()
            env = environ()
            grace = env.get("SIGWARD_PUSH_GRACE_SECONDS", "").strip()
            try:
                settings = PushSettings(grace_seconds=float(grace)) if grace else PushSettings()
            except ValueError:
                raise ConfigurationError(f"SIGWARD_PUSH_GRACE_SECONDS={grace!r} is not a number of seconds") from None
            settings = replace(settings, pending_sources=pending_sources(env))
            _push = PushService(
                policies=lambda: loaded.policies,
                verifier=_fresh_verifier(cached=False),
                store=store(),
                settings=settings,
                notifier=Notifier.from_env(env),
                subject_of=_subject_of,
            )
        return _push


def pending_sources(env: Mapping[str, str]) -> frozenset[str]:
    """``SIGWARD_PENDING_SOURCES``: push sources recorded ``pending`` (acknowledged) while a signature may still
    arrive, instead of asking for redelivery; ``none`` for none (default: distribution, harbor, github)."""
    from sigward.push.service import DEFAULT_PENDING_SOURCES

    text = env.get("SIGWARD_PENDING_SOURCES", "").strip().lower()
    if not text:
        return DEFAULT_PENDING_SOURCES
    if text == "none":
        return frozenset()
    return frozenset(s.strip() for s in text.split(",") if s.strip())


def reverify_service() -> ReverifyService:
    """The ``reverify`` target's service: this instance's policies, registry client and store, and a verifier with
    caches of its own for this one run — the shared verifier may remember a push's "no signature yet" for a while,
    which would turn into a false finding here."""
    from sigward.reverify.service import build_service

    loaded = policies()
    run_verifier = _fresh_verifier(cached=True)
    return build_service(environ(), policies=lambda: loaded.policies, verifier=run_verifier, store=store())


def _fresh_verifier(*, cached: bool) -> Verifier:
    """A verifier on the shared registry client whose signature lookups share nothing with admission's: push and
    re-verification must see a signature the moment it exists, not a cached "none yet" from seconds before (a
    signature push re-verifies its subject right after the image push looked). ``cached``: a cache for one run."""
    from sigward.verify.caching import CachingSignatureSource
    from sigward.verify.oci import ProviderSources, RegistrySignatureSource

    client = registry_client()
    shared = verifier()  # its keys and trusted root (and their refresh) are shared
    if not cached:
        return shared.with_source(RegistrySignatureSource(client), source_for_providers=ProviderSources(client))
    return shared.with_source(
        CachingSignatureSource(RegistrySignatureSource(client)),
        source_for_providers=ProviderSources(client, CachingSignatureSource),
    )


def _subject_of(event: PushEvent, deadline: Deadline) -> str:
    """The ``subject`` digest of a pushed manifest (a referrer), or "" — one manifest request at push time."""
    from sigward.references import Repository

    try:
        manifest = registry_client().get_manifest(
            Repository(registry=event.registry, path=event.repository), event.digest, deadline=deadline
        )
    except SigwardError:
        return ""
    subject = manifest.subject
    return subject.digest if subject is not None else ""


def admission_service() -> AdmissionService:
    global _admission  # noqa: PLW0603
    with _lock:
        if _admission is None:
            from sigward.admission.service import AdmissionService, AdmissionSettings

            loaded = policies()
            _admission = AdmissionService(
                policies=lambda: loaded.policies,
                verifier=verifier(),
                settings=AdmissionSettings.from_env(environ()),
                jmespath_search=jmespath_search,
                store=store_or_none(),
            )
        return _admission


def admission_service_if_built() -> AdmissionService | None:
    """The admission service when it already exists, without building it or waiting for the thread that is: an
    event loop may ask (building opens the store and loads the trust root, which blocks)."""
    return _admission


def jmespath_search(expression: str, value: str) -> object:
    """Kyverno-flavoured JMESPath, imported on first use (extractors with ``jmesPath`` are rare)."""
    from sigward.policy.jmes import search

    return search(expression, value)


def reset() -> None:
    """Forget every service (tests change the environment between cases)."""
    global _registry, _verifier, _policies, _admission, _store, _push  # noqa: PLW0603
    with _lock:
        if _admission is not None:
            _admission.close()
        if _registry is not None:
            _registry.close()
        if _store is not None:
            _store.close()
        _registry = _verifier = _policies = _admission = _store = _push = None
    from sigward.kms import backends
    from sigward.verify import tuf

    backends.reset()
    tuf.reset()

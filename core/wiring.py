"""The one place services are built from the environment: :func:`build_services` for the deployable functions,
``sigward serve``, every CLI command and the benchmarks. Handlers and services receive what they need as arguments;
nothing below this module imports it.

Each service is built on first use and then shared by every request of the process (one registry client with its
connections and tokens, one verifier with its caches, the policies loaded once): an admission-only function never
opens the store the push handler needs, and cloud SDKs still load lazily. :func:`process_services` is the per-process
instance the function targets and ``serve`` use; :func:`reset` forgets it (tests change the environment).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from sigward.errors import ConfigurationError, SigwardError

if TYPE_CHECKING:
    from sigward.admission.service import AdmissionService
    from sigward.cluster.data import ClusterData
    from sigward.cluster.globalcontext import GlobalContext
    from sigward.deadline import Deadline
    from sigward.events import PushEvent
    from sigward.policy.capabilities import Capabilities
    from sigward.policy.loader import PolicySet
    from sigward.push.service import PushService
    from sigward.registry import RegistryClient
    from sigward.reverify.service import ReverifyService
    from sigward.store import VerdictStore
    from sigward.verify.engine import Verifier

_T = TypeVar("_T")


@dataclass(frozen=True, eq=False)
class Services:
    """Everything a handler may need, each built once on first use from ``environ``."""

    environ: Mapping[str, str]
    # Policies named on a command line; empty = ``SIGWARD_POLICY`` (what the functions and ``serve`` read).
    policy_paths: tuple[str, ...] = ()
    # A CLI command runs once and gets no later refresh: it waits (bounded) for the first TUF refresh instead of
    # starting one in the background.
    short_lived: bool = False
    _built: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def _once(self, name: str, build: Callable[[], _T]) -> _T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            found: _T = self._built[name]
            return found

    def registry(self) -> RegistryClient:
        def build() -> RegistryClient:
            from sigward.registry import RegistryClient, RegistryConfig

            return RegistryClient(RegistryConfig.from_env(self.environ))

        return self._once("registry", build)

    def verifier(self) -> Verifier:
        """A rule's ``imageRegistryCredentials.providers`` gets its own (cached) source on the same client, so the
        CLI, admission and push fetch alike. Its trusted root (``SIGWARD_TRUSTED_ROOT``, else the one kept current
        over TUF, whose refresh starts here) is snapshotted once per verification and named in every verdict key."""

        def build() -> Verifier:
            from sigward.registry.imagedata import RegistryImageData
            from sigward.verify.caching import CachingSignatureSource
            from sigward.verify.engine import Verifier
            from sigward.verify.oci import ProviderSources, RegistrySignatureSource

            client = self.registry()
            built = Verifier(
                source=CachingSignatureSource(RegistrySignatureSource(client)),
                source_for_providers=ProviderSources(client, CachingSignatureSource, secrets=self._registry_secrets()),
                cluster=self.cluster(),
                image_data=RegistryImageData(client),
                global_context=self.global_context(),
            )
            start_trust_root_refresh(self.environ, wait=self.short_lived)
            return built

        return self._once("verifier", build)

    def cluster(self) -> ClusterData:
        """The cluster data rules read (context, ``keys.secret``, ``k8s://`` keys, namespace labels): the
        ConfigMaps, Secrets and Namespaces shipped beside the policies, and the live connection from the
        environment (:func:`sigward.cluster.sources.cluster_data_from_env`)."""

        def build() -> ClusterData:
            from sigward.cluster.sources import cluster_data_from_env
            from sigward.policy.loader import policy_paths_from_env

            paths = list(self.policy_paths or policy_paths_from_env(self.environ))
            return cluster_data_from_env(self.environ, paths)

        return self._once("cluster", build)

    def capabilities(self) -> Capabilities:
        """What this process's policies may use: every command and function that loads policies asks here, so a
        feature read through the cluster connection (``imageRegistryCredentials.secrets``) loads exactly when one
        is configured."""
        from sigward.policy.capabilities import for_cluster

        return for_cluster(self.cluster().connected)

    def global_context(self) -> GlobalContext:
        """The GlobalContextEntries loaded with the policies, read through :meth:`cluster` and cached per entry
        (:mod:`sigward.cluster.globalcontext`). Entries are taken from :meth:`policies` on first use, so building a
        verifier does not load policies early."""

        def build() -> GlobalContext:
            from sigward.cluster.globalcontext import GlobalContext

            return GlobalContext(entries=lambda: self.policies().global_context, cluster=self.cluster())

        return self._once("global_context", build)

    def policies(self) -> PolicySet:
        def build() -> PolicySet:
            from sigward.policy.loader import load_policies, policy_paths_from_env

            paths = list(self.policy_paths or policy_paths_from_env(self.environ))
            if not paths:
                raise ConfigurationError("no policy configured: set SIGWARD_POLICY to a policy file or directory")
            return load_policies(paths, capabilities=self.capabilities())

        return self._once("policies", build)

    def store(self) -> VerdictStore:
        def build() -> VerdictStore:
            from sigward.store import open_store

            return open_store(environ=self.environ)

        return self._once("store", build)

    def store_or_none(self) -> VerdictStore | None:
        """The store for admission, which can do without it (an unusable store is logged, not fatal)."""
        try:
            return self.store()
        except Exception as exc:  # any store failure only costs caching
            from sigward import logs

            logs.emit("WARNING", "verdict store unavailable; admission verifies without it", error=str(exc))
            return None

    def push(self) -> PushService:
        def build() -> PushService:
            from sigward.push.findings import Notifier
            from sigward.push.service import PushService, PushSettings

            loaded = self.policies()
            grace = self.environ.get("SIGWARD_PUSH_GRACE_SECONDS", "").strip()
            try:
                settings = PushSettings(grace_seconds=float(grace)) if grace else PushSettings()
            except ValueError:
                raise ConfigurationError(f"SIGWARD_PUSH_GRACE_SECONDS={grace!r} is not a number of seconds") from None
            settings = replace(settings, pending_sources=pending_sources(self.environ))
            return PushService(
                policies=lambda: loaded.policies,
                verifier=self._fresh_verifier(cached=False),
                store=self.store(),
                settings=settings,
                notifier=Notifier.from_env(self.environ),
                subject_of=self._subject_of,
                image_policies=lambda: loaded.image_policies,
            )

        return self._once("push", build)

    def reverify(self, *, since_seconds: float | None = None, dry_run: bool = False) -> ReverifyService:
        """A re-verification service for one run (built anew on every call, not kept): this process's policies,
        registry client and store, and a verifier whose signature cache lives for this run only — the shared
        verifier may remember a push's "no signature yet" for a while, which would turn into a false finding."""
        from sigward.reverify.service import build_service

        loaded = self.policies()
        return build_service(
            self.environ,
            policies=lambda: loaded.policies,
            verifier=self._fresh_verifier(cached=True),
            store=self.store(),
            since_seconds=since_seconds,
            dry_run=dry_run,
            image_policies=lambda: loaded.image_policies,
        )

    def _fresh_verifier(self, *, cached: bool) -> Verifier:
        """A verifier on the shared registry client whose signature lookups share nothing with admission's: push and
        re-verification must see a signature the moment it exists, not a cached "none yet" from seconds before (a
        signature push re-verifies its subject right after the image push looked). It shares the admission
        verifier's keys and trusted root (and their refresh). ``cached``: a signature cache of its own."""
        from sigward.verify.caching import CachingSignatureSource
        from sigward.verify.oci import ProviderSources, RegistrySignatureSource

        client = self.registry()
        shared = self.verifier()
        if not cached:
            return shared.with_source(
                RegistrySignatureSource(client),
                source_for_providers=ProviderSources(client, secrets=self._registry_secrets()),
            )
        return shared.with_source(
            CachingSignatureSource(RegistrySignatureSource(client)),
            source_for_providers=ProviderSources(client, CachingSignatureSource, secrets=self._registry_secrets()),
        )

    def _registry_secrets(self) -> tuple[Callable[[str, str], Mapping[str, Any]], str] | None:
        """How ``imageRegistryCredentials.secrets`` are read: from the live cluster only (cached with its TTL), in
        ``SIGWARD_SECRETS_NAMESPACE`` (Kyverno's own namespace, ``kyverno`` by default); None without a connection."""
        from sigward.registry.secretcreds import DEFAULT_SECRETS_NAMESPACE, SECRETS_NAMESPACE_ENV

        cluster = self.cluster()
        if not cluster.connected:
            return None
        namespace = self.environ.get(SECRETS_NAMESPACE_ENV, "").strip() or DEFAULT_SECRETS_NAMESPACE
        return cluster.live_secret, namespace

    def _subject_of(self, event: PushEvent, deadline: Deadline) -> str:
        """The ``subject`` digest of a pushed manifest (a referrer), or "" — one manifest request at push time."""
        from sigward.references import Repository

        try:
            manifest = self.registry().get_manifest(
                Repository(registry=event.registry, path=event.repository), event.digest, deadline=deadline
            )
        except SigwardError:
            return ""
        subject = manifest.subject
        return subject.digest if subject is not None else ""

    def admission(self) -> AdmissionService:
        def build() -> AdmissionService:
            from sigward.admission.service import AdmissionService, AdmissionSettings

            loaded = self.policies()
            return AdmissionService(
                policies=lambda: loaded.policies,
                image_policies=lambda: loaded.image_policies,
                verifier=self.verifier(),
                settings=AdmissionSettings.from_env(self.environ),
                jmespath_search=jmespath_search,
                store=self.store_or_none(),
                exceptions=lambda: loaded.exceptions,
                cluster=self.cluster(),
            )

        return self._once("admission", build)

    def admission_if_built(self) -> AdmissionService | None:
        """The admission service when it already exists, without building it or waiting for the thread that is: an
        event loop may ask (building opens the store and loads the trust root, which blocks)."""
        found: AdmissionService | None = self._built.get("admission")
        return found

    def close(self) -> None:
        """Close what was built (admission's pool, the registry's connections, the store) and forget it."""
        with self._lock:
            built = dict(self._built)
            self._built.clear()
        for name in ("admission", "registry", "store"):
            service = built.get(name)
            if service is not None:
                service.close()


def build_services(
    environ: Mapping[str, str] | None = None, *, policy_paths: tuple[str, ...] = (), short_lived: bool = False
) -> Services:
    """The services of one process (or one CLI command) configured by ``environ`` (default ``os.environ``)."""
    return Services(
        environ=os.environ if environ is None else environ, policy_paths=policy_paths, short_lived=short_lived
    )


def pending_sources(environ: Mapping[str, str]) -> frozenset[str]:
    """``SIGWARD_PENDING_SOURCES``: push sources recorded ``pending`` (acknowledged) while a signature may still
    arrive, instead of asking for redelivery; ``none`` for none (default: distribution, harbor, github)."""
    from sigward.push.service import DEFAULT_PENDING_SOURCES

    text = environ.get("SIGWARD_PENDING_SOURCES", "").strip().lower()
    if not text:
        return DEFAULT_PENDING_SOURCES
    if text == "none":
        return frozenset()
    return frozenset(s.strip() for s in text.split(",") if s.strip())


def start_trust_root_refresh(environ: Mapping[str, str], *, wait: bool = False) -> None:
    """Load the trusted root at cold start and start its TUF refresh in the background, so the first verification
    finds it ready; ``wait``: a short-lived command lets the first refresh finish (bounded, see
    :meth:`sigward.verify.tuf.TrustRootHolder.settle`). Nothing when ``SIGWARD_TRUSTED_ROOT`` pins a file. A
    configuration error surfaces here."""
    if environ.get("SIGWARD_TRUSTED_ROOT"):
        return
    from sigward.verify.tuf import default_holder

    holder = default_holder(environ)
    if wait:
        holder.settle()
    else:
        holder.start()


def jmespath_search(expression: str, value: str) -> object:
    """Kyverno-flavoured JMESPath, imported on first use (extractors with ``jmesPath`` are rare)."""
    from sigward.policy.jmes import search

    return search(expression, value)


_process_lock = threading.Lock()
_process: Services | None = None


def process_services() -> Services:
    """The services this process's function targets and ``sigward serve`` share, built on first use."""
    global _process  # noqa: PLW0603 - one set of services per process, built at the edge
    with _process_lock:
        if _process is None:
            _process = build_services()
        return _process


def reset() -> None:
    """Close and forget this process's services and the per-process KMS and trusted-root state (tests change the
    environment between cases)."""
    global _process
    with _process_lock:
        current, _process = _process, None
    if current is not None:
        current.close()
    from sigward.kms import backends
    from sigward.verify import tuf

    backends.reset()
    tuf.reset()

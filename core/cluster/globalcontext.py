"""The data of Kyverno's GlobalContextEntries, as ``context[].globalReference`` and CEL ``globalContext.Get`` read it.

Kyverno keeps each entry current in the background (an informer for ``kubernetesResource``, a poll every
``refreshInterval`` for ``apiCall``). A serverless verifier has no background, so an entry is read on first use and
kept for its refresh interval (bounded by :data:`MIN_REFRESH_SECONDS` and :data:`MAX_REFRESH_SECONDS`), one read in
flight per entry; a ``kubernetesResource`` entry is kept :data:`RESOURCE_TTL_SECONDS`, as fresh as other cluster
lookups. Reads go through :class:`~sigward.cluster.data.ClusterData` (the live connection; without one, the
ConfigMaps, Secrets and Namespaces shipped beside the policies) and, for ``apiCall``, through the one apiCall
implementation (:mod:`sigward.cluster.apicall`: ``service`` only to allowlisted URLs). An entry that cannot be read
raises :class:`~sigward.cluster.data.ClusterLookupError` (failurePolicy decides); a failure is never cached and never
reads as empty data.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigward.cache import TTLCache
from sigward.cluster.apicall import execute
from sigward.cluster.data import DEFAULT_TTL_SECONDS, ClusterData, ClusterLookupError
from sigward.errors import SigwardError
from sigward.policy.globalcontext import GlobalContextEntry
from sigward.policy.jmes import search, to_json_data

# An apiCall entry asking for "1s" would turn every admission into an API request; five seconds still follows changes.
MIN_REFRESH_SECONDS = 5.0
# A function instance can live for days: data older than an hour is not what the entry's author expects (Kyverno
# re-polls on its interval whatever it is; sigward re-reads at least hourly).
MAX_REFRESH_SECONDS = 3600.0
# kubernetesResource entries are watched by Kyverno (seconds behind the cluster); sigward re-lists on this TTL.
RESOURCE_TTL_SECONDS = DEFAULT_TTL_SECONDS
# What a kubernetesResource names (group, version, resource, namespace) before it becomes an API path: DNS labels
# and subdomains only, so an entry cannot walk the API path (``..``, ``/``, ``?``).
_API_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
# What shipped manifests can answer without a connection (core v1).
SHIPPED_COLLECTIONS = ("configmaps", "secrets", "namespaces")


class GlobalEntryNotFound(ClusterLookupError):
    """No GlobalContextEntry of that name is loaded (Kyverno: rule error for globalReference, null for CEL)."""


@dataclass(frozen=True)
class _Data:
    """An entry's data read once: the whole (``""``) and each projection's result or error."""

    whole: Any
    projections: Mapping[str, Any]
    errors: Mapping[str, str]


def refresh_ttl(entry: GlobalContextEntry) -> float:
    """How long ``entry``'s data is kept (its refresh interval within the bounds, or the resource TTL)."""
    if entry.spec.api_call is None:
        return RESOURCE_TTL_SECONDS
    return min(max(entry.refresh_seconds, MIN_REFRESH_SECONDS), MAX_REFRESH_SECONDS)


@dataclass
class GlobalContext:
    """Every loaded GlobalContextEntry's data, read through ``cluster``; thread-safe. ``entries``: the entries, or
    a callable giving them (wiring loads the policies lazily)."""

    entries: Sequence[GlobalContextEntry] | Callable[[], Sequence[GlobalContextEntry]] = ()
    cluster: ClusterData = field(default_factory=ClusterData)
    clock: Callable[[], float] = time.monotonic
    _caches: dict[str, TTLCache[str, _Data]] = field(init=False, repr=False, default_factory=dict)

    def _entries(self) -> dict[str, GlobalContextEntry]:
        found = self.entries() if callable(self.entries) else self.entries
        return {e.name: e for e in found}

    def names(self) -> frozenset[str]:
        return frozenset(self._entries())

    def get(self, name: str, projection: str = "") -> Any:
        """Entry ``name``'s data (``projection`` empty) or one projection's result, with Kyverno's messages."""
        entry = self._entries().get(name)
        if entry is None:
            raise GlobalEntryNotFound(f"failed to fetch entry key={name}")
        cache = self._caches.get(name)
        if cache is None:
            cache = self._caches.setdefault(name, TTLCache(max_entries=1, ttl=refresh_ttl(entry), clock=self.clock))
        data = cache.get_or_compute(name, lambda: self._read(entry))
        if not projection:
            return data.whole
        if projection in data.errors:
            raise ClusterLookupError(data.errors[projection])
        if entry.spec.api_call is not None:
            value = data.projections.get(projection)
            if value is None:  # Kyverno's externalapi entry: an unknown projection or a null result
                raise ClusterLookupError("no data available")
            return value
        if projection not in data.projections:
            raise ClusterLookupError(f'projection "{projection}" not found')
        return data.projections[projection]

    def _read(self, entry: GlobalContextEntry) -> _Data:
        try:
            whole = self._apicall(entry) if entry.spec.api_call is not None else self._resources(entry)
        except SigwardError as exc:
            raise ClusterLookupError(f"GlobalContextEntry {entry.name}: {exc.message}") from None
        results: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for projection in entry.spec.projections:
            try:
                results[projection.name] = search(projection.jmes_path, to_json_data(whole), missing="error")
            except SigwardError as exc:
                message = (
                    f'GlobalContextEntry {entry.name}: failed to apply projection "{projection.name}": {exc.message}'
                )
                if entry.spec.api_call is not None:  # Kyverno: a failed projection fails the whole apiCall entry
                    raise ClusterLookupError(message) from None
                errors[projection.name] = message
        return _Data(whole=whole, projections=results, errors=errors)

    def _apicall(self, entry: GlobalContextEntry) -> Any:
        call = entry.spec.api_call
        assert call is not None
        # One attempt per read: Kyverno's retryLimit retries in its background poll; here the next request retries
        # (a failure is not cached), so an admission never waits on several timeouts.
        return to_json_data(execute(self.cluster, call.call()))

    def _resources(self, entry: GlobalContextEntry) -> list[Any]:
        res = entry.spec.kubernetes_resource
        assert res is not None
        for what in (res.group, res.version, res.resource, res.namespace):
            if what and not _API_NAME.fullmatch(what):
                raise ClusterLookupError(f"kubernetesResource {what[:80]!r} is not a valid API name")
        if not self.cluster.connected:
            if res.group or res.version != "v1" or res.resource not in SHIPPED_COLLECTIONS:
                where = f"{res.group + '/' if res.group else ''}{res.version} {res.resource}"
                raise ClusterLookupError(
                    f"kubernetesResource {where} needs a cluster connection (SIGWARD_KUBECONFIG, or in-cluster "
                    "service account); shipped manifests serve v1 configmaps, secrets and namespaces only"
                )
            return [
                to_json_data(obj)
                for ref, obj in sorted(self.cluster.manifests.items(), key=lambda item: str(item[0]))
                if ref.resource == res.resource and (not res.namespace or ref.namespace == res.namespace)
            ]
        base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        path = f"{base}/namespaces/{res.namespace}/{res.resource}" if res.namespace else f"{base}/{res.resource}"
        doc = self.cluster.raw(path)
        items = doc.get("items") if isinstance(doc, Mapping) else None
        if not isinstance(items, list):
            raise ClusterLookupError(f"cluster API answered {path} without an items list")
        kind = str(doc.get("kind") or "").removesuffix("List")
        api_version = f"{res.group}/{res.version}" if res.group else res.version
        out = []
        for item in items:
            if isinstance(item, Mapping):
                obj = dict(to_json_data(item))
                obj.setdefault("apiVersion", api_version)
                if kind:
                    obj.setdefault("kind", kind)
                out.append(obj)
        return out


#: No entries: every reference is "failed to fetch entry key=…".
EMPTY = GlobalContext()

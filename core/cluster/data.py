"""Where cluster objects come from, and the one service the rest of sigward asks.

A serverless verifier has no cluster beside it, so cluster data has two sources, consulted in this order:

1. **Manifests** shipped beside the policies (ConfigMaps, Secrets, Namespaces in the same files and directories as
   ``SIGWARD_POLICY``), read the way ``kubectl apply`` would: a namespaced object without ``metadata.namespace``
   lands in ``default``. Secrets keep only public material (see :data:`PRIVATE_SECRET_KEYS`).
2. A **live connection** to the Kubernetes API (:mod:`sigward.cluster.api`), cached for a short TTL with one request
   in flight per object.

A lookup neither source can answer raises :class:`ClusterLookupError`, an infrastructure error: the policy's
failurePolicy decides, and a missing ConfigMap never reads as an empty value.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sigward.cache import TTLCache
from sigward.errors import ExternalServiceError
from sigward.policy.serviceurls import shown_url

if TYPE_CHECKING:
    from sigward.cluster.services import ServiceCaller

# Key names `cosign generate-key-pair k8s://…` writes for the private half; never kept, never logged.
# Registry credentials (kubernetes.io/dockerconfigjson, legacy dockercfg): read only by the rule's
# imageRegistryCredentials.secrets through live_secret, never in a public view (resource.Get, context, manifests).
REGISTRY_CREDENTIAL_KEYS = frozenset({".dockerconfigjson", ".dockercfg"})
PRIVATE_SECRET_KEYS = frozenset({"cosign.key", "cosign.password"}) | REGISTRY_CREDENTIAL_KEYS
# Any other Secret value that holds a private key is dropped too (public material only).
_PRIVATE_MARKERS = (b"PRIVATE KEY", b"ENCRYPTED SIGSTORE PRIVATE KEY")
# Objects looked up stay fresh this long: short enough that a rotated key or edited ConfigMap takes effect within
# a minute, long enough that a burst of admissions costs one API request per object.
DEFAULT_TTL_SECONDS = 30.0
# Bounded so hostile policies (names from variables) cannot grow memory without limit.
MAX_CACHED_OBJECTS = 4096


class ClusterLookupError(ExternalServiceError):
    """A cluster object could not be read (not shipped, no connection, not found, denied, API down)."""


@dataclass(frozen=True)
class ObjectRef:
    """A namespaced or cluster-scoped object, by its API collection (``configmaps``, ``secrets``, ``namespaces``)."""

    resource: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = {"configmaps": "configmap", "secrets": "secret", "namespaces": "namespace", "pods": "pod"}.get(
            self.resource, ""
        )
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{kind or self.resource} {where}"

    @property
    def api_path(self) -> str:
        if self.resource == "namespaces":
            return f"/api/v1/namespaces/{self.name}"
        return f"/api/v1/namespaces/{self.namespace}/{self.resource}/{self.name}"


class ObjectSource(Protocol):
    """Answers with the object as the API server returns it (a JSON mapping), None when it has no such object."""

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None: ...


class RawSource(Protocol):
    """An API path read as ``kubectl get --raw`` would (``apiCall.urlPath``)."""

    def raw(self, path: str, *, method: str = "GET", body: Any = None) -> Any: ...


def registry_credentials_secret(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Only the registry-credential entries of ``obj`` (a Secret), ``data`` decoded to text: what
    ``imageRegistryCredentials.secrets`` reads, and nothing else of the Secret."""
    out: dict[str, str] = {}
    raw = obj.get("data")
    for key, value in raw.items() if isinstance(raw, Mapping) else ():
        if key not in REGISTRY_CREDENTIAL_KEYS or not isinstance(value, str):
            continue
        try:
            out[str(key)] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return {"metadata": {"name": (meta or {}).get("name"), "namespace": (meta or {}).get("namespace")}, "data": out}


def _without_private_material(answer: Any) -> Any:
    """An apiCall answer with any Secret in it reduced to its public entries, as every other lookup sees Secrets
    (an ``urlPath`` may name a Secret or a SecretList; a private key or a registry password must not reach a rule)."""
    if isinstance(answer, Mapping):
        if answer.get("kind") == "Secret":
            return public_secret(answer)
        if answer.get("kind") == "SecretList" and isinstance(answer.get("items"), list):
            return {**answer, "items": [public_secret(i) for i in answer["items"] if isinstance(i, Mapping)]}
    return answer


def public_secret(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` (a Secret) with only its public entries, ``data`` decoded to text: private keys and passwords are
    dropped so they can never reach a log line, an error or a cache."""
    out: dict[str, str] = {}
    raw = obj.get("data")
    for key, value in raw.items() if isinstance(raw, Mapping) else ():
        if key in PRIVATE_SECRET_KEYS or not isinstance(value, str):
            continue
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if any(marker in decoded for marker in _PRIVATE_MARKERS):
            continue
        try:
            out[str(key)] = decoded.decode("utf-8")
        except UnicodeDecodeError:
            continue
    string_data = obj.get("stringData")
    for key, value in string_data.items() if isinstance(string_data, Mapping) else ():
        text = value if isinstance(value, str) else ""
        if key not in PRIVATE_SECRET_KEYS and text and not any(m.decode() in text for m in _PRIVATE_MARKERS):
            out[str(key)] = text
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return {"metadata": dict(meta or {}), "data": out}


@dataclass
class ClusterData:
    """The cluster data service: shipped manifests first, then the live connection (cached). Thread-safe."""

    manifests: Mapping[ObjectRef, Mapping[str, Any]] = field(default_factory=dict)
    live: ObjectSource | None = None
    raw_source: RawSource | None = None
    services: ServiceCaller | None = None  # apiCall.service, allowlisted (sigward.cluster.services)
    ttl: float = DEFAULT_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _cache: TTLCache[ObjectRef, Mapping[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cache = TTLCache(max_entries=MAX_CACHED_OBJECTS, ttl=self.ttl, clock=self.clock)

    @property
    def connected(self) -> bool:
        return self.live is not None

    def describe(self) -> str:
        """Where lookups go, for messages (never credentials)."""
        parts = []
        if self.manifests:
            parts.append(f"{len(self.manifests)} shipped manifest object(s)")
        parts.append("a live cluster connection" if self.live is not None else "no cluster connection")
        return " and ".join(parts)

    def get(self, ref: ObjectRef) -> Mapping[str, Any]:
        """The object (a Secret with public entries only); raises :class:`ClusterLookupError` when not found."""
        shipped = self.manifests.get(ref)
        if shipped is not None:
            return shipped
        live = self.live
        if live is None:
            raise ClusterLookupError(
                f"{ref} is not in the manifests shipped beside the policies and no cluster connection is configured "
                "(SIGWARD_KUBECONFIG, or in-cluster service account)"
            )

        def fetch() -> Mapping[str, Any]:
            found = live.get(ref)
            if found is None:
                raise ClusterLookupError(f"{ref} not found in the cluster")
            return public_secret(found) if ref.resource == "secrets" else found

        return self._cache.get_or_compute(ref, fetch)

    def live_secret(self, namespace: str, name: str) -> Mapping[str, Any]:
        """A Secret from the live connection only, cached like :meth:`get` (``imageRegistryCredentials.secrets``:
        registry credentials are never taken from shipped manifests, which must not carry them)."""
        ref = ObjectRef("secrets", namespace, name)
        # its own cache entry: the credential view must never be served to a public lookup of the same Secret
        cache_ref = ObjectRef("secrets#registry-credentials", namespace, name)
        live = self.live
        if live is None:
            raise ClusterLookupError(
                f"{ref} holds registry credentials, which are read from a cluster connection only and none is "
                "configured (SIGWARD_KUBECONFIG, or in-cluster service account)"
            )

        def fetch() -> Mapping[str, Any]:
            found = live.get(ref)
            if found is None:
                raise ClusterLookupError(f"{ref} not found in the cluster")
            return registry_credentials_secret(found)

        return self._cache.get_or_compute(cache_ref, fetch)

    def list(self, resource: str, namespace: str) -> list[Mapping[str, Any]]:
        """The ``resource`` objects of ``namespace`` (all namespaces for ``namespaces``): the live cluster's when
        connected (Secrets with public entries only), else the shipped manifests (they are the whole cluster)."""
        if self.raw_source is None:
            return [
                obj
                for ref, obj in sorted(self.manifests.items(), key=lambda item: str(item[0]))
                if ref.resource == resource and (resource == "namespaces" or ref.namespace == namespace)
            ]
        path = "/api/v1/namespaces" if resource == "namespaces" else f"/api/v1/namespaces/{namespace}/{resource}"
        doc = self.raw_source.raw(path)
        items = doc.get("items") if isinstance(doc, Mapping) else None
        if not isinstance(items, list):
            raise ClusterLookupError(f"cluster API answered {path} without an items list")
        found = [i for i in items if isinstance(i, Mapping)]
        return [public_secret(i) for i in found] if resource == "secrets" else found

    def listed(self, path: str) -> tuple[Mapping[str, Any], ...]:
        """The ``items`` of a list ``path`` (e.g. RoleBindings) from the live connection only, cached for the TTL
        with one request however many ask; raises :class:`ClusterLookupError` when there is no connection or the
        answer is not a list."""
        source = self.raw_source
        if source is None:
            raise ClusterLookupError(
                f"{path} needs a cluster connection (SIGWARD_KUBECONFIG, or in-cluster service account)"
            )

        def fetch() -> Mapping[str, Any]:
            doc = source.raw(path)
            items = doc.get("items") if isinstance(doc, Mapping) else None
            if not isinstance(items, list):
                raise ClusterLookupError(f"cluster API answered {path} without an items list")
            return {"items": [i for i in items if isinstance(i, Mapping)]}

        return tuple(self._cache.get_or_compute(ObjectRef("list", "", path), fetch)["items"])

    def configmap(self, namespace: str, name: str) -> Mapping[str, Any]:
        return self.get(ObjectRef("configmaps", namespace, name))

    def secret(self, namespace: str, name: str) -> Mapping[str, Any]:
        return self.get(ObjectRef("secrets", namespace, name))

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        obj = self.get(ObjectRef("namespaces", "", name))
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        labels = (meta or {}).get("labels")
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}

    def raw(self, path: str, *, method: str = "GET", body: Any = None) -> Any:
        """An ``apiCall.urlPath`` answer from the live connection (never cached: Kyverno does not cache it)."""
        if self.raw_source is None:
            raise ClusterLookupError(
                f"apiCall {path} needs a cluster connection (SIGWARD_KUBECONFIG, or in-cluster service account)"
            )
        return _without_private_material(self.raw_source.raw(path, method=method, body=body))

    def service(self, url: str, *, method: str, headers: Any, body: Any, ca_bundle: str) -> Any:
        """An ``apiCall.service`` answer; only allowlisted URLs (``SIGWARD_APICALL_SERVICES``) are called."""
        if self.services is None:
            raise ClusterLookupError(
                f"apiCall service URL {shown_url(url)} is not allowlisted (SIGWARD_APICALL_SERVICES)"
            )
        return self.services.call(url, method=method, headers=headers or (), body=body, ca_bundle=ca_bundle)


#: No manifests and no connection: every lookup is an infrastructure error naming what was asked.
EMPTY = ClusterData()

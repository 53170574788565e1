"""The roles bound to the requesting user, as Kyverno computes ``request.roles`` / ``request.clusterRoles`` for
``match``/``exclude`` ``roles``/``clusterRoles`` (pkg/userinfo/roleRef.go ``GetRoleRef``):

- every RoleBinding of the cluster whose subjects name the user: a binding to a ``Role`` gives
  ``<binding namespace>:<role>``; a binding to a ``ClusterRole`` counts only in the request's namespace;
- every ClusterRoleBinding to a ``ClusterRole`` whose subjects name the user;
- subjects match exactly (no wildcards): ``User`` by username, ``Group`` by one of the groups, ``ServiceAccount``
  as ``system:serviceaccount:<ns>:<name>`` (a RoleBinding's own namespace when the subject has none).

The bindings are listed through the live cluster connection (:meth:`sigward.cluster.data.ClusterData.listed`,
cached with the cluster TTL, one request however many ask). A list that cannot be read raises
:class:`~sigward.cluster.data.ClusterLookupError`: an infrastructure error the failurePolicy decides, never "no
roles" (which would let an ``exclude`` on roles silently not apply, or a ``match`` silently skip).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sigward.cluster.data import ClusterLookupError

if TYPE_CHECKING:
    from sigward.cluster.data import ClusterData

RBAC_API = "/apis/rbac.authorization.k8s.io/v1"
ROLE_BINDINGS_PATH = f"{RBAC_API}/rolebindings"  # all namespaces, as Kyverno's informer lists them
CLUSTER_ROLE_BINDINGS_PATH = f"{RBAC_API}/clusterrolebindings"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class RolesLookupError(ClusterLookupError):
    """The roles bound to the requesting user could not be computed (a binding list was unreadable)."""


@dataclass(frozen=True)
class BoundRoles:
    """``roles`` (``<namespace>:<role>``) and ``cluster_roles``, sorted and unique."""

    roles: tuple[str, ...] = ()
    cluster_roles: tuple[str, ...] = ()


def _subject_names_user(subjects: Any, username: str, groups: Sequence[str], namespace: str) -> bool:
    for subject in subjects if isinstance(subjects, list) else ():
        if not isinstance(subject, Mapping):
            continue
        kind, name = subject.get("kind"), str(subject.get("name") or "")
        if kind == "ServiceAccount":
            ns = str(subject.get("namespace") or "") or namespace
            if ns and username == f"{SERVICE_ACCOUNT_PREFIX}{ns}:{name}":
                return True
        elif kind == "Group":
            if name in groups:
                return True
        elif kind == "User" and username == name:
            return True
    return False


def _meta_namespace(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace") or "") if isinstance(meta, Mapping) else ""


def _role_ref(obj: Mapping[str, Any]) -> tuple[str, str]:
    ref = obj.get("roleRef")
    if not isinstance(ref, Mapping):
        return "", ""
    return str(ref.get("kind") or ""), str(ref.get("name") or "")


def roles_from_bindings(
    role_bindings: Iterable[Mapping[str, Any]],
    cluster_role_bindings: Iterable[Mapping[str, Any]],
    *,
    username: str,
    groups: Sequence[str],
    namespace: str,
) -> BoundRoles:
    """Kyverno's ``GetRoleRef`` over listed bindings (pure)."""
    roles: set[str] = set()
    cluster_roles: set[str] = set()
    for binding in role_bindings:
        ns = _meta_namespace(binding)
        if not _subject_names_user(binding.get("subjects"), username, groups, ns):
            continue
        kind, name = _role_ref(binding)
        if kind == "Role":
            roles.add(f"{ns}:{name}")
        elif kind == "ClusterRole" and ns == namespace:
            cluster_roles.add(name)
    for binding in cluster_role_bindings:
        kind, name = _role_ref(binding)
        if kind == "ClusterRole" and _subject_names_user(binding.get("subjects"), username, groups, ""):
            cluster_roles.add(name)
    return BoundRoles(roles=tuple(sorted(roles)), cluster_roles=tuple(sorted(cluster_roles)))


def bound_roles(cluster: ClusterData, *, username: str, groups: Sequence[str], namespace: str) -> BoundRoles:
    """The roles bound to the user in the live cluster (raises ClusterLookupError when unreadable)."""
    return roles_from_bindings(
        cluster.listed(ROLE_BINDINGS_PATH),
        cluster.listed(CLUSTER_ROLE_BINDINGS_PATH),
        username=username,
        groups=groups,
        namespace=namespace,
    )

"""Roles bound to the requesting user (Kyverno pkg/userinfo/roleRef.go), read through the live connection from the
Kubernetes API stand-in over HTTPS with bearer-token auth: RoleBinding to a Role (any namespace), RoleBinding to a
ClusterRole counting only in the request namespace, ClusterRoleBinding, Group and ServiceAccount subjects; an
unreadable list is an error (never "no roles"); the lists are cached with the cluster TTL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sigward.cluster.api import Connection, KubeClient
from sigward.cluster.data import ClusterData, ClusterLookupError
from sigward.cluster.rbac import CLUSTER_ROLE_BINDINGS_PATH, ROLE_BINDINGS_PATH, BoundRoles, bound_roles
from tests.support.httpservers import Reply
from tests.support.kubeapi import KubeAPI


def binding(kind: str, ns: str, name: str, role_kind: str, role: str, *subjects: dict[str, str]) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": list(subjects),
    }


def listing(*items: dict[str, Any]) -> Reply:
    return Reply(200, {"Content-Type": "application/json"}, json.dumps({"kind": "List", "items": list(items)}).encode())


SA = {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}
SA_NO_NS = {"kind": "ServiceAccount", "name": "deployer"}  # a RoleBinding's own namespace
ALICE = {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}
DEVS = {"kind": "Group", "name": "developers", "apiGroup": "rbac.authorization.k8s.io"}
ROLE_BINDINGS = listing(
    binding("RoleBinding", "ci", "deploy", "Role", "deployer", SA_NO_NS),
    binding("RoleBinding", "prod", "alice-edit", "Role", "editor", ALICE),
    binding("RoleBinding", "prod", "devs-view", "ClusterRole", "view", DEVS),
    binding("RoleBinding", "ci", "devs-edit", "ClusterRole", "edit", DEVS),
)
CLUSTER_ROLE_BINDINGS = listing(
    binding("ClusterRoleBinding", "", "sa-admin", "ClusterRole", "ci-admin", SA),
    binding("ClusterRoleBinding", "", "devs-audit", "ClusterRole", "audit", DEVS),
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeAPI]:
    with KubeAPI(tmp_path / "tls") as server:
        server.raw[ROLE_BINDINGS_PATH] = ROLE_BINDINGS
        server.raw[CLUSTER_ROLE_BINDINGS_PATH] = CLUSTER_ROLE_BINDINGS
        yield server


def connect(api: KubeAPI, *, token: str | None = None, clock: list[float] | None = None) -> ClusterData:
    client = KubeClient(Connection(server=api.url, ca_file=api.ca_file, token=api.token if token is None else token))
    now = clock if clock is not None else [0.0]
    return ClusterData(live=client, raw_source=client, ttl=30.0, clock=lambda: now[0])


@pytest.mark.parametrize(
    ("case", "username", "groups", "namespace", "expected"),
    [
        (
            "SA: Role in its namespace, ClusterRoleBinding",
            "system:serviceaccount:ci:deployer",
            (),
            "ci",
            BoundRoles(("ci:deployer",), ("ci-admin",)),
        ),
        ("SA of another namespace: nothing", "system:serviceaccount:prod:deployer", (), "ci", BoundRoles()),
        ("user: Role in another namespace still listed", "alice", (), "ci", BoundRoles(("prod:editor",), ())),
        (
            "group: RoleBinding to ClusterRole in the request namespace only",
            "bob",
            ("developers",),
            "prod",
            BoundRoles((), ("audit", "view")),
        ),
        ("group in ci", "bob", ("developers",), "ci", BoundRoles((), ("audit", "edit"))),
        ("unbound user", "mallory", ("ops",), "ci", BoundRoles()),
    ],
)
def test_bound_roles(
    api: KubeAPI, case: str, username: str, groups: tuple[str, ...], namespace: str, expected: BoundRoles
) -> None:
    assert bound_roles(connect(api), username=username, groups=groups, namespace=namespace) == expected


@pytest.mark.parametrize(
    ("case", "path", "reply"),
    [
        ("rolebindings forbidden", ROLE_BINDINGS_PATH, Reply(403, {"Content-Type": "application/json"}, b"{}")),
        ("clusterrolebindings 500", CLUSTER_ROLE_BINDINGS_PATH, Reply(500, {}, b"oops")),
        ("not a list", ROLE_BINDINGS_PATH, Reply(200, {"Content-Type": "application/json"}, b'{"kind": "Status"}')),
    ],
)
def test_unreadable_list_is_an_error_never_no_roles(api: KubeAPI, case: str, path: str, reply: Reply) -> None:
    api.raw[path] = reply
    with pytest.raises(ClusterLookupError):
        bound_roles(connect(api), username="alice", groups=(), namespace="ci")


def test_wrong_token_is_an_error(api: KubeAPI) -> None:
    with pytest.raises(ClusterLookupError, match="permission denied"):
        bound_roles(connect(api, token="wrong"), username="alice", groups=(), namespace="ci")


def test_no_connection_is_an_error() -> None:
    with pytest.raises(ClusterLookupError, match="cluster connection"):
        bound_roles(ClusterData(), username="alice", groups=(), namespace="ci")


def test_lists_are_cached_with_the_cluster_ttl(api: KubeAPI) -> None:
    now = [0.0]
    cluster = connect(api, clock=now)
    for _ in range(3):
        bound_roles(cluster, username="alice", groups=(), namespace="ci")
    assert sum(1 for s in api.seen if s.path == ROLE_BINDINGS_PATH) == 1
    api.raw[ROLE_BINDINGS_PATH] = listing()  # the binding is removed in the cluster
    assert bound_roles(cluster, username="alice", groups=(), namespace="ci").roles == ("prod:editor",)
    now[0] = 31.0
    assert bound_roles(cluster, username="alice", groups=(), namespace="ci").roles == ()
    assert sum(1 for s in api.seen if s.path == ROLE_BINDINGS_PATH) == 2

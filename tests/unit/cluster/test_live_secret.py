"""Registry-credential Secrets come from the live connection only: a shipped manifest never supplies one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from sigward.cluster.data import ClusterData, ClusterLookupError, ObjectRef

REF = ObjectRef("secrets", "kyverno", "regcred")
SHIPPED = {"metadata": {"name": "regcred"}, "data": {".dockerconfigjson": '{"auths": {}}'}}


class _Live:
    def __init__(self, obj: Mapping[str, Any] | None) -> None:
        self.obj, self.calls = obj, 0

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        self.calls += 1
        return self.obj


def test_shipped_manifest_is_not_used_without_a_connection() -> None:
    with pytest.raises(ClusterLookupError, match="cluster connection only"):
        ClusterData(manifests={REF: SHIPPED}).live_secret("kyverno", "regcred")


def test_shipped_manifest_is_not_used_when_the_cluster_has_none() -> None:
    with pytest.raises(ClusterLookupError, match="not found in the cluster"):
        ClusterData(manifests={REF: SHIPPED}, live=_Live(None)).live_secret("kyverno", "regcred")


def test_live_secret_is_cached_with_the_cluster_ttl() -> None:
    now = [0.0]
    live = _Live({"metadata": {"name": "regcred"}, "data": {".dockerconfigjson": "e30="}})
    cluster = ClusterData(live=live, ttl=30.0, clock=lambda: now[0])
    assert cluster.live_secret("kyverno", "regcred")["data"] == {".dockerconfigjson": "{}"}
    cluster.live_secret("kyverno", "regcred")
    assert live.calls == 1
    now[0] = 31.0
    cluster.live_secret("kyverno", "regcred")
    assert live.calls == 2

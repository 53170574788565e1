"""GlobalContextEntry data served through the live cluster connection (the HTTPS, bearer-token Kubernetes API
stand-in) and the shipped manifests: kubernetesResource lists, apiCall urlPath answers, projections with Kyverno's
messages, caching for the (bounded) refresh interval with one read in flight, and failures that are errors — never
empty data, never cached."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sigward.cluster.api import Connection, KubeClient
from sigward.cluster.data import ClusterData, ClusterLookupError, ObjectRef
from sigward.cluster.globalcontext import (
    MAX_REFRESH_SECONDS,
    MIN_REFRESH_SECONDS,
    RESOURCE_TTL_SECONDS,
    GlobalContext,
    GlobalEntryNotFound,
)
from sigward.cluster.services import ServiceCaller
from sigward.policy.loader import load_policy_text
from tests.support.httpservers import Reply
from tests.support.kubeapi import KubeAPI, secret
from tests.support.policies import dump

DEPLOYMENTS = "/apis/apps/v1/deployments"


def deployment(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace}}


def entry(name: str, spec: dict[str, Any]) -> Any:
    doc = {"apiVersion": "kyverno.io/v2beta1", "kind": "GlobalContextEntry", "metadata": {"name": name}, "spec": spec}
    # a policy is needed for the text to enforce something; entries are what is read here
    (found,) = load_policy_text(dump(doc), "gctx.yaml").global_context
    return found


APICALL = entry(
    "deployments",
    {
        "apiCall": {"urlPath": DEPLOYMENTS, "refreshInterval": "1m"},
        "projections": [
            {"name": "count", "jmesPath": "items | length(@)"},
            {"name": "nothing", "jmesPath": "items[?metadata.name=='none'] | [0]"},
        ],
    },
)
RESOURCE = entry(
    "team-deployments",
    {
        "kubernetesResource": {"group": "apps", "version": "v1", "resource": "deployments", "namespace": "team-a"},
        "projections": [{"name": "names", "jmesPath": "[].metadata.name"}],
    },
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeAPI]:
    with KubeAPI(tmp_path) as server:
        server.add_list(DEPLOYMENTS, "Deployment", [deployment("team-a", "main"), deployment("team-b", "other")])
        server.add_list("/apis/apps/v1/namespaces/team-a/deployments", "Deployment", [deployment("team-a", "main")])
        yield server


def live(api: KubeAPI, *, token: str | None = None, services: ServiceCaller | None = None) -> ClusterData:
    client = KubeClient(Connection(server=api.url, ca_file=api.ca_file, token=api.token if token is None else token))
    return ClusterData(live=client, raw_source=client, services=services)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reads(api: KubeAPI, path: str) -> int:
    return sum(1 for s in api.seen if s.path == path)


def test_apicall_entry_whole_data_and_projection(api: KubeAPI) -> None:
    gctx = GlobalContext([APICALL], live(api))
    assert [d["metadata"]["name"] for d in gctx.get("deployments")["items"]] == ["main", "other"]
    assert gctx.get("deployments", "count") == 2


def test_kubernetes_resource_entry_lists_the_namespace(api: KubeAPI) -> None:
    gctx = GlobalContext([RESOURCE], live(api))
    objects = gctx.get("team-deployments")
    assert [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects] == [("apps/v1", "Deployment", "main")]
    assert gctx.get("team-deployments", "names") == ["main"]


@pytest.mark.parametrize(
    ("name", "projection", "error", "text"),
    [
        ("absent", "", GlobalEntryNotFound, "failed to fetch entry key=absent"),
        ("deployments", "unknown", ClusterLookupError, "no data available"),
        ("deployments", "nothing", ClusterLookupError, "no data available"),  # a null result, as Kyverno's entry
        ("team-deployments", "unknown", ClusterLookupError, 'projection "unknown" not found'),
    ],
)
def test_missing_entry_or_projection(api: KubeAPI, name: str, projection: str, error: type, text: str) -> None:
    gctx = GlobalContext([APICALL, RESOURCE], live(api))
    with pytest.raises(error, match=text):
        gctx.get(name, projection)


def test_data_is_kept_for_the_refresh_interval_then_read_again(api: KubeAPI) -> None:
    clock = Clock()
    gctx = GlobalContext([APICALL], live(api), clock=clock)
    assert gctx.get("deployments", "count") == 2
    api.add_list(DEPLOYMENTS, "Deployment", [deployment("team-a", "main")])
    clock.now = 59.0
    assert gctx.get("deployments", "count") == 2 and reads(api, DEPLOYMENTS) == 1
    clock.now = 61.0
    assert gctx.get("deployments", "count") == 1 and reads(api, DEPLOYMENTS) == 2


@pytest.mark.parametrize(
    ("interval", "cached_at", "read_again_at"),
    [
        ("1s", MIN_REFRESH_SECONDS - 1, MIN_REFRESH_SECONDS + 1),  # bounded below
        ("24h", MAX_REFRESH_SECONDS - 1, MAX_REFRESH_SECONDS + 1),  # bounded above
    ],
)
def test_refresh_interval_is_bounded(api: KubeAPI, interval: str, cached_at: float, read_again_at: float) -> None:
    clock = Clock()
    e = entry("d", {"apiCall": {"urlPath": DEPLOYMENTS, "refreshInterval": interval}})
    gctx = GlobalContext([e], live(api), clock=clock)
    gctx.get("d")
    clock.now = cached_at
    gctx.get("d")
    assert reads(api, DEPLOYMENTS) == 1
    clock.now = read_again_at
    gctx.get("d")
    assert reads(api, DEPLOYMENTS) == 2


def test_kubernetes_resource_is_relisted_after_the_cluster_ttl(api: KubeAPI) -> None:
    clock = Clock()
    gctx = GlobalContext([RESOURCE], live(api), clock=clock)
    gctx.get("team-deployments")
    clock.now = RESOURCE_TTL_SECONDS + 1
    gctx.get("team-deployments")
    assert reads(api, "/apis/apps/v1/namespaces/team-a/deployments") == 2


def test_one_read_in_flight_for_concurrent_requests(api: KubeAPI) -> None:
    gctx = GlobalContext([APICALL], live(api))
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(gctx.get("deployments", "count"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2] * 8 and reads(api, DEPLOYMENTS) == 1


def test_server_error_is_an_error_and_is_not_cached(api: KubeAPI) -> None:
    good = api.raw[DEPLOYMENTS]
    api.raw[DEPLOYMENTS] = Reply(500, {"Content-Type": "application/json"}, json.dumps({"message": "etcd"}).encode())
    gctx = GlobalContext([APICALL], live(api))
    with pytest.raises(ClusterLookupError, match=r"GlobalContextEntry deployments: .*HTTP 500"):
        gctx.get("deployments", "count")
    api.raw[DEPLOYMENTS] = good
    assert gctx.get("deployments", "count") == 2


def test_server_down_is_an_error(tmp_path: Path) -> None:
    with KubeAPI(tmp_path) as api:
        cluster = live(api)
    gctx = GlobalContext([APICALL], cluster)
    with pytest.raises(ClusterLookupError, match="unreachable"):
        gctx.get("deployments")


def test_wrong_token_is_refused_and_never_quoted(api: KubeAPI) -> None:
    gctx = GlobalContext([APICALL, RESOURCE], live(api, token="stolen-token"))
    for name in ("deployments", "team-deployments"):
        with pytest.raises(ClusterLookupError) as info:
            gctx.get(name)
        assert "permission denied" in info.value.message and "stolen-token" not in info.value.message


def test_secret_lists_keep_public_material_only(api: KubeAPI) -> None:
    s = secret("sigs", "cosign", {"cosign.pub": "PUBLIC", "cosign.key": "PRIVATE", "cosign.password": "pw"})
    api.add_list("/api/v1/namespaces/sigs/secrets", "Secret", [s])
    e = entry("keys", {"kubernetesResource": {"version": "v1", "resource": "secrets", "namespace": "sigs"}})
    (found,) = GlobalContext([e], live(api)).get("keys")
    assert found["data"] == {"cosign.pub": "PUBLIC"}


def test_failed_projection_fails_an_apicall_entry(api: KubeAPI) -> None:
    e = entry(
        "d",
        {
            "apiCall": {"urlPath": DEPLOYMENTS, "refreshInterval": "1m"},
            "projections": [{"name": "x", "jmesPath": "a.b"}],
        },
    )
    with pytest.raises(ClusterLookupError, match='failed to apply projection "x"'):
        GlobalContext([e], live(api)).get("d")


def test_service_call_only_to_allowlisted_urls(api: KubeAPI) -> None:
    e = entry(
        "svc", {"apiCall": {"service": {"url": "http://169.254.169.254/latest/meta-data"}, "refreshInterval": "1m"}}
    )
    with pytest.raises(ClusterLookupError, match="not allowlisted"):
        GlobalContext([e], live(api, services=ServiceCaller(("https://keys.example/",)))).get("svc")


def test_without_a_connection_shipped_manifests_answer_core_collections() -> None:
    cm = {"metadata": {"name": "roots", "namespace": "sigs"}, "data": {"a": "1"}}
    other = {"metadata": {"name": "x", "namespace": "other"}, "data": {}}
    cluster = ClusterData(
        manifests={ObjectRef("configmaps", "sigs", "roots"): cm, ObjectRef("configmaps", "other", "x"): other}
    )
    e = entry("cms", {"kubernetesResource": {"version": "v1", "resource": "configmaps", "namespace": "sigs"}})
    assert GlobalContext([e], cluster).get("cms") == [cm]
    with pytest.raises(ClusterLookupError, match="needs a cluster connection"):
        GlobalContext([RESOURCE], cluster).get("team-deployments")
    with pytest.raises(ClusterLookupError, match="needs a cluster connection"):
        GlobalContext([APICALL], cluster).get("deployments")

"""The live cluster connection against a local Kubernetes API stand-in over HTTPS with bearer-token auth: objects
are read through the real API paths, and every lookup that cannot be answered is an infrastructure error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.cluster.api import MAX_RESPONSE_BYTES, Connection, KubeClient, in_cluster_connection
from sigward.cluster.data import ClusterData, ClusterLookupError
from sigward.cluster.sources import cluster_data_from_env
from sigward.errors import ConfigurationError, ExternalServiceError
from sigward.policy.models import Policy
from tests.support.httpservers import Reply
from tests.support.kubeapi import KubeAPI, configmap, namespace, secret

PUB = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
PRIV = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nsecret-bytes\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeAPI]:
    with KubeAPI(tmp_path / "tls") as server:
        server.add(configmap("default", "keys", {"org": PUB}))
        server.add(secret("sigs", "cosign", {"cosign.pub": PUB, "cosign.key": PRIV, "cosign.password": "hunter2"}))
        server.add(namespace("prod", {"env": "prod"}))
        yield server


def connect(
    api: KubeAPI, *, token: str | None = None, ttl: float = 30.0, clock: list[float] | None = None
) -> ClusterData:
    client = KubeClient(Connection(server=api.url, ca_file=api.ca_file, token=api.token if token is None else token))
    now = clock if clock is not None else [0.0]
    return ClusterData(live=client, raw_source=client, ttl=ttl, clock=lambda: now[0])


def test_reads_configmap_secret_and_namespace(api: KubeAPI) -> None:
    data = connect(api)
    assert data.configmap("default", "keys")["data"] == {"org": PUB}
    assert data.secret("sigs", "cosign")["data"] == {"cosign.pub": PUB}  # private key and password dropped
    assert data.namespace_labels("prod") == {"env": "prod"}
    assert [s.path for s in api.seen] == [
        "/api/v1/namespaces/default/configmaps/keys",
        "/api/v1/namespaces/sigs/secrets/cosign",
        "/api/v1/namespaces/prod",
    ]


@pytest.mark.parametrize(
    ("case", "lookup", "message"),
    [
        ("wrong token", lambda d: d.configmap("default", "keys"), "HTTP 401: permission denied"),
        ("missing configmap", lambda d: d.configmap("default", "nope"), "configmap default/nope not found"),
        ("missing secret", lambda d: d.secret("sigs", "nope"), "secret sigs/nope not found"),
        ("missing namespace", lambda d: d.namespace_labels("nope"), "namespace nope not found"),
    ],
)
def test_unanswerable_lookups_are_infrastructure_errors(api: KubeAPI, case: str, lookup: object, message: str) -> None:
    data = connect(api, token="wrong" if case == "wrong token" else None)
    with pytest.raises(ClusterLookupError) as err:
        lookup(data)  # type: ignore[operator]
    assert isinstance(err.value, ExternalServiceError)
    assert message in err.value.message
    assert api.token not in err.value.message and "wrong" not in err.value.message


def test_cache_ttl_then_refetch_sees_rotation(api: KubeAPI) -> None:
    clock = [0.0]
    data = connect(api, ttl=30.0, clock=clock)
    assert data.configmap("default", "keys")["data"]["org"] == PUB
    api.add(configmap("default", "keys", {"org": "rotated"}))
    clock[0] = 10.0
    assert data.configmap("default", "keys")["data"]["org"] == PUB  # cached
    assert len(api.seen) == 1
    clock[0] = 31.0
    assert data.configmap("default", "keys")["data"]["org"] == "rotated"
    assert len(api.seen) == 2


def test_failures_are_not_cached(api: KubeAPI) -> None:
    data = connect(api)
    with pytest.raises(ClusterLookupError):
        data.configmap("default", "later")
    api.add(configmap("default", "later", {"k": "v"}))
    assert data.configmap("default", "later")["data"] == {"k": "v"}


def test_server_down_is_an_infrastructure_error(api: KubeAPI) -> None:
    data = connect(api)
    api.__exit__(None, None, None)
    with pytest.raises(ClusterLookupError, match="unreachable"):
        data.configmap("default", "keys")


def test_untrusted_certificate_is_refused(api: KubeAPI) -> None:
    client = KubeClient(Connection(server=api.url, ca_file=None, token=api.token))
    with pytest.raises(ClusterLookupError, match="unreachable"):
        ClusterData(live=client).configmap("default", "keys")
    assert api.seen == []  # no request (and no token) ever reached the server


def test_redirect_not_followed_and_oversize_refused(api: KubeAPI) -> None:
    api.raw["/api/v1/namespaces/default/configmaps/moved"] = Reply(302, {"Location": "https://169.254.169.254/"})
    api.raw["/api/v1/namespaces/default/configmaps/huge"] = Reply(200, {}, b"{}", content_length=MAX_RESPONSE_BYTES + 1)
    data = connect(api)
    with pytest.raises(ClusterLookupError, match="redirect"):
        data.configmap("default", "moved")
    with pytest.raises(ClusterLookupError, match="larger than"):
        data.configmap("default", "huge")


def test_raw_api_call(api: KubeAPI) -> None:
    data = connect(api)
    assert data.raw("/api/v1/namespaces/prod")["metadata"]["labels"] == {"env": "prod"}
    with pytest.raises(ClusterLookupError, match="not an absolute API path"):
        data.raw("/api/v1/../../etc")
    with pytest.raises(ClusterLookupError, match="permission denied"):
        connect(api, token="bad").raw("/api/v1/namespaces/prod")


def test_kubeconfig_from_env(api: KubeAPI, tmp_path: Path) -> None:
    data = cluster_data_from_env({"SIGWARD_KUBECONFIG": str(api.kubeconfig(tmp_path / "kc"))})
    assert data.connected
    assert data.namespace_labels("prod") == {"env": "prod"}
    off = cluster_data_from_env({"SIGWARD_KUBECONFIG": str(tmp_path / "kc"), "SIGWARD_CLUSTER": "none"})
    assert not off.connected
    with pytest.raises(ClusterLookupError, match="no cluster connection is configured"):
        off.configmap("default", "keys")


def test_kubeconfig_refuses_exec_plugins_and_insecure(tmp_path: Path, api: KubeAPI) -> None:
    import json

    path = api.kubeconfig(tmp_path / "kc")
    doc = json.loads(path.read_text())
    doc["users"][0]["user"] = {"exec": {"command": "gke-gcloud-auth-plugin"}}
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigurationError, match="exec is not supported"):
        cluster_data_from_env({"SIGWARD_KUBECONFIG": str(path)})
    doc["users"][0]["user"] = {"token": "t"}
    doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigurationError, match="insecure-skip-tls-verify"):
        cluster_data_from_env({"SIGWARD_KUBECONFIG": str(path)})


def test_in_cluster_service_account(api: KubeAPI, tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(api.token + "\n")
    (sa / "ca.crt").write_bytes(Path(api.ca_file).read_bytes())
    host, port = api.url.removeprefix("https://").split(":")
    conn = in_cluster_connection({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}, sa)
    assert conn is not None
    client = KubeClient(conn)
    assert ClusterData(live=client).configmap("default", "keys")["data"] == {"org": PUB}
    (sa / "token").write_text("rotated-away")  # re-read per request: a rotated token is used at once
    with pytest.raises(ClusterLookupError, match="401"):
        ClusterData(live=client).configmap("default", "keys")
    assert in_cluster_connection({}, sa) is None


def test_no_connection_names_what_was_asked() -> None:
    with pytest.raises(ClusterLookupError, match="secret ns/s is not in the manifests shipped beside the policies"):
        ClusterData().secret("ns", "s")


# -- apiCall.urlPath and context size through the stand-in (Kyverno's loaders/apicall.go semantics) ---------------


def _api_policy(api_call: dict[str, object], key: str = "{{ nsinfo }}") -> Policy:
    from sigward.policy.loader import load_policy_text
    from tests.support.policies import cluster_policy, dump, key_verification, keys_entry

    doc = cluster_policy("api", [key_verification(["*"], [keys_entry(key)])])
    doc["spec"]["rules"][0]["context"] = [{"name": "nsinfo", "apiCall": api_call}]
    return load_policy_text(dump(doc), "t.yaml").policies[0]


@pytest.mark.parametrize(
    ("case", "token", "call", "expected"),
    [
        (
            "jmesPath over the answer",
            None,
            {"urlPath": "/api/v1/namespaces/prod", "jmesPath": "metadata.labels.env"},
            "prod",
        ),
        (
            "default when the call fails",
            "bad",
            {"urlPath": "/api/v1/namespaces/prod", "default": "fallback"},
            "fallback",
        ),
        (
            "variables in urlPath",
            None,
            {"urlPath": "/api/v1/namespaces/{{ request.namespace }}", "jmesPath": "metadata.name"},
            "prod",
        ),
    ],
)
def test_api_call_entries(api: KubeAPI, case: str, token: str | None, call: dict[str, object], expected: str) -> None:
    from datetime import UTC, datetime

    from sigward.verify.rulecontext import resolve_rule

    policy = _api_policy(call)
    res = resolve_rule(
        policy,
        policy.spec.rules[0],
        request={"namespace": "prod", "operation": "CREATE"},
        images={},
        cluster=connect(api, token=token),
        now=datetime.now(UTC),
    )
    assert res.rule is not None
    keys = res.rule.verify_images[0].attestors[0].entries[0].keys
    assert keys is not None and keys.public_keys == expected


@pytest.mark.parametrize(
    ("case", "token", "path", "message"),
    [
        ("wrong token, no default", "bad", "/api/v1/namespaces/prod", "permission denied"),
        ("missing object", None, "/api/v1/namespaces/nope", "HTTP 404"),
    ],
)
def test_api_call_failures_are_rule_errors(api: KubeAPI, case: str, token: str | None, path: str, message: str) -> None:
    from datetime import UTC, datetime

    from sigward.verify.rulecontext import RuleContextError, resolve_rule

    policy = _api_policy({"urlPath": path})
    with pytest.raises(RuleContextError, match=message):
        resolve_rule(
            policy,
            policy.spec.rules[0],
            request={"namespace": "prod"},
            images={},
            cluster=connect(api, token=token),
            now=datetime.now(UTC),
        )


def test_context_size_limit(api: KubeAPI) -> None:
    from datetime import UTC, datetime

    from sigward.verify.rulecontext import MAX_CONTEXT_BYTES, RuleContextError, resolve_rule

    api.add(configmap("default", "big", {"blob": "x" * (MAX_CONTEXT_BYTES + 10)}))
    policy = _api_policy({"urlPath": "/api/v1/namespaces/default/configmaps/big"})
    with pytest.raises(RuleContextError, match="context size limit exceeded"):
        resolve_rule(
            policy,
            policy.spec.rules[0],
            request={"namespace": "prod"},
            images={},
            cluster=connect(api),
            now=datetime.now(UTC),
        )


# -- apiCall.service: only allowlisted URLs are ever called ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "permitted"),
    [
        ("https://keys.example/v1/org", True),
        ("https://keys.example/v1", True),
        ("https://keys.example/v10/org", False),  # a path prefix is a whole segment
        ("https://keys.example.evil.test/v1/org", False),
        ("https://keys.example:8443/v1/org", False),
        ("http://keys.example/v1/org", False),
        ("https://keys.example/v1/../admin", False),
        ("https://keys.example/v1/%2e%2e/admin", False),
        ("https://user@keys.example/v1/org", False),
        ("http://169.254.169.254/latest/meta-data/", False),
    ],
)
def test_service_allowlist(url: str, permitted: bool) -> None:
    from sigward.cluster.services import ServiceCaller

    assert ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": "https://keys.example/v1/"}).permits(url) is permitted


def test_service_call_through_tls_with_ca_bundle(api: KubeAPI) -> None:
    """The stand-in doubles as a service: the allowlisted call succeeds with caBundle, anything else is refused
    without a request."""
    from sigward.cluster.services import ServiceCaller

    api.raw["/svc/keys"] = Reply(200, {"Content-Type": "application/json"}, b'{"org": "pem"}')
    caller = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": f"{api.url}/svc/"})
    ca = Path(api.ca_file).read_text()
    headers = [{"key": "Authorization", "value": f"Bearer {api.token}"}]
    assert caller.call(f"{api.url}/svc/keys", headers=headers, ca_bundle=ca) == {"org": "pem"}
    with pytest.raises(ClusterLookupError, match="HTTP 401"):
        caller.call(f"{api.url}/svc/keys", ca_bundle=ca)
    before = len(api.seen)
    with pytest.raises(ClusterLookupError, match="not allowlisted"):
        caller.call(f"{api.url}/api/v1/namespaces/prod", headers=headers, ca_bundle=ca)
    with pytest.raises(ClusterLookupError, match="unreachable"):
        caller.call(f"{api.url}/svc/keys", headers=headers)  # the system roots do not know the stand-in's CA
    assert len(api.seen) == before
    with pytest.raises(ClusterLookupError, match="not allowlisted"):
        ClusterData().service(f"{api.url}/svc/keys", method="GET", headers=(), body=None, ca_bundle=ca)

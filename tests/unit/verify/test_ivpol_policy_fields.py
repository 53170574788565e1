"""ImageValidatingPolicy policy-level fields on one admission request: ``objectSelector`` (object or oldObject, as
the API server matches), ``namespaceSelector`` (labels from shipped Namespace manifests or the live cluster API
stand-in; a cluster-scoped request always matches; a Namespace request uses its own labels; an unreadable namespace
is an error under failurePolicy), ``auditAnnotations`` (in the decision, absent on error, size-capped) and the
``http`` library (only allowlisted URLs: allowed / other host / redirect / oversize / server down)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.cluster.data import ClusterData
from sigward.cluster.services import ServiceCaller
from sigward.cluster.sources import cluster_data_from_env, manifest_objects
from sigward.deadline import Deadline
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import MAX_AUDIT_ANNOTATION_VALUE_BYTES, Decision, evaluate_request, pod_request
from sigward.verify.results import Verdict
from tests.support.httpservers import Reply, ScriptedServer, Seen
from tests.support.kubeapi import KubeAPI, namespace
from tests.support.memory import MemorySignatureSource

IMAGE = "registry.example/app@sha256:" + "a" * 64
POD_RULES = [
    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["pods"]}
]


def policy(*, validation: str = "true", failure_policy: str = "Fail", **spec: Any) -> ImagePolicy:
    mc = {"resourceRules": POD_RULES, **spec.pop("match", {})}
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "matchConstraints": mc,
            "attestors": [],
            "validations": [{"expression": validation, "message": "denied by p"}],
            "failurePolicy": failure_policy,
            "validationConfigurations": {"required": False},
            **spec,
        },
    }
    (loaded,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    return loaded


def request(
    *, labels: dict[str, str] | None = None, old: dict[str, str] | None = None, op: str = "CREATE", ns: str = "team-a"
) -> dict[str, Any]:
    req = pod_request(IMAGE)
    req["namespace"] = ns
    req["operation"] = op
    obj = req["object"]
    obj["metadata"]["namespace"] = ns
    if labels is not None:
        obj["metadata"]["labels"] = labels
    if old is not None:
        req["oldObject"] = {**obj, "metadata": {**obj["metadata"], "labels": old}}
    if op == "DELETE":
        req["object"] = None
    return req


def decide(p: ImagePolicy, req: dict[str, Any], cluster: ClusterData | None = None) -> Decision:
    verifier = Verifier(source=MemorySignatureSource(), cluster=cluster)
    return evaluate_request([p], req, verifier=verifier, deadline=Deadline.after(10))


OBJECT_SELECTOR = {"objectSelector": {"matchLabels": {"app": "web"}}}


@pytest.mark.parametrize(
    ("req", "evaluated"),
    [
        (request(labels={"app": "web"}), True),
        (request(labels={"app": "db"}), False),
        (request(), False),  # no labels at all
        (request(labels={"app": "db"}, old={"app": "web"}, op="UPDATE"), True),  # the old object matches
        (request(labels={"app": "db"}, old={"app": "db"}, op="UPDATE"), False),
        (request(old={"app": "web"}, op="DELETE"), True),  # DELETE: only the old object exists
        (request(old={"app": "db"}, op="DELETE"), False),
    ],
)
def test_object_selector(req: dict[str, Any], evaluated: bool) -> None:
    found = decide(policy(validation="false", match=OBJECT_SELECTOR), req)
    assert bool(found.outcomes) is evaluated
    assert found.allowed is not evaluated  # evaluated → the false validation denies


def namespaces(tmp_path: Path) -> ClusterData:
    path = tmp_path / "ns.yaml"
    path.write_text(yaml.safe_dump_all([namespace("team-a", {"team": "a"}), namespace("team-b", {"team": "b"})]))
    return ClusterData(manifests=manifest_objects([str(path)]))


NS_SELECTOR = {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}}


@pytest.mark.parametrize(("ns", "evaluated"), [("team-a", True), ("team-b", False)])
def test_namespace_selector_from_shipped_manifests(tmp_path: Path, ns: str, evaluated: bool) -> None:
    found = decide(policy(validation="false", match=NS_SELECTOR), request(ns=ns), namespaces(tmp_path))
    assert [o.verdict for o in found.outcomes] == ([Verdict.FAIL] if evaluated else [])


def test_namespace_selector_unknown_namespace_is_an_error_whatever_the_failure_policy(tmp_path: Path) -> None:
    """Kyverno: a matchConstraints evaluation error is the policy's error, denied under Deny (failurePolicy Ignore
    does not admit it)."""
    for failure_policy, allowed in (("Fail", False), ("Ignore", False)):
        p = policy(match=NS_SELECTOR, failure_policy=failure_policy)
        found = decide(p, request(ns="team-z"), namespaces(tmp_path))
        assert [o.verdict for o in found.outcomes] == [Verdict.ERROR]
        assert "namespaceSelector" in found.outcomes[0].message and "team-z" in found.outcomes[0].message
        assert found.allowed is allowed


def test_namespace_selector_without_cluster_data_fails_closed() -> None:
    found = decide(policy(match=NS_SELECTOR), request())
    assert not found.allowed and found.outcomes[0].verdict == Verdict.ERROR


def test_namespace_selector_cluster_scoped_and_namespace_requests() -> None:
    """A cluster-scoped object always matches; a Namespace being created is matched by its own labels."""
    p = policy(validation="false", match={"resourceRules": [{**POD_RULES[0], "resources": ["*"]}], **NS_SELECTOR})
    scoped = request(ns="")
    scoped["resource"] = {"group": "", "version": "v1", "resource": "persistentvolumes"}
    assert decide(p, scoped).outcomes  # no lookup needed (there is no cluster data)
    for labels, evaluated in (({"team": "a"}, True), ({"team": "b"}, False)):
        ns_req = request(ns="")
        ns_req.update(resource={"group": "", "version": "v1", "resource": "namespaces"}, name="new-ns")
        ns_req["object"] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "new-ns", "labels": labels}}
        assert bool(decide(p, ns_req).outcomes) is evaluated


def test_namespace_selector_through_the_live_connection(tmp_path: Path) -> None:
    with KubeAPI(tmp_path / "tls") as kube:
        kube.add(namespace("team-a", {"team": "a"}))
        kube.add(namespace("team-b", {"team": "b"}))
        cluster = cluster_data_from_env({"SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig"))})
        p = policy(validation="false", match=NS_SELECTOR)
        assert [o.verdict for o in decide(p, request(ns="team-a"), cluster).outcomes] == [Verdict.FAIL]
        assert decide(p, request(ns="team-b"), cluster).outcomes == ()
        assert any(s.path == "/api/v1/namespaces/team-b" for s in kube.seen)
    wrong = cluster_data_from_env({"SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "bad", token="wrong"))})
    found = decide(p, request(ns="team-a"), wrong)  # server gone (and the token was wrong): an error
    assert [o.verdict for o in found.outcomes] == [Verdict.ERROR] and not found.allowed


def test_audit_annotations_in_the_decision() -> None:
    p = policy(
        auditAnnotations=[
            {"key": "images", "valueExpression": "images.containers.join(',')"},
            {"key": "skipped", "valueExpression": "null"},
            {"key": "big", "valueExpression": "object.metadata.annotations['big']"},
        ]
    )
    req = request()
    req["object"]["metadata"]["annotations"] = {"big": "x" * 20000}
    found = decide(p, req)
    assert found.allowed
    annotations = found.audit_annotations
    assert annotations["p.images"] == IMAGE
    assert "p.skipped" not in annotations
    assert len(annotations["p.big"]) == MAX_AUDIT_ANNOTATION_VALUE_BYTES
    denied = decide(policy(validation="false", auditAnnotations=[{"key": "a", "valueExpression": "'v'"}]), request())
    assert not denied.allowed and denied.audit_annotations == {"p.a": "v"}  # published on a failed validation too


def test_audit_annotation_error_leaves_none_and_denies_whatever_the_failure_policy() -> None:
    for failure_policy, allowed in (("Fail", False), ("Ignore", False)):
        p = policy(
            failure_policy=failure_policy,
            auditAnnotations=[{"key": "a", "valueExpression": "string(object.spec.missing.x)"}],
        )
        found = decide(p, request())
        assert found.audit_annotations == {}
        assert [o.verdict for o in found.outcomes] == [Verdict.ERROR] and found.allowed is allowed


@pytest.mark.parametrize(
    ("actions", "failure_policy", "allowed", "warned"),
    [
        (["Deny"], "Ignore", False, False),
        (["Warn"], "Ignore", True, True),
        (["Warn"], "Fail", True, True),
        (["Audit"], "Fail", True, False),
    ],
)
def test_evaluation_error_follows_the_actions_not_the_failure_policy(
    actions: list[str], failure_policy: str, allowed: bool, warned: bool
) -> None:
    """Kyverno's IVPOL webhook: an evaluation error is ``Policy NAME error: …``, denied under Deny and a warning under
    Warn whatever the failurePolicy (which only governs a webhook that cannot answer)."""
    p = policy(
        validation="string(object.spec.missing.x) == 'y'", failure_policy=failure_policy, validationActions=actions
    )
    found = decide(p, request())
    assert [o.verdict for o in found.outcomes] == [Verdict.ERROR]
    assert found.allowed is allowed
    text = found.message if not allowed else " ".join(found.warnings)
    assert text.startswith("Policy p error: ") is (not allowed or warned), (found.message, found.warnings)
    assert bool(found.warnings) is warned


# -- http library -------------------------------------------------------------------------------------------------


@pytest.fixture
def service() -> Iterator[ScriptedServer]:
    def handle(seen: Seen) -> Reply:
        if seen.path.startswith("/v1/ok"):
            body = {"allowed": seen.method == "GET" or seen.headers.get("k") == "v"}
            return Reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())
        if seen.path.startswith("/v1/redirect"):
            return Reply(302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
        if seen.path.startswith("/v1/big"):
            return Reply(200, {"Content-Type": "application/json"}, b'"' + b"x" * (11 * 1024 * 1024) + b'"')
        return Reply(404, {}, b"{}")

    with ScriptedServer(handle) as server:
        yield server


def http_cluster(allowed: str) -> ClusterData:
    return ClusterData(services=ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": allowed}))


@pytest.mark.parametrize(
    "expression",
    [
        "http.Get(URL + '/v1/ok').allowed",
        "http.Post(URL + '/v1/ok', {'image': images.containers[0]}, {'k': 'v'}).allowed",
    ],
)
def test_http_allowed(service: ScriptedServer, expression: str) -> None:
    p = policy(validation=expression.replace("URL", repr(service.url)))
    found = decide(p, request(), http_cluster(service.url + "/v1/"))
    assert found.allowed and [o.verdict for o in found.outcomes] == [Verdict.PASS]
    assert [s.path for s in service.requests_seen()] == ["/v1/ok"]


@pytest.mark.parametrize(
    ("path", "allowlist", "text"),
    [
        ("/v1/ok", "https://other.example/v1/", "not allowlisted"),  # another host
        ("/v2/ok", "{url}/v1/", "not allowlisted"),  # outside the allowlisted path
        ("/v1/redirect", "{url}/v1/", "HTTP 302"),  # redirects are never followed
        ("/v1/big", "{url}/v1/", "larger than"),  # oversize answer
    ],
)
def test_http_refused(service: ScriptedServer, path: str, allowlist: str, text: str) -> None:
    p = policy(validation=f"http.Get({service.url + path!r}).allowed")
    found = decide(p, request(), http_cluster(allowlist.format(url=service.url)))
    assert not found.allowed and found.outcomes[0].verdict == Verdict.ERROR
    assert text in found.outcomes[0].message


def test_http_without_allowlist_and_server_down() -> None:
    p = policy(validation="http.Get('http://127.0.0.1:9/v1/ok').allowed")
    nothing = decide(p, request())
    assert not nothing.allowed and "not allowlisted" in nothing.outcomes[0].message
    down = decide(p, request(), http_cluster("http://127.0.0.1:9/v1/"))
    assert not down.allowed and "unreachable" in down.outcomes[0].message


def test_an_image_checked_alone_ignores_the_selectors() -> None:
    """``sigward verify IMAGE`` and push: the image is checked for any resource the policy covers (a ClusterPolicy's
    ``match`` is not applied there either), so neither selector skips the check nor needs namespace data."""
    from sigward.verify.ivpol import DirectChecks, evaluate_image

    p = policy(validation="false", match={**OBJECT_SELECTOR, **NS_SELECTOR})
    checks = DirectChecks(Verifier(source=MemorySignatureSource()))
    (verdict,) = evaluate_image([p], IMAGE, checks=checks, deadline=Deadline.after(10))
    assert verdict.verdict == Verdict.FAIL and "denied by p" in verdict.message


@pytest.mark.parametrize(
    ("policy_name", "key", "expected"),
    [
        ("p", "images", "p.images"),
        ("a" * 60, "k", None),  # too long: shortened, hash-marked
        ("a" * 253, "k" * 63, None),
    ],
)
def test_audit_annotation_key_is_a_valid_webhook_annotation_name(
    policy_name: str, key: str, expected: str | None
) -> None:
    """The API server keeps a webhook audit annotation only when ``<webhook>/<key>`` is a qualified name."""
    import re

    from sigward.verify.ivpol import audit_annotation_key

    found = audit_annotation_key(policy_name, key)
    assert "/" not in found and len(found) <= 63
    assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", found)
    if expected is not None:
        assert found == expected
    assert audit_annotation_key(policy_name + "x", key) != found  # distinct policies stay distinct


def test_library_calls_stop_at_the_evaluation_deadline() -> None:
    """Bug: no library function read the deadline, so a comprehension of ``http.Get`` calls to a slow allowlisted
    service ran every call (up to 256, each with its own timeouts) long after the admission deadline."""
    import time

    def slow(seen: Seen) -> Reply:
        time.sleep(0.3)
        return Reply(200, {"Content-Type": "application/json"}, b'{"allowed": true}')

    with ScriptedServer(slow) as server:
        calls = f"[1, 2, 3, 4, 5, 6, 7, 8].all(i, http.Get({server.url!r} + '/v1/ok?n=' + string(i)).allowed)"
        verifier = Verifier(source=MemorySignatureSource(), cluster=http_cluster(server.url + "/v1/"))
        started = time.monotonic()
        found = evaluate_request([policy(validation=calls)], request(), verifier=verifier, deadline=Deadline.after(1))
        elapsed = time.monotonic() - started
        asked = len(server.requests_seen())
    assert not found.allowed and found.outcomes[0].verdict == Verdict.ERROR
    assert "deadline exceeded" in found.outcomes[0].message
    assert asked <= 4 and elapsed < 2.0

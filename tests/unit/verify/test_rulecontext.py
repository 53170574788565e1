"""A rule prepared for one request, against Kyverno's behaviour (pkg/engine/context/loaders, variables/vars_test.go,
engine/internal/preconditions.go and the chainsaw tests configmap-context-lookup, noconfigmap-diffimage-success,
imageExtractors-*, keyed-secret): context entries, lazy loading, preconditions and their skip message, {{ }} in keys
with precise fail-closed errors, keys from Secrets, namespaced Policy confinement, and the verdict-key fingerprint."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sigward.cluster.data import ClusterData, ObjectRef
from sigward.errors import ExternalServiceError
from sigward.policy.dynamic import is_dynamic, reads_request
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.verify.rulecontext import RuleContextError, resolve_rule
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PEM = new_key("p256").public_pem.strip()
OTHER = new_key("p256", slot=1).public_pem.strip()
REQUEST = {
    "operation": "CREATE",
    "namespace": "team-a",
    "userInfo": {"username": "system:serviceaccount:team-a:deployer"},
    "object": {"metadata": {"name": "p", "labels": {"team": "a"}}},
}


def manifests(**cms: dict[str, str]) -> ClusterData:
    objs: dict[ObjectRef, Any] = {
        ObjectRef("configmaps", "default", name): {"data": data, "metadata": {"name": name, "namespace": "default"}}
        for name, data in cms.items()
    }
    objs[ObjectRef("secrets", "sigs", "cosign")] = {"data": {"cosign.pub": PEM}, "metadata": {}}
    objs[ObjectRef("secrets", "sigs", "empty")] = {"data": {}, "metadata": {}}
    return ClusterData(manifests=objs)


def policy_with(
    key: str = "{{ keys.data.org }}", kind: str = "ClusterPolicy", ns: str = "", background: bool = True, **rule: Any
) -> Policy:
    doc = cluster_policy("p", [key_verification(["*"], [keys_entry(key)])])
    if not background:
        doc["spec"]["background"] = False
    doc["kind"] = kind
    if ns:
        doc["metadata"]["namespace"] = ns
    doc["spec"]["rules"][0].update(rule)
    return load_policy_text(dump(doc), "t.yaml").policies[0]


def resolve(policy: Policy, cluster: ClusterData | None = None, request: Any = REQUEST) -> Any:
    return resolve_rule(
        policy,
        policy.spec.rules[0],
        request=request,
        images={},
        cluster=cluster or manifests(keys={"org": PEM}),
        now=NOW,
    )


def key_of(resolution: Any) -> str:
    return str(resolution.rule.verify_images[0].attestors[0].entries[0].keys.public_keys).strip()


CM = [{"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}]


def test_configmap_key_substituted() -> None:
    res = resolve(policy_with(context=CM))
    assert key_of(res) == PEM
    assert res.fingerprint


def test_fingerprint_follows_the_configmap_value() -> None:
    """A rotated key in the ConfigMap must not reuse the verdict reached with the old key."""
    p = policy_with(context=CM)
    assert resolve(p).fingerprint != resolve(p, manifests(keys={"org": OTHER})).fingerprint
    assert resolve(p).fingerprint == resolve(p).fingerprint


@pytest.mark.parametrize(
    ("case", "context", "key", "expected"),
    [
        ("variable value", [{"name": "k", "variable": {"value": PEM}}], "{{ k }}", PEM),
        (
            "variable jmesPath over value",
            [{"name": "k", "variable": {"value": {"a": PEM}, "jmesPath": "a"}}],
            "{{ k }}",
            PEM,
        ),
        (
            "variable jmesPath over context",
            [{"name": "k", "variable": {"jmesPath": "request.namespace"}}],
            "{{ k }}",
            "team-a",
        ),
        (
            "variable default on missing path",
            [{"name": "k", "variable": {"jmesPath": "request.nope.x", "default": PEM}}],
            "{{ k }}",
            PEM,
        ),
        (
            "entry referring to an earlier one",
            [*CM, {"name": "k", "variable": {"jmesPath": "keys.data.org"}}],
            "{{ k }}",
            PEM,
        ),
        ("serviceAccountName", [], "{{ serviceAccountName }}", "deployer"),
        ("embedded variable", [], "k8s-{{ request.namespace }}", "k8s-team-a"),
    ],
)
def test_context_entries(case: str, context: list[Any], key: str, expected: str) -> None:
    # request-only variables (serviceAccountName) need spec.background: false, as Kyverno requires
    background = "serviceAccount" not in key
    assert key_of(resolve(policy_with(key=key, context=context, background=background))) == expected


@pytest.mark.parametrize(
    ("case", "context", "key", "message"),
    [
        (
            "missing configmap",
            [{"name": "keys", "configMap": {"name": "gone", "namespace": "default"}}],
            "{{ keys.data.org }}",
            "failed to get configmap default/gone",
        ),
        ("missing key in configmap", CM, "{{ keys.data.nope }}", "failed to substitute variables: verifyImages[0]"),
        ("missing request field", [], "{{ request.nothing.here }}", "failed to substitute variables"),
        (
            "variable evaluating to nil",
            [{"name": "k", "variable": {"value": None, "jmesPath": "a"}}],
            "{{ k }}",
            "failed to load context entry k",
        ),
        ("non-string for a string field", [{"name": "k", "variable": {"value": [1]}}], "{{ k }}", "after substitution"),
        (
            "no connection for apiCall",
            [{"name": "a", "apiCall": {"urlPath": "/api/v1/namespaces"}}],
            "{{ a }}",
            "needs a cluster connection",
        ),
    ],
)
def test_context_errors_fail_closed(case: str, context: list[Any], key: str, message: str) -> None:
    with pytest.raises(RuleContextError) as err:
        resolve(policy_with(key=key, context=context))
    assert isinstance(err.value, ExternalServiceError)  # rule error: failurePolicy decides, never an allow
    assert message in err.value.message


def test_unreferenced_entries_are_never_loaded() -> None:
    """Kyverno's lazy loading: an entry no expression names is not fetched, so its error never surfaces."""
    context = [{"name": "unused", "configMap": {"name": "gone", "namespace": "default"}}, *CM]
    assert key_of(resolve(policy_with(context=context))) == PEM


PRE_DELETE = {"all": [{"key": "{{request.operation}}", "operator": "NotEquals", "value": "DELETE"}]}


@pytest.mark.parametrize(
    ("case", "pre", "req", "skip"),
    [
        ("all holds", PRE_DELETE, REQUEST, ""),
        ("all fails", PRE_DELETE, {**REQUEST, "operation": "DELETE"}, "preconditions not met"),
        (
            "any with message",
            {"any": [{"key": "{{request.namespace}}", "operator": "Equals", "value": "prod", "message": "only prod"}]},
            REQUEST,
            "preconditions not met; only prod",
        ),
        ("legacy list", [{"key": "{{request.namespace}}", "operator": "In", "value": ["team-a"]}], REQUEST, ""),
        (
            "context in precondition",
            {"all": [{"key": "{{keys.data.org}}", "operator": "Equals", "value": "x"}]},
            REQUEST,
            "preconditions not met",
        ),
    ],
)
def test_preconditions(case: str, pre: Any, req: Any, skip: str) -> None:
    res = resolve(policy_with(key=PEM, context=CM, preconditions=pre), request=req)
    assert res.skip.startswith(skip) if skip else res.rule is not None
    if skip:
        assert res.rule is None


def test_precondition_over_missing_key_is_an_error() -> None:
    """Kyverno#4217: a missing key is an error, not an empty string."""
    pre = {"all": [{"key": "{{request.nope.deeper}}", "operator": "Equals", "value": ""}]}
    with pytest.raises(RuleContextError, match="failed to evaluate preconditions"):
        resolve(policy_with(key=PEM, preconditions=pre))


@pytest.mark.parametrize(
    ("case", "entry", "expected"),
    [
        (
            "keys.secret",
            {"keys": {"secret": {"name": "cosign", "namespace": "sigs"}, "rekor": {"ignoreTlog": True}}},
            PEM,
        ),
        ("k8s:// reference", keys_entry("k8s://sigs/cosign"), PEM),
    ],
)
def test_secret_keys(case: str, entry: dict[str, Any], expected: str) -> None:
    doc = cluster_policy("p", [key_verification(["*"], [entry])])
    policy = load_policy_text(dump(doc), "t.yaml").policies[0]
    assert is_dynamic(policy.spec.rules[0]) and not reads_request(policy.spec.rules[0])
    res = resolve(policy)
    keys = res.rule.verify_images[0].attestors[0].entries[0].keys
    assert keys.public_keys.strip() == expected and keys.secret is None


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("k8s://sigs/gone", "failed to read key from secret sigs/gone"),
        ("k8s://sigs/empty", "has no cosign.pub"),
        ("k8s://justname", "is not k8s://NAMESPACE/NAME"),
    ],
)
def test_secret_key_errors(ref: str, message: str) -> None:
    policy = load_policy_text(dump(cluster_policy("p", [key_verification(["*"], [keys_entry(ref)])])), "t").policies[0]
    with pytest.raises(RuleContextError, match=message):
        resolve(policy)


def test_namespaced_policy_confined_to_its_namespace() -> None:
    other_ns = [{"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}]
    policy = policy_with(kind="Policy", ns="team-a", context=other_ns)
    with pytest.raises(RuleContextError, match="configMap namespace default is different from policy namespace team-a"):
        resolve(policy)


def test_static_rule_is_not_dynamic_and_request_reads_are_detected() -> None:
    assert not is_dynamic(policy_with(key=PEM).spec.rules[0])
    assert reads_request(policy_with(key="{{ request.namespace }}").spec.rules[0])
    assert not reads_request(policy_with(context=CM).spec.rules[0])


def test_attestation_conditions_stay_raw() -> None:
    """Conditions are evaluated per image later (they may read image.*), not substituted with the rule."""
    doc = cluster_policy("p", [key_verification(["*"], [keys_entry("{{ k }}")])])
    doc["spec"]["rules"][0]["context"] = [{"name": "k", "variable": {"value": PEM}}]
    doc["spec"]["rules"][0]["verifyImages"][0]["attestations"] = [
        {
            "type": "t",
            "attestors": [{"entries": [keys_entry(PEM)]}],
            "conditions": [{"all": [{"key": "{{ image.tag }}", "operator": "Equals", "value": "v1"}]}],
        }
    ]
    policy = load_policy_text(dump(doc), "t.yaml").policies[0]
    res = resolve(policy)
    assert res.rule.verify_images[0].attestations[0].conditions[0].all[0].key == "{{ image.tag }}"


@pytest.mark.parametrize(
    ("key", "refused"),
    [
        ("{{ nothing.here }}", True),
        ("{{ keys.data.org }}", False),  # a context entry
        ("{{ to_upper(request.namespace) }}", False),  # a function call
        ("{{ request.namespace }}", False),
    ],
)
def test_unknown_variables_are_refused_as_kyverno_does(key: str, refused: bool) -> None:
    """Kyverno's policy validation substitutes against a mock context: an unknown variable rejects the policy."""
    from sigward.errors import PolicyError

    doc = cluster_policy("p", [key_verification(["*"], [keys_entry(key)])])
    doc["spec"]["rules"][0]["context"] = CM
    if refused:
        with pytest.raises(PolicyError, match="variable substitution failed for rule"):
            load_policy_text(dump(doc), "t.yaml")
    else:
        assert load_policy_text(dump(doc), "t.yaml").policies


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/other/configmaps/x",
        "/api/v1/namespaces/other/configmaps/x?q=/namespaces/team-a/",  # the namespace only in the query
    ],
)
def test_namespaced_policy_api_call_confined_to_its_namespace(path: str) -> None:
    context = [{"name": "a", "apiCall": {"urlPath": path}}]
    policy = policy_with(key="{{ a }}", kind="Policy", ns="team-a", context=context)
    with pytest.raises(RuleContextError, match="may only read its own namespace"):
        resolve(policy)


def test_with_source_keeps_the_cluster_data() -> None:
    """Regression (merge of d-context with h-reverify): ``Verifier.with_source`` (push and re-verification read
    signatures without admission's cache) dropped the cluster data, so a ConfigMap context rule errored there."""
    from sigward.deadline import Deadline
    from sigward.verify.engine import Verifier
    from sigward.verify.results import Verdict
    from tests.support.memory import MemorySignatureSource

    image = "registry.test/app@sha256:" + "2" * 64
    policy = policy_with(context=CM)
    source = MemorySignatureSource()
    with_cluster = Verifier(source=source, cluster=manifests(keys={"org": PEM})).with_source(source)
    without = Verifier(source=source).with_source(source)
    deadline = Deadline.after(10)
    (kept,) = with_cluster.verify_images([image], [policy], deadline=deadline)
    (lost,) = without.verify_images([image], [policy], deadline=deadline)
    assert kept.verdict is Verdict.FAIL and "no signatures found" in kept.message  # prepared; the image is unsigned
    assert lost.verdict is Verdict.ERROR and "default/keys" in lost.message, lost.message  # no ConfigMap known


# celPreconditions: Kubernetes matchConditions over the admission request (validate_cel.go semantics: false ->
# skip "cel preconditions not met"; an error -> the rule errs, failurePolicy decides).
CEL_TEAM_A = [{"name": "team-a", "expression": "request.namespace == 'team-a'"}]
CEL_LABEL = [{"name": "labelled", "expression": "object.metadata.labels.team == 'a'"}]
CEL_NS = [{"name": "ns-prod", "expression": "namespaceObject.metadata.labels.env == 'prod'"}]


@pytest.mark.parametrize(
    ("case", "cel", "req", "skip"),
    [
        ("true", CEL_TEAM_A, REQUEST, ""),
        ("false", CEL_TEAM_A, {**REQUEST, "namespace": "team-b"}, "cel preconditions not met"),
        ("object label true", CEL_LABEL, REQUEST, ""),
        (
            "object label false",
            CEL_LABEL,
            {**REQUEST, "object": {"metadata": {"labels": {"team": "b"}}}},
            "cel preconditions not met",
        ),
    ],
)
def test_cel_preconditions(case: str, cel: Any, req: Any, skip: str) -> None:
    policy = policy_with(key=PEM, celPreconditions=cel)
    assert is_dynamic(policy.spec.rules[0]) and reads_request(policy.spec.rules[0])
    res = resolve(policy, request=req)
    assert (res.rule is None and res.skip == skip) if skip else (res.rule is not None and res.skip == "")


def test_cel_precondition_error_fails_closed() -> None:
    req = {**REQUEST, "object": {"metadata": {"name": "p"}}}  # no labels: the expression errs
    with pytest.raises(RuleContextError, match="failed to evaluate cel preconditions: labelled"):
        resolve(policy_with(key=PEM, celPreconditions=CEL_LABEL), request=req)


def test_cel_preconditions_without_request_are_admission_only() -> None:
    with pytest.raises(RuleContextError, match="evaluated at admission only"):
        resolve(policy_with(key=PEM, celPreconditions=CEL_TEAM_A), request=None)


@pytest.mark.parametrize(("env", "skip"), [("prod", ""), ("dev", "cel preconditions not met")])
def test_cel_preconditions_read_the_namespace_object(env: str, skip: str) -> None:
    cluster = ClusterData(
        manifests={ObjectRef("namespaces", "", "team-a"): {"metadata": {"name": "team-a", "labels": {"env": env}}}}
    )
    res = resolve(policy_with(key=PEM, celPreconditions=CEL_NS), cluster=cluster)
    assert res.skip == skip


def test_cel_preconditions_namespace_object_unreadable_is_an_error() -> None:
    with pytest.raises(RuleContextError, match="namespaceObject"):
        resolve(policy_with(key=PEM, celPreconditions=CEL_NS), cluster=ClusterData())


@pytest.mark.parametrize(
    ("cel", "path", "message"),
    [
        ([{"name": "n", "expression": "size(object) + 1"}], "celPreconditions[0].expression", "must evaluate"),
        ([{"name": "n", "expression": "nope == 1"}], "celPreconditions[0].expression", "nope"),
        ([{"name": "n", "expression": "true"}, {"name": "n", "expression": "true"}], "celPreconditions[1].name", ""),
    ],
)
def test_cel_precondition_problems_at_load_with_path(cel: Any, path: str, message: str) -> None:
    from sigward.errors import PolicyError

    doc = cluster_policy("p", [key_verification(["*"], [keys_entry(PEM)])])
    doc["spec"]["rules"][0]["celPreconditions"] = cel
    with pytest.raises(PolicyError) as err:
        load_policy_text(dump(doc), "t.yaml")
    assert f"spec.rules[0].{path}" in str(err.value) and message in str(err.value)

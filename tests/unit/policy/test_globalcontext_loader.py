"""GlobalContextEntry documents loaded beside policies, against Kyverno's CRD schema and GlobalContextEntrySpec.Validate
(api/kyverno/v2beta1/global_context_entry_types.go): defaults, every served version, refusals with their YAML paths,
and ClusterPolicy ``globalReference`` names checked against the entries loaded with them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sigward.errors import PolicyError
from sigward.policy.loader import load_policies, load_policy_text
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

PEM = new_key("p256").public_pem.strip()

APICALL_ENTRY: dict[str, Any] = {
    "apiVersion": "kyverno.io/v2beta1",
    "kind": "GlobalContextEntry",
    "metadata": {"name": "deployments"},
    "spec": {
        "apiCall": {"urlPath": "/apis/apps/v1/deployments", "refreshInterval": "1h"},
        "projections": [{"name": "count", "jmesPath": "items | length(@)"}],
    },
}
RESOURCE_ENTRY: dict[str, Any] = {
    "apiVersion": "kyverno.io/v2alpha1",
    "kind": "GlobalContextEntry",
    "metadata": {"name": "keys"},
    "spec": {"kubernetesResource": {"version": "v1", "resource": "configmaps", "namespace": "sigs"}},
}


def with_spec(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


def referencing(name: str, jmes: str = "") -> dict[str, Any]:
    doc = cluster_policy("p", [key_verification(["*"], [keys_entry("{{ keys }}")])])
    ref: dict[str, Any] = {"name": name}
    if jmes:
        ref["jmesPath"] = jmes
    doc["spec"]["rules"][0]["context"] = [{"name": "keys", "globalReference": ref}]
    return doc


@pytest.mark.parametrize("version", ["kyverno.io/v2alpha1", "kyverno.io/v2beta1", "kyverno.io/v2"])
def test_every_served_version_loads_with_crd_defaults(version: str) -> None:
    doc = copy.deepcopy(APICALL_ENTRY)
    doc["apiVersion"] = version
    del doc["spec"]["apiCall"]["refreshInterval"]
    loaded = load_policy_text(dump(doc, referencing("deployments.count")), "gctx.yaml")
    (entry,) = loaded.global_context
    assert entry.name == "deployments" and entry.refresh_seconds == 600.0  # refreshInterval default 10m
    assert entry.spec.api_call is not None and entry.spec.api_call.method == "GET"
    assert entry.spec.api_call.retry_limit == 3
    assert entry.projections == {"count": "items | length(@)"}
    assert len(loaded.policies) == 1


def test_kubernetes_resource_entry_loads() -> None:
    (entry,) = load_policy_text(dump(RESOURCE_ENTRY, referencing("keys")), "gctx.yaml").global_context
    assert entry.spec.kubernetes_resource is not None and entry.spec.kubernetes_resource.namespace == "sigs"


@pytest.mark.parametrize(
    ("doc", "path", "text"),
    [
        (with_spec(APICALL_ENTRY, extra=1), "spec", 'unknown field "extra"'),
        (
            with_spec(APICALL_ENTRY, apiCall={"urlPath": "/api/v1/namespaces", "jmesPath": "items"}),
            "spec.apiCall",
            'unknown field "jmesPath"',
        ),
        (
            with_spec(APICALL_ENTRY, kubernetesResource={"version": "v1", "resource": "pods"}),
            "spec.kubernetesResource",
            "either have KubernetesResource or APICall",
        ),
        (
            with_spec(APICALL_ENTRY, apiCall=None),
            "spec.kubernetesResource",
            "either have KubernetesResource or APICall",
        ),
        (
            with_spec(APICALL_ENTRY, apiCall={"urlPath": "/api/v1/pods", "refreshInterval": "ten minutes"}),
            "spec.apiCall.refreshInterval",
            "not a duration",
        ),
        (
            with_spec(APICALL_ENTRY, apiCall={"urlPath": "/api/v1/pods", "refreshInterval": "0s"}),
            "spec.apiCall.refreshInterval",
            "greater than 0 seconds",
        ),
        (
            with_spec(APICALL_ENTRY, apiCall={"urlPath": "/api/v1/pods", "retryLimit": 0}),
            "spec.apiCall.retryLimit",
            "greater than or equal to 1",
        ),
        (
            with_spec(APICALL_ENTRY, apiCall={"refreshInterval": "1m"}),
            "spec.apiCall.service",
            "either have Service or URLPath",
        ),
        (
            with_spec(APICALL_ENTRY, apiCall={"urlPath": "/x", "service": {"url": "https://svc.example/"}}),
            "spec.apiCall.service",
            "either have Service or URLPath",
        ),
        (
            with_spec(APICALL_ENTRY, apiCall={"urlPath": "/x", "data": [{"key": "a", "value": 1}]}),
            "spec.apiCall.method",
            "data should have method as POST",
        ),
        (
            with_spec(APICALL_ENTRY, apiCall={"urlPath": "/x", "method": "PUT"}),
            "spec.apiCall.method",
            "GET",
        ),
        (
            with_spec(RESOURCE_ENTRY, kubernetesResource={"version": "v1", "resource": "deployments", "group": ""})
            | {"spec": {"kubernetesResource": {"version": "v2", "resource": "deployments"}}},
            "spec.kubernetesResource.group",
            "requires a group",
        ),
        (
            with_spec(RESOURCE_ENTRY, kubernetesResource={"version": "v1"}),
            "spec.kubernetesResource.resource",
            "requires a resource",
        ),
        (
            with_spec(APICALL_ENTRY, projections=[{"name": "a", "jmesPath": "x"}, {"name": "a", "jmesPath": "y"}]),
            "spec.projections[1].name",
            "defined twice",
        ),
        (
            with_spec(APICALL_ENTRY, projections=[{"name": "deployments", "jmesPath": "x"}]),
            "spec.projections[0].name",
            "different from the global context entry name",
        ),
        (with_spec(APICALL_ENTRY, projections=[{"name": "a"}]), "spec.projections[0].jmesPath", "requires a JMESPath"),
        (
            with_spec(APICALL_ENTRY, projections=[{"name": "a", "jmesPath": "items[?"}]),
            "spec.projections[0].jmesPath",
            "invalid JMESPath",
        ),
        (
            {**APICALL_ENTRY, "metadata": {"name": "deployments", "namespace": "kyverno"}},
            "metadata.namespace",
            "cluster-scoped",
        ),
        ({**APICALL_ENTRY, "metadata": {}}, "metadata.name", "needs a name"),
    ],
)
def test_refused_with_path(doc: dict[str, Any], path: str, text: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(dump(doc, referencing("deployments")), "gctx.yaml")
    found = [(p.path, p.message) for p in info.value.problems]
    assert any(p == path and text in m for p, m in found), found


def test_same_entry_twice_is_refused() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(dump(APICALL_ENTRY, APICALL_ENTRY, referencing("deployments")), "gctx.yaml")
    assert any("also defined in gctx.yaml#doc1" in p.message for p in info.value.problems)


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("deployments", False),
        ("deployments.count", False),
        ("{{ request.namespace }}", False),  # decided per request, as Kyverno does
        ("absent", True),
        ("absent.count", True),
    ],
)
def test_reference_to_an_unknown_entry_is_refused_at_load(name: str, refused: bool) -> None:
    text = dump(APICALL_ENTRY, referencing(name))
    if not refused:
        assert len(load_policy_text(text, "p.yaml").policies) == 1
        return
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "p.yaml")
    (problem,) = info.value.problems
    assert problem.path == "spec.rules[0].context[0].globalReference.name"
    assert "GlobalContextEntry absent is not defined" in problem.message


def test_reference_resolves_against_an_entry_in_another_file_of_the_directory(tmp_path: Path) -> None:
    (tmp_path / "a-policy.yaml").write_text(dump(referencing("deployments.count")))
    (tmp_path / "b-entry.yaml").write_text(dump(APICALL_ENTRY))
    loaded = load_policies([tmp_path])
    assert [e.name for e in loaded.global_context] == ["deployments"] and len(loaded.policies) == 1


@pytest.mark.parametrize(
    ("ref", "path", "text"),
    [
        ({}, "spec.rules[0].context[0].globalReference.name", "needs name"),
        ({"name": "deployments", "jmesPath": 3}, "spec.rules[0].context[0].globalReference.jmesPath", "string"),
        ({"name": "deployments", "extra": 1}, "spec.rules[0].context[0].globalReference", 'unknown field "extra"'),
    ],
)
def test_bad_global_reference_is_refused(ref: dict[str, Any], path: str, text: str) -> None:
    doc = referencing("deployments")
    doc["spec"]["rules"][0]["context"][0]["globalReference"] = ref
    with pytest.raises(PolicyError) as info:
        load_policy_text(dump(APICALL_ENTRY, doc), "p.yaml")
    assert any(p.path == path and text in p.message for p in info.value.problems), info.value.problems


def test_a_path_of_entries_alone_enforces_nothing(tmp_path: Path) -> None:
    (tmp_path / "entry.yaml").write_text(dump(APICALL_ENTRY))
    with pytest.raises(PolicyError) as info:
        load_policies([tmp_path])
    assert "nothing to enforce" in info.value.problems[0].message

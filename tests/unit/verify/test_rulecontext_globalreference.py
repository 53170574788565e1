"""ClusterPolicy ``context[].globalReference`` prepared for a request, against Kyverno's gctxLoader
(pkg/engine/context/loaders/globalcontext.go): ``<entry>`` or ``<entry>.<projection>`` after substitution, the
reference's jmesPath over that data, "failed to fetch entry key=X" for an entry not loaded, loaded lazily, and the
resolved value in the verdict-key fingerprint."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.cluster.data import ClusterData, ObjectRef
from sigward.cluster.globalcontext import GlobalContext
from sigward.policy.loader import load_policy_text
from sigward.verify.rulecontext import RuleContextError, resolve_rule
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key
from tests.unit.verify.test_rulecontext import NOW, REQUEST

PEM = new_key("p256").public_pem.strip()
OTHER = new_key("p256", slot=1).public_pem.strip()
ENTRIES = [
    {
        "apiVersion": "kyverno.io/v2beta1",
        "kind": "GlobalContextEntry",
        "metadata": {"name": "keys"},
        "spec": {
            "kubernetesResource": {"version": "v1", "resource": "configmaps", "namespace": "sigs"},
            "projections": [{"name": "org", "jmesPath": "[?metadata.name=='org'] | [0].data.pem"}],
        },
    },
    {
        "apiVersion": "kyverno.io/v2beta1",
        "kind": "GlobalContextEntry",
        "metadata": {"name": "pods"},
        "spec": {"kubernetesResource": {"version": "v1", "resource": "pods"}},  # needs a live connection
    },
]


def cluster(pem: str = PEM) -> ClusterData:
    cm = {"metadata": {"name": "org", "namespace": "sigs"}, "data": {"pem": pem}}
    return ClusterData(manifests={ObjectRef("configmaps", "sigs", "org"): cm})


def resolve(context: list[dict[str, Any]], key: str = "{{ k }}", pem: str = PEM) -> Any:
    doc = cluster_policy("p", [key_verification(["*"], [keys_entry(key)])])
    doc["spec"]["rules"][0]["context"] = context
    loaded = load_policy_text(dump(*ENTRIES, doc), "p.yaml")
    (policy,) = loaded.policies
    gctx = GlobalContext(loaded.global_context, cluster(pem))
    return resolve_rule(
        policy, policy.spec.rules[0], request=REQUEST, images={}, cluster=cluster(pem), now=NOW, global_context=gctx
    )


def key_of(resolution: Any) -> str:
    return str(resolution.rule.verify_images[0].attestors[0].entries[0].keys.public_keys)


@pytest.mark.parametrize(
    "reference",
    [
        {"name": "keys.org"},
        {"name": "keys", "jmesPath": "[?metadata.name=='org'] | [0].data.pem"},
    ],
)
def test_reference_resolves_the_key(reference: dict[str, str]) -> None:
    assert key_of(resolve([{"name": "k", "globalReference": reference}])) == PEM


@pytest.mark.parametrize(
    ("context", "text"),
    [
        ([{"name": "k", "globalReference": {"name": "{{ request.namespace }}"}}], "failed to fetch entry key=team-a"),
        ([{"name": "k", "globalReference": {"name": "keys.absent"}}], 'projection "absent" not found'),
        (
            [{"name": "k", "globalReference": {"name": "keys", "jmesPath": "[0].absent"}}],
            "failed to apply JMESPath [0].absent",
        ),
        ([{"name": "k", "globalReference": {"name": "pods"}}], "needs a cluster connection"),
    ],
)
def test_reference_errors_name_the_entry(context: list[dict[str, Any]], text: str) -> None:
    with pytest.raises(RuleContextError) as info:
        resolve(context)
    assert "failed to load context entry k" in info.value.message and text in info.value.message


def test_unreferenced_entry_is_never_loaded() -> None:
    """Kyverno's deferred loading: an entry no expression names never surfaces its error."""
    context = [
        {"name": "unused", "globalReference": {"name": "pods"}},
        {"name": "k", "globalReference": {"name": "keys.org"}},
    ]
    assert key_of(resolve(context)) == PEM


def test_fingerprint_follows_the_data() -> None:
    context = [{"name": "k", "globalReference": {"name": "keys.org"}}]
    assert resolve(context).fingerprint != resolve(context, pem=OTHER).fingerprint
    assert key_of(resolve(context, pem=OTHER)) == OTHER


def test_without_global_context_every_reference_is_an_error() -> None:
    doc = cluster_policy("p", [key_verification(["*"], [keys_entry("{{ k }}")])])
    doc["spec"]["rules"][0]["context"] = [{"name": "k", "globalReference": {"name": "keys.org"}}]
    (policy,) = load_policy_text(dump(*ENTRIES, doc), "p.yaml").policies
    with pytest.raises(RuleContextError, match="failed to fetch entry key=keys"):
        resolve_rule(policy, policy.spec.rules[0], request=REQUEST, images={}, cluster=cluster(), now=NOW)

"""Fuzzing the policy loader: arbitrary YAML-ish text, valid policies with one value changed or dropped, and valid
policy text with its bytes damaged. Whatever comes in, ``load_policy_text`` returns policies or raises
:class:`PolicyError` whose every problem names where it is — never a pydantic, YAML or recursion error."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from sigward.errors import PolicyError
from sigward.policy.loader import load_policy_text
from sigward.references import wildcard_match
from tests.support.fuzzing import SETTINGS, byte_mutations, json_values, mutations
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

PEM = new_key("p256", slot=63).public_pem


def _rich_policy() -> dict[str, Any]:
    iv = key_verification(["registry.test/*", "ghcr.io/org/*:v?"], [keys_entry(PEM)], count=1, mutate_digest=True)
    iv["skipImageReferences"] = ["registry.test/skip/*"]
    iv["attestations"] = [
        {
            "type": "https://slsa.dev/provenance/v1",
            "attestors": [{"entries": [keys_entry(PEM)]}],
            "conditions": [
                {"all": [{"key": "{{ buildDefinition.buildType }}", "operator": "Equals", "value": "https://x/y"}]}
            ],
        }
    ]
    keyless = {
        "imageReferences": ["registry.test/keyless/*"],
        "attestors": [
            {
                "entries": [
                    {
                        "keyless": {
                            "subject": "https://github.com/org/*",
                            "issuer": "https://token.actions.githubusercontent.com",
                            "rekor": {"url": "https://rekor.sigstore.dev"},
                        }
                    }
                ]
            }
        ],
        "validate": {
            "message": "no latest",
            "deny": {"conditions": {"any": [{"key": "{{ image.tag }}", "operator": "Equals", "value": "latest"}]}},
        },
    }
    doc = cluster_policy("fuzz-rich", [iv, keyless], failure_policy="Ignore", kinds=("Pod", "Deployment"))
    rule = doc["spec"]["rules"][0]
    rule["exclude"] = {"any": [{"resources": {"namespaces": ["kube-system"]}}]}
    rule["match"]["any"][0]["resources"]["selector"] = {"matchLabels": {"tier": "prod"}}
    doc["metadata"]["annotations"] = {"pod-policies.kyverno.io/autogen-controllers": "Deployment"}
    doc["spec"]["webhookTimeoutSeconds"] = 10
    return doc


def _extractor_policy() -> dict[str, Any]:
    doc = cluster_policy(
        "fuzz-extractors",
        [key_verification(["*"], [keys_entry(PEM, ignore_tlog=False, rekor_pubkey=PEM)], mutate_digest=False)],
        kinds=("tekton.dev/v1/Task",),
        action="Audit",
    )
    doc["spec"]["rules"][0]["imageExtractors"] = {"Task": [{"path": "/spec/steps/*/image", "key": "name"}]}
    return doc


SEEDS = [_rich_policy(), _extractor_policy()]
SEED_TEXT = dump(*SEEDS)


def _load(text: str) -> None:
    try:
        loaded = load_policy_text(text, "fuzz.yaml")
    except PolicyError as exc:
        assert exc.problems, "a PolicyError names at least one problem"
        for problem in exc.problems:
            assert problem.source.startswith("fuzz.yaml")
            assert problem.message
        return
    for policy in loaded.policies:
        assert len(policy.content_hash) == 64
        assert policy.spec.rules
        for rule in policy.spec.rules:
            assert rule.verify_images
            for iv in rule.verify_images:
                for pattern in iv.image_references:
                    assert isinstance(wildcard_match(pattern, "registry.test/app:v1"), bool)


def test_the_seeds_are_valid_policies() -> None:
    loaded = load_policy_text(SEED_TEXT, "seed.yaml")
    assert [p.name for p in loaded.policies] == ["fuzz-rich", "fuzz-extractors"]


YAML_PIECES = [
    "apiVersion: kyverno.io/v1\n",
    "kind: ClusterPolicy\n",
    "metadata: {name: x}\n",
    "spec:\n",
    "  rules:\n",
    "  - name: r\n",
    "    verifyImages:\n",
    "    - imageReferences: ['*']\n",
    "      attestors: [{entries: [{keys: {publicKeys: x}}]}]\n",
    "---\n",
    "&a [*a]\n",
    "x: &b {y: 1}\n",
    "z: *b\n",
    "<<: *b\n",
    "!!python/object:os.system\n",
    "!!binary aGk=\n",
    "? [a]\n: 1\n",
    "2024-01-01T00:00:00Z\n",
    "key: 1\nkey: 2\n",
    "- \n",
    "{\n",
    "'\n",
    "\t\n",
    "%YAML 1.1\n",
    "\x00",
    "\ufeff",
]
yaml_texts = st.one_of(
    st.lists(st.sampled_from(YAML_PIECES), max_size=12).map("".join),
    st.text(max_size=200),
    json_values.map(lambda v: yaml.safe_dump(v)),
)


@SETTINGS
@given(text=yaml_texts)
@example(text="a: &a [" + ", ".join(["*a"] * 3) + "]\n")
@example(text="apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: 1e400}\nspec: {rules: []}\n")
@example(text="apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: x}\nspec: {rules: .nan}\n")
@example(text="apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: x, 1: 2}\nspec: {}\n")
@example(text="apiVersion: kyverno.io/v1\nkind: ClusterPolicy\n? [a, b]\n: c\n")
def test_arbitrary_yaml(text: str) -> None:
    _load(text)


@SETTINGS
@given(doc=st.sampled_from(SEEDS).flatmap(mutations))
def test_mutated_valid_policies(doc: Any) -> None:
    _load(yaml.safe_dump(doc, sort_keys=False))


@SETTINGS
@given(raw=byte_mutations(SEED_TEXT.encode()))
def test_damaged_policy_text(raw: bytes) -> None:
    _load(raw.decode("utf-8", "surrogateescape"))

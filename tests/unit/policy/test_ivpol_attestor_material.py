"""IVPOL attestor material from expressions (key, certificate, cert chain, notary certs/tsaCerts, keyless
subjectExpression) and ``cosign.source.PullSecrets`` at load: compiled once with a string type, type errors and
conflicting fields refused with their YAML paths, PullSecrets refused without a cluster connection."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sigward.errors import PolicyError
from sigward.policy.capabilities import for_cluster
from sigward.policy.loader import load_policy_text
from tests.support.signing import new_key

PEM = new_key("p256", slot=0).public_pem
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CM = "resource.Get('v1', 'configmaps', 'kyverno', 'keys').data['{}']"


def ivpol(attestor: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "attestors": [{"name": "a", **attestor}],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.a]) > 0)"}],
        },
    }
    return yaml.safe_dump(doc)


KEYLESS = {"keyless": {"identities": [{"issuer": "https://iss", "subjectExpression": CM.format("subject")}]}}


@pytest.mark.parametrize(
    ("attestor", "slots"),
    [
        ({"cosign": {"key": {"expression": CM.format("cosign.pub")}}}, ["key"]),
        ({"cosign": {"certificate": {"cert": {"expression": CM.format("cert")}}}}, ["cert"]),
        (
            {
                "cosign": {
                    "certificate": {"cert": {"value": CERT}, "certChain": {"expression": CM.format("chain")}},
                }
            },
            ["certChain"],
        ),
        ({"cosign": KEYLESS}, ["subject:0"]),
        ({"notary": {"certs": {"expression": CM.format("ca")}}}, ["notary.certs"]),
        (
            {"notary": {"certs": {"value": CERT}, "tsaCerts": {"expression": CM.format("tsa")}}},
            ["notary.tsaCerts"],
        ),
    ],
)
def test_material_expressions_compile_once(attestor: dict[str, Any], slots: list[str]) -> None:
    (policy,) = load_policy_text(ivpol(attestor), "p.yaml").image_policies
    compiled = policy.attestors["a"]
    assert [slot for slot, _ in compiled.material] == slots
    assert all(program.path.startswith("spec.attestors[0].") for _, program in compiled.material)


@pytest.mark.parametrize(
    ("attestor", "path", "text"),
    [
        (
            {"cosign": {"key": {"expression": "1"}}},
            "spec.attestors[0].cosign.key.expression",
            "must evaluate to a string",
        ),
        ({"cosign": {"key": {"expression": "nope.x"}}}, "spec.attestors[0].cosign.key.expression", "undeclared"),
        ({"cosign": {"key": {"data": PEM, "expression": "'x'"}}}, "spec.attestors[0].cosign.key", "exactly one"),
        (
            {"cosign": {"key": {"kms": "awskms:///k", "expression": "'x'"}}},
            "spec.attestors[0].cosign.key",
            "exactly one",
        ),
        (
            {"cosign": {"certificate": {"cert": {"expression": "true"}}}},
            "spec.attestors[0].cosign.certificate.cert.expression",
            "must evaluate to a string",
        ),
        (
            {"cosign": {"certificate": {"cert": {"value": CERT, "expression": "'x'"}}}},
            "spec.attestors[0].cosign.certificate.cert",
            "mutually exclusive",
        ),
        (
            {"cosign": {"certificate": {"cert": {"value": CERT}, "certChain": {"expression": "[1]"}}}},
            "spec.attestors[0].cosign.certificate.certChain.expression",
            "must evaluate to a string",
        ),
        (
            {"cosign": {"keyless": {"identities": [{"issuer": "i", "subjectExpression": "1"}]}}},
            "spec.attestors[0].cosign.keyless.identities[0].subjectExpression",
            "must evaluate to a string",
        ),
        (
            {"cosign": {"keyless": {"identities": [{"subjectRegExp": ".*", "subjectExpression": "'x'"}]}}},
            "spec.attestors[0].cosign.keyless.identities[0].subjectExpression",
            "mutually exclusive",
        ),
        ({"notary": {"certs": {"expression": "{}"}}}, "spec.attestors[0].notary.certs.expression", "a string"),
        (
            {"notary": {"certs": {"value": CERT, "expression": "'x'"}}},
            "spec.attestors[0].notary.certs",
            "mutually exclusive",
        ),
        (
            {"notary": {"certs": {"value": CERT}, "tsaCerts": {"expression": "2"}}},
            "spec.attestors[0].notary.tsaCerts.expression",
            "must evaluate to a string",
        ),
    ],
)
def test_material_expression_problems(attestor: dict[str, Any], path: str, text: str) -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy_text(ivpol(attestor), "p.yaml")
    assert any(p.path == path and text in p.message for p in exc.value.problems), exc.value.problems


def pull_secrets(refs: list[Any]) -> str:
    return ivpol({"cosign": {"key": {"data": PEM}, "source": {"PullSecrets": refs}}})


def test_pull_secrets_refused_without_a_cluster_connection() -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy_text(pull_secrets([{"name": "regcred"}]), "p.yaml", capabilities=for_cluster(False))
    (problem,) = exc.value.problems
    assert problem.path == "spec.attestors[0].cosign.source.PullSecrets"
    assert "cluster connection" in problem.message


def test_pull_secrets_load_with_a_cluster_connection() -> None:
    text = pull_secrets([{"name": "regcred"}, {"name": "other"}])
    (policy,) = load_policy_text(text, "p.yaml", capabilities=for_cluster(True)).image_policies
    assert policy.attestors["a"].pull_secrets == ("regcred", "other")


@pytest.mark.parametrize("ref", [{"name": "Bad/Name"}, {"name": ""}, {"nam": "x"}, {"name": "x", "namespace": "y"}])
def test_pull_secret_reference_shape(ref: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy_text(pull_secrets([ref]), "p.yaml", capabilities=for_cluster(True))
    assert [p.path for p in exc.value.problems] == ["spec.attestors[0].cosign.source.PullSecrets[0]"]

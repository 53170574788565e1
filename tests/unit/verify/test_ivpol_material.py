"""Attestor material from expressions, evaluated: each slot lands in the engine's attestor set where a literal
value would, wrong shapes fail closed naming the YAML path, and the fingerprint follows the values."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from sigward.policy.ivpol.cel import LIBRARY_VALUES, CelError
from sigward.policy.ivpol.load import CompiledAttestor
from sigward.policy.loader import load_policy_text
from sigward.verify.ivpol_material import evaluate_material, fingerprint, with_material
from tests.support.signing import new_key

PEM = new_key("p256", slot=0).public_pem
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def compiled(attestor: dict[str, Any]) -> CompiledAttestor:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "attestors": [{"name": "a", **attestor}],
            "validations": [{"expression": "true"}],
        },
    }
    (policy,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    return policy.attestors["a"]


def lit(text: str) -> str:
    return json.dumps(text)  # a CEL string literal


def resolved(attestor: dict[str, Any]) -> Any:
    c = compiled(attestor)
    return with_material(c.attestors, evaluate_material(c, dict(LIBRARY_VALUES))).entries


def test_each_slot_lands_where_a_value_would() -> None:
    (key,) = resolved({"cosign": {"key": {"expression": lit(PEM)}}})
    assert key.keys is not None and key.keys.public_keys == PEM
    (cert,) = resolved(
        {"cosign": {"certificate": {"cert": {"expression": lit(CERT)}, "certChain": {"expression": lit(CERT + CERT)}}}}
    )
    assert cert.certificates is not None
    assert (cert.certificates.cert, cert.certificates.cert_chain) == (CERT, CERT + CERT)
    (notary,) = resolved({"notary": {"certs": {"expression": lit(CERT)}, "tsaCerts": {"expression": lit(CERT)}}})
    assert notary.certificates is not None and notary.certificates.cert == CERT
    assert notary.certificates.ctlog is not None and notary.certificates.ctlog.tsa_cert_chain == CERT
    first, second = resolved(
        {
            "cosign": {
                "keyless": {
                    "identities": [
                        {"issuer": "https://a", "subject": "exact"},
                        {"issuer": "https://b", "subjectExpression": lit("https://github.com/org/.*")},
                    ]
                }
            }
        }
    )
    assert first.keyless.subject == "exact" and first.keyless.subject_reg_exp == ""
    assert second.keyless.subject_reg_exp == "https://github.com/org/.*"


@pytest.mark.parametrize(
    ("attestor", "path", "text"),
    [
        ({"cosign": {"key": {"expression": lit("")}}}, "cosign.key.expression", "empty"),
        ({"cosign": {"key": {"expression": lit("not a key")}}}, "cosign.key.expression", "PEM public key"),
        ({"cosign": {"key": {"expression": lit(CERT)}}}, "cosign.key.expression", "PEM public key"),
        ({"cosign": {"key": {"expression": "dyn(1)"}}}, "cosign.key.expression", "must evaluate to a string"),
        ({"cosign": {"certificate": {"cert": {"expression": lit(PEM)}}}}, "cert.expression", "PEM certificates"),
        (
            {"cosign": {"certificate": {"cert": {"value": CERT}, "certChain": {"expression": lit("x")}}}},
            "certChain.expression",
            "PEM certificates",
        ),
        ({"notary": {"certs": {"expression": lit("  ")}}}, "notary.certs.expression", "empty"),
        (
            {"notary": {"certs": {"value": CERT}, "tsaCerts": {"expression": lit("x")}}},
            "notary.tsaCerts.expression",
            "PEM certificates",
        ),
        (
            {"cosign": {"keyless": {"identities": [{"issuer": "i", "subjectExpression": lit("(unclosed")}]}}},
            "identities[0].subjectExpression",
            "not a regular expression",
        ),
    ],
)
def test_wrong_shapes_fail_closed_with_the_path(attestor: dict[str, Any], path: str, text: str) -> None:
    c = compiled(attestor)
    with pytest.raises(CelError) as exc:
        evaluate_material(c, dict(LIBRARY_VALUES))
    where, _, why = exc.value.message.partition(": ")
    assert where.startswith("spec.attestors[0].") and where.endswith(path) and text in why, exc.value.message


def test_fingerprint_follows_the_values() -> None:
    other = new_key("p256", slot=1).public_pem
    assert fingerprint({}) == ""
    assert fingerprint({"key": PEM}) == fingerprint({"key": PEM})
    assert fingerprint({"key": PEM}) != fingerprint({"key": other})
    assert fingerprint({"cert": CERT}) != fingerprint({"notary.certs": CERT})

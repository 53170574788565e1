"""Regression: a ``{{ }}`` that resolves to null, "" or blanks in a verifyImages field used to leave an empty key in
the prepared rule (rulecontext.resolve_rule did not raise). Kyverno substitutes null without an error (variables
``Test_SubstituteNull``) and then, with no key, would fall back to keyless verification; sigward re-applies
Kyverno's entry validation to the substituted entry and errs with its message and the path instead."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.policy.loader import load_policy_text
from sigward.verify.rulecontext import RuleContextError
from tests.support.policies import cluster_policy, dump, key_verification
from tests.unit.verify.test_rulecontext import PEM, manifests, policy_with, resolve

KEY_PATH = "verifyImages[0].attestors[0].entries[0].keys"
KEY_REQUIRED = "A public key, kms key or secret is required (after substitution)"

NULL_CONTEXT = [{"name": "v", "variable": {"value": {"present": None}}}]


CASES: list[tuple[str, dict[str, Any], dict[str, str], str]] = [
    ("null key", {"key": "{{ v.present }}", "context": NULL_CONTEXT}, {}, f"{KEY_PATH}: {KEY_REQUIRED}"),
    ("empty string key", {}, {"org": ""}, f"{KEY_PATH}: {KEY_REQUIRED}"),
    ("blank key", {}, {"org": "  \n"}, f"{KEY_PATH}: {KEY_REQUIRED}"),
    ("missing configmap field", {}, {"other": PEM}, 'Unknown key "org" in path'),
    (
        "null jmesPath default",
        {"key": "{{ v }}", "context": [{"name": "v", "variable": {"jmesPath": "request.nothing", "default": None}}]},
        {},
        f"{KEY_PATH}: {KEY_REQUIRED}",
    ),
]


@pytest.mark.parametrize(("fields", "data", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_empty_value_after_substitution_is_an_error(fields: dict[str, Any], data: dict[str, str], message: str) -> None:
    rule = {k: v for k, v in fields.items() if k != "key"}
    policy = policy_with(fields.get("key", "{{ keys.data.org }}"), context=rule.pop("context", None) or [
        {"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}
    ], **rule)  # fmt: skip
    with pytest.raises(RuleContextError) as err:
        resolve(policy, manifests(keys=data))
    assert err.value.message.startswith("failed to") and message in err.value.message
    assert "BEGIN PUBLIC KEY" not in err.value.message  # no key material in the error


def test_twin_a_real_key_resolves() -> None:
    policy = policy_with(context=[{"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}])
    prepared = resolve(policy, manifests(keys={"org": PEM})).rule
    assert prepared.verify_images[0].attestors[0].entries[0].keys.public_keys.strip() == PEM


def test_null_certificate_after_substitution_is_an_error() -> None:
    """Not only keys: every field Kyverno's validation requires (here certificates.cert / certChain)."""
    doc = cluster_policy("p", [key_verification(["*"], [{"certificates": {"cert": "{{ v.present }}"}}])])
    doc["spec"]["rules"][0]["context"] = NULL_CONTEXT
    policy = load_policy_text(dump(doc), "t.yaml").policies[0]
    with pytest.raises(RuleContextError) as err:
        resolve(policy)
    assert "verifyImages[0].attestors[0].entries[0].certificates: " in err.value.message

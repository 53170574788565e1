"""``webhook-config`` and an IVPOL asking ``matchConstraints.matchPolicy: Exact``: the shared webhook stays
Equivalent (ClusterPolicies and Equivalent IVPOLs need it; sigward narrows Exact in-process on ``requestResource``),
but a version the shipped rules do not list exactly is added, so the API server sends such a request as the client
asked it (unconverted), as Kyverno's per-policy Exact webhook does. Twins: Equivalent adds nothing for the same rule;
an Exact rule for a version already listed adds nothing."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sigward.admission.webhooks import policy_webhook_settings, webhook_configurations
from sigward.policy.loader import load_policy_text
from tests.unit.verify.test_ivpol_exceptions import policy_doc


def settings_for(match_policy: str, rule: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    doc = policy_doc()
    doc["spec"]["matchConstraints"] = {"resourceRules": [rule], "matchPolicy": match_policy}
    image_policies = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    return policy_webhook_settings((), image_policies).extra_rules


def deployments(versions: list[str]) -> dict[str, Any]:
    return {"apiGroups": ["apps"], "apiVersions": versions, "resources": ["deployments"], "operations": ["CREATE"]}


@pytest.mark.parametrize(
    ("match_policy", "versions", "added"),
    [
        ("Exact", ["v1beta2"], ["v1beta2"]),
        ("Exact", ["*"], ["*"]),
        ("Exact", ["v1", "v1beta2"], ["v1", "v1beta2"]),
        # twins: Equivalent converts to the listed v1; an Exact rule for v1 is already sent exactly
        ("Equivalent", ["v1beta2"], None),
        ("Equivalent", ["*"], None),
        ("Exact", ["v1"], None),
    ],
)
def test_exact_versions_are_registered(match_policy: str, versions: list[str], added: list[str] | None) -> None:
    extra = settings_for(match_policy, deployments(versions))
    if added is None:
        assert extra == ()
    else:
        (rule,) = extra
        assert (rule["apiGroups"], rule["apiVersions"], rule["resources"]) == (["apps"], added, ["deployments"])


def test_every_webhook_stays_equivalent_and_carries_the_exact_rule() -> None:
    extra = settings_for("Exact", deployments(["v1beta2"]))
    configs = webhook_configurations(url="https://sigward.example/admit", extra_rules=extra)
    hooks = [h for c in configs for h in c["webhooks"]]
    assert hooks and all(h["matchPolicy"] == "Equivalent" for h in hooks)
    assert all(any(r["apiVersions"] == ["v1beta2"] for r in h["rules"]) for h in hooks)

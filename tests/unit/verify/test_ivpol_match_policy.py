"""``matchConstraints.matchPolicy`` in sigward's in-process matching. sigward's one webhook is Equivalent, so the API
server may send a request for an equivalent resource converted (``resource`` = the rule's, ``requestResource`` = the
client's). Kyverno gives an Exact policy its own ``matchPolicy: Exact`` webhook (pkg/controllers/webhook/validating.go
``buildWebhookRules``), so such a request never reaches it: under Exact sigward matches ``requestResource``; under
Equivalent (default) ``resource``. Twins: the same request under each policy, exact requests under both, autogen."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.verify.ivpol import autogen_match, policy_matches
from tests.unit.verify.test_ivpol_exceptions import policy_doc

DEPLOYMENTS = {"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"], "operations": ["CREATE"]}
PODS = {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"]}


def policy(match_policy: str | None, rule: dict[str, Any]) -> ImagePolicy:
    doc = policy_doc()
    doc["spec"]["matchConstraints"] = {"resourceRules": [rule]}
    if match_policy is not None:
        doc["spec"]["matchConstraints"]["matchPolicy"] = match_policy
    (loaded,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    return loaded


def request(asked: tuple[str, str, str] | None, sub: str = "", asked_sub: str = "") -> dict[str, Any]:
    """A Deployment CREATE as the Equivalent webhook sends it: ``resource`` apps/v1; ``asked``: the client's."""
    req: dict[str, Any] = {
        "operation": "CREATE",
        "name": "d",
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    }
    if sub:
        req["subResource"] = sub
    if asked is not None:
        group, version, resource = asked
        req["requestResource"] = {"group": group, "version": version, "resource": resource}
        if asked_sub:
            req["requestSubResource"] = asked_sub
    return req


CONVERTED = ("extensions", "v1beta1", "deployments")
OLD_VERSION = ("apps", "v1beta2", "deployments")
SAME = ("apps", "v1", "deployments")


@pytest.mark.parametrize(
    ("match_policy", "asked", "matched"),
    [
        (None, CONVERTED, True),  # default Equivalent: the converted resource matches
        ("Equivalent", OLD_VERSION, True),
        ("Exact", SAME, True),
        ("Exact", None, True),  # no requestResource (a hand-written review): resource is all there is
        # negative twins: Exact refuses an equivalent resource of another group or version
        ("Exact", CONVERTED, False),
        ("Exact", OLD_VERSION, False),
    ],
)
def test_match_policy_decides_on_the_asked_resource(
    match_policy: str | None, asked: tuple[str, str, str] | None, matched: bool
) -> None:
    assert policy_matches(policy(match_policy, DEPLOYMENTS), request(asked)) == matched


def test_exact_rule_for_the_old_version_matches_only_that_version() -> None:
    old = policy("Exact", {**DEPLOYMENTS, "apiVersions": ["v1beta2"]})
    assert policy_matches(old, request(OLD_VERSION))
    assert not policy_matches(old, request(SAME))
    # twin under Equivalent: the converted resource (apps/v1) is what is matched, so the v1beta2 rule does not
    assert not policy_matches(policy("Equivalent", {**DEPLOYMENTS, "apiVersions": ["v1beta2"]}), request(OLD_VERSION))


def test_exact_subresource_is_the_asked_one() -> None:
    status = policy("Exact", {**DEPLOYMENTS, "resources": ["deployments/status"]})
    assert policy_matches(status, request(SAME, sub="status", asked_sub="status"))
    assert not policy_matches(status, request(SAME, sub="status"))  # asked without the subresource


@pytest.mark.parametrize(("match_policy", "selected"), [("Equivalent", True), ("Exact", False)])
def test_autogen_controller_follows_the_policys_match_policy(match_policy: str, selected: bool) -> None:
    pods = policy(match_policy, PODS)
    assert pods.pod_controllers
    assert autogen_match(pods, request(CONVERTED)) == selected
    assert policy_matches(pods, request(CONVERTED)) == selected
    assert autogen_match(pods, request(SAME)) and policy_matches(pods, request(SAME))

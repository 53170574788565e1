"""`sigward webhook-config` carries each policy's webhookConfiguration.matchConditions on a webhook of its own (one
per distinct (namespaceSelector, matchConditions) pair, as Kyverno's fine-grained webhooks): two policies with
different conditions get two, the same conditions share one, a policy without them stays on the plain webhook."""

from __future__ import annotations

from typing import Any

from sigward.admission.selectors import policy_routes, rule_route
from sigward.admission.webhooks import webhook_configurations
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

KEY = new_key("p256").public_pem
PROD = [{"name": "prod", "expression": "request.namespace == 'prod'"}]
NOT_LEASES = [{"name": "example.com/no-dry-run", "expression": "!request.dryRun"}]


def policy(name: str, conditions: list[dict[str, str]] | None, selector: dict[str, str] | None = None) -> Policy:
    doc = cluster_policy(name, [key_verification(["*"], [keys_entry(KEY)], mutate_digest=False)])
    if conditions is not None:
        doc["spec"]["webhookConfiguration"] = {"matchConditions": conditions}
    if selector is not None:
        doc["spec"]["rules"][0]["match"] = {
            "any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": selector}}}]
        }
    (loaded,) = load_policy_text(dump(doc), "p.yaml").policies
    return loaded


def hooks(policies: list[Policy]) -> list[dict[str, Any]]:
    routes = list(policy_routes(policies).values())
    mutating, validating = webhook_configurations(url="https://adm.example", token="tok", routes=routes)
    return [*mutating["webhooks"], *validating["webhooks"]]


def test_policy_without_conditions_has_no_route() -> None:
    assert rule_route(policy("plain", None), policy("plain", None).spec.rules[0]) is None
    assert all("matchConditions" not in h for h in hooks([policy("plain", None)]))


def test_conditions_are_emitted_on_their_own_webhook() -> None:
    out = hooks([policy("a", PROD), policy("plain", None)])
    assert len(out) == 4  # plain + one route, mutating and validating
    routed = [h for h in out if "matchConditions" in h]
    assert [h["matchConditions"] for h in routed] == [PROD, PROD]
    assert all("/sel-" in h["clientConfig"]["url"] for h in routed)
    plain = [h for h in out if "matchConditions" not in h]
    assert [h["clientConfig"]["url"] for h in plain] == [
        "https://adm.example/tok/mutate",
        "https://adm.example/tok/validate",
    ]


def test_two_policies_with_different_conditions_get_two_webhooks() -> None:
    out = hooks([policy("a", PROD), policy("b", NOT_LEASES)])
    conditions = [h["matchConditions"] for h in out if "matchConditions" in h]
    assert len(conditions) == 4 and PROD in conditions and NOT_LEASES in conditions
    assert len({h["name"] for h in out}) == len(out)


def test_same_conditions_share_one_webhook() -> None:
    out = hooks([policy("a", PROD), policy("b", PROD)])
    assert sum(1 for h in out if "matchConditions" in h) == 2


def test_selector_and_conditions_together() -> None:
    with_selector = policy("a", PROD, selector={"signed": "required"})
    route = rule_route(with_selector, with_selector.spec.rules[0])
    assert route is not None and route.match_conditions == (("prod", PROD[0]["expression"]),)
    selector_only = policy("b", None, selector={"signed": "required"})
    other = rule_route(selector_only, selector_only.spec.rules[0])
    assert other is not None and other.key != route.key  # conditions of one policy never reach another's webhook
    routed = [h for h in hooks([with_selector]) if "matchConditions" in h]
    assert routed and all(h["namespaceSelector"]["matchLabels"] == {"signed": "required"} for h in routed)

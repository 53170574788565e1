"""`sigward webhook-config` with namespaceSelector policies: one webhook per distinct selector route (golden output
for 0, 1 and 2 selectors), the route key, and the refusals for selectors one webhook cannot express."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sigward.admission.http import mode_for, route_for
from sigward.admission.selectors import SelectorRouteError, policy_routes, rule_route, selector_key
from sigward.admission.webhooks import webhook_configurations
from sigward.policy.loader import load_policy_text
from sigward.policy.models import LabelSelector, Policy
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

KEY = new_key("p256").public_pem
EXCLUDED = {"key": "kubernetes.io/metadata.name", "operator": "NotIn"}


def policy(name: str, match: dict[str, Any], exclude: dict[str, Any] | None = None) -> Policy:
    doc = cluster_policy(name, [key_verification(["*"], [keys_entry(KEY)], mutate_digest=False)])
    doc["spec"]["rules"][0]["match"] = match
    if exclude is not None:
        doc["spec"]["rules"][0]["exclude"] = exclude
    (loaded,) = load_policy_text(dump(doc), "p.yaml").policies
    return loaded


def by_labels(labels: dict[str, str]) -> dict[str, Any]:
    return {"any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": labels}}}]}


PLAIN = {"any": [{"resources": {"kinds": ["Pod"]}}]}


def hooks(policies: list[Policy]) -> list[tuple[str, str, dict[str, Any]]]:
    routes = list(policy_routes(policies).values())
    mutating, validating = webhook_configurations(url="https://adm.example", token="tok", routes=routes)
    out = []
    for hook in (*mutating["webhooks"], *validating["webhooks"]):
        selector = hook["namespaceSelector"]
        exprs = [e for e in selector["matchExpressions"] if e["key"] != EXCLUDED["key"]]
        assert {k: v for k, v in selector["matchExpressions"][0].items() if k != "values"} == EXCLUDED
        out.append((hook["name"], hook["clientConfig"]["url"], {**selector, "matchExpressions": exprs}))
    return out


def test_no_selector_output_unchanged() -> None:
    plain = webhook_configurations(url="https://adm.example", token="tok")
    assert webhook_configurations(url="https://adm.example", token="tok", routes=()) == plain
    assert policy_routes([policy("p", PLAIN)]) == {}


def test_one_selector_golden() -> None:
    key = selector_key(LabelSelector(match_labels={"signed": "required"}))
    assert hooks([policy("p", by_labels({"signed": "required"})), policy("q", PLAIN)]) == [
        ("mutate.sigward.dev", "https://adm.example/tok/mutate", {"matchExpressions": []}),
        (
            f"mutate-sel-{key}.sigward.dev",
            f"https://adm.example/tok/mutate/sel-{key}",
            {"matchLabels": {"signed": "required"}, "matchExpressions": []},
        ),
        ("validate.sigward.dev", "https://adm.example/tok/validate", {"matchExpressions": []}),
        (
            f"validate-sel-{key}.sigward.dev",
            f"https://adm.example/tok/validate/sel-{key}",
            {"matchLabels": {"signed": "required"}, "matchExpressions": []},
        ),
    ]


def test_two_selectors_golden_and_same_selector_shared() -> None:
    a = policy("a", by_labels({"team": "a"}))
    a_again = policy("a2", by_labels({"team": "a"}))
    b = policy("b", PLAIN, exclude={"any": [{"resources": {"namespaceSelector": {"matchLabels": {"tier": "dev"}}}}]})
    found = hooks([a, a_again, b])
    assert len(found) == 6  # plain + 2 routes, for mutate and validate
    selectors = sorted((url.rsplit("/", 1)[-1], str(sel)) for _, url, sel in found if "/sel-" in url)
    assert {s for _, s in selectors} == {
        str({"matchLabels": {"team": "a"}, "matchExpressions": []}),
        str({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["dev"]}]}),
    }


def test_key_ignores_order_and_changes_with_meaning() -> None:
    one = LabelSelector.model_validate({"matchLabels": {"a": "1", "b": "2"}})
    two = LabelSelector.model_validate({"matchLabels": {"b": "2", "a": "1"}})
    other = LabelSelector.model_validate({"matchLabels": {"a": "1", "b": "3"}})
    assert selector_key(one) == selector_key(two) != selector_key(other)


@pytest.mark.parametrize(
    ("match", "exclude", "message"),
    [
        (
            {
                "any": [
                    {"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": {"a": "1"}}}},
                    {"resources": {"kinds": ["Deployment"]}},
                ]
            },
            None,
            "OR of selectors",
        ),
        (by_labels({"team": "a*"}), None, "wildcard"),
        (PLAIN, {"any": [{"resources": {"namespaceSelector": {"matchLabels": {"a": "1", "b": "2"}}}}]}, "single"),
        (
            PLAIN,
            {"any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": {"a": "1"}}}}]},
            "combined with other conditions",
        ),
    ],
)
def test_refused_when_one_webhook_cannot_express_it(
    match: dict[str, Any], exclude: dict[str, Any] | None, message: str
) -> None:
    p = policy("p", match, exclude)
    with pytest.raises(SelectorRouteError, match=message) as info:
        rule_route(p, p.spec.rules[0])
    assert "policy p rule" in info.value.message and "SIGWARD_KUBECONFIG" in info.value.message


@pytest.mark.parametrize(
    ("path", "mode", "route"),
    [
        ("/mutate", "mutate", ""),
        ("/validate", "validate", ""),
        ("/validate/sel-abc", "validate", "abc"),
        ("/mutate/sel-abc", "mutate", "abc"),
        ("/sel-abc/validate", "validate", ""),  # a route segment counts only at the end
    ],
)
def test_paths(path: str, mode: str, route: str) -> None:
    assert (mode_for(path), route_for(path)) == (mode, route)


def test_cli_emits_selector_webhooks_and_refuses_inexpressible(tmp_path: Path) -> None:
    import io

    import yaml

    from sigward import cli

    ok = tmp_path / "ok.yaml"
    doc = cluster_policy("p", [key_verification(["*"], [keys_entry(KEY)], mutate_digest=False)])
    doc["spec"]["rules"][0]["match"] = by_labels({"signed": "required"})
    ok.write_text(dump(doc))
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(["webhook-config", "--url", "https://s.example", "--policy", str(ok)], out=out, err=err) == 0
    names = [h["name"] for d in yaml.safe_load_all(out.getvalue()) for h in d["webhooks"]]
    key = selector_key(LabelSelector(match_labels={"signed": "required"}))
    assert names == [
        "mutate.sigward.dev",
        f"mutate-sel-{key}.sigward.dev",
        "validate.sigward.dev",
        f"validate-sel-{key}.sigward.dev",
    ]
    assert "SIGWARD_NAMESPACE_SELECTORS=webhook" in err.getvalue()

    bad = tmp_path / "bad.yaml"
    doc["spec"]["rules"][0]["match"] = by_labels({"signed": "req*"})
    bad.write_text(dump(doc))
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(["webhook-config", "--url", "https://s.example", "--policy", str(bad)], out=out, err=err) == 2
    assert out.getvalue() == "" and "wildcard" in err.getvalue()

"""`sigward webhook-config --policy`: ImageValidatingPolicy failurePolicy, webhookConfiguration.timeoutSeconds and
matchConstraints shape the webhooks; explicit flags win; without --policy nothing changes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward import cli
from sigward.admission.webhooks import RULES


def ivpol(name: str, *, failure_policy: str | None = None, timeout: int | None = None, **rule: Any) -> dict[str, Any]:
    resource_rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
    resource_rule.update(rule)
    spec: dict[str, Any] = {
        "matchConstraints": {"resourceRules": [resource_rule]},
        "attestors": [{"name": "k", "cosign": {"key": {"kms": "hashivault://k"}}}],
        "validations": [{"expression": "true"}],
    }
    if failure_policy:
        spec["failurePolicy"] = failure_policy
    if timeout:
        spec["webhookConfiguration"] = {"timeoutSeconds": timeout}
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def render(tmp_path: Path, docs: list[dict[str, Any]], *flags: str) -> tuple[list[dict[str, Any]], str]:
    args = ["webhook-config", "--url", "https://sigward.example/admission", *flags]
    if docs:
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        args += ["--policy", str(path)]
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(args, out=out, err=err) == 0, err.getvalue()
    return list(yaml.safe_load_all(out.getvalue())), err.getvalue()


def hooks(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["webhooks"][0] for c in configs]


@pytest.mark.parametrize(
    ("policies", "failure_policy", "timeout"),
    [
        ([], "Fail", 10),
        ([ivpol("a")], "Fail", 10),
        ([ivpol("a", failure_policy="Ignore", timeout=20)], "Ignore", 20),
        ([ivpol("a", failure_policy="Ignore"), ivpol("b", timeout=15)], "Fail", 15),  # one Fail is enough
    ],
    ids=["no-policy", "defaults", "ignore-20s", "mixed"],
)
def test_failure_policy_and_timeout_from_policies(
    tmp_path: Path, policies: list[dict[str, Any]], failure_policy: str, timeout: int
) -> None:
    for hook in hooks(render(tmp_path, policies)[0]):
        assert (hook["failurePolicy"], hook["timeoutSeconds"]) == (failure_policy, timeout)
        assert hook["rules"] == RULES


def test_explicit_flags_win_and_an_override_to_ignore_is_noted(tmp_path: Path) -> None:
    configs, err = render(tmp_path, [ivpol("a", timeout=20)], "--failure-policy", "Ignore", "--timeout-seconds", "5")
    assert {(h["failurePolicy"], h["timeoutSeconds"]) for h in hooks(configs)} == {("Ignore", 5)}
    assert "overrides policies that ask for failurePolicy Fail" in err


def test_match_constraints_resources_beyond_the_default_rules_are_added(tmp_path: Path) -> None:
    doc = ivpol("svc", apiGroups=["serving.knative.dev"], resources=["services"], operations=["CREATE", "DELETE"])
    for hook in hooks(render(tmp_path, [doc])[0]):
        extra = hook["rules"][len(RULES) :]
        assert extra == [
            {
                "apiGroups": ["serving.knative.dev"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["services"],
                "scope": "*",
            }
        ]


def test_broken_policy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    bad = ivpol("a")
    bad["spec"]["failurePolicy"] = "Sometimes"
    path.write_text(yaml.safe_dump(bad))
    out = io.StringIO()
    code = cli.run(["webhook-config", "--url", "https://sigward.example/a", "--policy", str(path)], out=out, err=out)
    assert code == 2 and "spec.failurePolicy" in out.getvalue()


def with_selectors(name: str, ns: dict[str, Any] | None = None, obj: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = ivpol(name)
    if ns is not None:
        doc["spec"]["matchConstraints"]["namespaceSelector"] = ns
    if obj is not None:
        doc["spec"]["matchConstraints"]["objectSelector"] = obj
    return doc


def routed(configs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    out = []
    for hook in configs[0]["webhooks"][1:]:
        sel = hook["namespaceSelector"]
        own = {**sel, "matchExpressions": sel["matchExpressions"][1:]}
        out.append((hook["clientConfig"]["url"].rpartition("/")[2], own, hook.get("objectSelector")))
    return out


def test_selector_policies_get_one_webhook_per_distinct_selector(tmp_path: Path) -> None:
    """Two policies with the same namespaceSelector share a webhook; an objectSelector is emitted on its own one;
    a policy without selectors stays on the plain webhook."""
    team = {"matchLabels": {"team": "a"}}
    web = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
    docs = [
        with_selectors("a", ns=team),
        with_selectors("b", ns=team),
        with_selectors("c", obj=web),
        with_selectors("d", ns=team, obj=web),
        ivpol("plain"),
    ]
    configs, err = render(tmp_path, docs)
    assert "3 namespaceSelector/objectSelector/matchConditions webhook(s) added" in err
    hooks_ = routed(configs)
    assert len(hooks_) == 3 and all(seg.startswith("sel-") for seg, _, _ in hooks_)
    assert sorted((json_key(ns), json_key(obj)) for _, ns, obj in hooks_) == sorted(
        [
            (json_key({"matchLabels": {"team": "a"}, "matchExpressions": []}), "null"),
            (json_key({"matchExpressions": []}), json_key(web)),
            (json_key({"matchLabels": {"team": "a"}, "matchExpressions": []}), json_key(web)),
        ]
    )
    assert configs[0]["webhooks"][0].get("objectSelector") is None  # the plain webhook is not narrowed
    assert routed(configs) == [(s, n, o) for s, n, o in routed([configs[1]])]  # validating carries the same


def json_key(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def test_selector_route_shared_with_a_cluster_policy_rule(tmp_path: Path) -> None:
    """An IVPOL namespaceSelector equal to a ClusterPolicy rule's gives one webhook, not two."""
    from sigward.admission.selectors import image_policy_route, policy_routes, rule_route
    from sigward.policy.loader import load_policy_text
    from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
    from tests.support.signing import new_key

    cpol = cluster_policy("cp", [key_verification(["*"], [keys_entry(new_key("p256").public_pem)])])
    cpol["spec"]["rules"][0]["match"] = {
        "any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": {"team": "a"}}}}]
    }
    loaded = load_policy_text(dump(cpol) + "---\n" + dump(with_selectors("iv", ns={"matchLabels": {"team": "a"}})), "p")
    (policy,) = loaded.policies
    (image_policy,) = loaded.image_policies
    cp_route, iv_route = rule_route(policy, policy.spec.rules[0]), image_policy_route(image_policy)
    assert cp_route is not None and iv_route is not None and cp_route.key == iv_route.key
    assert list(policy_routes(loaded.policies, loaded.image_policies)) == [cp_route.key]

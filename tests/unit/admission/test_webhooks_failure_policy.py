"""Per-webhook failurePolicy and timeoutSeconds, as Kyverno's webhook controller sets them
(pkg/controllers/webhook): a policy with webhookConfiguration.matchConditions gets its own ("fine-grained")
webhook carrying that policy's failurePolicy and timeout (raised from the 10 s default, never lowered, capped at
30); a webhook shared by several policies fails closed unless all of them say Ignore, with the largest timeout."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward import cli
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

KEY = new_key("p256").public_pem
PROD = [{"name": "prod", "expression": "request.namespace == 'prod'"}]
TEAM = {"team": "a"}


def doc(
    name: str,
    *,
    failure: str | None = None,
    timeout: int | None = None,
    wc_timeout: int | None = None,
    wc_failure: str | None = None,
    conditions: list[dict[str, str]] | None = None,
    selector: dict[str, str] | None = None,
) -> dict[str, Any]:
    d = cluster_policy(name, [key_verification(["*"], [keys_entry(KEY)], mutate_digest=False)], failure_policy=failure)
    if timeout is not None:
        d["spec"]["webhookTimeoutSeconds"] = timeout
    wc: dict[str, Any] = {}
    if conditions is not None:
        wc["matchConditions"] = conditions
    if wc_timeout is not None:
        wc["timeoutSeconds"] = wc_timeout
    if wc_failure is not None:
        wc["failurePolicy"] = wc_failure
    if wc:
        d["spec"]["webhookConfiguration"] = wc
    if selector is not None:
        d["spec"]["rules"][0]["match"] = {
            "any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": selector}}}]
        }
    return d


def render(tmp_path: Path, docs: list[dict[str, Any]], *flags: str) -> list[dict[str, Any]]:
    path = tmp_path / "p.yaml"
    path.write_text(dump(*docs))
    out, err = io.StringIO(), io.StringIO()
    args = ["webhook-config", "--url", "https://adm.example", "--token", "tok", "--policy", str(path), *flags]
    assert cli.run(args, out=out, err=err) == 0, err.getvalue()
    return [h for c in yaml.safe_load_all(out.getvalue()) for h in c["webhooks"]]


def settings(hooks: list[dict[str, Any]]) -> dict[str, set[tuple[str, int]]]:
    """(failurePolicy, timeoutSeconds) of the plain and of the routed webhooks (both configurations)."""
    out: dict[str, set[tuple[str, int]]] = {"plain": set(), "routed": set()}
    for h in hooks:
        kind = "routed" if "/sel-" in h["clientConfig"]["url"] else "plain"
        out[kind].add((h["failurePolicy"], h["timeoutSeconds"]))
    return out


GOLDEN: list[tuple[str, list[dict[str, Any]], set[tuple[str, int]], set[tuple[str, int]]]] = [
    # the plain webhook: Kyverno's shared webhook (default 10 s floor; Fail unless every policy says Ignore)
    ("defaults", [doc("a")], {("Fail", 10)}, set()),
    ("ignore below default", [doc("a", failure="Ignore", timeout=5)], {("Ignore", 10)}, set()),
    ("mixed plain", [doc("a", failure="Ignore", timeout=25), doc("b")], {("Fail", 25)}, set()),
    # a fine-grained webhook carries its own policy's values, not the others'
    (
        "fine-grained ignore",
        [doc("a", failure="Ignore", timeout=20, conditions=PROD), doc("b", timeout=12)],
        {("Fail", 20)},  # plain aggregates every policy (it serves them all without selector mode)
        {("Ignore", 20)},
    ),
    (
        "fine-grained fail beside ignore",
        [doc("a", conditions=PROD), doc("b", failure="Ignore")],
        {("Fail", 10)},
        {("Fail", 10)},
    ),
    (
        "webhookConfiguration values",
        [doc("a", wc_failure="Ignore", wc_timeout=15, conditions=PROD)],
        {("Ignore", 15)},
        {("Ignore", 15)},
    ),
    # same conditions, different failurePolicy: two webhooks (one per policy), each with its own values
    (
        "same conditions split by failurePolicy",
        [doc("a", conditions=PROD), doc("b", failure="Ignore", timeout=30, conditions=PROD)],
        {("Fail", 30)},
        {("Fail", 10), ("Ignore", 30)},
    ),
    # a selector webhook shared by two policies: Fail unless both Ignore, the larger timeout
    (
        "shared selector route",
        [doc("a", failure="Ignore", timeout=12, selector=TEAM), doc("b", failure="Ignore", timeout=18, selector=TEAM)],
        {("Ignore", 18)},
        {("Ignore", 18)},
    ),
    (
        "shared selector route one fail",
        [doc("a", failure="Ignore", timeout=12, selector=TEAM), doc("b", selector=TEAM)],
        {("Fail", 12)},
        {("Fail", 12)},
    ),
]


@pytest.mark.parametrize(("docs", "plain", "routed"), [(d, p, r) for _, d, p, r in GOLDEN], ids=[n for n, *_ in GOLDEN])
def test_webhook_failure_policy_and_timeout(
    tmp_path: Path, docs: list[dict[str, Any]], plain: set[tuple[str, int]], routed: set[tuple[str, int]]
) -> None:
    assert settings(render(tmp_path, docs)) == {"plain": plain, "routed": routed}


def test_same_conditions_different_failure_policy_never_share_a_webhook(tmp_path: Path) -> None:
    hooks = render(tmp_path, [doc("a", conditions=PROD), doc("b", failure="Ignore", conditions=PROD)])
    urls = {h["clientConfig"]["url"] for h in hooks if "/sel-" in h["clientConfig"]["url"]}
    assert len(urls) == 4  # two routes, mutating and validating each
    # the twin: equal settings share one
    hooks = render(tmp_path, [doc("a", conditions=PROD), doc("b", conditions=PROD)])
    assert len({h["clientConfig"]["url"] for h in hooks if "/sel-" in h["clientConfig"]["url"]}) == 2


def test_explicit_flags_win_on_routed_webhooks_too(tmp_path: Path) -> None:
    hooks = render(
        tmp_path,
        [doc("a", failure="Fail", timeout=20, conditions=PROD)],
        "--failure-policy",
        "Ignore",
        "--timeout-seconds",
        "3",
    )
    assert settings(hooks) == {"plain": {("Ignore", 3)}, "routed": {("Ignore", 3)}}

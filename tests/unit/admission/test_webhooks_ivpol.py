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

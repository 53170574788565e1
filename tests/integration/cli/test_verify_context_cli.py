"""``sigward verify`` with rule context outside admission: a ConfigMap shipped beside the policy supplies the key
(right key passes, another key fails, a missing ConfigMap is an error, never an allow), and a rule that reads the
admission request is reported as decided at admission only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli.test_config_fail_closed_cli import Loopback, _env, _results, loopback, sigward
from tests.support.kubeapi import configmap
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

pytestmark = pytest.mark.registry
__all__ = ["loopback"]  # the module-scoped registry fixture, shared


def _policy(pattern: str, key: str, **rule: Any) -> dict[str, Any]:
    doc = cluster_policy("ctx", [key_verification([pattern], [keys_entry(key)], mutate_digest=False)])
    doc["spec"]["rules"][0].update(rule)
    return doc


CM = [{"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}]


@pytest.mark.parametrize(
    ("case", "shipped", "status", "verdict"),
    [
        ("right key", new_key("p256").public_pem, 0, "pass"),
        ("another key", new_key("p256", slot=5).public_pem, 1, "fail"),
        ("no configmap", None, 3, "error"),
    ],
)
def test_verify_with_shipped_configmap(
    loopback: Loopback, tmp_path: Path, case: str, shipped: str | None, status: int, verdict: str
) -> None:
    docs = [_policy(f"127.0.0.1:{loopback.port}/spell/*", "{{ keys.data.org }}", context=CM)]
    if shipped is not None:
        docs.append(configmap("default", "keys", {"org": shipped}))
    (tmp_path / "policy.yaml").write_text(dump(*docs))
    image = f"127.0.0.1:{loopback.port}/{loopback.signed_path}"
    proc = sigward(["verify", "--json", "--policy", str(tmp_path), image], _env(loopback, SIGWARD_CLUSTER="none"))
    results = _results(proc)
    assert [r["verdict"] for r in results] == [verdict], proc.stderr
    assert proc.returncode == status, proc.stderr
    if verdict == "error":
        assert "configmap default/keys" in results[0]["message"]


def test_request_reading_rule_is_admission_only(loopback: Loopback, tmp_path: Path) -> None:
    doc = _policy(f"127.0.0.1:{loopback.port}/spell/*", "{{ request.object.metadata.annotations.key }}")
    (tmp_path / "policy.yaml").write_text(dump(doc))
    image = f"127.0.0.1:{loopback.port}/{loopback.unsigned_path}"
    proc = sigward(["verify", "--json", "--policy", str(tmp_path), image], _env(loopback, SIGWARD_CLUSTER="none"))
    results = _results(proc)
    assert results[0]["verdict"] == "skip"
    assert "evaluated at admission only" in results[0]["message"]
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("case", "key", "context", "data"),
    [
        ("null key", "{{ v.present }}", [{"name": "v", "variable": {"value": {"present": None}}}], None),
        ("empty string key", "{{ keys.data.org }}", CM, {"org": ""}),
        ("missing configmap field", "{{ keys.data.org }}", CM, {"other": new_key("p256").public_pem}),
    ],
)
def test_empty_key_after_substitution_is_an_error_never_a_pass(
    loopback: Loopback, tmp_path: Path, case: str, key: str, context: list[Any], data: dict[str, str] | None
) -> None:
    """Regression (null after substitution): the signed image is not passed by a rule whose key came out empty."""
    docs = [_policy(f"127.0.0.1:{loopback.port}/spell/*", key, context=context)]
    if data is not None:
        docs.append(configmap("default", "keys", data))
    (tmp_path / "policy.yaml").write_text(dump(*docs))
    image = f"127.0.0.1:{loopback.port}/{loopback.signed_path}"
    proc = sigward(["verify", "--json", "--policy", str(tmp_path), image], _env(loopback, SIGWARD_CLUSTER="none"))
    results = _results(proc)
    assert [r["verdict"] for r in results] == ["error"], proc.stderr
    assert proc.returncode == 3, proc.stderr
    assert "failed to substitute variables" in results[0]["message"]

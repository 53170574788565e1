"""``sigward verify --output text|json|sarif|policyreport`` as a process against the real local registry: the reports
validate against their upstream schemas and carry one result per (image, rule); ``--json`` stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.report_schemas import errors, policy_report_validator, sarif_validator
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Setup:
    policy: Path
    signed: str
    unsigned: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def setup(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    key = new_key("p256", slot=7)
    signed_digest = registry.push_image("reports/signed", tag="v1")
    attach_signatures(registry, "reports/signed", signed_digest, [signed_layer(key, image_digest=signed_digest)])
    registry.push_image("reports/unsigned", tag="v1")
    policy = tmp_path_factory.mktemp("reports") / "policy.yaml"
    policy.write_text(
        dump(
            cluster_policy(
                "require-signed", [key_verification([f"{registry.host}/reports/*"], [keys_entry(key.public_pem)])]
            )
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGWARD_")}
    env.update(
        {
            "SIGWARD_INSECURE_REGISTRIES": registry.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
            "SIGWARD_TRUSTED_ROOT": "",
            "SIGWARD_TUF_OFFLINE": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    return Setup(policy, f"{registry.host}/reports/signed:v1", f"{registry.host}/reports/unsigned:v1", env)


def verify(setup: Setup, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", "verify", "--policy", str(setup.policy), *args],
        cwd=REPO,
        env=setup.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sarif_report(setup: Setup) -> None:
    proc = verify(setup, "--output", "sarif", setup.signed, setup.unsigned, "docker.io/library/nginx:1")
    assert proc.returncode == 1, proc.stderr  # the unsigned image fails
    doc = json.loads(proc.stdout)
    assert errors(sarif_validator(), doc) == []
    results = doc["runs"][0]["results"]
    assert [(r["properties"]["image"], r["kind"], r["level"]) for r in results] == [
        (setup.signed, "pass", "none"),
        (setup.unsigned, "fail", "error"),
        ("docker.io/library/nginx:1", "notApplicable", "none"),
    ]
    assert results[1]["properties"]["digest"].startswith("sha256:")


def test_policy_report(setup: Setup) -> None:
    proc = verify(setup, "-o", "policyreport", setup.signed, setup.unsigned)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert errors(policy_report_validator(), doc) == []
    assert doc["summary"] == {"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    assert [(r["policy"], r["result"]) for r in doc["results"]] == [
        ("require-signed", "pass"),
        ("require-signed", "fail"),
    ]


@pytest.mark.parametrize("args", [["--json"], ["--output", "json"], ["--json", "--output", "json"]])
def test_json_stays(setup: Setup, args: list[str]) -> None:
    proc = verify(setup, *args, setup.signed)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert (result["image"], result["verdict"], result["policy"]) == (setup.signed, "pass", "require-signed")


def test_text_default(setup: Setup) -> None:
    proc = verify(setup, setup.unsigned)
    assert proc.returncode == 1
    assert proc.stdout.startswith("FAIL ") and setup.unsigned in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--json", "--output", "sarif"], "disagree"), (["--output", "xml"], "invalid choice")],
)
def test_conflicting_or_unknown_format_exit_2(setup: Setup, args: list[str], needle: str) -> None:
    proc = verify(setup, *args, setup.signed)
    assert proc.returncode == 2
    assert needle in proc.stderr and proc.stdout == ""

"""`sigward check-policy` as a process: exit 0 for valid policies, 2 with every problem and its YAML path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

REPO = Path(__file__).resolve().parents[3]


def check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", "check-policy", *map(str, paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_invalid_and_skipped_documents(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        dump(cluster_policy("good", [key_verification(["ghcr.io/*"], [keys_entry(new_key().public_pem)])]))
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"
    )
    proc = check(good)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: " in proc.stdout and "ClusterPolicy good (1 verifyImages rules)" in proc.stdout
    assert "ConfigMap" in proc.stdout  # skipped with a note

    bad = tmp_path / "bad.yaml"
    doc = cluster_policy("bad", [key_verification(["ghcr.io/*"], [keys_entry(new_key().public_pem)])])
    entry = doc["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]
    entry["keys"]["secret"] = {"name": "cosign", "namespace": "default"}
    doc["spec"]["rules"][0]["verifyImages"][0]["attestors"].append({"entries": []})
    bad.write_text(dump(doc))
    doc["spec"]["rules"][0]["verifyImages"][0]["bogusField"] = True
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(dump(doc))
    proc = check(good, bad, unknown)
    assert proc.returncode == 2
    out = proc.stdout
    assert "ok: " in out  # the good file is still reported
    assert "bad.yaml#doc1: spec.rules[0].verifyImages[0].attestors[0].entries[0].keys: publicKeys, secret" in out
    assert "bad.yaml#doc1: spec.rules[0].verifyImages[0].attestors[1]" in out
    assert 'unknown.yaml#doc1: spec.rules[0].verifyImages[0]: unknown field "bogusField"' in out
    assert "Traceback" not in proc.stderr

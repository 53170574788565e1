"""GitHub artifact attestations through `sigward verify` (a CLI process): real GitHub-instance TSA-only bundles and a
public-good bundle of the same prober, served from the real docker-registry as OCI referrers of an image pinned to
the subject digest, with the roots of the same day from files (SIGWARD_TRUSTED_ROOT = public-good,
SIGWARD_GITHUB_TRUSTED_ROOT = gh's JSONL). The policy decides which roots a bundle may verify against: none but the
public-good one without the ``sigward.dev/trusted-roots`` annotation (as in Kyverno), the named ones with it, or the
chains the policy pastes (keyless.roots + ctlog.tsaCertChain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.github_attestations import (
    GH_1,
    GH_2,
    PG,
    SAN,
    SLSA_V1,
    Vector,
    altered_payload,
    altered_token,
    bundle_doc,
    bundle_entry,
    github_policy_pems,
    no_timestamps,
    root_path,
    serve,
)
from tests.support.policies import cluster_policy, dump
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]
BOTH = "public-good,github"


def run_cli(registry: LocalRegistry, tmp: Path, *args: str, policy: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp / f"p{len(list(tmp.iterdir()))}.yaml"
    path.write_text(dump(policy))
    env = {
        **os.environ,
        "SIGWARD_INSECURE_REGISTRIES": registry.host,
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        "SIGWARD_TRUSTED_ROOT": str(root_path("public-good.json")),
        "SIGWARD_GITHUB_TRUSTED_ROOT": str(root_path("gh-attestation-trusted-root-2025-11.jsonl")),
    }
    where = [str(path)] if args[0] == "check-policy" else ["--policy", str(path)]
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", *args, *where],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def policy(registry: LocalRegistry, roots: str | None, **entry: Any) -> dict[str, Any]:
    doc = cluster_policy("github-attestations", [bundle_entry(f"{registry.host}/*", **entry)])
    if roots is not None:
        doc["metadata"]["annotations"] = {"sigward.dev/trusted-roots": roots}
    return doc


def tsa_policy_roots() -> dict[str, Any]:
    fulcio, tsa = github_policy_pems()
    return {
        "roots": fulcio,
        "rekor": {"url": "https://rekor.sigstore.dev", "ignoreTlog": True},
        "ctlog": {"ignoreSCT": True, "tsaCertChain": tsa},
    }


@dataclass(frozen=True)
class Case:
    name: str
    vector: Vector
    roots: str | None = BOTH
    entry: dict[str, Any] = field(default_factory=dict)
    mutate: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d
    digest: str = ""  # the image's digest when it is not the attested subject
    error: str | None = None  # None: passes


CASES = [
    Case("github-instance-1", GH_1),
    Case("github-instance-2", GH_2),
    Case("public-good", PG),
    Case("github-only-root", GH_1, roots="github"),
    Case("slsa-attestation", GH_1, entry={"predicate_type": SLSA_V1}),
    Case(
        "extensions",
        GH_2,
        entry={
            "extensions": {
                "githubWorkflowRepository": "actions/attest-build-provenance",
                "githubWorkflowTrigger": "schedule",
            }
        },
    ),
    Case("policy-pasted-github-chains", GH_1, roots=None, entry={"keyless_extra": tsa_policy_roots()}),
    # negatives: a root the policy did not allow is never used
    Case("github-bundle-without-annotation", GH_1, roots=None, error="no transparency log entry"),
    Case("github-bundle-public-good-only", GH_1, roots="public-good", error="no transparency log entry"),
    Case("public-good-bundle-github-only", PG, roots="github", error="no verified signing time"),
    Case("token-removed", GH_1, mutate=no_timestamps, error="no verified signing time"),
    Case("token-altered", GH_1, mutate=altered_token, error="no verified signing time"),
    Case("payload-altered", GH_1, mutate=altered_payload, error="signature"),
    Case("wrong-san", GH_1, entry={"subject": SAN.replace("refs/heads/main", "refs/heads/other")}, error="subject"),
    Case("wrong-issuer", GH_1, entry={"issuer": "https://accounts.google.com"}, error="issuer"),
    Case(
        "wrong-extension",
        GH_1,
        entry={"extensions": {"githubWorkflowRepository": "other/repo"}},
        error="githubWorkflowRepository",
    ),
    Case("wrong-digest", GH_1, digest="sha256:" + "ab" * 32, error="subject"),
    Case("wrong-predicate-type", GH_1, entry={"predicate_type": "https://spdx.dev/Document"}, error="no attestations"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_github_attestation_verify_cli(registry: LocalRegistry, tmp_path: Path, case: Case) -> None:
    bundle = json.dumps(case.mutate(bundle_doc(case.vector))).encode()
    image = serve(registry, f"gh/{case.name}", case.digest or case.vector.digest, bundle)
    proc = run_cli(registry, tmp_path, "verify", "--json", image, policy=policy(registry, case.roots, **case.entry))
    assert proc.stdout, proc.stderr
    (row,) = json.loads(proc.stdout)["results"]
    if case.error is None:
        assert (proc.returncode, row["verdict"]) == (0, "pass"), row["message"]
        return
    assert (proc.returncode, row["verdict"]) == (1, "fail"), row
    assert case.error in row["message"], row["message"]
    assert "Traceback" not in proc.stderr


def test_unknown_root_name_is_refused_at_load(registry: LocalRegistry, tmp_path: Path) -> None:
    proc = run_cli(registry, tmp_path, "check-policy", policy=policy(registry, "public-good,gitlab"))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert 'metadata.annotations["sigward.dev/trusted-roots"]' in proc.stdout + proc.stderr
    assert "unknown trusted root 'gitlab'" in proc.stdout + proc.stderr


def test_check_policy_names_the_extension_and_what_kyverno_does(registry: LocalRegistry, tmp_path: Path) -> None:
    proc = run_cli(registry, tmp_path, "check-policy", policy=policy(registry, BOTH))
    assert proc.returncode == 0, proc.stderr
    assert "sigward extension" in proc.stdout + proc.stderr
    proc = run_cli(registry, tmp_path, "check-policy", policy=policy(registry, None, keyless_extra=tsa_policy_roots()))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "keyless.roots and ctlog.tsaCertChain with type SigstoreBundle" in out
    assert "Kyverno's ClusterPolicy SigstoreBundle path takes the public-good TUF root" in out

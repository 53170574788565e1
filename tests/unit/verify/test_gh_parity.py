"""Parity with `gh attestation verify oci://IMAGE …`: each gh flag set is written as the sigward ClusterPolicy the
README gives for it, and both must reach the outcome gh reaches on the real vectors (bundles as the image's referrer
bundles, both roots of the same day). gh enforces, per its printed "policy criteria":

- ``-R OWNER/REPO``: SAN matches ``(?i)^https://github.com/OWNER/REPO/`` and Source Repository URI (.1.12) is
  ``https://github.com/OWNER/REPO``; ``--owner OWNER``: SAN ``(?i)^https://github.com/OWNER/`` and Source Repository
  Owner URI (.1.16) ``https://github.com/OWNER``;
- ``--signer-workflow OWNER/REPO/.github/workflows/F.yml``: SAN matches ``^https://github.com/`` + that path (and
  ``-R`` still pins the source repository);
- ``--predicate-type`` (default ``https://slsa.dev/provenance/v1``); OIDC issuer
  ``https://token.actions.githubusercontent.com``; trusted roots: public-good and GitHub's (gh picks per bundle).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from sigward.deadline import Deadline
from sigward.policy.loader import load_policy_text
from sigward.verify.bundles import BundleLayer
from sigward.verify.engine import Verifier
from sigward.verify.trust import parse_trusted_root
from tests.support.github_attestations import ACTIONS, GH_1, GH_2, PG, REKOR, SLSA_V1, Vector, bundle_doc, root_path
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump

HOST = "registry.example"


def gh_policy(repo: str = "", owner: str = "", signer_workflow: str = "", predicate_type: str = SLSA_V1) -> str:
    """The ClusterPolicy equivalent to ``gh attestation verify -R repo | --owner owner [--signer-workflow …]
    [--predicate-type …]`` (README "Parity with gh")."""
    extensions: dict[str, str] = {}
    if repo:
        extensions["sourceRepositoryURI"] = f"https://github.com/{repo}"
        san = f"(?i)^https://github\\.com/{re.escape(repo)}/"
    else:
        extensions["sourceRepositoryOwnerURI"] = f"https://github.com/{owner}"
        san = f"(?i)^https://github\\.com/{re.escape(owner)}/"
    if signer_workflow:
        san = f"^https://github\\.com/{re.escape(signer_workflow)}"
    keyless = {"subjectRegExp": san, "issuer": ACTIONS, "rekor": {"url": REKOR}, "additionalExtensions": extensions}
    iv: dict[str, Any] = {
        "imageReferences": [f"{HOST}/*"],
        "type": "SigstoreBundle",
        "attestations": [{"type": predicate_type, "attestors": [{"entries": [{"keyless": keyless}]}]}],
    }
    doc = cluster_policy("gh-parity", [iv])
    doc["metadata"]["annotations"] = {"sigward.dev/trusted-roots": "public-good,github"}
    return dump(doc)


@dataclass(frozen=True)
class Case:
    gh: str  # the gh command line this row stands for
    vector: Vector
    policy: str
    passes: bool


WORKFLOW = "actions/attest-build-provenance/.github/workflows/prober.yml"
CASES = [
    Case("-R actions/attest-build-provenance", GH_1, gh_policy(repo="actions/attest-build-provenance"), True),
    Case("-R actions/attest-build-provenance", GH_2, gh_policy(repo="actions/attest-build-provenance"), True),
    Case("-R actions/attest-build-provenance", PG, gh_policy(repo="actions/attest-build-provenance"), True),
    Case("--owner actions", GH_1, gh_policy(owner="actions"), True),
    Case("--owner actions", PG, gh_policy(owner="actions"), True),
    Case("--owner github", GH_1, gh_policy(owner="github"), False),
    Case("-R actions/toolkit", GH_1, gh_policy(repo="actions/toolkit"), False),
    Case("-R actions/attest-build-provenance-x", PG, gh_policy(repo="actions/attest-build-provenance-x"), False),
    Case(
        f"-R actions/attest-build-provenance --signer-workflow {WORKFLOW}",
        GH_1,
        gh_policy(repo="actions/attest-build-provenance", signer_workflow=WORKFLOW),
        True,
    ),
    Case(
        "-R actions/attest-build-provenance --signer-workflow …/release.yml",
        PG,
        gh_policy(repo="actions/attest-build-provenance", signer_workflow=WORKFLOW.replace("prober", "release")),
        False,
    ),
    Case(
        "-R actions/attest-build-provenance --predicate-type https://spdx.dev/Document",
        GH_1,
        gh_policy(repo="actions/attest-build-provenance", predicate_type="https://spdx.dev/Document"),
        False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.vector.path.split('/')[0]}: gh {c.gh}")
def test_sigward_agrees_with_gh(case: Case) -> None:
    source = MemorySignatureSource()
    source.add_bundles(
        f"{HOST}/app", case.vector.digest, (BundleLayer(raw=json.dumps(bundle_doc(case.vector)).encode()),)
    )
    pg = parse_trusted_root(root_path("public-good.json").read_bytes(), source="public-good")
    gh = parse_trusted_root(root_path("github.json").read_bytes(), source="github")
    verifier = Verifier(source=source, trusted_root=lambda: pg, github_root=lambda: gh)
    policies = load_policy_text(case.policy, "gh.yaml").policies
    (verdict,) = verifier.verify_images([f"{HOST}/app@{case.vector.digest}"], policies, deadline=Deadline.after(30))
    assert verdict.verdict.value == ("pass" if case.passes else "fail"), verdict.message

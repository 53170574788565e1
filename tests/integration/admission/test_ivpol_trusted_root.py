"""ImageValidatingPolicy ``cosign.trustedRoot`` through admission (the functions-framework target) and the real
registry: GitHub's TSA-only artifact attestations (private repositories) verify with GitHub's root written into the
policy, and fail with public-good's; a public-good bundle verifies with public-good's root inline. The inline root is
the ONLY root of its attestor: SIGWARD_TRUSTED_ROOT / SIGWARD_GITHUB_TRUSTED_ROOT point at the other root in every
case, so a bundle that verified through them would show here as a wrong allow."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.support.admission import pod, pod_request, review
from tests.support.github_attestations import (
    ACTIONS,
    GH_1,
    GH_2,
    PG,
    SAN,
    SLSA_V1,
    Vector,
    altered_payload,
    bundle_doc,
    no_timestamps,
    root_path,
    serve,
)
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.registry

SAN_RE = r"^https://github\.com/actions/attest-build-provenance/\.github/workflows/.*@refs/heads/main$"
# Kyverno's (sigstore-go's) words for a missed evidence threshold, appended to the validation's message.
TLOG = "failed to verify log inclusion: not enough verified log entries from transparency log: 0 < 1"
TSA = "threshold not met for verified signed timestamps: 0 < 1"
CHECK = "images.containers.map(i, verifyAttestationSignatures(i, attestations.prov, [attestors.gh])).all(n, n > 0)"


def root_text(name: str) -> str:
    return root_path(name).read_text()


def ivpol(host: str, root: str, *, identity: dict[str, str] | None = None, ignore_tlog: bool = True) -> dict[str, Any]:
    """The demos/private-sigstore form: GitHub's root inline, tlog and SCT checks off, issuer + subjectRegExp."""
    cosign: dict[str, Any] = {
        "trustedRoot": {"value": root},
        "keyless": {"identities": [identity or {"issuer": ACTIONS, "subjectRegExp": SAN_RE}]},
    }
    if ignore_tlog:
        cosign["ctlog"] = {"insecureIgnoreTlog": True, "insecureIgnoreSCT": True}
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "gh-private"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                ]
            },
            "matchImageReferences": [{"glob": f"{host}/ivroot/*"}],
            "attestors": [{"name": "gh", "cosign": cosign}],
            "attestations": [{"name": "prov", "intoto": {"type": SLSA_V1}}],
            "validations": [{"expression": CHECK, "message": "attestation not verified"}],
        },
    }


def other_roots_env(inline: str) -> dict[str, str]:
    """Point the process-wide roots at the root the policy does NOT name."""
    other = "public-good.json" if inline == "github.json" else "github.json"
    return {"SIGWARD_TRUSTED_ROOT": str(root_path(other)), "SIGWARD_GITHUB_TRUSTED_ROOT": str(root_path(other))}


@dataclass(frozen=True)
class Case:
    name: str
    vector: Vector
    root: str  # file under trusted-roots/ written inline
    allowed: bool
    mutate: Callable[[Any], Any] | None = None
    identity: dict[str, str] = field(default_factory=dict)
    ignore_tlog: bool = True
    kyverno: str = ""  # the missed threshold the denial names


CASES = [
    Case("github-bundle-github-root", GH_1, "github.json", True),
    Case("github-bundle-2-github-root", GH_2, "github.json", True),
    Case("github-bundle-gh-jsonl-roots", GH_1, "gh-attestation-trusted-root-2025-11.jsonl", True),
    Case("public-good-bundle-public-good-root", PG, "public-good.json", True, ignore_tlog=False),
    Case("public-good-bundle-gh-jsonl-roots", PG, "gh-attestation-trusted-root-2025-11.jsonl", True, ignore_tlog=False),
    # Negative twins: the other instance's root, evidence removed or altered, another identity.
    Case(
        "github-bundle-public-good-root",
        GH_1,
        "public-good.json",
        False,
        ignore_tlog=False,
        kyverno=TLOG,
    ),
    Case("github-bundle-public-good-root-tlog-off", GH_1, "public-good.json", False, kyverno=TSA),
    Case("public-good-bundle-github-root", PG, "github.json", False, ignore_tlog=False),
    Case("github-bundle-token-removed", GH_1, "github.json", False, no_timestamps, kyverno=TSA),
    Case("github-bundle-payload-altered", GH_1, "github.json", False, altered_payload),
    Case(
        "github-bundle-wrong-subject",
        GH_1,
        "github.json",
        False,
        identity={"issuer": ACTIONS, "subjectRegExp": r"^https://github\.com/someone/else/.*$"},
    ),
    Case(
        "github-bundle-wrong-issuer",
        GH_1,
        "github.json",
        False,
        identity={"issuer": "https://accounts.google.com", "subject": SAN},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ivpol_trusted_root(
    case: Case, admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, registry: LocalRegistry
) -> None:
    doc = bundle_doc(case.vector)
    if case.mutate is not None:
        doc = case.mutate(doc)
    image = serve(registry, f"ivroot/{case.name}", case.vector.digest, json.dumps(doc).encode())
    policy = ivpol(adm_images.host, root_text(case.root), identity=case.identity or None, ignore_tlog=case.ignore_tlog)
    env = admission_env(policy, extra_env=other_roots_env(case.root))
    resp = env.post("/mutate", review(pod_request(pod(image))))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    response = resp.get_json()["response"]
    assert response["allowed"] is case.allowed, response
    if not case.allowed:
        message = response["status"]["message"]
        # Kyverno's IVPOL wording: the validation's message, and the missed evidence threshold in sigstore-go's words
        # (the check's own reason is in tests/integration/verify/test_ivpol_inline_root.py)
        suffix = f": {case.kyverno}" if case.kyverno else ""
        assert message == "Policy gh-private failed: attestation not verified" + suffix, message

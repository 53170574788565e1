"""Attestations through the Verifier (the code path of `sigward verify` and admission): `.att` DSSE layers signed by
the tests' keys, Kyverno conditions as a table (operators, wildcards, durations, a scan older than 24 h, missing
keys), attestor `count`, subject binding, `validate.deny`, and the real cosign keyless attestation bundle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sigward.deadline import Deadline
from sigward.policy.loader import load_policy_text
from sigward.verify.bundles import BundleLayer
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.results import Verdict
from sigward.verify.trust import load_trusted_root
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, keys_entry
from tests.support.signing import SignedLayer, attestation_layer, in_toto_statement, new_key, signed_layer
from tests.support.vectors import require_vectors

REPO = "registry.test/app"
IMAGE = f"{REPO}:v1"
DIGEST = "sha256:" + "7" * 64
OTHER = "sha256:" + "8" * 64
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
KEY = new_key("p256", slot=60)


def layer(s: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))


def source_with(*attestations: SignedLayer, signed: bool = True) -> MemorySignatureSource:
    source = MemorySignatureSource()
    source.add_image(IMAGE, DIGEST)
    if signed:
        source.add_signatures(REPO, DIGEST, (layer(signed_layer(KEY, image_digest=DIGEST)),))
    source.add_attestations(REPO, DIGEST, tuple(layer(a) for a in attestations))
    return source


def verify(source: MemorySignatureSource, iv: dict[str, Any]) -> tuple[Verdict, str]:
    doc = cluster_policy("p", [{"imageReferences": ["registry.test/*"], **iv}])
    policies = load_policy_text(dump(doc), "p.yaml").policies
    verifier = Verifier(source=source, clock=lambda: NOW)
    (result,) = verifier.verify_images([IMAGE], policies, deadline=Deadline.after(5))
    return result.verdict, result.message


def slsa(
    build_type: str = "https://github.com/slsa-framework/slsa-github-generator/container@v1", **extra: Any
) -> SignedLayer:
    predicate = {
        "buildDefinition": {"buildType": build_type, **extra},
        "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
    }
    return attestation_layer(KEY, in_toto_statement(DIGEST, SLSA, predicate))


def vuln(finished: datetime, critical: int = 0) -> SignedLayer:
    predicate = {
        "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50", "result": {"critical": critical}},
        "metadata": {
            "scanStartedOn": (finished - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "scanFinishedOn": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    return attestation_layer(KEY, in_toto_statement(DIGEST, VULN, predicate))


def attestation(ptype: str, *conditions: dict[str, Any], any_: bool = False) -> dict[str, Any]:
    block = {"any" if any_ else "all": list(conditions)}
    return {"type": ptype, "attestors": [{"entries": [keys_entry(KEY.public_pem)]}], "conditions": [block]}


@dataclass(frozen=True)
class Case:
    name: str
    attestations: tuple[SignedLayer, ...]
    condition: dict[str, Any]
    ptype: str = SLSA
    expected: Verdict = Verdict.PASS
    message: str = ""


BT = "{{ buildDefinition.buildType }}"
CASES = [
    Case(
        "equals",
        (slsa(),),
        {
            "key": BT,
            "operator": "Equals",
            "value": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
        },
    ),
    Case(
        "equals-wildcard", (slsa(),), {"key": BT, "operator": "Equals", "value": "https://github.com/slsa-framework/*"}
    ),
    Case(
        "equals-fails",
        (slsa("https://evil.example/build"),),
        {"key": BT, "operator": "Equals", "value": "https://github.com/*"},
        expected=Verdict.FAIL,
        message="attestation checks failed for registry.test/app:v1 and predicate https://slsa.dev/provenance/v1",
    ),
    Case("not-equals", (slsa(),), {"key": BT, "operator": "NotEquals", "value": "https://evil.example/*"}),
    Case(
        "in-list",
        (slsa(),),
        {"key": "{{ runDetails.builder.id }}", "operator": "AnyIn", "value": ["https://github.com/actions/*", "x"]},
    ),
    Case("not-in", (slsa(),), {"key": "{{ runDetails.builder.id }}", "operator": "AnyNotIn", "value": ["x", "y"]}),
    Case("all-in-fails", (slsa(),), {"key": ["a", "b"], "operator": "AllIn", "value": ["a"]}, expected=Verdict.FAIL),
    Case(
        "fresh-scan",
        (vuln(NOW - timedelta(hours=23)),),
        {
            "key": "{{ time_since('','{{ metadata.scanFinishedOn }}','') }}",
            "operator": "LessThanOrEquals",
            "value": "24h",
        },
        ptype=VULN,
    ),
    Case(
        "stale-scan",
        (vuln(NOW - timedelta(hours=25)),),
        {
            "key": "{{ time_since('','{{ metadata.scanFinishedOn }}','') }}",
            "operator": "LessThanOrEquals",
            "value": "24h",
        },
        ptype=VULN,
        expected=Verdict.FAIL,
    ),
    Case(
        "no-criticals",
        (vuln(NOW, critical=0),),
        {"key": "{{ scanner.result.critical }}", "operator": "LessThan", "value": 1},
        ptype=VULN,
    ),
    Case(
        "criticals",
        (vuln(NOW, critical=3),),
        {"key": "{{ scanner.result.critical }}", "operator": "LessThan", "value": 1},
        ptype=VULN,
        expected=Verdict.FAIL,
    ),
    # a key missing from the predicate never lets a condition pass by accident (Kyverno errors on it)
    Case(
        "missing-key",
        (slsa(),),
        {"key": "{{ attestation.predicate.buildType }}", "operator": "NotEquals", "value": "x"},
        expected=Verdict.FAIL,
    ),
    Case(
        "wrong-predicate-type",
        (slsa(),),
        {"key": "a", "operator": "Equals", "value": "a"},
        ptype=VULN,
        expected=Verdict.FAIL,
        message="attestions not found for predicate type https://cosign.sigstore.dev/attestation/vuln/v1",
    ),
    Case(
        "subject-is-another-image",
        (attestation_layer(KEY, in_toto_statement(OTHER, SLSA, {})),),
        {"key": "a", "operator": "Equals", "value": "a"},
        expected=Verdict.FAIL,
        message="does not name the image digest",
    ),
    Case(
        "signed-by-another-key",
        (attestation_layer(new_key("p256", slot=61), in_toto_statement(DIGEST, SLSA, {})),),
        {"key": "a", "operator": "Equals", "value": "a"},
        expected=Verdict.FAIL,
        message="invalid DSSE signature",
    ),
    Case(
        "every-statement-must-pass",
        (slsa(), slsa("https://evil.example/build")),
        {"key": BT, "operator": "Equals", "value": "https://github.com/*"},
        expected=Verdict.FAIL,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attestation_conditions(case: Case) -> None:
    verdict, message = verify(
        source_with(*case.attestations), {"attestations": [attestation(case.ptype, case.condition)]}
    )
    assert verdict == case.expected, message
    assert case.message in message
    if verdict == Verdict.PASS:
        assert message.startswith("verified image attestations for")


def test_attestors_and_attestations_together() -> None:
    iv = {
        "attestors": [{"entries": [keys_entry(KEY.public_pem)]}],
        "attestations": [attestation(SLSA, {"key": BT, "operator": "Equals", "value": "https://github.com/*"})],
    }
    assert verify(source_with(slsa()), iv)[0] == Verdict.PASS
    # unsigned image: the attestors fail first
    verdict, message = verify(source_with(slsa(), signed=False), iv)
    assert verdict == Verdict.FAIL and "no signatures found" in message


def test_validate_deny() -> None:
    deny_tag = {
        "validate": {
            "message": "latest is not allowed",
            "deny": {"conditions": {"any": [{"key": "{{ image.tag }}", "operator": "Equals", "value": "v1"}]}},
        }
    }
    iv = {"attestors": [{"entries": [keys_entry(KEY.public_pem)]}], **deny_tag}
    verdict, message = verify(source_with(), iv)
    assert verdict == Verdict.FAIL and "latest is not allowed" in message
    allow = {
        "validate": {
            "deny": {"conditions": {"any": [{"key": "{{ image.tag }}", "operator": "Equals", "value": "latest"}]}}
        }
    }
    assert verify(source_with(), {"attestors": [{"entries": [keys_entry(KEY.public_pem)]}], **allow})[0] == Verdict.PASS


def test_cosign_keyless_attestation_bundle() -> None:
    """cosign-testdata/oci-attestation.sigstore.json: a v0.3 DSSE bundle by cody@soyland.com (GitHub OAuth issuer)
    about 732112270d…, verified with trusted_root_pgi.json through the keyless attestation path."""
    folder = require_vectors("cosign-testdata")
    raw = (folder / "oci-attestation.sigstore.json").read_bytes()
    digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
    source = MemorySignatureSource()
    source.add_image(IMAGE, digest)
    source.add_bundles(
        REPO, digest, (BundleLayer(raw=raw, predicate_type="https://cosign.sigstore.dev/attestation/v1"),)
    )
    root = load_trusted_root(str(folder / "trusted_root_pgi.json"))

    def run(subject: str, issuer: str = "https://github.com/login/oauth") -> tuple[Verdict, str]:
        keyless = {"subject": subject, "issuer": issuer, "rekor": {"url": "https://rekor.sigstore.dev"}}
        iv = {
            "attestations": [
                {
                    "type": "https://cosign.sigstore.dev/attestation/v1",
                    "attestors": [{"entries": [{"keyless": keyless}]}],
                    "conditions": [{"all": [{"key": "{{ Data }}", "operator": "NotEquals", "value": ""}]}],
                }
            ]
        }
        doc = cluster_policy("p", [{"imageReferences": ["registry.test/*"], **iv}])
        verifier = Verifier(source=source, trusted_root=lambda: root)
        (result,) = verifier.verify_images(
            [IMAGE], load_policy_text(dump(doc), "p.yaml").policies, deadline=Deadline.after(10)
        )
        return result.verdict, result.message

    verdict, message = run("cody@soyland.com")
    assert verdict == Verdict.PASS, message
    verdict, message = run("someone@else.com")
    assert verdict == Verdict.FAIL and "subject mismatch" in message
    verdict, message = run("cody@soyland.com", issuer="https://accounts.google.com")
    assert verdict == Verdict.FAIL and "issuer mismatch" in message

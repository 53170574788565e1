"""Side by side: ClusterPolicy verifyImages scenarios of the suite and their ImageValidatingPolicy equivalents give
the same verdict (and the same digest pin) on the same images in the real local registry, through the admission
function. One table: key signature, wrong key, unsigned, attestation present/missing, verifyDigest + required on the
validate path, mutateDigest pinning; keyless identities (pass, wrong subject, wrong issuer, regexp) on a real
public-good GitHub attestation bundle."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.admission.conftest import AdmissionEnv
from tests.integration.admission.test_ivpol_trusted_root import SAN_RE
from tests.support.admission import decode_patch, pod, pod_request, review
from tests.support.github_attestations import ACTIONS, PG, SAN, SLSA_V1, bundle_doc, bundle_entry, root_path, serve
from tests.support.policies import cluster_policy, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import (
    attach_attestations,
    attach_signatures,
    attestation_layer,
    in_toto_statement,
    new_key,
    signed_layer,
)

pytestmark = pytest.mark.registry

KEY, OTHER = new_key("p256", slot=50), new_key("p256", slot=51)
PREDICATE = "https://slsa.dev/provenance/v1"


@pytest.fixture(scope="module")
def sbs(registry: LocalRegistry) -> dict[str, tuple[str, str]]:
    """name → (tag reference, digest)."""
    out: dict[str, tuple[str, str]] = {}
    for name, signer, attested in (
        ("signed", KEY, True),
        ("signed-no-att", KEY, False),
        ("unsigned", None, False),
        ("other-key", OTHER, False),
    ):
        repo = f"sbs/{name}"
        digest = registry.push_image(repo, tag="v1")
        if signer is not None:
            attach_signatures(registry, repo, digest, [signed_layer(signer, image_digest=digest)])
        if attested:
            statement = in_toto_statement(digest, PREDICATE, {"builder": {"id": "ci"}})
            attach_attestations(registry, repo, digest, [attestation_layer(KEY, statement)])
        out[name] = (f"{registry.host}/{repo}:v1", digest)
    return out


def clusterpolicy_form(host: str, *, attestation: bool, builder: str = "") -> dict[str, Any]:
    iv: dict[str, Any] = {"imageReferences": [f"{host}/sbs/*"]}
    if attestation:
        iv["attestations"] = [{"type": PREDICATE, "attestors": [{"entries": [keys_entry(KEY.public_pem)]}]}]
        if builder:
            condition = {"key": "{{ builder.id }}", "operator": "Equals", "value": builder}
            iv["attestations"][0]["conditions"] = [{"all": [condition]}]
    else:
        iv["attestors"] = [{"entries": [keys_entry(KEY.public_pem)]}]
    return cluster_policy("sbs", [iv])


def ivpol_form(host: str, *, attestation: bool, builder: str = "") -> dict[str, Any]:
    check = (
        "images.containers.map(i, verifyAttestationSignatures(i, attestations.prov, [attestors.k])).all(n, n > 0)"
        if attestation
        else "images.containers.map(i, verifyImageSignatures(i, [attestors.k])).all(n, n > 0)"
    )
    spec: dict[str, Any] = {
        "matchConstraints": {
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}
            ]
        },
        "matchImageReferences": [{"glob": f"{host}/sbs/*"}],
        "attestors": [
            {"name": "k", "cosign": {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}}
        ],
        "validations": [{"expression": check, "message": "not verified"}],
    }
    if builder:  # the ClusterPolicy's attestation conditions, read from the verified predicate
        payload = f"images.containers.all(i, extractPayload(i, attestations.prov).builder.id == '{builder}')"
        spec["validations"].append({"expression": payload, "message": "wrong builder"})
    if attestation:
        spec["attestations"] = [{"name": "prov", "intoto": {"type": PREDICATE}}]
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "sbs"},
        "spec": spec,
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    image: str  # key of the sbs fixture
    allowed: bool
    path: str = "/mutate"
    attestation: bool = False
    pinned: bool = False  # send image@digest instead of the tag
    builder: str = ""  # attestation conditions (ClusterPolicy) / extractPayload (IVPOL) on builder.id


SCENARIOS = [
    Scenario("key-signed", "signed", True),
    Scenario("key-unsigned", "unsigned", False),
    Scenario("key-wrong-key", "other-key", False),
    Scenario("attestation-present", "signed", True, attestation=True),
    Scenario("attestation-missing", "signed-no-att", False, attestation=True),
    Scenario("attestation-condition-met", "signed", True, attestation=True, builder="ci"),
    Scenario("attestation-condition-not-met", "signed", False, attestation=True, builder="someone-else"),
    Scenario("attestation-condition-no-attestation", "signed-no-att", False, attestation=True, builder="ci"),
    Scenario("validate-tag-needs-digest", "signed", False, path="/validate"),
    Scenario("validate-pinned-verified", "signed", True, path="/validate", pinned=True),
    Scenario("validate-pinned-unsigned", "unsigned", False, path="/validate", pinned=True),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_same_verdict_in_both_forms(
    scenario: Scenario,
    admission_env: Callable[..., AdmissionEnv],
    sbs: dict[str, tuple[str, str]],
    registry: LocalRegistry,
) -> None:
    tag, digest = sbs[scenario.image]
    image = f"{tag}@{digest}" if scenario.pinned else tag
    answers = []
    for form in (clusterpolicy_form, ivpol_form):
        env = admission_env(form(registry.host, attestation=scenario.attestation, builder=scenario.builder))
        resp = env.post(scenario.path, review(pod_request(pod(image))))
        assert resp.status_code == 200
        answers.append((form.__name__, resp.get_json()["response"]["allowed"], decode_patch(resp.get_json())))
        if form is ivpol_form and scenario.name == "attestation-condition-not-met":
            # the attestation verified; the predicate's content is what denies
            assert resp.get_json()["response"]["status"]["message"].endswith("wrong builder")
    (_, cp_allowed, cp_patch), (_, iv_allowed, iv_patch) = answers
    assert cp_allowed is iv_allowed is scenario.allowed, answers
    assert cp_patch == iv_patch, answers  # pinning: the same patch from both forms (none when denied)
    if scenario.allowed and scenario.path == "/mutate" and not scenario.pinned:
        assert cp_patch == [{"op": "replace", "path": "/spec/containers/0/image", "value": f"{tag}@{digest}"}]


# -- keyless: a ClusterPolicy keyless identity vs the IVPOL keyless identity, on a real public-good GitHub bundle ----

KEYLESS_SCENARIOS = [
    # name, identity (issuer/subject/subjectRegExp as both forms write it), allowed
    ("keyless-pass", {"issuer": ACTIONS, "subject": SAN}, True),
    ("keyless-wrong-subject", {"issuer": ACTIONS, "subject": SAN + "x"}, False),
    ("keyless-wrong-issuer", {"issuer": "https://accounts.google.com", "subject": SAN}, False),
    ("keyless-regexp-match", {"issuer": ACTIONS, "subjectRegExp": SAN_RE}, True),
    ("keyless-regexp-no-match", {"issuer": ACTIONS, "subjectRegExp": r"^https://github\.com/other/.*$"}, False),
]


def keyless_clusterpolicy(host: str, identity: dict[str, str]) -> dict[str, Any]:
    extra: dict[str, Any] = {"subjectRegExp": identity["subjectRegExp"]} if "subjectRegExp" in identity else {}
    entry = bundle_entry(
        f"{host}/sbsk/*",
        subject=identity.get("subject", ""),
        issuer=identity["issuer"],
        predicate_type=SLSA_V1,
        keyless_extra=extra,
    )
    return cluster_policy("sbs", [entry])


def keyless_ivpol(host: str, identity: dict[str, str]) -> dict[str, Any]:
    check = "images.containers.map(i, verifyAttestationSignatures(i, attestations.prov, [attestors.k])).all(n, n > 0)"
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "sbs"},
        "spec": {
            "matchImageReferences": [{"glob": f"{host}/sbsk/*"}],
            "attestors": [{"name": "k", "cosign": {"keyless": {"identities": [identity]}}}],
            "attestations": [{"name": "prov", "intoto": {"type": SLSA_V1}}],
            "validations": [{"expression": check, "message": "not verified"}],
        },
    }


@pytest.mark.parametrize(("name", "identity", "allowed"), KEYLESS_SCENARIOS, ids=[s[0] for s in KEYLESS_SCENARIOS])
def test_same_keyless_verdict_in_both_forms(
    name: str,
    identity: dict[str, str],
    allowed: bool,
    admission_env: Callable[..., AdmissionEnv],
    registry: LocalRegistry,
) -> None:
    image = serve(registry, f"sbsk/{name}", PG.digest, json.dumps(bundle_doc(PG)).encode())
    roots = {"SIGWARD_TRUSTED_ROOT": str(root_path("public-good.json"))}
    answers = []
    for form in (keyless_clusterpolicy, keyless_ivpol):
        env = admission_env(form(registry.host, identity), extra_env=roots)
        resp = env.post("/mutate", review(pod_request(pod(image))))
        assert resp.status_code == 200
        answers.append((form.__name__, resp.get_json()["response"]["allowed"]))
    assert answers == [("keyless_clusterpolicy", allowed), ("keyless_ivpol", allowed)], answers

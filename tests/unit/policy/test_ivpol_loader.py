"""Loading ImageValidatingPolicies: every served version, unknown fields and unsupported fields refused with their
YAML paths, CEL type errors at load, beside ClusterPolicies in one file."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sigward.errors import PolicyError
from sigward.policy.loader import load_policy_text
from tests.support.signing import new_key

PEM = new_key("p256", slot=0).public_pem
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def ivpol(version: str = "v1", kind: str = "ImageValidatingPolicy", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "attestors": [{"name": "k", "cosign": {"key": {"data": PEM}}}],
        "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"}],
    }
    base.update(spec)
    meta: dict[str, Any] = {"name": "p"}
    if kind.startswith("Namespaced"):
        meta["namespace"] = "team"
    return {"apiVersion": f"policies.kyverno.io/{version}", "kind": kind, "metadata": meta, "spec": base}


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1", "v1"])
@pytest.mark.parametrize("kind", ["ImageValidatingPolicy", "NamespacedImageValidatingPolicy"])
def test_every_served_version_loads_with_crd_defaults(version: str, kind: str) -> None:
    (policy,) = load_policy_text(yaml.safe_dump(ivpol(version, kind)), "p.yaml").image_policies
    vc = policy.spec.validation_configurations
    assert (vc.mutate_digest, vc.verify_digest, vc.required) == (True, True, True)
    assert policy.spec.effective_actions() == ("Deny",)
    assert len(policy.content_hash) == 64


def test_content_hash_covers_cel() -> None:
    a = load_policy_text(yaml.safe_dump(ivpol()), "a").image_policies[0]
    other = ivpol(validations=[{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 1)"}])
    b = load_policy_text(yaml.safe_dump(other), "b").image_policies[0]
    assert a.content_hash != b.content_hash


@pytest.mark.parametrize(
    ("spec", "path", "text"),
    [
        ({"bogus": 1}, "spec", 'unknown field "bogus"'),
        (
            {"validations": [{"expression": "images.containers + 1"}]},
            "spec.validations[0].expression",
            "no matching overload",
        ),
        ({"validations": [{"expression": "1"}]}, "spec.validations[0].expression", "must evaluate to a bool"),
        (
            {"attestors": [{"name": "n", "notary": {"certs": {"value": "x"}}}]},
            "spec.attestors[0].notary.certs.value",
            "must hold PEM certificates",
        ),
        ({"attestors": [{"name": "n", "notary": {}}]}, "spec.attestors[0].notary.certs", "certificates are required"),
        (
            {"attestors": [{"name": "n", "notary": {"certs": {"expression": "'x'"}}}]},
            "spec.attestors[0].notary.certs.expression",
            "not implemented yet",
        ),
        (
            {"attestors": [{"name": "n", "notary": {"certs": {"value": CERT}, "tsaCerts": {"value": "nope"}}}]},
            "spec.attestors[0].notary.tsaCerts.value",
            "must hold PEM certificates",
        ),
        (
            {"attestors": [{"name": "k", "cosign": {"key": {"data": PEM}, "trustedRoot": {"value": "{}"}}}]},
            "spec.attestors[0].cosign.trustedRoot",
            "not supported",
        ),
        (
            {"matchImageReferences": [{"glob": "a", "expression": "true"}]},
            "spec.matchImageReferences[0]",
            "either glob or expression",
        ),
        (
            {"variables": [{"name": "cm", "expression": "resource.Get('v1', 'configmaps', 'ns', 'n')"}]},
            "spec.variables[0].expression",
            "Kubernetes cluster",
        ),
        ({"validationActions": ["Deny", "Warn"]}, "spec.validationActions", "cannot be used together"),
        ({"validationActions": ["Block"]}, "spec.validationActions[0]", "unsupported value"),
        (
            {"webhookConfiguration": {"timeoutSeconds": 31}},
            "spec.webhookConfiguration.timeoutSeconds",
            "between 1 and 30",
        ),
        ({"auditAnnotations": [{"key": "a", "valueExpression": "'x'"}]}, "spec.auditAnnotations", "not supported"),
        (
            {"attestations": [{"name": "s", "referrer": {"type": " "}}]},
            "spec.attestations[0].referrer.type",
            "a type is required",
        ),
        (
            {"attestations": [{"name": "s", "referrer": {"type": "a"}, "intoto": {"type": "b"}}]},
            "spec.attestations[0]",
            "exactly one of intoto or referrer",
        ),
        (
            {"validations": [{"expression": "getImageData('i') != null"}]},
            "spec.validations[0].expression",
            "not implemented yet",
        ),
    ],
)
def test_refused_with_path(spec: dict[str, Any], path: str, text: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(yaml.safe_dump(ivpol(**spec)), "p.yaml")
    assert any(p.path == path and text in p.message for p in info.value.problems), info.value.problems


def test_missing_required_attestors() -> None:
    doc = ivpol()
    del doc["spec"]["attestors"]
    with pytest.raises(PolicyError) as info:
        load_policy_text(yaml.safe_dump(doc), "p.yaml")
    assert any(p.path == "spec" and "attestors" in p.message for p in info.value.problems)


def test_namespaced_needs_namespace_and_cluster_refuses_one() -> None:
    doc = ivpol(kind="NamespacedImageValidatingPolicy")
    del doc["metadata"]["namespace"]
    with pytest.raises(PolicyError):
        load_policy_text(yaml.safe_dump(doc), "p.yaml")
    doc = ivpol()
    doc["metadata"]["namespace"] = "x"
    with pytest.raises(PolicyError):
        load_policy_text(yaml.safe_dump(doc), "p.yaml")


def test_unknown_version_refused() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(yaml.safe_dump(ivpol("v2")), "p.yaml")
    assert info.value.problems[0].path == "apiVersion"


def test_beside_cluster_policy_in_one_file() -> None:
    cpol = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "c"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [
                {
                    "name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {"imageReferences": ["*"], "attestors": [{"entries": [{"keys": {"publicKeys": PEM}}]}]}
                    ],
                }
            ],
        },
    }
    found = load_policy_text(yaml.safe_dump_all([cpol, ivpol()]), "both.yaml")
    assert [p.name for p in found.policies] == ["c"]
    assert [p.name for p in found.image_policies] == ["p"]


def test_empty_attestors_list_loads_like_kyverno_vectors() -> None:
    """Regression: `attestors: []` (chainsaw mutate-then-validate) was refused; present-but-empty is valid."""
    doc = ivpol()
    doc["spec"]["attestors"] = []
    doc["spec"]["validations"] = [{"expression": "true"}]
    (policy,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    assert policy.attestors == {}


def test_notary_attestor_and_referrer_attestation_load() -> None:
    """Lifted refusals (issue 16): a notary attestor becomes a Notary check of its certs/tsaCerts, a referrer
    attestation is remembered as such, and extractPayload compiles."""
    from sigward.policy.ivpol.models import NotaryTrust

    doc = ivpol(
        attestors=[{"name": "n", "notary": {"certs": {"value": CERT}, "tsaCerts": {"value": CERT}}}],
        attestations=[
            {"name": "sbom", "referrer": {"type": "sbom/cyclone-dx"}},
            {"name": "p", "intoto": {"type": "x"}},
        ],
        validations=[{"expression": "extractPayload('i', attestations.sbom).bomFormat == 'CycloneDX'"}],
    )
    (policy,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    compiled = policy.attestors["n"]
    assert compiled.type == "Notary"
    (entry,) = compiled.attestors.entries
    assert isinstance(entry.certificates, NotaryTrust)
    assert entry.certificates.cert == CERT and entry.certificates.ctlog is not None
    assert entry.certificates.ctlog.tsa_cert_chain == CERT and entry.certificates.verify_timestamp == "always"
    assert policy.referrers == frozenset({"sbom"}) and policy.attestations == {"sbom": "sbom/cyclone-dx", "p": "x"}

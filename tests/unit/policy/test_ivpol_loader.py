"""Loading ImageValidatingPolicies: every served version, unknown fields and unsupported fields refused with their
YAML paths, CEL type errors at load, beside ClusterPolicies in one file."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from sigward.errors import PolicyError
from sigward.policy.loader import load_policy_text
from tests.support.signing import new_key

PEM = new_key("p256", slot=0).public_pem
MT = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
ROOT = {"mediaType": MT, "tlogs": [{"baseUrl": "https://rekor.example"}]}
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
            {"attestors": [{"name": "n", "notary": {"certs": {"expression": "1"}}}]},
            "spec.attestors[0].notary.certs.expression",
            "must evaluate to a string",
        ),
        (
            {"attestors": [{"name": "n", "notary": {"certs": {"value": CERT}, "tsaCerts": {"value": "nope"}}}]},
            "spec.attestors[0].notary.tsaCerts.value",
            "must hold PEM certificates",
        ),
        *(
            ({"attestors": [{"name": "k", "cosign": {"key": {"data": PEM}, "trustedRoot": root}}]}, path, text)
            for root, path, text in (
                ({"value": "{}"}, ".value", "is not a Sigstore trusted root"),
                ({"value": "not json"}, ".value", "not JSON"),
                ({"value": "[]"}, ".value", "not a JSON object"),
                ({"value": json.dumps({"mediaType": MT})}, ".value", "lists no CA, transparency log or TSA"),
                ({"value": json.dumps({"mediaType": MT, "tlogs": {}})}, ".value", "must be lists"),
                ({"value": "   "}, ".value", "empty"),
                ({"value": json.dumps(ROOT) + "\n{}\n"}, ".value line 2", "is not a Sigstore trusted root"),
                ({"expression": "nope.x"}, ".expression", "undeclared reference to 'nope.x'"),
                ({"value": json.dumps(ROOT), "expression": "'x'"}, "", "mutually exclusive"),
                ({}, "", "either value or expression"),
            )
        ),
        (
            {"attestors": [{"name": "k", "cosign": {"key": {"data": PEM}, "tuf": {"mirror": "https://tuf.example"}}}]},
            "spec.attestors[0].cosign.tuf.root",
            "root.path or root.data is required",
        ),
        (
            {"matchImageReferences": [{"glob": "a", "expression": "true"}]},
            "spec.matchImageReferences[0]",
            "either glob or expression",
        ),
        ({"validationActions": ["Deny", "Warn"]}, "spec.validationActions", "cannot be used together"),
        ({"validationActions": ["Block"]}, "spec.validationActions[0]", "unsupported value"),
        (
            {"webhookConfiguration": {"timeoutSeconds": 31}},
            "spec.webhookConfiguration.timeoutSeconds",
            "between 1 and 30",
        ),
        (
            {"auditAnnotations": [{"key": "a/b", "valueExpression": "'x'"}]},
            "spec.auditAnnotations[0].key",
            "qualified name part",
        ),
        (
            {"auditAnnotations": [{"key": "a", "valueExpression": "1"}]},
            "spec.auditAnnotations[0].valueExpression",
            "must evaluate to a string",
        ),
        (
            {"auditAnnotations": [{"key": "a", "valueExpression": "'x'"}, {"key": "a", "valueExpression": "'y'"}]},
            "spec.auditAnnotations[1].key",
            "duplicate key",
        ),
        (
            {"auditAnnotations": [{"key": "a", "valueExpression": "nope.x"}]},
            "spec.auditAnnotations[0].valueExpression",
            "undeclared reference",
        ),
        (
            {"matchConstraints": {"objectSelector": {"matchLabels": {"app": "web-*"}}}},
            "spec.matchConstraints.objectSelector.matchLabels.app",
            "wildcards are not allowed",
        ),
        (
            {"matchConstraints": {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}},
            "spec.matchConstraints.namespaceSelector.matchExpressions[0].operator",
            "not a valid label selector operator",
        ),
        (
            {"matchConstraints": {"objectSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}},
            "spec.matchConstraints.objectSelector.matchExpressions[0].values",
            "can't be empty",
        ),
        ({"credentials": {"secrets": ["regcred"]}}, "spec.credentials.secrets", "cluster connection"),
        ({"credentials": {"providers": ["quay"]}}, "spec.credentials.providers[0]", "unsupported value"),
        ({"evaluation": {"mode": "JSON"}}, "spec.evaluation.mode", "never on raw JSON"),
        (
            {"variables": [{"name": "a", "expression": "http.Get('file:///etc/passwd')"}]},
            "spec.variables[0].expression",
            "can never be allowed: only http and https",
        ),
        (
            {"validations": [{"expression": 'http.Post("https://u:p@svc.example/v1/", {}).ok'}]},
            "spec.validations[0].expression",
            "user info",
        ),
        (
            {
                "auditAnnotations": [
                    {"key": "a", "valueExpression": "string(http.Get('https://svc.example/v1/../admin'))"}
                ]
            },
            "spec.auditAnnotations[0].valueExpression",
            "dot-segments",
        ),
        (
            {"validations": [{"expression": "http.Client('ca').Get('https://x') != null"}]},
            "spec.validations[0].expression",
            "undeclared reference to 'Client'",
        ),
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
            {"validations": [{"expression": "resource.Get('v1', 'configmaps', 'ns') != null"}]},
            "spec.validations[0].expression",
            "undeclared reference to 'Get'",
        ),
    ],
)
def test_refused_with_path(spec: dict[str, Any], path: str, text: str) -> None:
    if path.startswith("."):
        path = "spec.attestors[0].cosign.trustedRoot" + path
    elif not path:
        path = "spec.attestors[0].cosign.trustedRoot"
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


def test_trusted_root_attestor_loads_as_its_only_root() -> None:
    from sigward.policy.ivpol.models import RootedAttestorSet

    value = json.dumps(ROOT)
    attestor = {"name": "k", "cosign": {"key": {"data": PEM}, "trustedRoot": {"value": value}, "tuf": {"mirror": "m"}}}
    loaded = load_policy_text(yaml.safe_dump(ivpol(attestors=[attestor])), "p.yaml")
    (policy,) = loaded.image_policies
    rooted = policy.attestors["k"].attestors
    assert isinstance(rooted, RootedAttestorSet)
    assert (
        rooted.trusted_root.value == value and rooted.trusted_root.path == "spec.attestors[0].cosign.trustedRoot.value"
    )
    assert any("cosign.tuf is ignored: cosign.trustedRoot takes precedence" in n for n in policy.notes), policy.notes


def test_ctlog_insecure_ignore_sct_spelled_as_kyverno() -> None:
    """Regression: the camelCase alias made Kyverno's ``insecureIgnoreSCT`` an unknown field."""
    attestor = {"name": "k", "cosign": {"key": {"data": PEM}, "ctlog": {"insecureIgnoreSCT": True}}}
    (policy,) = load_policy_text(yaml.safe_dump(ivpol(attestors=[attestor])), "p.yaml").image_policies
    (entry,) = policy.attestors["k"].attestors.entries
    assert entry.keys is not None and entry.keys.ctlog is not None and entry.keys.ctlog.ignore_sct is True
    wrong = {"name": "k", "cosign": {"key": {"data": PEM}, "ctlog": {"insecureIgnoreSct": True}}}
    with pytest.raises(PolicyError):
        load_policy_text(yaml.safe_dump(ivpol(attestors=[wrong])), "p.yaml")


def test_inline_root_larger_than_kyverno_limit() -> None:
    """A policy file is capped at 1 MiB too, so the root's own cap is checked directly (CLI texts, expressions)."""
    from sigward.policy.trustroots import MAX_TRUSTED_ROOT_BYTES, inline_root_problems

    big = json.dumps(ROOT) + " " * MAX_TRUSTED_ROOT_BYTES
    assert inline_root_problems(big, "w") == [("w", f"the trusted root is larger than {MAX_TRUSTED_ROOT_BYTES} bytes")]
    assert inline_root_problems(json.dumps(ROOT), "w") == []


def test_policy_level_fields_load() -> None:
    """Selectors, credentials (providers, allowInsecureRegistry) and auditAnnotations load with their meaning."""
    from sigward.policy.ivpol.policy_fields import registry_credentials, selectors

    doc = ivpol(
        matchConstraints={
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
            ],
            "namespaceSelector": {"matchLabels": {"team": "a"}},
            "objectSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
        },
        credentials={"providers": ["amazon"], "allowInsecureRegistry": True},
        auditAnnotations=[{"key": "images", "valueExpression": "images.containers.join(',')"}],
    )
    loaded = load_policy_text(yaml.safe_dump(doc), "p.yaml")
    (policy,) = loaded.image_policies
    ns, obj = selectors(policy.spec)
    assert ns is not None and ns.match_labels == {"team": "a"}
    assert obj is not None and obj.match_expressions[0].operator == "Exists"
    creds = registry_credentials(policy.spec)
    assert creds is not None and creds.providers == ("amazon",)
    assert [k for k, _ in policy.audit_annotations] == ["images"]
    assert any("allowInsecureRegistry" in n and "never skips TLS" in n for n in loaded.notes)


def test_credentials_secrets_load_with_a_cluster_connection() -> None:
    from sigward.policy.capabilities import for_cluster

    doc = yaml.safe_dump(ivpol(credentials={"secrets": ["regcred"]}))
    (policy,) = load_policy_text(doc, "p.yaml", capabilities=for_cluster(True)).image_policies
    assert policy.spec.credentials is not None and policy.spec.credentials.secrets == ("regcred",)
    with pytest.raises(PolicyError):
        load_policy_text(doc, "p.yaml", capabilities=for_cluster(False))


def test_http_library_compiles() -> None:
    """``http.Get``/``http.Post`` (with headers) type-check; the allowlist is applied when they run."""
    doc = ivpol(
        variables=[
            {"name": "a", "expression": "http.Get('https://svc.example/v1/x')"},
            {"name": "b", "expression": "http.Get('https://svc.example/v1/x', {'Authorization': 'none'})"},
            {"name": "c", "expression": "http.Post('https://svc.example/v1/x', {'image': 'y'})"},
            {"name": "d", "expression": "http.Post('https://svc.example/v1/x', {'image': 'y'}, {'k': 'v'})"},
        ]
    )
    (policy,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    assert set(policy.variables) == {"a", "b", "c", "d"}


@pytest.mark.parametrize("form", ["referrer", "intoto"])
def test_policy_kind_survives_attestations_regression(form: str) -> None:
    """Regression: the attestation loop reused the name ``kind``, so a policy with an attestation was stored with
    kind "referrer"/"intoto" (shown by check-policy, verify's rule column and reports)."""
    doc = ivpol(
        attestations=[{"name": "sbom", form: {"type": "sbom/cyclone-dx"}}],
    )
    (policy,) = load_policy_text(yaml.safe_dump(doc), "p.yaml").image_policies
    assert policy.kind == "ImageValidatingPolicy"
    namespaced = ivpol(kind="NamespacedImageValidatingPolicy", attestations=[{"name": "s", form: {"type": "t"}}])
    namespaced["metadata"]["namespace"] = "team"
    (policy,) = load_policy_text(yaml.safe_dump(namespaced), "p.yaml").image_policies
    assert policy.kind == "NamespacedImageValidatingPolicy"


def cel_exception(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policies.kyverno.io/v1alpha1",
        "kind": "PolicyException",
        "metadata": {"name": "skip-some", "namespace": "team"},
        "spec": spec,
    }


REF = {"name": "iv", "kind": "ImageValidatingPolicy"}
NAME_IS = {"name": "n", "expression": "object.metadata.name == 'skipped'"}


def test_cel_policy_exception_attaches_to_the_policy_it_names() -> None:
    doc = ivpol()
    doc["metadata"]["name"] = "iv"
    loaded = load_policy_text(
        yaml.safe_dump_all([doc, cel_exception(policyRefs=[REF], matchConditions=[NAME_IS])]), "p"
    )
    (policy,) = loaded.image_policies
    assert [e.name for e in policy.exceptions] == ["skip-some"]
    other = load_policy_text(
        yaml.safe_dump_all([doc, cel_exception(policyRefs=[{**REF, "name": "else"}], matchConditions=[NAME_IS])]), "p"
    )
    assert other.image_policies[0].exceptions == ()
    assert any("names no loaded ImageValidatingPolicy" in n for n in other.notes)


@pytest.mark.parametrize(
    ("spec", "path", "text"),
    [
        # (a reference to another kind, and images/allowedValues/reportResult, which Kyverno does not read for an
        # ImageValidatingPolicy, are noted, not refused: tests/unit/policy/test_ivpol_exception_loader.py)
        ({"policyRefs": []}, "spec.policyRefs", "at least one"),
        ({"policyRefs": [REF], "bogus": ["*"]}, "spec", "bogus"),
        (
            {"policyRefs": [REF], "matchConditions": [{"name": "n", "expression": "object.("}]},
            "spec.matchConditions[0]",
            "",
        ),
    ],
)
def test_cel_policy_exception_refused_with_its_path(spec: dict[str, Any], path: str, text: str) -> None:
    with pytest.raises(PolicyError) as raised:
        load_policy_text(yaml.safe_dump_all([ivpol(), cel_exception(**spec)]), "p.yaml")
    assert path in str(raised.value) and text in str(raised.value), str(raised.value)

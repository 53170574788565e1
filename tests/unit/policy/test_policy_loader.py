"""The policy loader: Kyverno's validation messages, YAML paths, the capability table, YAML hardening, files,
directories and notes."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sigward.errors import PolicyError
from sigward.policy import capabilities
from sigward.policy.capabilities import REFUSALS, Capabilities
from sigward.policy.loader import (
    MAX_POLICY_FILE_BYTES,
    MAX_YAML_ALIASES,
    PolicySet,
    load_policies,
    load_policy_text,
    policy_paths_from_env,
)


def new_pem(kind: str = "ec") -> str:
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


PEM_A = new_pem()
PEM_B = new_pem("rsa")
PEM_C = new_pem()
ALL = Capabilities().with_all()

Doc = dict[str, Any]


def keys_entry(pem: str = PEM_A, **extra: Any) -> Doc:
    return {"keys": {"publicKeys": pem, **extra}}


def verification(**fields: Any) -> Doc:
    iv: Doc = {"imageReferences": ["ghcr.io/acme/*"], "attestors": [{"entries": [keys_entry()]}]}
    iv.update(fields)
    return {k: v for k, v in iv.items() if v is not None}


def rule(*verify_images: Doc, name: str = "verify", **fields: Any) -> Doc:
    r: Doc = {"name": name, "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}}
    if verify_images:
        r["verifyImages"] = list(verify_images)
    r.update(fields)
    return r


def policy(
    *rules: Doc,
    name: str = "verify-images",
    kind: str = "ClusterPolicy",
    api_version: str = "kyverno.io/v1",
    action: str | None = "Enforce",
    **spec: Any,
) -> Doc:
    s: Doc = {"rules": list(rules) or [rule(verification())]}
    if action is not None:
        s["validationFailureAction"] = action
    s.update(spec)
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": s}


def dump(*docs: Any) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def load(*docs: Any, caps: Capabilities | None = None) -> PolicySet:
    return load_policy_text(dump(*docs), "t.yaml", capabilities=caps)


def problems(*docs: Any, caps: Capabilities | None = None) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load(*docs, caps=caps)
    return [f"{p.path}: {p.message}" for p in err.value.problems]


def iv_path(j: int = 0, i: int = 0) -> str:
    return f"spec.rules[{i}].verifyImages[{j}]"


E0 = f"{iv_path()}.attestors[0].entries[0]"


def edit(fn: Callable[[Doc], None], base: Doc | None = None) -> Doc:
    doc = copy.deepcopy(base or policy())
    fn(doc)
    return doc


def set_iv(**fields: Any) -> Doc:
    return policy(rule(verification(**fields)))


def set_entry(entry: Doc, **fields: Any) -> Doc:
    return policy(rule(verification(attestors=[{"entries": [entry]}], **fields)))


def set_spec(**fields: Any) -> Doc:
    return policy(**fields)


def set_match(match: Doc, exclude: Doc | None = None, **spec: Any) -> Doc:
    r = rule(verification(), match=match)
    if exclude is not None:
        r["exclude"] = exclude
    return policy(r, **spec)


# --- Kyverno's validation
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "exclude", "path"),
    [
        (
            {"any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "User", "name": "u"}]}]},
            None,
            "spec.rules[0].match.any[0].subjects",
        ),
        ({"resources": {"kinds": ["Pod"]}, "roles": ["ns:r"]}, None, "spec.rules[0].match.roles"),
        (
            {"any": [{"resources": {"kinds": ["Pod"]}}]},
            {"all": [{"resources": {"kinds": ["Pod"]}, "clusterRoles": ["admin"]}]},
            "spec.rules[0].exclude.all[0].clusterRoles",
        ),
    ],
)
def test_user_info_rejected_in_background_mode_as_kyverno_does(match: Doc, exclude: Doc | None, path: str) -> None:
    """validation/policy/background.go hasUserMatchExclude: a background scan has no requesting user."""
    found = problems(set_match(match, exclude), caps=Capabilities().with_all())
    assert any(p.startswith(f"{path}: only select variables are allowed in background mode") for p in found), found
    assert load(set_match(match, exclude, background=False), caps=Capabilities().with_all()).policies


KYVERNO_VALIDATION: list[tuple[str, Doc, str]] = [
    ("image reference", set_iv(imageReferences=[]), f"{iv_path()}: An image reference is required"),
    ("no entries", set_iv(attestors=[{"entries": []}]), f"{iv_path()}.attestors[0]: An entry is required"),
    ("empty keys", set_entry({"keys": {}}), f"{E0}.keys: A public key, kms key or secret is required"),
    ("certificates", set_entry({"certificates": {}}), f"{E0}.certificates: cert or certChain required"),
    (
        "keyless without rekor",
        set_entry({"keyless": {"issuer": "i", "subject": "s"}}),
        f"{E0}.keyless: Either Rekor URL or roots are required",
    ),
    (
        "keyless rekor {}",
        set_entry({"keyless": {"issuer": "i", "rekor": {}}}),
        f"{E0}.keyless: An URL is required",
    ),
    (
        "count exceeds",
        set_iv(attestors=[{"count": 2, "entries": [keys_entry()]}]),
        f"{iv_path()}.attestors[0]: Count cannot exceed length of entries",
    ),
    (
        "count is checked before multi-PEM expansion",
        set_iv(attestors=[{"count": 2, "entries": [keys_entry(PEM_A + PEM_B)]}]),
        f"{iv_path()}.attestors[0]: Count cannot exceed length of entries",
    ),
    (
        "count minimum",
        set_iv(attestors=[{"count": 0, "entries": [keys_entry()]}]),
        f"{iv_path()}.attestors[0].count: should be greater than or equal to 1",
    ),
    (
        "two attestor kinds",
        set_entry({"keys": {"publicKeys": PEM_A}, "certificates": {"cert": "c"}}),
        f"{E0}: keys, certificates, keyless, or a nested attestor is required",
    ),
    (
        "no attestor kind",
        set_entry({}),
        f"{E0}: keys, certificates, keyless, or a nested attestor is required",
    ),
    (
        "signature algorithm",
        set_entry(keys_entry(signatureAlgorithm="md5")),
        f"{E0}.keys: Invalid signature algorithm provided",
    ),
    (
        "nested attestor needs entries",
        set_entry({"attestor": {"entries": []}}),
        f"{E0}.attestor: An entry is required",
    ),
    (
        "nested attestor count",
        set_entry({"attestor": {"count": 3, "entries": [keys_entry()]}}),
        f"{E0}.attestor: Count cannot exceed length of entries",
    ),
    (
        "mutateDigest under spec Audit",
        policy(action="Audit"),
        f"{iv_path()}.mutateDigest: mutateDigest must be set to false for \u2018Audit\u2019 failure action",
    ),
    (
        "mutateDigest under spec default (Audit)",
        policy(action=None),
        f"{iv_path()}.mutateDigest: mutateDigest must be set to false",
    ),
    (
        "mutateDigest under entry Audit",
        set_iv(failureAction="Audit"),
        f"{iv_path()}.mutateDigest: mutateDigest must be set to false",
    ),
    (
        "entry Audit carries over to the next entry",
        policy(rule(verification(failureAction="Audit", mutateDigest=False), verification())),
        f"{iv_path(1)}.mutateDigest: mutateDigest must be set to false",
    ),
    (
        "duplicate rule name",
        policy(rule(verification()), rule(verification())),
        "spec.rules[1].name: Duplicate rule name: 'verify'",
    ),
    (
        "two operations",
        policy(rule(verification(), validate={"pattern": {"x": 1}})),
        "spec.rules[0]: Multiple operations defined in the rule 'verify', only one operation",
    ),
    (
        "no operation",
        policy(rule(verification()), rule(name="empty")),
        "spec.rules[1]: No operation defined in the rule 'empty'",
    ),
    (
        "imageExtractors without verifyImages",
        policy(
            rule(verification()),
            rule(name="v", validate={"x": 1}, imageExtractors={"Task": [{"path": "/x"}]}),
        ),
        "spec.rules[1].imageExtractors: Invalid rule spec for rule 'v', imageExtractors can only be defined",
    ),
    (
        "any and all",
        set_match({"any": [{"resources": {"kinds": ["Pod"]}}], "all": [{"resources": {"kinds": ["Pod"]}}]}),
        "spec.rules[0].match: Can't specify any and all together",
    ),
    (
        "any with legacy resources",
        set_match({"any": [{"resources": {"kinds": ["Pod"]}}], "resources": {"kinds": ["Pod"]}}),
        "spec.rules[0].match: can't specify any/all together with match resources",
    ),
    (
        "no kinds",
        set_match({"any": [{"resources": {"namespaces": ["prod"]}}]}),
        "spec.rules[0].match.any[0].resources.kinds: at least one element must be specified in a kind block",
    ),
    (
        "empty filter",
        set_match({"any": [{}]}),
        "spec.rules[0].match.any[0].resources: match resources not specified",
    ),
    ("empty legacy match", set_match({}), "spec.rules[0].match.resources: match resources not specified"),
    (
        "name and names",
        set_match({"any": [{"resources": {"kinds": ["Pod"], "name": "a", "names": ["b"]}}]}),
        "spec.rules[0].match.any[0].resources: Both name and names can not be specified together",
    ),
    (
        "empty selector",
        set_match({"any": [{"resources": {"kinds": ["Pod"], "selector": {}}}]}),
        "spec.rules[0].match.any[0].resources.selector: The requirements are not specified in selector",
    ),
    (
        "selector operator",
        set_match(
            {
                "any": [
                    {
                        "resources": {
                            "kinds": ["Pod"],
                            "selector": {"matchExpressions": [{"key": "a", "operator": "Is"}]},
                        }
                    }
                ]
            }
        ),
        'selector.matchExpressions[0].operator: "Is" is not a valid label selector operator',
    ),
    (
        "wildcard kind in background",
        set_match({"any": [{"resources": {"kinds": ["*"]}}]}),
        "spec.rules[0].match.any[0].resources.kinds: wildcard policy not allowed in background mode",
    ),
    (
        "wildcard kind",
        set_match({"any": [{"resources": {"kinds": ["*"]}}]}, background=False),
        "spec.rules[0].match.any[0].resources.kinds: wildcard policy does not support rule type",
    ),
    (
        "exclude everything matched",
        set_match({"any": [{"resources": {"kinds": ["Pod"]}}]}, {"any": [{"resources": {"kinds": ["Pod"]}}]}),
        "spec.rules[0]: Rule is matching an empty set",
    ),
    (
        "legacy exclude of every matched kind",
        set_match({"resources": {"kinds": ["Pod"]}}, {"resources": {"kinds": ["Pod", "Deployment"]}}),
        "spec.rules[0]: Rule is matching an empty set",
    ),
    (
        "legacy name excluded by wildcard (Kyverno's own case)",
        set_match(
            {"resources": {"kinds": ["Pod", "Namespace"], "name": "something", "namespaces": ["a", "b"]}},
            {
                "resources": {
                    "kinds": ["Pod", "Namespace", "Job"],
                    "name": "some*",
                    "namespaces": ["a", "b", "c"],
                }
            },
        ),
        "spec.rules[0]: Rule is matching an empty set",
    ),
    (
        "timeout",
        set_spec(webhookTimeoutSeconds=31),
        "spec.webhookTimeoutSeconds: the timeout value must be between",
    ),
    (
        "timeout in webhookConfiguration",
        set_spec(webhookConfiguration={"timeoutSeconds": 0}),
        "spec.webhookConfiguration.timeoutSeconds: the timeout value must be between 1 and 30 seconds",
    ),
    (
        "deprecated and new timeout",
        set_spec(webhookTimeoutSeconds=5, webhookConfiguration={"timeoutSeconds": 5}),
        "spec.webhookTimeoutSeconds: remove the deprecated field and use spec.webhookConfiguration.timeoutSeconds",
    ),
    (
        "deprecated and new failurePolicy",
        set_spec(failurePolicy="Fail", webhookConfiguration={"failurePolicy": "Ignore"}),
        "spec.failurePolicy: remove the deprecated field and use spec.webhookConfiguration.failurePolicy instead",
    ),
    (
        "generateExistingOnPolicyUpdate",
        set_spec(generateExistingOnPolicyUpdate=True),
        "spec.generateExistingOnPolicyUpdate: remove the deprecated field",
    ),
    (
        "admission off",
        set_spec(admission=False),
        "spec.admission: disabling admission processing is only allowed with validation policies",
    ),
    (
        "admission and background off",
        set_spec(admission=False, background=False),
        "spec: disabling both admission and background processing is not allowed",
    ),
    (
        "clusterpolicy namespace",
        edit(lambda d: d["metadata"].update(namespace="default")),
        "metadata.namespace: A clusterpolicy should not have the namespace defined",
    ),
    (
        "namespaced policy filtering namespaces",
        edit(
            lambda d: d["metadata"].update(namespace="team"),
            set_match({"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["other"]}}]}) | {"kind": "Policy"},
        ),
        "spec.rules[0].match.any[0].resources.namespaces: Filtering namespaces not allowed in namespaced policies",
    ),
    ("name too long", policy(name="p" * 64), "metadata.name: Too long: may not be more than 63 bytes"),
    (
        "autogen all",
        edit(lambda d: d["metadata"].update(annotations={"pod-policies.kyverno.io/autogen-controllers": "all"})),
        "metadata.annotations: Autogen annotation does not support 'all' anymore",
    ),
    (
        "variables in image references",
        set_iv(imageReferences=["ghcr.io/{{ request.namespace }}/*"]),
        "spec.rules[0]: variables are not allowed in image reference",
    ),
    (
        "variables in match",
        set_match({"any": [{"resources": {"kinds": ["Pod"], "names": ["{{ x }}"]}}]}),
        'spec.rules[0].match: rule "verify" should not have variables in match section',
    ),
    (
        "jmesPath extractor with mutateDigest",
        policy(rule(verification(), imageExtractors={"Task": [{"path": "/spec/image", "jmesPath": "to_upper(@)"}]})),
        "spec.rules[0]: jmespath may not be used in an image extractor when mutating digests with verify images",
    ),
]


@pytest.mark.parametrize(
    ("doc", "expected"), [c[1:] for c in KYVERNO_VALIDATION], ids=[c[0] for c in KYVERNO_VALIDATION]
)
def test_kyverno_validation(doc: Doc, expected: str) -> None:
    found = problems(doc, caps=ALL)
    assert any(expected in p for p in found), found


def test_notary_refuses_keys_and_keyless() -> None:
    doc = set_iv(type="Notary", attestors=[{"entries": [keys_entry(), {"keyless": {"rekor": {"url": "u"}}}]}])
    found = problems(doc, caps=ALL)
    assert f"{iv_path()}.attestors: Keys field is not allowed for type notary" in found
    assert f"{iv_path()}.attestors: Keyless field is not allowed for type notary" in found


def test_attestation_checks() -> None:
    doc = set_iv(attestations=[{"conditions": [{"all": [{"key": "a", "operator": "Is", "value": 1}]}]}])
    found = problems(doc, caps=ALL)
    assert f"{iv_path()}.attestations[0]: missing type" in found
    assert any(
        p.startswith(f"{iv_path()}.attestations[0].conditions[0].all[0].operator: entered value of `operator`")
        for p in found
    )


def test_every_problem_is_reported_at_once() -> None:
    doc = policy(
        rule(verification(imageReferences=[]), name="a"),
        rule(verification(attestors=[{"count": 3, "entries": [{"keys": {}}]}]), name="a"),
    )
    found = problems(doc)
    assert "spec.rules[1].name: Duplicate rule name: 'a'" in found
    assert f"{iv_path(0, 0)}: An image reference is required" in found
    assert "spec.rules[1].verifyImages[0].attestors[0]: Count cannot exceed length of entries" in found
    assert (
        "spec.rules[1].verifyImages[0].attestors[0].entries[0].keys: "
        "A public key, kms key or secret is required" in found
    )


# --- schema: unknown fields and wrong types
# --------------------------------------------------------------------

SCHEMA: list[tuple[str, Any, str]] = [
    ("unknown verifyImages field", set_iv(foo=1), f'{iv_path()}: unknown field "foo"'),
    ("unknown keys field", set_entry(keys_entry(publicKey="x")), f'{E0}.keys: unknown field "publicKey"'),
    ("snake_case is not YAML", set_iv(mutate_digest=False), f'{iv_path()}: unknown field "mutate_digest"'),
    ("unknown spec field", set_spec(foo=True), 'spec: unknown field "foo"'),
    ("unknown top-level field", edit(lambda d: d.update(extra=1)), ': unknown field "extra"'),
    (
        "unknown metadata field",
        edit(lambda d: d["metadata"].update(nmae="x")),
        'metadata: unknown field "nmae"',
    ),
    (
        "missing rule name",
        edit(lambda d: d["spec"]["rules"][0].pop("name")),
        'spec.rules[0]: missing required field "name"',
    ),
    (
        "missing match",
        edit(lambda d: d["spec"]["rules"][0].pop("match")),
        'spec.rules[0]: missing required field "match"',
    ),
    ("missing spec", edit(lambda d: d.pop("spec")), ': missing required field "spec"'),
    ("bool as string", set_iv(mutateDigest="false"), f"{iv_path()}.mutateDigest: must be a boolean"),
    ("string as int", set_entry({"keys": {"publicKeys": 12}}), f"{E0}.keys.publicKeys: must be a string"),
    ("list as string", set_iv(imageReferences="ghcr.io/*"), f"{iv_path()}.imageReferences: must be a list"),
    ("mapping as list", set_iv(attestors={"entries": []}), f"{iv_path()}.attestors: must be a list"),
    (
        "enum",
        set_iv(type="Cosgn"),
        f"{iv_path()}.type: unsupported value \"Cosgn\": must be 'Cosign', 'SigstoreBundle' or 'Notary'",
    ),
    (
        "failureAction enum",
        set_iv(failureAction="Block"),
        f'{iv_path()}.failureAction: unsupported value "Block"',
    ),
    (
        "validationFailureAction",
        set_spec(validationFailureAction="Block"),
        "spec.validationFailureAction: unsupported",
    ),
    (
        "operations enum",
        set_match({"any": [{"resources": {"kinds": ["Pod"], "operations": ["GET"]}}]}),
        "spec.rules[0].match.any[0].resources.operations[0]: unsupported value",
    ),
    (
        "annotation value",
        set_entry(keys_entry() | {"annotations": {"env": 1}}),
        f"{E0}.annotations.env: must be a string",
    ),
    (
        "annotation key with dots",
        set_entry(keys_entry() | {"annotations": {"a.b/c": True}}),
        f"{E0}.annotations[a.b/c]: must be a string",
    ),
    (
        "image extractor path",
        policy(rule(verification(), imageExtractors={"Task": [{"value": "image"}]})),
        'spec.rules[0].imageExtractors.Task[0]: missing required field "path"',
    ),
    (
        "v2beta1 has no single-image form",
        policy(rule({"image": "ghcr.io/*", "key": PEM_A}), api_version="kyverno.io/v2beta1"),
        f'{iv_path()}: unknown field "image" in kyverno.io/v2beta1',
    ),
    (
        "v2beta1 has no legacy match",
        set_match({"resources": {"kinds": ["Pod"]}}) | {"apiVersion": "kyverno.io/v2beta1"},
        'spec.rules[0].match: unknown field "resources" in kyverno.io/v2beta1',
    ),
]


@pytest.mark.parametrize(("doc", "expected"), [c[1:] for c in SCHEMA], ids=[c[0] for c in SCHEMA])
def test_schema_problems(doc: Doc, expected: str) -> None:
    found = problems(doc)
    assert any(expected in p for p in found), found


def test_problem_carries_source_and_path() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(dump(set_iv(imageReferences=[])), "x.yaml")
    (problem,) = err.value.problems
    assert problem.source == "x.yaml#doc1"
    assert problem.path == iv_path()
    assert problem.message == "An image reference is required"
    assert str(problem) == f"x.yaml#doc1: {iv_path()}: An image reference is required"


# --- the capability table
# ---------------------------------------------------------------------------------------

REFUSED: list[tuple[str, Doc, str, str]] = [
    # (case, document, YAML path, feature)
    (
        "keys.secret",
        set_entry({"keys": {"secret": {"name": "s", "namespace": "n"}}}),
        f"{E0}.keys.secret",
        "secret_keys",
    ),
    ("k8s:// key", set_entry(keys_entry("k8s://ns/cosign")), f"{E0}.keys.publicKeys", "k8s_key_refs"),
    (
        "registry secrets",
        set_iv(imageRegistryCredentials={"secrets": ["regcred"]}),
        f"{iv_path()}.imageRegistryCredentials.secrets",
        "registry_secrets",
    ),
    (
        "tsaCertChain",
        set_entry(keys_entry(ctlog={"tsaCertChain": "CHAIN"})),
        f"{E0}.keys.ctlog.tsaCertChain",
        "tsa_timestamps",
    ),
    (
        "context",
        policy(rule(verification(), context=[{"name": "k", "variable": {"value": 1}}])),
        "spec.rules[0].context",
        "rule_context",
    ),
    (
        "preconditions",
        policy(
            rule(
                verification(),
                preconditions={"all": [{"key": "{{request.operation}}", "operator": "NotEquals", "value": "DELETE"}]},
            )
        ),
        "spec.rules[0].preconditions",
        "preconditions",
    ),
    (
        "celPreconditions",
        policy(rule(verification(), celPreconditions=[{"name": "n", "expression": "true"}])),
        "spec.rules[0].celPreconditions",
        "cel_preconditions",
    ),
    (
        "subjects",
        set_match(
            {"any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "User", "name": "u"}]}]}, background=False
        ),
        "spec.rules[0].match.any[0].subjects",
        "user_info",
    ),
    (
        "roles",
        set_match({"any": [{"resources": {"kinds": ["Pod"]}, "roles": ["ns:r"]}]}, background=False),
        "spec.rules[0].match.any[0].roles",
        "user_roles",
    ),
    (
        "legacy clusterRoles in exclude",
        set_match(
            {"any": [{"resources": {"kinds": ["Pod"]}}]},
            {"all": [{"resources": {"kinds": ["Pod"]}, "clusterRoles": ["admin"]}]},
            background=False,
        ),
        "spec.rules[0].exclude.all[0].clusterRoles",
        "user_roles",
    ),
    (
        "namespaceSelector",
        set_match({"any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": {"a": "b"}}}}]}),
        "spec.rules[0].match.any[0].resources.namespaceSelector",
        "namespace_selector",
    ),
    (
        "variables in publicKeys",
        set_entry(keys_entry("{{ request.object.metadata.annotations.pem }}")),
        f"{E0}.keys.publicKeys",
        "variables",
    ),
    (
        "variables in repository",
        set_iv(repository="{{ request.namespace }}/sigs"),
        f"{iv_path()}.repository",
        "variables",
    ),
    (
        "variables in annotations",
        set_entry(keys_entry() | {"annotations": {"env": "{{ request.namespace }}"}}),
        f"{E0}.annotations.env",
        "variables",
    ),
    (
        "failure action override namespaceSelector",
        set_spec(
            validationFailureActionOverrides=[{"action": "Audit", "namespaceSelector": {"matchLabels": {"a": "b"}}}]
        ),
        "spec.validationFailureActionOverrides[0].namespaceSelector",
        "override_namespace_selector",
    ),
    (
        "webhook matchConditions",
        set_spec(webhookConfiguration={"matchConditions": [{"name": "n", "expression": "true"}]}),
        "spec.webhookConfiguration.matchConditions",
        "webhook_match_conditions",
    ),
    ("applyRules One", set_spec(applyRules="One"), "spec.applyRules", "apply_rules_one"),
]


# Implemented since issue 15 (context, preconditions, variables, cluster keys): these load, and a verifier built
# without a feature (its flag off) still refuses it with the path.
IMPLEMENTED = (
    "secret_keys",
    "k8s_key_refs",
    "rule_context",
    "preconditions",
    "variables",
    "namespace_selector",
    "override_namespace_selector",
    "tsa_timestamps",
    "apply_rules_one",
    "cel_preconditions",
    "webhook_match_conditions",
    "user_info",
)
STILL_REFUSED = [c for c in REFUSED if c[3] not in IMPLEMENTED]
NOW_LOADING = [c for c in REFUSED if c[3] in IMPLEMENTED]


@pytest.mark.parametrize(("doc", "path", "feature"), [c[1:] for c in STILL_REFUSED], ids=[c[0] for c in STILL_REFUSED])
def test_refused_features(doc: Doc, path: str, feature: str) -> None:
    assert f"{path}: {REFUSALS[feature]}" in problems(doc)


@pytest.mark.parametrize(("doc", "path", "feature"), [c[1:] for c in NOW_LOADING], ids=[c[0] for c in NOW_LOADING])
def test_implemented_features_load_and_flag_off_refuses(doc: Doc, path: str, feature: str) -> None:
    assert len(load(doc).policies) == 1
    off = Capabilities(**{feature: False})
    assert f"{path}: {REFUSALS[feature]}" in problems(doc, caps=off)


KMS_REFUSED = [
    (
        "awskms in publicKeys",
        set_entry(keys_entry("awskms:///alias/cosign")),
        f"{E0}.keys.publicKeys",
        "kms_keys",
    ),
    (
        "gcpkms",
        set_entry({"keys": {"kms": "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"}}),
        f"{E0}.keys.kms",
        "kms_keys",
    ),
    (
        "azurekms",
        set_entry({"keys": {"kms": "azurekms://v.vault.azure.net/k"}}),
        f"{E0}.keys.kms",
        "kms_keys",
    ),
    ("hashivault", set_entry({"keys": {"kms": "hashivault://cosign"}}), f"{E0}.keys.kms", "kms_keys"),
    (
        "deprecated kms key",
        set_iv(image="a", key="awskms:///alias/x", attestors=None, imageReferences=None),
        f"{iv_path()}.key",
        "kms_keys",
    ),
]


@pytest.mark.parametrize(("doc", "path", "feature"), [c[1:] for c in KMS_REFUSED], ids=[c[0] for c in KMS_REFUSED])
def test_kms_keys_refused_only_when_switched_off(doc: Doc, path: str, feature: str) -> None:
    from dataclasses import replace

    assert f"{path}: {REFUSALS[feature]}" in problems(doc, caps=replace(Capabilities(), kms_keys=False))
    load(doc)  # supported now: loads


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("awskms:///not-a-key", "awskms: invalid key id"),
        ("gcpkms://projects/p/locations/l/keyRings/r", "gcpkms: "),
        ("azurekms://v.vault.azure.net/bad_name", "azurekms: key name"),
        ("hashivault://a/b", "hashivault: "),
    ],
)
def test_malformed_kms_uri_refused_with_its_path(key: str, message: str) -> None:
    found = problems(set_entry({"keys": {"kms": key}}))
    assert any(p.startswith(f"{E0}.keys.kms: {message}") for p in found), found


def test_every_flag_has_a_message() -> None:
    assert set(REFUSALS) == {f for f in vars(Capabilities()) if not f.startswith("_")}


OTHER_REFUSALS: list[tuple[str, Doc, str]] = [
    ("not a PEM", set_entry(keys_entry("cosign.pub")), f"{E0}.keys.publicKeys: not a PEM public key"),
    (
        "broken PEM",
        set_entry(keys_entry("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")),
        f"{E0}.keys.publicKeys: not a valid PEM public key",
    ),
    (
        "second of two PEMs broken",
        set_entry(keys_entry(PEM_A + "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")),
        f"{E0}.keys.publicKeys: key 2 of 2: not a valid PEM public key",
    ),
    (
        "repository",
        set_iv(repository="Not A Repo"),
        f"{iv_path()}.repository: invalid repository 'Not A Repo'",
    ),
    (
        "attestor repository",
        set_entry(keys_entry() | {"repository": "ghcr.io/UPPER/case"}),
        f"{E0}.repository: invalid repository",
    ),
    (
        "publicKeys and kms",
        set_entry({"keys": {"publicKeys": PEM_A, "kms": "awskms:///alias/x"}}),
        f"{E0}.keys: publicKeys, kms are set together",
    ),
    (
        "attestor-level signatureAlgorithm differs",
        set_entry(keys_entry() | {"signatureAlgorithm": "sha512"}),
        f"{E0}.signatureAlgorithm: Kyverno uses keys.signatureAlgorithm for keys",
    ),
    (
        "deprecated subject without issuer",
        set_iv(image="a", key=None, subject="s", attestors=None, imageReferences=None),
        f"{iv_path()}.subject: subject without issuer is ignored by Kyverno",
    ),
    (
        "deprecated issuer with key",
        set_iv(image="a", key=PEM_A, issuer="i", attestors=None, imageReferences=None),
        f"{iv_path()}.issuer: issuer cannot be combined with key",
    ),
    (
        "deprecated additionalExtensions without issuer",
        set_iv(image="a", key=PEM_A, additionalExtensions={"a": "b"}, attestors=None, imageReferences=None),
        f"{iv_path()}.additionalExtensions: additionalExtensions is only used with issuer",
    ),
]


@pytest.mark.parametrize(("doc", "expected"), [c[1:] for c in OTHER_REFUSALS], ids=[c[0] for c in OTHER_REFUSALS])
def test_unusable_values(doc: Doc, expected: str) -> None:
    found = problems(doc)
    assert any(expected in p for p in found), found


SWITCHED_ON = [
    (
        "attestations",
        set_iv(attestations=[{"type": "https://slsa.dev/provenance/v1"}]),
        f"{iv_path()}.attestations",
        "attestations",
    ),
    (
        "validate",
        set_iv(validate={"deny": {"conditions": {"any": []}}}),
        f"{iv_path()}.validate",
        "validate_deny",
    ),
    ("SigstoreBundle", set_iv(type="SigstoreBundle"), f"{iv_path()}.type", "sigstore_bundle"),
    ("cosignOCI11", set_iv(cosignOCI11=True), f"{iv_path()}.cosignOCI11", "cosign_oci11"),
    ("keyless", set_entry({"keyless": {"issuer": "i", "rekor": {"url": "u"}}}), f"{E0}.keyless", "keyless"),
    ("certificates", set_entry({"certificates": {"cert": "C"}}), f"{E0}.certificates", "certificates"),
    (
        "deprecated issuer",
        set_iv(image="a", issuer="i", attestors=None, imageReferences=None),
        f"{iv_path()}.issuer",
        "keyless",
    ),
]


@pytest.mark.parametrize(("doc", "path", "feature"), [c[1:] for c in SWITCHED_ON], ids=[c[0] for c in SWITCHED_ON])
def test_supported_features_refused_only_when_switched_off(doc: Doc, path: str, feature: str) -> None:
    from dataclasses import replace

    assert f"{path}: {REFUSALS[feature]}" in problems(doc, caps=replace(Capabilities(), **{feature: False}))
    if path.endswith(".issuer"):
        # switched on, the converted keyless entry meets Kyverno's own rule: no Rekor URL or roots given
        assert any("Either Rekor URL or roots are required" in p for p in problems(doc))
    else:
        load(doc)


def test_flipping_a_capability_accepts_the_feature() -> None:
    from dataclasses import replace

    doc = set_entry({"keyless": {"issuer": "https://accounts.google.com", "subject": "a@b", "rekor": {"url": "u"}}})
    with pytest.raises(PolicyError):
        load(doc, caps=replace(Capabilities(), keyless=False))
    assert len(load(doc, caps=Capabilities(keyless=True)).policies) == 1


def test_capabilities_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = set_iv(cosignOCI11=True)
    monkeypatch.setattr(capabilities, "CURRENT", Capabilities(cosign_oci11=False))
    with pytest.raises(PolicyError):
        load(doc)
    monkeypatch.setattr(capabilities, "CURRENT", Capabilities(cosign_oci11=True))
    assert load(doc).policies[0].spec.rules[0].verify_images[0].cosign_oci11 is True


# --- policies that load (seed-style)
# ----------------------------------------------------------------------------

LOADS: list[tuple[str, Doc]] = [
    ("one PEM", policy()),
    ("RSA PEM", set_entry(keys_entry(PEM_B))),
    (
        "several PEMs in one publicKeys",
        set_iv(attestors=[{"count": 1, "entries": [keys_entry(PEM_A + PEM_B + PEM_C)]}]),
    ),
    ("count of entries", set_iv(attestors=[{"count": 1, "entries": [keys_entry(PEM_A), keys_entry(PEM_B)]}])),
    (
        "nested attestor",
        set_iv(
            attestors=[
                {
                    "entries": [
                        keys_entry(PEM_A),
                        {"attestor": {"count": 1, "entries": [keys_entry(PEM_B), keys_entry(PEM_C)]}},
                    ]
                }
            ]
        ),
    ),
    (
        "several attestor sets",
        set_iv(attestors=[{"entries": [keys_entry(PEM_A)]}, {"entries": [keys_entry(PEM_B)]}]),
    ),
    ("repository", set_iv(repository="ghcr.io/acme/signatures")),
    (
        "attestor repository and annotations",
        set_entry(keys_entry() | {"repository": "ghcr.io/acme/sigs", "annotations": {"env": "prod"}}),
    ),
    (
        "rekor and ctlog",
        set_entry(
            keys_entry(
                rekor={"url": "https://rekor.example", "pubkey": PEM_C},
                ctlog={"ignoreSCT": True, "pubkey": PEM_C},
            )
        ),
    ),
    ("ignoreTlog", set_entry(keys_entry(rekor={"ignoreTlog": True}))),
    ("signatureAlgorithm", set_entry(keys_entry(signatureAlgorithm="sha512"))),
    (
        "deprecated single-image form",
        set_iv(image="ghcr.io/acme/*", key=PEM_A, attestors=None, imageReferences=None),
    ),
    (
        "deprecated with annotations",
        set_iv(image="ghcr.io/acme/*", key=PEM_A, annotations={"a": "b"}, attestors=None, imageReferences=None),
    ),
    ("no attestors: digest checks only", set_iv(attestors=None, mutateDigest=False, required=False)),
    ("skipImageReferences", set_iv(skipImageReferences=["ghcr.io/acme/base:*"])),
    ("entry Enforce under spec Audit", policy(rule(verification(failureAction="Enforce")), action="Audit")),
    ("Audit with mutateDigest off", policy(rule(verification(mutateDigest=False)), action="Audit")),
    (
        "entry Enforce carries over to the next entry (as Kyverno validates)",
        policy(rule(verification(failureAction="Enforce"), verification()), action="Audit"),
    ),
    ("providers are ambient", set_iv(imageRegistryCredentials={"providers": ["amazon", "google"]})),
    ("cosignOCI11 false", set_iv(cosignOCI11=False)),
    (
        "image extractors",
        policy(rule(verification(), imageExtractors={"Task": [{"path": "/spec/steps/*/image"}]})),
    ),
    (
        "jmesPath extractor without mutateDigest",
        policy(
            rule(
                verification(mutateDigest=False),
                imageExtractors={"DataVolume": [{"path": "/spec/url", "jmesPath": "trim_prefix(@, 'docker://')"}]},
            )
        ),
    ),
    (
        "legacy name not excluded (Kyverno's own case)",
        set_match(
            {"resources": {"kinds": ["Pod", "Namespace"], "name": "somxething", "namespaces": ["a", "b"]}},
            {
                "resources": {
                    "kinds": ["Pod", "Namespace", "Job"],
                    "name": "some*",
                    "namespaces": ["a", "b", "c"],
                }
            },
        ),
    ),
    ("legacy match", set_match({"resources": {"kinds": ["Pod"], "namespaces": ["prod-*"]}})),
    (
        "match details",
        set_match(
            {
                "all": [
                    {
                        "resources": {
                            "kinds": ["Pod", "apps/v1/Deployment"],
                            "names": ["web-*"],
                            "namespaces": ["prod"],
                            "annotations": {"team": "*"},
                            "selector": {
                                "matchLabels": {"app": "web"},
                                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}],
                            },
                            "operations": ["CREATE", "UPDATE"],
                        }
                    }
                ]
            },
            {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["kube-system"]}}]},
        ),
    ),
    (
        "wildcard selector",
        set_match({"any": [{"resources": {"kinds": ["Pod"], "selector": {"matchLabels": {"app/*": "*"}}}}]}),
    ),
    ("webhookConfiguration", set_spec(webhookConfiguration={"failurePolicy": "Ignore", "timeoutSeconds": 5})),
    (
        "status and metadata of a stored object",
        edit(
            lambda d: (
                d.update(status={"ready": True})
                or d["metadata"].update(
                    uid="u", resourceVersion="1", generation=2, creationTimestamp="2024-01-01T00:00:00Z"
                )
            )
        ),
    ),
    ("namespaced Policy", edit(lambda d: d["metadata"].update(namespace="team"), policy(kind="Policy"))),
    ("v2beta1", policy(api_version="kyverno.io/v2beta1")),
    (
        "explicit nulls",
        edit(lambda d: d["spec"]["rules"][0]["verifyImages"][0].update(mutateDigest=None, skipImageReferences=None)),
    ),
    ("timestamps stay strings", edit(lambda d: d["metadata"].update(annotations={"since": "2024-01-01"}))),
]


@pytest.mark.parametrize("doc", [c[1] for c in LOADS], ids=[c[0] for c in LOADS])
def test_loads(doc: Doc) -> None:
    loaded = load(doc)
    assert len(loaded.policies) == 1
    assert loaded.policies[0].spec.rules[0].verify_images


def test_loaded_policy_fields() -> None:
    doc = policy()
    doc["metadata"]["annotations"] = {"pod-policies.kyverno.io/autogen-controllers": "none"}
    doc["metadata"]["labels"] = {"team": "sec"}
    (p,) = load(doc).policies
    assert (p.api_version, p.kind, p.name, p.namespace, p.key) == (
        "kyverno.io/v1",
        "ClusterPolicy",
        "verify-images",
        "",
        "verify-images",
    )
    assert dict(p.annotations) == {"pod-policies.kyverno.io/autogen-controllers": "none"}
    assert dict(p.labels) == {"team": "sec"}
    assert p.source == "t.yaml#doc1"
    assert p.content_hash == hashlib.sha256(rfc8785.dumps(doc)).hexdigest()
    (r,) = p.spec.rules
    (entry,) = r.verify_images
    assert entry.image_references == ("ghcr.io/acme/*",)
    assert entry.attestors[0].entries[0].keys is not None
    assert entry.attestors[0].entries[0].keys.public_key_entries() == (PEM_A.strip(),)
    assert p.rule_failure_action(r) == "Enforce"


def test_content_hash_ignores_yaml_formatting_and_key_order() -> None:
    doc = policy()
    reordered = dict(reversed(list(doc.items())))
    a = load_policy_text(yaml.safe_dump(doc), "a").policies[0].content_hash
    b = load_policy_text(yaml.safe_dump(reordered, default_flow_style=True), "b").policies[0].content_hash
    c = load(policy(name="other")).policies[0].content_hash
    assert a == b != c


def test_deprecated_form_is_converted_with_a_note() -> None:
    loaded = load(
        set_iv(
            image="ghcr.io/acme/*",
            key=PEM_A,
            annotations={"env": "prod"},
            attestors=None,
            imageReferences=None,
        )
    )
    (entry,) = loaded.policies[0].spec.rules[0].verify_images
    assert entry.image_references == ("ghcr.io/acme/*",)
    assert entry.image == entry.key == ""
    assert dict(entry.attestors[0].entries[0].annotations) == {"env": "prod"}
    assert any("verifyImages[0] uses deprecated image, key, annotations; converted" in n for n in loaded.notes)


def test_predicate_type_is_moved_onto_type() -> None:
    doc = set_iv(
        attestations=[
            {"predicateType": "https://slsa.dev/provenance/v0.2"},
            {"type": "t", "predicateType": "p"},
        ]
    )
    entry = load(doc, caps=ALL).policies[0].spec.rules[0].verify_images[0]
    assert [(a.type, a.predicate_type) for a in entry.attestations] == [
        ("https://slsa.dev/provenance/v0.2", ""),
        ("t", "p"),
    ]


@pytest.mark.parametrize(
    ("spec", "failure_policy", "timeout"),
    [
        ({}, "Fail", 10),
        ({"failurePolicy": "Ignore", "webhookTimeoutSeconds": 30}, "Ignore", 30),
        ({"webhookConfiguration": {"failurePolicy": "Ignore", "timeoutSeconds": 4}}, "Ignore", 4),
    ],
)
def test_effective_failure_policy_and_timeout(spec: Doc, failure_policy: str, timeout: int) -> None:
    (p,) = load(policy(**spec)).policies
    assert (p.spec.failure_policy, p.spec.webhook_timeout_seconds) == (failure_policy, timeout)


# --- documents, files and directories
# ---------------------------------------------------------------------------

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}


def test_multi_document_with_notes() -> None:
    text = dump(NAMESPACE, CONFIGMAP, policy()) + "---\n"
    loaded = load_policy_text(text, "x.yaml")
    assert [p.source for p in loaded.policies] == ["x.yaml#doc3"]
    assert "x.yaml#doc1: Namespace is not a Kyverno policy; skipped" in loaded.notes
    assert "x.yaml#doc2: ConfigMap is not a Kyverno policy; skipped" in loaded.notes


def test_rules_without_verify_images_are_skipped_with_a_note() -> None:
    validate_rule = rule(name="labels", validate={"pattern": {"metadata": {"labels": {"a": "b"}}}})
    loaded = load(policy(rule(verification()), validate_rule), policy(validate_rule, name="only-validate"))
    assert [p.name for p in loaded.policies] == ["verify-images"]
    assert [r.name for r in loaded.policies[0].spec.rules] == ["verify"]
    assert "t.yaml#doc1: policy verify-images rule labels: no verifyImages; skipped" in loaded.notes
    assert "t.yaml#doc2: policy only-validate: no verifyImages rules; skipped" in loaded.notes


def test_empty_documents_are_skipped_with_a_note() -> None:
    loaded = load_policy_text("---\n---\n" + dump(policy()), "e.yaml")
    assert "e.yaml#doc1: empty document; skipped" in loaded.notes
    assert loaded.policies[0].source == "e.yaml#doc2"


def test_a_list_is_expanded() -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [policy(), policy(name="second")]}
    loaded = load(listed)
    assert [p.source for p in loaded.policies] == ["t.yaml#doc1.items[0]", "t.yaml#doc1.items[1]"]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {
                "apiVersion": "policies.kyverno.io/v1alpha1",
                "kind": "ImageVerificationPolicy",
                "metadata": {"name": "i"},
            },
            "kind: policies.kyverno.io/v1alpha1 ImageVerificationPolicy is not supported yet",
        ),
        (
            # a CEL PolicyException (for ImageValidatingPolicies) is read: without a spec it is refused as such
            {"apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException", "metadata": {"name": "e"}},
            ': missing required field "spec"',
        ),
        (
            {"apiVersion": "policies.kyverno.io/v2", "kind": "PolicyException", "metadata": {"name": "e"}, "spec": {}},
            "apiVersion: policies.kyverno.io/v2 PolicyException is not supported: use policies.kyverno.io/v1alpha1",
        ),
        (
            {"apiVersion": "kyverno.io/v1", "kind": "PolicyException", "metadata": {"name": "e"}},
            "kind: kyverno.io/v1 PolicyException is not supported: sigward honours kyverno.io/v2 and v2beta1",
        ),
        (
            {"apiVersion": "kyverno.io/v2", "kind": "PolicyException", "metadata": {"name": "e"}},
            ': missing required field "spec"',
        ),
        (
            {"apiVersion": "kyverno.io/v2", "kind": "ClusterPolicy", "metadata": {"name": "p"}},
            "apiVersion: kyverno.io/v2 ClusterPolicy is not supported: use kyverno.io/v1 or kyverno.io/v2beta1",
        ),
        (["a", "list"], ": not a Kubernetes object"),
        ("text", ": not a Kubernetes object"),
        (
            {"kind": "ClusterPolicy", "spec": {}},
            ": not a Kubernetes object: apiVersion and kind (strings) are required",
        ),
    ],
)
def test_refused_documents(doc: Any, expected: str) -> None:
    assert any(expected in p for p in problems(doc)), problems(doc)


def test_other_kyverno_kinds_are_skipped_with_a_note() -> None:
    doc = {"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy", "metadata": {"name": "v"}}
    assert load(doc).notes == (
        "t.yaml#doc1: policies.kyverno.io/v1 ValidatingPolicy is not a ClusterPolicy or Policy; skipped",
    )


def test_the_same_policy_twice_is_a_problem() -> None:
    assert any("ClusterPolicy verify-images is also defined in t.yaml#doc1" in p for p in problems(policy(), policy()))


def test_directory_loading(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text(dump(policy(name="b")))
    (tmp_path / "a.yaml").write_text(dump(CONFIGMAP, policy(name="a")))
    (tmp_path / "c.txt").write_text(dump(policy(name="c")))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text(dump(policy(name="d")))
    loaded = load_policies([tmp_path])
    assert [p.name for p in loaded.policies] == ["a", "b"]
    assert [p.source for p in loaded.policies] == [
        f"{tmp_path / 'a.yaml'}#doc2",
        f"{tmp_path / 'b.yml'}#doc1",
    ]
    assert f"{tmp_path / 'a.yaml'}#doc1: ConfigMap is not a Kyverno policy; skipped" in loaded.notes


def test_files_and_a_single_path(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text(dump(policy(name="one")))
    two.write_text(dump(policy(name="two")))
    assert [p.name for p in load_policies([str(one), two]).policies] == ["one", "two"]
    assert [p.name for p in load_policies(str(one)).policies] == ["one"]


def test_empty_policy_path_directory_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"no \*\.yaml, \*\.yml or \*\.json files"):
        load_policies([tmp_path])


def test_problems_of_all_files_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(dump(set_iv(imageReferences=[])))
    (tmp_path / "b.yaml").write_text(dump(set_iv(type="Notary", attestors=[{"entries": [keys_entry()]}])))
    with pytest.raises(PolicyError) as err:
        load_policies([tmp_path, tmp_path / "missing.yaml"])
    sources = [p.source for p in err.value.problems]
    assert f"{tmp_path / 'a.yaml'}#doc1" in sources
    assert f"{tmp_path / 'b.yaml'}#doc1" in sources
    assert str(tmp_path / "missing.yaml") in sources
    assert "no such file or directory" in str(err.value)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(dump(policy()) + "#" * MAX_POLICY_FILE_BYTES)
    with pytest.raises(PolicyError, match="larger than 1048576 bytes"):
        load_policies([big])
    with pytest.raises(PolicyError, match="larger than"):
        load_policy_text("#" * (MAX_POLICY_FILE_BYTES + 1), "stdin")


def test_non_utf8_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"apiVersion: \xff\xfe\n")
    with pytest.raises(PolicyError, match="not UTF-8 text"):
        load_policies([bad])


def laughs(levels: int, width: int) -> str:
    lines = ["a0: &a0 [" + ",".join(['"lol"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "apiVersion: v1\nkind: ConfigMap\ndata:\n" + "\n".join("  " + line for line in lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (laughs(9, 9), "more than 100000 YAML nodes with aliases expanded"),
        ("a: &a x\nb: [" + ",".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n", "more than 100 YAML aliases"),
        ("a: " + "[" * 100 + "]" * 100 + "\n", "YAML nested deeper than 64 levels"),
        ("a: &x [*x]\n", "recursive YAML alias"),
        ("apiVersion: v1\nkind: ConfigMap\nkind: Secret\n", "duplicate key 'kind' (line 3, column 1)"),
        ("a: [\n", "invalid YAML"),
        ("x: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
    ],
    ids=["billion laughs", "aliases", "depth", "recursive", "duplicate key", "syntax", "python tag"],
)
def test_hostile_yaml_is_refused(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(text, "h.yaml")
    assert expected in str(err.value)
    assert err.value.problems[0].source == "h.yaml#doc1"


def test_a_few_aliases_and_merge_keys_are_fine() -> None:
    pem = "\n".join(" " * 14 + line for line in PEM_A.strip().splitlines())
    text = f"""apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: p}}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: &m {{any: [{{resources: {{kinds: [Pod]}}}}]}}
    verifyImages:
    - &iv
      imageReferences: ['a/*']
      attestors:
      - entries:
        - keys:
            publicKeys: |
{pem}
  - name: r2
    match: *m
    verifyImages:
    - <<: *iv
      imageReferences: ['b/*']
"""
    (p,) = load_policy_text(text, "a.yaml").policies
    assert [r.verify_images[0].image_references for r in p.spec.rules] == [("a/*",), ("b/*",)]
    assert p.spec.rules[1].verify_images[0].attestors == p.spec.rules[0].verify_images[0].attestors


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("/a.yaml", ("/a.yaml",)),
        ("/a.yaml:/dir::/b.yml", ("/a.yaml", "/dir", "/b.yml")),
    ],
)
def test_policy_paths_from_env(value: str | None, expected: tuple[str, ...]) -> None:
    env = {} if value is None else {"SIGWARD_POLICY": value}
    assert policy_paths_from_env(env) == expected


def test_policy_paths_from_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGWARD_POLICY", "/x.yaml:/y")
    assert policy_paths_from_env() == ("/x.yaml", "/y")

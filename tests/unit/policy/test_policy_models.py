"""The policy models: CRD defaults, helpers the verifier relies on, and the deprecated single-image
conversion."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from sigward.policy.models import (
    DEFAULT_REKOR_URL,
    Attestation,
    Attestor,
    AttestorSet,
    ImageVerification,
    PolicySpec,
    Rekor,
    Rule,
    StaticKeyAttestor,
)


def new_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


PEM_A = new_pem()
PEM_B = new_pem()
PEM_C = new_pem()


def iv(**fields: Any) -> ImageVerification:
    return ImageVerification.model_validate(fields, by_alias=True, by_name=False)


# --- defaults
# ------------------------------------------------------------------------------------------------

DEFAULTS: list[tuple[str, Any, str, Any]] = [
    # (model, YAML, attribute, expected default)
    ("ImageVerification", {}, "type", "Cosign"),
    ("ImageVerification", {}, "mutate_digest", True),
    ("ImageVerification", {}, "verify_digest", True),
    ("ImageVerification", {}, "required", True),
    ("ImageVerification", {}, "use_cache", True),
    ("ImageVerification", {}, "cosign_oci11", False),
    ("ImageVerification", {}, "failure_action", None),
    ("ImageVerification", {}, "repository", ""),
    ("ImageVerification", {}, "validate", None),
    ("ImageVerification", {}, "image_references", ()),
    ("StaticKeyAttestor", {}, "signature_algorithm", "sha256"),
    ("StaticKeyAttestor", {}, "rekor", None),
    ("Rekor", {}, "url", DEFAULT_REKOR_URL),
    ("Rekor", {}, "ignore_tlog", False),
    ("CTLog", {}, "ignore_sct", False),
    ("AttestorSet", {}, "count", None),
    ("Attestor", {}, "annotations", {}),
    ("Attestor", {}, "repository", ""),
    ("Attestor", {}, "signature_algorithm", "sha256"),
    ("PolicySpec", {}, "validation_failure_action", "Audit"),
    ("PolicySpec", {}, "failure_policy", "Fail"),
    ("PolicySpec", {}, "webhook_timeout_seconds", 10),
    ("PolicySpec", {}, "background", True),
    ("PolicySpec", {}, "admission", True),
    ("PolicySpec", {}, "apply_rules", "All"),
    ("PolicySpec", {"validationFailureAction": "enforce"}, "validation_failure_action", "Enforce"),
    ("PolicySpec", {"validationFailureAction": "ENFORCE"}, "validation_failure_action", "Enforce"),
    ("PolicySpec", {"validationFailureAction": "audit"}, "validation_failure_action", "Audit"),
    ("Rule", {"name": "r", "match": {}}, "skip_background_requests", True),
    ("Rule", {"name": "r", "match": {}}, "exclude", None),
    # a YAML null on a typed field is "not set", as the API server prunes it
    ("ImageVerification", {"mutateDigest": None}, "mutate_digest", True),
    ("ImageVerification", {"attestors": None}, "attestors", ()),
]


@pytest.mark.parametrize(("model", "data", "attribute", "expected"), DEFAULTS)
def test_defaults(model: str, data: dict[str, Any], attribute: str, expected: Any) -> None:
    from sigward.policy import models

    cls = getattr(models, model)
    obj = cls.model_validate(data, by_alias=True, by_name=False)
    assert getattr(obj, attribute) == expected


ALIASES = [
    ({"cosignOCI11": True}, "cosign_oci11", True),
    ({"imageReferences": ["a"]}, "image_references", ("a",)),
    ({"skipImageReferences": ["b"]}, "skip_image_references", ("b",)),
    ({"failureAction": "Enforce"}, "failure_action", "Enforce"),
    ({"imageRegistryCredentials": {"providers": ["amazon"]}}, "image_registry_credentials", None),
]


@pytest.mark.parametrize(("data", "attribute", "expected"), ALIASES)
def test_yaml_aliases(data: dict[str, Any], attribute: str, expected: Any) -> None:
    got = getattr(iv(**data), attribute)
    if expected is not None:
        assert got == expected
    else:
        assert got is not None


def test_rekor_and_ctlog_aliases() -> None:
    keys = StaticKeyAttestor.model_validate(
        {
            "publicKeys": "x",
            "rekor": {"pubkey": "P", "ignoreTlog": True},
            "ctlog": {"ignoreSCT": True, "pubkey": "C"},
        },
        by_alias=True,
        by_name=False,
    )
    assert keys.rekor is not None and keys.rekor.pub_key == "P" and keys.rekor.ignore_tlog
    assert keys.ctlog is not None and keys.ctlog.ignore_sct and keys.ctlog.pub_key == "C"


def test_python_names_are_not_yaml_keys() -> None:
    with pytest.raises(ValidationError):
        ImageVerification.model_validate({"mutate_digest": False}, by_alias=True, by_name=False)


def test_python_construction_by_name_and_frozen() -> None:
    keys = StaticKeyAttestor(public_keys=PEM_A, signature_algorithm="sha512", rekor=Rekor(ignore_tlog=True))
    assert keys.signature_algorithm == "sha512"
    with pytest.raises(ValidationError):
        keys.public_keys = "other"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"mutateDigest": "false"}, "mutateDigest"),
        ({"imageReferences": "ghcr.io/*"}, "imageReferences"),
        ({"imageReferences": [1]}, "imageReferences"),
        ({"type": "cosign"}, "type"),
        ({"failureAction": "enforce"}, "failureAction"),
    ],
)
def test_strict_scalars(value: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        iv(**value)
    assert err.value.errors()[0]["loc"][0] == field


# --- helpers
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_keys", "expected"),
    [
        ("", ()),
        (PEM_A, (PEM_A.strip(),)),
        (PEM_A + PEM_B, (PEM_A.strip(), PEM_B.strip())),
        (PEM_A + "\n" + PEM_B + "\n\n" + PEM_C, (PEM_A.strip(), PEM_B.strip(), PEM_C.strip())),
        # text after the last END marker is dropped, as splitPEM does, once there are several keys
        (PEM_A + PEM_B + "trailing", (PEM_A.strip(), PEM_B.strip())),
        ("awskms:///alias/cosign", ("awskms:///alias/cosign",)),
    ],
)
def test_public_key_entries(public_keys: str, expected: tuple[str, ...]) -> None:
    assert StaticKeyAttestor(public_keys=public_keys).public_key_entries() == expected


@pytest.mark.parametrize(("count", "entries", "expected"), [(None, 3, 3), (0, 3, 3), (1, 3, 1), (2, 2, 2)])
def test_required_count(count: int | None, entries: int, expected: int) -> None:
    attestor_set = AttestorSet(count=count, entries=tuple(Attestor() for _ in range(entries)))
    assert attestor_set.required_count() == expected


@pytest.mark.parametrize(
    ("spec_action", "entry_actions", "expected"),
    [
        ("Audit", [None], "Audit"),
        ("Enforce", [None], "Enforce"),
        ("Audit", ["Enforce"], "Enforce"),
        ("Enforce", ["Audit"], "Audit"),
        # Enforce wins if any entry enforces (EngineResponse.ruleAction)
        ("Audit", ["Audit", "Enforce"], "Enforce"),
        ("Audit", [None, "Enforce"], "Enforce"),
        ("Enforce", [None, "Audit"], "Audit"),
    ],
)
def test_rule_failure_action(spec_action: str, entry_actions: list[str | None], expected: str) -> None:
    rule = Rule.model_validate(
        {
            "name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "verifyImages": [{"imageReferences": ["*"], **({"failureAction": a} if a else {})} for a in entry_actions],
        },
        by_alias=True,
        by_name=False,
    )
    spec = PolicySpec.model_validate({"validationFailureAction": spec_action}, by_alias=True, by_name=False)
    assert spec.rule_failure_action(rule) == expected
    assert spec.enforces(rule) is (expected == "Enforce")
    assert rule.verify_images[0].effective_failure_action(spec.validation_failure_action) == (
        entry_actions[0] or spec_action
    )


# --- deprecated single-image form
# ----------------------------------------------------------------------------


def test_convert_image_and_key() -> None:
    got = iv(image="ghcr.io/x/*", key=PEM_A).converted()
    assert got.image_references == ("ghcr.io/x/*",)
    assert len(got.attestors) == 1
    (entry,) = got.attestors[0].entries
    assert entry.keys is not None and entry.keys.public_keys == PEM_A
    assert entry.keyless is None
    assert got.deprecated_fields() == ()
    assert got.image == got.key == ""


def test_convert_keeps_modern_fields_and_appends() -> None:
    got = iv(
        image="b",
        imageReferences=["a"],
        key=PEM_A,
        attestors=[{"entries": [{"keys": {"publicKeys": PEM_B}}]}],
    ).converted()
    assert got.image_references == ("a", "b")
    assert [s.entries[0].keys.public_keys for s in got.attestors if s.entries[0].keys] == [PEM_B, PEM_A]


def test_convert_issuer_to_keyless() -> None:
    got = iv(
        image="a",
        issuer="https://token.actions.githubusercontent.com",
        subject="https://github.com/x/*",
        roots="ROOTS",
        additionalExtensions={"githubWorkflowRepository": "x/y"},
    ).converted()
    (entry,) = got.attestors[0].entries
    assert entry.keys is None
    assert entry.keyless is not None
    assert entry.keyless.issuer == "https://token.actions.githubusercontent.com"
    assert entry.keyless.subject == "https://github.com/x/*"
    assert entry.keyless.roots == "ROOTS"
    assert entry.keyless.rekor is None  # Kyverno's Convert sets no rekor
    assert dict(entry.keyless.additional_extensions) == {"githubWorkflowRepository": "x/y"}


def test_convert_key_wins_over_issuer() -> None:
    got = iv(image="a", key=PEM_A, issuer="I").converted()
    (entry,) = got.attestors[0].entries
    assert entry.keys is not None and entry.keyless is None


def test_convert_annotations_go_to_the_created_entry_and_to_attestors_without_their_own() -> None:
    got = iv(
        image="a",
        key=PEM_A,
        annotations={"env": "prod"},
        attestors=[
            {
                "entries": [
                    {"keys": {"publicKeys": PEM_B}},
                    {"keys": {"publicKeys": PEM_C}, "annotations": {"team": "x"}},
                    {"attestor": {"entries": [{"keys": {"publicKeys": PEM_C}}]}},
                ]
            }
        ],
    ).converted()
    first, second, nested = got.attestors[0].entries
    assert dict(first.annotations) == {"env": "prod"}
    assert dict(second.annotations) == {"team": "x"}
    assert nested.attestor is not None and dict(nested.attestor.entries[0].annotations) == {"env": "prod"}
    assert dict(got.attestors[1].entries[0].annotations) == {"env": "prod"}
    assert dict(got.annotations) == {}


def test_convert_with_attestations_adds_the_attestor_to_each_attestation() -> None:
    got = iv(image="a", key=PEM_A, attestations=[{"type": "t1"}, {"predicateType": "t2"}]).converted()
    assert got.attestors == ()
    for attestation in got.attestations:
        assert isinstance(attestation, Attestation)
        assert attestation.attestors[-1].entries[0].keys is not None


def test_entry_level_annotations_alone_only_apply_to_attestors() -> None:
    got = iv(
        imageReferences=["a"],
        annotations={"env": "prod"},
        attestors=[{"entries": [{"keys": {"publicKeys": PEM_A}}]}],
    ).converted()
    assert len(got.attestors) == 1
    assert dict(got.attestors[0].entries[0].annotations) == {"env": "prod"}


def test_convert_is_identity_for_the_modern_form() -> None:
    modern = iv(imageReferences=["a"], attestors=[{"entries": [{"keys": {"publicKeys": PEM_A}}]}])
    assert modern.converted() is modern


def test_nested_attestor_is_parsed_into_an_attestor_set() -> None:
    entry = Attestor.model_validate(
        {
            "attestor": {
                "count": 1,
                "entries": [{"keys": {"publicKeys": PEM_A}}, {"keys": {"publicKeys": PEM_B}}],
            }
        },
        by_alias=True,
        by_name=False,
    )
    assert isinstance(entry.attestor, AttestorSet)
    assert entry.attestor.required_count() == 1
    assert entry.kinds_set() == ("attestor",)

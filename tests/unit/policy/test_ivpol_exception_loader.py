"""Loading CEL PolicyExceptions (policies.kyverno.io v1alpha1/v1beta1/v1) beside ImageValidatingPolicies: every
served version, Kyverno's vectors as shipped, unknown fields and invalid values refused with their YAML paths, CEL
type errors at load, what an ImageValidatingPolicy ignores noted (not silently dropped)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.errors import PolicyError
from sigward.policy.loader import load_policies, load_policy_text
from tests.unit.policy.test_ivpol_loader import ivpol

VECTORS = Path("/work/shared/vectors/kyverno-ivpol/chainsaw")


def exception(version: str = "v1", *, namespace: str | None = "team", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "policyRefs": [{"name": "p", "kind": "ImageValidatingPolicy"}],
        "matchConditions": [{"name": "n", "expression": "object.metadata.name == 'skip-me'"}],
    }
    body.update(spec)
    meta: dict[str, Any] = {"name": "e"}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": f"policies.kyverno.io/{version}", "kind": "PolicyException", "metadata": meta, "spec": body}


def text(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs)


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1", "v1"])
def test_every_served_version_loads(version: str) -> None:
    loaded = load_policy_text(text(ivpol(), exception(version)), "e.yaml")
    (exc,) = loaded.cel_exceptions
    assert exc.key == "team/e" and exc.refers_to("ImageValidatingPolicy", "p")
    assert exc.conditions.sources() == (("n", "object.metadata.name == 'skip-me'"),)
    assert not exc.refers_to("ImageValidatingPolicy", "other") and not exc.refers_to("ValidatingPolicy", "p")
    deprecated = [n for n in loaded.notes if "deprecated" in n]
    assert bool(deprecated) is (version == "v1alpha1"), loaded.notes


@pytest.mark.parametrize("directory", ["exceptions/autogen", "report/with-exception"])
def test_vector_exceptions_load_as_shipped(directory: str) -> None:
    loaded = load_policies([str(VECTORS / directory / "policy.yaml"), str(VECTORS / directory / "exception.yaml")])
    (exc,) = loaded.cel_exceptions
    (policy,) = loaded.image_policies
    assert exc.refers_to(policy.kind, policy.name)
    assert exc.namespace == "default"  # no metadata.namespace: kubectl apply's default, noted
    assert any("has no metadata.namespace" in n for n in loaded.notes)


def test_without_namespace_key_is_default() -> None:
    (exc,) = load_policy_text(text(ivpol(), exception(namespace=None)), "e.yaml").cel_exceptions
    assert exc.key == "default/e"


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"bogus": 1}, "spec", 'unknown field "bogus"'),
        ({"policyRefs": [{"name": "p", "kind": "ImageValidatingPolicy", "x": 1}]}, "spec.policyRefs[0]", "unknown"),
        ({"policyRefs": [{"name": "p"}]}, "spec.policyRefs[0]", 'missing required field "kind"'),
        ({"policyRefs": []}, "spec.policyRefs", "at least one"),
        ({"policyRefs": [{"name": "", "kind": "ImageValidatingPolicy"}]}, "spec.policyRefs[0].name", "required"),
        ({"matchConditions": [{"name": "n"}]}, "spec.matchConditions[0]", 'missing required field "expression"'),
        (
            {"matchConditions": [{"name": "n", "expression": "true", "extra": 1}]},
            "spec.matchConditions[0]",
            'unknown field "extra"',
        ),
        ({"matchConditions": [{"name": "n", "expression": "'x'"}]}, "spec.matchConditions[0].expression", "bool"),
        (
            {"matchConditions": [{"name": "n", "expression": "object.metadata.name == 1 + 'a'"}]},
            "spec.matchConditions[0].expression",
            "no matching overload",
        ),
        (  # the image variables do not exist in a matchCondition (as in Kyverno's request environment)
            {"matchConditions": [{"name": "n", "expression": "size(images.containers) > 0"}]},
            "spec.matchConditions[0].expression",
            "undeclared reference",
        ),
        (
            {"matchConditions": [{"name": "n", "expression": "true"}, {"name": "n", "expression": "true"}]},
            "spec.matchConditions[1].name",
            "duplicate",
        ),
        ({"expiresAt": "tomorrow"}, "spec.expiresAt", "RFC 3339"),
        ({"expiresAt": "2026-13-40T00:00:00Z"}, "spec.expiresAt", "not a valid date-time"),
        ({"reportResult": "fail"}, "spec.reportResult", ""),
        ({"evaluationMode": "JSON"}, "spec.evaluationMode", "sigward evaluates Kubernetes requests"),
        ({"properties": {"reason": 1}}, "spec.properties.reason", ""),
    ],
)
def test_invalid_exception_is_refused_with_its_path(spec: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(text(ivpol(), exception(**spec)), "e.yaml")
    assert any(p.path == path and message in p.message for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({**exception(), "apiVersion": "policies.kyverno.io/v2"}, "apiVersion"),
        ({**exception(), "status": {}, "extra": 1}, ""),
        ({k: v for k, v in exception().items() if k != "spec"}, ""),
    ],
)
def test_invalid_document_is_refused(doc: dict[str, Any], path: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(text(ivpol(), doc), "e.yaml")
    assert [p.path for p in info.value.problems] == [path], info.value.problems


def test_duplicate_exception_is_refused() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(text(ivpol(), exception(), exception()), "e.yaml")
    assert "PolicyException team/e is also defined in e.yaml#doc2" in str(info.value)


def test_same_name_in_another_namespace_is_another_exception() -> None:
    loaded = load_policy_text(text(ivpol(), exception(), exception(namespace="other")), "e.yaml")
    assert [e.key for e in loaded.cel_exceptions] == ["team/e", "other/e"]


def test_fields_an_image_policy_ignores_are_noted() -> None:
    doc = exception(
        images=["ghcr.io/*"],
        allowedValues=["x"],
        reportResult="pass",
        properties={"ticket": "SEC-1"},
        policyRefs=[{"name": "p", "kind": "ValidatingPolicy"}],
    )
    notes = load_policy_text(text(ivpol(), doc), "e.yaml").notes
    for field in ("spec.images", "spec.allowedValues", "spec.reportResult"):
        assert any(f"{field} is not read for ImageValidatingPolicies" in n for n in notes), (field, notes)
    assert any("sigward has no ValidatingPolicy policies" in n for n in notes), notes
    plain = load_policy_text(text(ivpol(), exception()), "e.yaml").notes
    assert not any("not read" in n or "exempts nothing" in n for n in plain), plain


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-01T00:00:00Z", datetime(2026, 5, 1, tzinfo=UTC)),
        ("2026-05-01T02:00:00+02:00", datetime(2026, 5, 1, tzinfo=UTC)),
        ("2026-05-01t00:00:00.5z", datetime(2026, 5, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_expires_at(value: str, expected: datetime) -> None:
    (exc,) = load_policy_text(text(ivpol(), exception(expiresAt=value)), "e.yaml").cel_exceptions
    assert exc.expires == expected
    assert exc.expired(expected) and not exc.expired(datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC))


def test_exceptions_alone_enforce_nothing(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text(exception()))
    with pytest.raises(PolicyError) as info:
        load_policies([str(path)])
    assert "only PolicyExceptions or GlobalContextEntries: refusing to run with nothing to enforce" in str(info.value)


def test_regression_policy_with_attestations_kept_its_kind_for_policy_refs() -> None:
    """Regression: the loader stored an IVPOL with an attestation under kind 'referrer'/'intoto' (a shadowed local),
    so no exception's policyRefs ({kind: ImageValidatingPolicy}) could name it."""
    attested = ivpol(attestations=[{"name": "sbom", "referrer": {"type": "sbom/cyclone-dx"}}])
    loaded = load_policy_text(text(attested, exception()), "e.yaml")
    (policy,) = loaded.image_policies
    assert policy.kind == "ImageValidatingPolicy"
    assert loaded.cel_exceptions[0].refers_to(policy.kind, policy.name)


def test_exception_naming_no_loaded_policy_is_noted() -> None:
    loaded = load_policy_text(
        text(ivpol(), exception(policyRefs=[{"name": "typo", "kind": "ImageValidatingPolicy"}])), "e"
    )
    assert "e#doc2: PolicyException team/e names no loaded ImageValidatingPolicy" in loaded.notes
    named = load_policy_text(text(ivpol(), exception()), "e")
    assert not any("names no loaded" in n for n in named.notes)

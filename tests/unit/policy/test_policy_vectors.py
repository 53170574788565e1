"""Every real Kyverno policy in ../shared/vectors/kyverno-policies either loads or is refused with a precise
problem (YAML path and message); the outcome of each file is pinned here, so a change in what sigward accepts
is a visible change to this table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sigward.errors import PolicyError
from sigward.policy.loader import load_policies

pytestmark = pytest.mark.vectors

# tests/unit/policy/<this file> -> the repository root is parents[3]; the vectors live beside the repository.
REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS = Path(os.environ.get("SIGWARD_VECTORS") or (REPO_ROOT / ".." / "shared" / "vectors")).resolve()
POLICIES = VECTORS / "kyverno-policies"

IV = "spec.rules[0].verifyImages[0]"
E0 = f"{IV}.attestors[0].entries[0]"
ATTESTATIONS = f"{IV}.attestations: attestations are not supported yet"
KEYLESS = f"{E0}.keyless: keyless attestors are not supported yet"
SIGSTORE_BUNDLE = f"{IV}.type: type SigstoreBundle is not supported yet"
CERTIFICATES = f"{E0}.certificates: certificates attestors are not supported yet"
AUDIT_MUTATE = f"{IV}.mutateDigest: mutateDigest must be set to false for \u2018Audit\u2019 failure action"

KT = "kyverno-tests/"
STD = f"{KT}clusterpolicy__standard__"

Outcome = tuple[str, object]
# file (relative to kyverno-policies/) -> ("loads", number of verifyImages rules) | ("refused", problems that
# must all be reported, each "path: message" or a prefix of it) | ("ignored", why the file is not a policy
# file)
EXPECTED: dict[str, Outcome] = {
    "LICENSE": ("ignored", "the upstream licence, not YAML"),
    f"{KT}clusterpolicy__cornercases__multiple-attestors__policy.yaml": ("loads", 2),
    f"{STD}configmap-context-lookup__policy.yaml": ("loads", 1),
    f"{STD}empty-image__policy.yaml": ("loads", 1),
    f"{STD}failure-policy-test-noconfigmap-diffimage-success-deprecated__policy.yaml": ("loads", 1),
    f"{STD}failure-policy-test-noconfigmap-diffimage-success__policy.yaml": ("loads", 1),
    f"{STD}imageExtractors-complex-keyless__policy.yaml": ("loads", 1),
    f"{STD}imageExtractors-complex__policy.yaml": ("loads", 1),
    f"{STD}imageExtractors-none__policy.yaml": ("loads", 1),
    f"{STD}imageExtractors-simple__policy.yaml": ("loads", 1),
    f"{STD}keyed-basic-namespace-selector__policy.yaml": ("loads", 1),
    f"{STD}keyed-basic__policy.yaml": ("loads", 1),
    f"{STD}keyed-oci11__policy.yaml": ("loads", 1),
    f"{STD}keyed-secret__policy.yaml": ("loads", 1),
    f"{STD}keyed-tsa__policy.yaml": ("loads", 1),  # keys.ctlog.tsaCertChain: RFC 3161 tokens on key-signed layers
    f"{STD}keyless-attestation-invalid-attestor__policy.yaml": ("loads", 1),
    f"{STD}keyless-attestation-regexp__policy.yaml": ("loads", 1),
    f"{STD}keyless-attestations-multiple-subjects-1__policy.yaml": ("loads", 1),
    f"{STD}keyless-attestations-multiple-subjects-2__policy.yaml": ("loads", 1),
    f"{STD}keyless-attestations-multiple-subjects-3__policy.yaml": ("loads", 1),
    f"{STD}keyless-attestations-multiple-subjects-4__policy.yaml": ("loads", 1),
    f"{STD}keyless-attestations-multiple-subjects-counts-1__policy.yaml": ("loads", 1),
    f"{STD}keyless-attestations-multiple-subjects-counts-2__policy.yaml": ("loads", 1),
    f"{STD}keyless-attestations-multiple-subjects-counts-3__policy.yaml": ("loads", 1),
    f"{STD}keyless-image-invalid-attestor__policy.yaml": ("loads", 1),
    f"{STD}keyless-mutatedigest-verifydigest-required__policy.yaml": ("loads", 1),
    f"{STD}keyless-nomutatedigest-noverifydigest-norequired__policy.yaml": ("loads", 1),
    f"{STD}keyless-nomutatedigest-noverifydigest-required__policy.yaml": ("loads", 1),
    # Notation (type Notary) and rule context (ConfigMaps shipped in the same file) both load now.
    f"{STD}multiple-image-verification-attestations-fail__policy.yaml": ("loads", 1),
    f"{STD}multiple-image-verification-attestations-pass__policy.yaml": ("loads", 1),
    f"{STD}multiple-image-verification-attestations-trivy-vex-fail__policy.yaml": ("loads", 1),
    f"{STD}multiple-image-verification-attestations-trivy-vex-pass__policy.yaml": ("loads", 1),
    f"{STD}mutateDigest-noverifyDigest-norequired__policy.yaml": (
        "loads",
        1,
    ),
    f"{STD}noconfigmap-diffimage-success__policy.yaml": ("loads", 1),
    f"{STD}noconfigmap-diffimage-success__update-policy.yaml": ("loads", 1),
    f"{STD}nomutateDigest-verifyDigest-norequired__policy.yaml": (
        "loads",
        1,
    ),
    f"{STD}notary-attestation-verification__policy.yaml": ("loads", 1),
    f"{STD}notary-image-verification-secret-from-policy__policy.yaml": (
        "refused",
        (f"{IV}.imageRegistryCredentials.secrets: registry credentials from cluster Secrets are not available",),
    ),
    f"{STD}notary-image-verification__policy.yaml": ("loads", 1),
    f"{STD}rollback-image-verification__policy.yaml": ("loads", 1),
    f"{STD}sigstore-attestation-verification-regexp__policy.yaml": ("loads", 1),
    f"{STD}sigstore-attestation-verification-test__policy.yaml": ("loads", 1),
    f"{STD}sigstore-image-verification-test__policy.yaml": ("loads", 1),
    f"{STD}skip-image-reference__policy.yaml": ("loads", 1),
    f"{STD}update-multi-containers__policy.yaml": ("loads", 1),
    f"{STD}verify-image-background-audit__policy.yaml": ("loads", 1),
    f"{STD}verify-image-background-basic__policy.yaml": ("loads", 1),
    f"{STD}verify-image-background-existing__policy.yaml": ("loads", 1),
    f"{STD}with-mutation__policy.yaml": ("loads", 1),
    # Kyverno itself rejects this one: failureAction Audit with mutateDigest: true.
    f"{KT}cmd__cli__kubectl-kyverno___testdata__policies__check-image.yaml": (
        "refused",
        (AUDIT_MUTATE,),
    ),
    f"{KT}images__digest__policies.yaml": ("loads", 1),
    f"{KT}images__secure-images__policies.yaml": ("loads", 1),
    f"{KT}images__signatures__policies.yaml": ("loads", 1),
    f"{KT}images__verify-signature__policies.yaml": ("loads", 2),
    # The library policies below predate Kyverno's "mutateDigest must be false under Audit" check.
    "policies-library/require-vulnerability-scan.yaml": ("refused", (AUDIT_MUTATE,)),
    "policies-library/verify-flux-images.yaml": ("loads", 1),
    "policies-library/verify-image-cve-2022-42889.yaml": ("refused", (AUDIT_MUTATE,)),
    # Its gcpkms:// key loads (KMS keys are supported); only Kyverno's own Audit/mutateDigest rule refuses it.
    "policies-library/verify-image-gcpkms.yaml": ("refused", (AUDIT_MUTATE,)),
    "policies-library/verify-image-slsa.yaml": ("refused", (AUDIT_MUTATE,)),
    "policies-library/verify-image-with-multi-keys.yaml": ("loads", 1),
    "policies-library/verify-image.yaml": ("loads", 1),
    "policies-library/verify-sbom-cyclonedx.yaml": ("refused", (AUDIT_MUTATE,)),
    "policies-library/verify-tekton-pipeline-bundle-signatures.yaml": ("loads", 1),
    "policies-library/verify-tekton-taskrun-signatures.yaml": ("refused", (AUDIT_MUTATE,)),
    "policies-library/verify-tekton-taskrun-vuln-scan.yaml": ("refused", (AUDIT_MUTATE,)),
}


def vector_files() -> list[str]:
    if not POLICIES.is_dir():
        pytest.skip(f"shared test vectors not found at {POLICIES} (a clone without ../shared/vectors)")
    return sorted(str(p.relative_to(POLICIES)) for p in POLICIES.rglob("*") if p.is_file())


def test_every_vector_file_is_pinned() -> None:
    files = vector_files()
    assert [f for f in files if f not in EXPECTED] == [], "pin the outcome of these files in EXPECTED"
    assert [f for f in EXPECTED if f not in files] == [], "these pinned files are gone"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_outcome(name: str) -> None:
    if name not in vector_files():
        pytest.skip(f"{name} is not in {POLICIES}")
    kind, expected = EXPECTED[name]
    path = POLICIES / name
    if kind == "ignored":
        assert path.suffix not in (".yaml", ".yml")
        return
    if kind == "loads":
        loaded = load_policies([path])
        assert sum(1 for _ in loaded.rules()) == expected
        for policy in loaded.policies:
            assert policy.source.startswith(f"{path}#doc")
            assert len(policy.content_hash) == 64
            for rule in policy.spec.rules:
                for iv in rule.verify_images:
                    assert iv.deprecated_fields() == ()
                    assert iv.image_references
        return
    assert kind == "refused"
    with pytest.raises(PolicyError) as err:
        load_policies([path])
    found = [f"{p.path}: {p.message}" for p in err.value.problems]
    assert isinstance(expected, tuple)
    for want in expected:
        assert any(f.startswith(want) for f in found), (want, found)
    assert all(p.source.startswith(f"{path}#doc") for p in err.value.problems)


SECRET_POLICY = f"{STD}notary-image-verification-secret-from-policy__policy.yaml"


@pytest.mark.parametrize("connected", [False, True])
def test_registry_secrets_policy_loads_only_with_a_cluster_connection(connected: bool) -> None:
    """imageRegistryCredentials.secrets are read from the live cluster only: refused with the YAML path without a
    connection (the pinned outcome above), loaded with one."""
    from sigward.policy.capabilities import for_cluster

    path = POLICIES / SECRET_POLICY
    if not path.exists():
        pytest.skip(f"{SECRET_POLICY} is not in {POLICIES}")
    if connected:
        loaded = load_policies([path], capabilities=for_cluster(True))
        ((_, rule),) = loaded.rules()
        assert rule.verify_images[0].image_registry_credentials is not None
        assert rule.verify_images[0].image_registry_credentials.secrets
        return
    with pytest.raises(PolicyError) as err:
        load_policies([path], capabilities=for_cluster(False))
    assert [p.path for p in err.value.problems] == [f"{IV}.imageRegistryCredentials.secrets"]
    assert "cluster connection" in err.value.problems[0].message

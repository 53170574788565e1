"""sigward.wiring builds every service from the environment in one place: once per Services (shared by every
request), lazily (an admission-only process opens no store; a push-only process builds no admission service), with
the CLI's policy paths overriding SIGWARD_POLICY; configuration errors are ConfigurationError, not stack traces."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sigward import wiring
from sigward.errors import ConfigurationError, PolicyError
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

KEY = new_key("p256", slot=61)


def policy_file(tmp_path: Path, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(dump(cluster_policy("p", [key_verification(["registry.test/*"], [keys_entry(KEY.public_pem)])])))
    return str(path)


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"SIGWARD_TRUSTED_ROOT": "public-good", "SIGWARD_STORE": "memory:", **extra}


def test_each_service_is_built_once_and_shared(tmp_path: Path) -> None:
    services = wiring.build_services(env(tmp_path, SIGWARD_POLICY=policy_file(tmp_path)))
    try:
        assert services.admission_if_built() is None
        admission = services.admission()
        assert services.admission() is admission and services.admission_if_built() is admission
        assert services.verifier() is services.verifier()
        assert services.registry() is services.registry()
        assert services.push() is services.push()
        assert [p.name for p in services.policies().policies] == ["p"]
    finally:
        services.close()
    assert services.admission_if_built() is None  # closed services are forgotten


def test_cli_policy_paths_override_the_environment(tmp_path: Path) -> None:
    services = wiring.build_services(
        env(tmp_path, SIGWARD_POLICY=str(tmp_path / "missing.yaml")), policy_paths=(policy_file(tmp_path),)
    )
    assert [p.name for p in services.policies().policies] == ["p"]


@pytest.mark.parametrize(
    ("extra", "error", "match"),
    [
        ({}, ConfigurationError, "no policy configured"),
        ({"SIGWARD_PUSH_GRACE_SECONDS": "soon"}, ConfigurationError, "SIGWARD_PUSH_GRACE_SECONDS"),
        ({"SIGWARD_STORE": "redis://x"}, ConfigurationError, "SIGWARD_STORE"),
    ],
)
def test_configuration_errors_are_named(
    tmp_path: Path, extra: dict[str, str], error: type[Exception], match: str
) -> None:
    values = env(tmp_path, **extra)
    if "SIGWARD_PUSH_GRACE_SECONDS" in extra or "SIGWARD_STORE" in extra:
        values["SIGWARD_POLICY"] = policy_file(tmp_path)
    services = wiring.build_services(values)
    with pytest.raises(error, match=match):
        services.push()


def test_a_broken_policy_is_a_policy_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: ClusterPolicy\nspec: [\n")
    with pytest.raises(PolicyError):
        wiring.build_services(env(tmp_path, SIGWARD_POLICY=str(bad))).policies()


def test_admission_does_without_an_unusable_store(tmp_path: Path) -> None:
    services = wiring.build_services(env(tmp_path, SIGWARD_POLICY=policy_file(tmp_path), SIGWARD_STORE="bogus:"))
    assert services.store_or_none() is None
    services.admission()  # built all the same


def test_process_services_are_one_per_process_until_reset() -> None:
    first = wiring.process_services()
    assert wiring.process_services() is first
    wiring.reset()
    assert wiring.process_services() is not first
    wiring.reset()


def ivpol_file(tmp_path: Path) -> str:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "iv"},
        "spec": {
            "matchImageReferences": [{"glob": "registry.test/*"}],
            "attestors": [
                {"name": "k", "cosign": {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}}
            ],
            "validations": [
                {"expression": "images.containers.map(i, verifyImageSignatures(i, [attestors.k])).all(n, n > 0)"}
            ],
        },
    }
    path = tmp_path / "iv.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.parametrize(("with_ivpol", "expected"), [(True, ["iv"]), (False, [])])
def test_image_validating_policies_reach_admission_and_push(
    tmp_path: Path, with_ivpol: bool, expected: list[str]
) -> None:
    """Regression (merge of runtime.py into wiring): both services see the loaded ImageValidatingPolicies."""
    paths = [policy_file(tmp_path)] + ([ivpol_file(tmp_path)] if with_ivpol else [])
    services = wiring.build_services(env(tmp_path, SIGWARD_POLICY=":".join(paths)))
    try:
        assert [p.name for p in services.admission()._image_policies()] == expected
        assert [p.name for p in services.push()._image_policies()] == expected
    finally:
        services.close()

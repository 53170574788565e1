"""How re-verification is wired: the function target and the `sigward serve` route run one bounded run against the
configured store and policies; the environment's settings are validated with the variable named."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward import wiring
from sigward.errors import ConfigurationError
from sigward.push.service import DEFAULT_PENDING_SOURCES
from sigward.reverify.service import DEFAULT_PENDING_GRACE_SECONDS, settings_from_env
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", DEFAULT_PENDING_SOURCES),
        ("none", frozenset()),
        ("distribution, GCR", frozenset({"distribution", "gcr"})),
    ],
)
def test_pending_sources(value: str, expected: frozenset[str]) -> None:
    assert wiring.pending_sources({"SIGWARD_PENDING_SOURCES": value}) == expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SIGWARD_PENDING_GRACE_SECONDS": "an hour"}, "SIGWARD_PENDING_GRACE_SECONDS"),
        ({"SIGWARD_PENDING_GRACE_SECONDS": "-1"}, "SIGWARD_PENDING_GRACE_SECONDS"),
        ({"SIGWARD_PENDING_GRACE_SECONDS": "nan"}, "SIGWARD_PENDING_GRACE_SECONDS"),
        ({"SIGWARD_REVERIFY_SECONDS": "inf"}, "SIGWARD_REVERIFY_SECONDS"),
        ({"SIGWARD_REVERIFY_SECONDS": "0.5"}, "SIGWARD_REVERIFY_SECONDS"),
    ],
)
def test_bad_settings_name_their_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        settings_from_env(env)


def test_default_settings() -> None:
    settings = settings_from_env({}, since_seconds=60.0, dry_run=True)
    assert settings.pending_grace_seconds == DEFAULT_PENDING_GRACE_SECONDS
    assert settings.since_seconds == 60.0 and settings.dry_run


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    policy = tmp_path / "policy.yaml"
    key = new_key("p256", slot=75)
    policy.write_text(dump(cluster_policy("p", [key_verification(["registry.test/*"], [keys_entry(key.public_pem)])])))
    monkeypatch.setenv("SIGWARD_POLICY", str(policy))
    monkeypatch.setenv("SIGWARD_STORE", f"sqlite:///{tmp_path / 'v.db'}")
    monkeypatch.setenv("SIGWARD_TUF_OFFLINE", "1")
    wiring.reset()
    yield
    wiring.reset()


def test_serve_route_runs_one_bounded_run(configured: None) -> None:
    from sigward.server import create_app

    client = create_app().test_client()
    response = client.post("/reverify")
    assert response.status_code == 200
    doc = json.loads(response.data)
    assert doc["examined"] == 0 and doc["cycle_complete"] is True and doc["flipped"] == []
    assert client.delete("/reverify").status_code == 405


def test_function_target_exists_and_answers(configured: None) -> None:
    import flask

    main = importlib.import_module("functions.main")
    app = flask.Flask("t")
    with app.test_request_context("/", method="POST"):
        response = main.reverify(flask.request)
    assert response.status_code == 200 and json.loads(response.get_data())["busy"] is False


def test_services_wire_pending_sources_into_push_and_build_each_reverify_run_anew(tmp_path: Path) -> None:
    """Regression for the merge onto sigward.wiring: what runtime.push_service/reverify_service did, Services does."""
    policy = tmp_path / "policy.yaml"
    key = new_key("p256", slot=75)
    policy.write_text(dump(cluster_policy("p", [key_verification(["registry.test/*"], [keys_entry(key.public_pem)])])))
    env = {"SIGWARD_POLICY": str(policy), "SIGWARD_STORE": "memory:", "SIGWARD_TRUSTED_ROOT": "public-good"}
    services = wiring.build_services({**env, "SIGWARD_PENDING_SOURCES": "github"})
    try:
        assert services.push().settings.pending_sources == frozenset({"github"})
        first, second = services.reverify(), services.reverify(dry_run=True)
        assert first is not second  # one signature cache per run, never the admission verifier's
        assert not first.settings.dry_run and second.settings.dry_run
    finally:
        services.close()
    defaults = wiring.build_services(env)
    try:
        assert defaults.push().settings.pending_sources == DEFAULT_PENDING_SOURCES
    finally:
        defaults.close()


def test_reverify_runs_are_given_the_loaded_image_validating_policies(tmp_path: Path) -> None:
    """Regression: re-verification was built with the ClusterPolicies only, so IVPOL checks were never re-verified."""
    key = new_key("p256", slot=75)
    ivpol = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "signed"},
        "spec": {
            "matchImageReferences": [{"glob": "registry.test/*"}],
            "attestors": [{"name": "a", "cosign": {"key": {"data": key.public_pem}}}],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.a]) > 0)"}],
        },
    }
    policy = tmp_path / "policy.yaml"
    policy.write_text(dump(ivpol))
    env = {"SIGWARD_POLICY": str(policy), "SIGWARD_STORE": "memory:", "SIGWARD_TRUSTED_ROOT": "public-good"}
    services = wiring.build_services(env)
    try:
        run = services.reverify()
        assert [p.name for p in run._image_policies()] == ["signed"]
        assert list(run._policies()) == []
    finally:
        services.close()

"""GitHub artifact attestations through admission (the functions-framework target): a pod whose image is pinned to the
attested digest is admitted when its referrer bundle verifies against a root the policy allows, and denied with the
Kyverno-style reason otherwise. Roots from files (offline): SIGWARD_TRUSTED_ROOT, SIGWARD_GITHUB_TRUSTED_ROOT."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.support.admission import pod, pod_request, review
from tests.support.github_attestations import (
    GH_1,
    GH_2,
    PG,
    SAN,
    Vector,
    bundle_doc,
    bundle_entry,
    no_timestamps,
    root_path,
    serve,
)
from tests.support.policies import cluster_policy
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.registry


def roots_env() -> dict[str, str]:
    return {
        "SIGWARD_TRUSTED_ROOT": str(root_path("public-good.json")),
        "SIGWARD_GITHUB_TRUSTED_ROOT": str(root_path("github.json")),
    }


def gh_policy(host: str, roots: str | None, **entry: Any) -> dict[str, Any]:
    doc = cluster_policy("gh-attested", [bundle_entry(f"{host}/gha/*", **entry)])
    if roots is not None:
        doc["metadata"]["annotations"] = {"sigward.dev/trusted-roots": roots}
    return doc


def served(registry: LocalRegistry, name: str, vector: Vector, mutate: Callable[[Any], Any] = lambda d: d) -> str:
    return serve(registry, f"gha/{name}", vector.digest, json.dumps(mutate(bundle_doc(vector))).encode())


def decide(env: AdmissionEnv, image: str, path: str) -> dict[str, Any]:
    request = pod_request(pod(image))
    resp = env.post(path, review(request))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    response: dict[str, Any] = resp.get_json()["response"]
    return response


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
@pytest.mark.parametrize(
    ("name", "vector", "roots", "mutate", "entry", "denied_with"),
    [
        ("github-instance", GH_1, "public-good,github", None, {}, None),
        ("github-instance-2", GH_2, "github", None, {}, None),
        ("public-good", PG, "public-good,github", None, {}, None),
        ("not-allowed-root", GH_1, None, None, {}, "no transparency log entry"),
        ("token-removed", GH_1, "public-good,github", no_timestamps, {}, "no verified signing time"),
        ("wrong-workflow", GH_1, "github", None, {"subject": SAN + "x"}, "subject mismatch"),
    ],
)
def test_github_attestation_admission(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    registry: LocalRegistry,
    path: str,
    name: str,
    vector: Vector,
    roots: str | None,
    mutate: Callable[[Any], Any] | None,
    entry: dict[str, Any],
    denied_with: str | None,
) -> None:
    image = served(registry, f"{name}{path.replace('/', '-')}", vector, mutate or (lambda d: d))
    env = admission_env(gh_policy(adm_images.host, roots, **entry), extra_env=roots_env())
    response = decide(env, image, path)
    if denied_with is None:
        assert response["allowed"] is True, response
        return
    assert response["allowed"] is False, response
    message = response["status"]["message"]
    assert "gh-attested:" in message, message
    if path == "/validate":  # Kyverno's validate path: the image was not verified at mutation
        assert f"unverified image {image}" in message, message
    else:
        assert f"failed to verify image {image}" in message and denied_with in message, message

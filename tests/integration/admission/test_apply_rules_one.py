"""``spec.applyRules: One`` at admission through the real registry (Kyverno's engine loop, see
sigward.verify.applyrules): the first rule that applies decides and the later ones never run; a rule skipped by its
preconditions lets the next one apply; ``All`` (the default) runs every rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.support.admission import pod, pod_request, review
from tests.support.policies import cluster_policy, key_verification, keys_entry
from tests.support.signing import new_key

pytestmark = pytest.mark.registry

SIGNER = new_key("p256").public_pem  # the key adm_images are signed with
STRANGER = new_key("p256", slot=7).public_pem
PROD_ONLY = {"all": [{"key": "{{ request.namespace }}", "operator": "Equals", "value": "prod"}]}


def two_rules(host: str, apply_rules: str | None, first_key: str, second_key: str) -> dict[str, Any]:
    """Rule ``first`` (prod only, by preconditions) then rule ``second`` (everywhere), each with its own key."""
    doc = cluster_policy("order", [key_verification([f"{host}/adm/*"], [keys_entry(first_key)], mutate_digest=False)])
    first = {**doc["spec"]["rules"][0], "name": "first", "preconditions": PROD_ONLY}
    second = {**doc["spec"]["rules"][0], "name": "second"}
    second["verifyImages"] = [key_verification([f"{host}/adm/*"], [keys_entry(second_key)], mutate_digest=False)]
    doc["spec"]["rules"] = [first, second]
    if apply_rules:
        doc["spec"]["applyRules"] = apply_rules
    return doc


def decide(env: AdmissionEnv, obj: dict[str, Any], path: str = "/mutate") -> dict[str, Any]:
    resp = env.post(path, review(pod_request(obj)))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out: dict[str, Any] = resp.get_json()["response"]
    return out


# (case, applyRules, first rule's key, second rule's key, namespace, allowed, rule named in the denial)
CASES = [
    ("One: first applies and passes, failing second never runs", "One", SIGNER, STRANGER, "prod", True, ""),
    ("All: the failing second rule still denies", None, SIGNER, STRANGER, "prod", False, "second"),
    ("One: first applies and fails, denies alone", "One", STRANGER, SIGNER, "prod", False, "first"),
    ("One: first skipped by preconditions, second applies and fails", "One", SIGNER, STRANGER, "dev", False, "second"),
    ("One: first skipped by preconditions, second applies and passes", "One", STRANGER, SIGNER, "dev", True, ""),
]


@pytest.mark.parametrize(
    ("apply_rules", "first_key", "second_key", "namespace", "allowed", "denied_by"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_apply_rules(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    apply_rules: str | None,
    first_key: str,
    second_key: str,
    namespace: str,
    allowed: bool,
    denied_by: str,
    path: str,
) -> None:
    env = admission_env(
        two_rules(adm_images.host, apply_rules, first_key, second_key), extra_env={"SIGWARD_CLUSTER": "none"}
    )
    # validate sees the pod mutate pinned (verifyDigest: a digest is required there)
    image = adm_images.signed if path == "/mutate" else f"{adm_images.host}/adm/signed@{adm_images.signed_digest}"
    response = decide(env, pod(image, namespace=namespace), path)
    assert response["allowed"] is allowed, response
    if not allowed:
        message = response["status"]["message"]
        assert denied_by in message
        other = {"first", "second"} - {denied_by}
        if apply_rules == "One":
            assert not any(f"{name}:" in message or f".{name}" in message for name in other), message


def test_unsigned_image_with_one_is_still_denied(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    """One never admits an image no rule verified: the first applicable rule fails it."""
    env = admission_env(two_rules(adm_images.host, "One", SIGNER, SIGNER), extra_env={"SIGWARD_CLUSTER": "none"})
    for namespace in ("prod", "dev"):
        assert decide(env, pod(adm_images.unsigned, namespace=namespace))["allowed"] is False

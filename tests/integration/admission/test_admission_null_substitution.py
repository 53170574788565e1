"""Regression (null after substitution): a key that resolves to null, "" or blanks, or comes from a missing
ConfigMap field, never lets a signed (or unsigned) image through admission: the rule errs with the path and
failurePolicy decides, as for any other substitution error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.integration.admission.test_admission_context import NO_CLUSTER, SIGNER, decide
from tests.support.admission import pod
from tests.support.kubeapi import configmap
from tests.support.policies import cluster_policy, key_verification, keys_entry

pytestmark = pytest.mark.registry

CM = [{"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}]
NULL = [{"name": "v", "variable": {"value": {"present": None}}}]
KEY_REQUIRED = "keys: A public key, kms key or secret is required (after substitution)"

CASES: list[tuple[str, str, list[dict[str, Any]], dict[str, str] | None, str]] = [
    ("null key", "{{ v.present }}", NULL, None, KEY_REQUIRED),
    ("empty string key", "{{ keys.data.org }}", CM, {"org": ""}, KEY_REQUIRED),
    ("blank key", "{{ keys.data.org }}", CM, {"org": " \n "}, KEY_REQUIRED),
    ("missing configmap field", "{{ keys.data.org }}", CM, {"other": SIGNER}, 'Unknown key "org"'),
]


def policy(host: str, key: str, context: list[dict[str, Any]], failure_policy: str) -> dict[str, Any]:
    doc = cluster_policy(
        "null-key",
        [key_verification([f"{host}/adm/*"], [keys_entry(key)], mutate_digest=False)],
        failure_policy=failure_policy,
    )
    doc["spec"]["rules"][0]["context"] = context
    return doc


@pytest.mark.parametrize(("key", "context", "data", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("image", ["signed", "unsigned"])
def test_empty_key_after_substitution_never_admits_under_fail(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    key: str,
    context: list[dict[str, Any]],
    data: dict[str, str] | None,
    message: str,
    image: str,
) -> None:
    docs: list[dict[str, Any]] = [policy(adm_images.host, key, context, "Fail")]
    if data is not None:
        docs.append(configmap("default", "keys", data))
    env = admission_env(*docs, extra_env=NO_CLUSTER)
    response = decide(env, pod(adm_images.signed if image == "signed" else adm_images.unsigned))
    assert response["allowed"] is False
    assert message in response["status"]["message"]


def test_twin_the_same_policy_with_the_key_present_admits_the_signed_image(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(
        policy(adm_images.host, "{{ keys.data.org }}", CM, "Fail"),
        configmap("default", "keys", {"org": SIGNER}),
        extra_env=NO_CLUSTER,
    )
    assert decide(env, pod(adm_images.signed))["allowed"] is True
    assert decide(env, pod(adm_images.unsigned))["allowed"] is False

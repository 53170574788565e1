"""The kubewarden AdmissionRequest vectors (every kind there), rewritten to images in the local registry and
decided by the ``admission`` target under functions-framework: signed → allowed and pinned, unsigned → denied with
Kyverno's message, Audit → allowed with warnings, digest-pinned → no patch."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages, require_signed_policy
from tests.support.admission import decode_patch, load_request, review, rewrite_images

pytestmark = pytest.mark.registry

POINTERS = {
    "Pod": "/spec/containers/0/image",
    "Deployment": "/spec/template/spec/containers/0/image",
    "StatefulSet": "/spec/template/spec/containers/0/image",
    "DaemonSet": "/spec/template/spec/containers/0/image",
    "ReplicaSet": "/spec/template/spec/containers/0/image",
    "ReplicationController": "/spec/template/spec/containers/0/image",
    "Job": "/spec/template/spec/containers/0/image",
    "CronJob": "/spec/jobTemplate/spec/template/spec/containers/0/image",
}
SIGNED = [
    "pod_creation_signed.json",
    "deployment_creation_signed.json",
    "statefulset_creation_signed.json",
    "daemonset_creation_signed.json",
    "replicaset_creation_signed.json",
    "replicationcontroller_creation_signed.json",
    "job_creation_signed.json",
    "cronjob_creation_signed.json",
    "pod_creation_signed_with_certificate.json",
    "pod_creation_signed_with_keyless_mode.json",
]
UNSIGNED = [
    "pod_creation_unsigned.json",
    "deployment_creation_unsigned.json",
    "statefulset_creation_unsigned.json",
    "daemonset_creation_unsigned.json",
    "replicaset_creation_unsigned.json",
    "replicationcontroller_creation_unsigned.json",
    "job_creation_unsigned.json",
    "cronjob_creation_unsigned.json",
]


def local(images: AdmissionImages) -> Callable[[str], str]:
    def mapping(image: str) -> str:
        if image.endswith(":unsigned"):
            return images.unsigned
        if image.endswith(":signed") or image == "nginx":
            return images.signed
        if "@sha256:" in image:
            return f"{images.signed}@{images.signed_digest}"
        return images.other  # pod-privileged, init

    return mapping


def rule_name(kind: str) -> str:
    if kind == "Pod":
        return "verify-signature"
    if kind == "CronJob":
        return "autogen-cronjob-verify-signature"
    return "autogen-verify-signature"


@pytest.mark.parametrize("name", SIGNED)
def test_signed_vectors_are_admitted_and_pinned(
    name: str, admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    request = rewrite_images(load_request(name), local(adm_images))
    resp = env.post("/mutate", review(request))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == request["uid"]
    assert body["response"]["allowed"] is True, body
    kind = request["kind"]["kind"]
    (patch,) = decode_patch(body)
    assert patch["op"] == "replace"
    assert patch["path"] == POINTERS[kind]
    if "privileged" in name or "certificate" in name or "keyless" in name:
        assert patch["value"] == f"{adm_images.other}@{adm_images.other_digest}"
    else:
        assert patch["value"] == f"{adm_images.signed}@{adm_images.signed_digest}"


@pytest.mark.parametrize("name", UNSIGNED)
def test_unsigned_vectors_are_denied_with_kyvernos_message(
    name: str, admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    request = rewrite_images(load_request(name), local(adm_images))
    body = env.post("/mutate", review(request)).get_json()
    response = body["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    kind = request["kind"]["kind"]
    obj_name = request["object"]["metadata"]["name"]
    message = response["status"]["message"]
    assert f"resource {kind}//{obj_name} was blocked due to the following policies" in message
    assert (
        f"require-signed:\n  {rule_name(kind)}: failed to verify image {adm_images.unsigned}: "
        ".attestors[0].entries[0].keys: no signatures found"
    ) in message
    assert "patch" not in response


@pytest.mark.parametrize("name", UNSIGNED[:3])
def test_audit_admits_unsigned_with_warnings(
    name: str, admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host, action="Audit", mutate_digest=False))
    request = rewrite_images(load_request(name), local(adm_images))
    response = env.post("/mutate", review(request)).get_json()["response"]
    assert response["allowed"] is True
    assert "patch" not in response
    (warning,) = response["warnings"]
    assert warning.startswith(f"policy require-signed.{rule_name(request['kind']['kind'])}: failed to verify image")
    assert len(warning) <= 120


def test_digest_pinned_image_gets_no_patch(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    request = rewrite_images(load_request("pod_creation_with_digest.json"), local(adm_images))
    response = env.post("/mutate", review(request)).get_json()["response"]
    assert response["allowed"] is True, response
    assert "patch" not in response


def test_init_containers_are_verified_and_pinned(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    request = rewrite_images(load_request("pod_creation_with_init_container.json"), local(adm_images))
    body = env.post("/mutate", review(request)).get_json()
    assert body["response"]["allowed"] is True
    paths = {p["path"]: p["value"] for p in decode_patch(body)}
    assert paths == {
        "/spec/initContainers/0/image": f"{adm_images.other}@{adm_images.other_digest}",
        "/spec/containers/0/image": f"{adm_images.signed}@{adm_images.signed_digest}",
    }


def test_unsigned_init_container_denies(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))

    def mapping(image: str) -> str:
        return adm_images.unsigned if image == "init" else adm_images.signed

    request = rewrite_images(load_request("pod_creation_with_init_container.json"), mapping)
    response = env.post("/mutate", review(request)).get_json()["response"]
    assert response["allowed"] is False
    assert f"failed to verify image {adm_images.unsigned}" in response["status"]["message"]

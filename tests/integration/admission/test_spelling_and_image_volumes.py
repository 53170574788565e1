"""The admission function against the real local registry: one registry, one spelling (a pattern on
``localhost:PORT`` catches ``LOCALHOST:PORT`` but not ``127.0.0.1:PORT``, a different host name), image volumes
verified and pinned like containers, and a policy path that yields no policy denies (issue 12 §1, §6, §7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages, require_signed_policy
from tests.integration.admission.test_admission_behaviour import decide
from tests.support.admission import decode_patch, pod, pod_request

pytestmark = pytest.mark.registry


def _port(images: AdmissionImages) -> str:
    return images.host.rsplit(":", 1)[1]


def _localhost_env(make: Callable[..., AdmissionEnv], images: AdmissionImages, pattern: str) -> AdmissionEnv:
    port = _port(images)
    return make(
        require_signed_policy(images.host, pattern=pattern),
        extra_env={
            "SIGWARD_INSECURE_REGISTRIES": f"{images.host},localhost:{port}",
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1,localhost",
        },
    )


@pytest.mark.parametrize("spelling", ["LOCALHOST", "LocalHost", "localhost"])
def test_spelling_bypass_upper_case_host_is_still_verified(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, spelling: str
) -> None:
    port = _port(adm_images)
    env = _localhost_env(admission_env, adm_images, f"localhost:{port}/adm/*")
    response = decide(env, pod_request(pod(f"{spelling}:{port}/adm/unsigned:v1")))
    assert response["allowed"] is False
    assert "no signatures found" in response["status"]["message"]


def test_spelling_bypass_pattern_in_upper_case_matches_lower_case_image(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    port = _port(adm_images)
    env = _localhost_env(admission_env, adm_images, f"LOCALHOST:{port}/adm/*")
    assert decide(env, pod_request(pod(f"localhost:{port}/adm/unsigned:v1")))["allowed"] is False


def test_spelling_bypass_signed_image_keeps_its_own_spelling_in_the_patch(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    port = _port(adm_images)
    env = _localhost_env(admission_env, adm_images, f"localhost:{port}/adm/*")
    response = decide(env, pod_request(pod(f"LOCALHOST:{port}/adm/signed:v1")))
    assert response["allowed"] is True
    assert decode_patch({"response": response}) == [
        {
            "op": "replace",
            "path": "/spec/containers/0/image",
            "value": f"LOCALHOST:{port}/adm/signed:v1@{adm_images.signed_digest}",
        }
    ]


def test_spelling_bypass_other_host_name_is_another_registry(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    # 127.0.0.1 and localhost may reach the same socket, but they are different registry names: a pattern on one
    # does not select the other (only spelling is normalized, never name resolution).
    port = _port(adm_images)
    env = _localhost_env(admission_env, adm_images, f"localhost:{port}/adm/*")
    response = decide(env, pod_request(pod(f"127.0.0.1:{port}/adm/unsigned:v1")))
    assert response["allowed"] is True and "patch" not in response


# -- image volumes ----------------------------------------------------------------------------------------------------


def _with_image_volume(obj: dict[str, Any], reference: str, spec_path: tuple[str, ...] = ("spec",)) -> dict[str, Any]:
    spec = obj
    for field in spec_path:
        spec = spec[field]
    spec["volumes"] = [
        {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "data", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}},
    ]
    return obj


def test_image_volume_unsigned_is_denied(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    request = pod_request(_with_image_volume(pod(adm_images.signed), adm_images.unsigned))
    response = decide(env, request)
    assert response["allowed"] is False
    assert adm_images.unsigned in response["status"]["message"]


def test_image_volume_signed_is_patched(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    response = decide(env, pod_request(_with_image_volume(pod(adm_images.signed), adm_images.other)))
    assert response["allowed"] is True
    patches = decode_patch({"response": response})
    assert {
        "op": "replace",
        "path": "/spec/containers/0/image",
        "value": f"{adm_images.signed}@{adm_images.signed_digest}",
    } in patches
    assert {
        "op": "replace",
        "path": "/spec/volumes/1/image/reference",
        "value": f"{adm_images.other}@{adm_images.other_digest}",
    } in patches
    assert len(patches) == 2


@pytest.mark.parametrize(
    ("kind", "spec_path"),
    [
        ("Deployment", ("spec", "template", "spec")),
        ("CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
    ],
)
def test_image_volume_in_pod_templates(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, kind: str, spec_path: tuple[str, ...]
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    pod_spec = pod(adm_images.signed)["spec"]
    obj: dict[str, Any] = {"spec": pod_spec}
    for field in reversed(spec_path[:-1]):
        obj = {field: obj}
    resource = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "namespace": "default"}, **obj}
    denied = decide(env, pod_request(_with_image_volume(resource, adm_images.unsigned, spec_path), kind=kind))
    assert denied["allowed"] is False
    assert f"autogen-{'cronjob-' if kind == 'CronJob' else ''}" in denied["status"]["message"]
    allowed = decide(env, pod_request(_with_image_volume(resource, adm_images.other, spec_path), kind=kind))
    assert allowed["allowed"] is True
    pointer = "/" + "/".join(spec_path) + "/volumes/1/image/reference"
    assert {
        "op": "replace",
        "path": pointer,
        "value": f"{adm_images.other}@{adm_images.other_digest}",
    } in decode_patch({"response": allowed})


def test_image_volume_update_adding_an_unsigned_volume_is_denied(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    old = pod(adm_images.signed)
    new = _with_image_volume(pod(adm_images.signed), adm_images.unsigned)
    assert decide(env, pod_request(new, operation="UPDATE", old=old))["allowed"] is False


# -- a policy path with nothing to enforce -------------------------------------------------------------------------


def test_empty_policy_path_denies(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-policies"
    empty.mkdir()
    env = admission_env(require_signed_policy(adm_images.host), extra_env={"SIGWARD_POLICY": str(empty)})
    response = decide(env, pod_request(pod(adm_images.unsigned)))
    assert response["allowed"] is False
    assert "a policy path must yield a policy" in response["status"]["message"]

"""The admission function's behaviour beyond the vectors: validate path, authentication, malformed input,
UPDATE/kubectl debug, only-matched patches, image extractors, match/exclude, failurePolicy with a registry that is
down or never answers, the deadline, and the verdict cache."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from sigward import wiring
from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages, require_signed_policy
from tests.support.admission import decode_patch, pod, pod_request, review
from tests.support.httpservers import SilentServer
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry


def decide(env: AdmissionEnv, request: dict[str, Any], path: str = "/mutate") -> dict[str, Any]:
    resp = env.post(path, review(request))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    response: dict[str, Any] = resp.get_json()["response"]
    assert response["uid"] == request["uid"]
    return response


# -- validate path ---------------------------------------------------------------------------------------------------


def test_validate_requires_a_digest(admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    response = decide(env, pod_request(pod(adm_images.signed)), "/validate")
    assert response["allowed"] is False
    assert f"missing digest for {adm_images.signed}" in response["status"]["message"]


def test_validate_accepts_a_verified_digest(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    pinned = f"{adm_images.signed}@{adm_images.signed_digest}"
    response = decide(env, pod_request(pod(pinned)), "/validate")
    assert response["allowed"] is True, response
    assert "patch" not in response


def test_validate_never_trusts_the_kyverno_annotation(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    """A requester can write `kyverno.io/verify-images: {"…": "pass"}`; the validate path re-checks."""
    env = admission_env(require_signed_policy(adm_images.host))
    pinned = f"{adm_images.unsigned}@{adm_images.unsigned_digest}"
    obj = pod(pinned)
    obj["metadata"]["annotations"] = {"kyverno.io/verify-images": json.dumps({pinned: "pass"})}
    response = decide(env, pod_request(obj), "/validate")
    assert response["allowed"] is False
    assert f"unverified image {pinned.split('@', maxsplit=1)[0].rsplit(':', 1)[0]}@" in response["status"]["message"]


# -- authentication and malformed input ----------------------------------------------------------------------------


def test_token_required_before_any_parsing(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host), extra_env={"SIGWARD_ADMISSION_TOKEN": "s3cr3t-t0ken"})
    request = pod_request(pod(adm_images.signed))
    assert env.post("/mutate", review(request)).status_code == 401
    # not even parsed: garbage without the token is 401, not 400
    assert env.client.post("/mutate", data=b"{not json").status_code == 401
    assert env.post("/wrong-token/mutate", review(request)).status_code == 401
    ok = env.post("/s3cr3t-t0ken/mutate", review(request))
    assert ok.status_code == 200 and ok.get_json()["response"]["allowed"] is True
    bearer = env.post("/mutate", review(request), headers={"Authorization": "Bearer s3cr3t-t0ken"})
    assert bearer.status_code == 200
    assert "s3cr3t-t0ken" not in ok.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty body"),
        (b"[]", "expected a JSON object"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}).encode(), "v1beta1"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "Other"}).encode(), "kind 'Other'"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "request is missing"),
        (
            json.dumps(review({"kind": {"kind": "Pod"}, "operation": "CREATE", "object": {}})).encode(),
            "request.uid is required",
        ),
        (
            json.dumps(review({"uid": "u", "kind": {"kind": "Pod"}, "operation": "EXPLODE", "object": {}})).encode(),
            "request.operation 'EXPLODE'",
        ),
        (
            json.dumps(review({"uid": "u", "kind": {"kind": "Pod"}, "operation": "CREATE", "object": "x"})).encode(),
            "request.object must be an object",
        ),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
    ],
)
def test_malformed_reviews_get_a_precise_400(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, body: bytes, message: str
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    resp = env.client.post("/mutate", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert message in resp.get_json()["error"]
    assert "Traceback" not in resp.get_data(as_text=True)


def test_oversized_body_is_refused(admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    resp = env.client.post("/mutate", data=b" " * (5 * 1024 * 1024), content_type="application/json")
    assert resp.status_code == 413


def test_delete_is_allowed_at_once(admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    request = pod_request(pod(adm_images.unsigned), operation="DELETE", old=pod(adm_images.unsigned))
    assert decide(env, request)["allowed"] is True


def test_dry_run_is_decided_the_same_way(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    assert decide(env, pod_request(pod(adm_images.unsigned), dry_run=True))["allowed"] is False
    assert decide(env, pod_request(pod(adm_images.signed), dry_run=True))["allowed"] is True


def test_no_images_and_unmatched_kinds_are_allowed(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}
    assert decide(env, pod_request(configmap, kind="ConfigMap"))["allowed"] is True
    assert decide(env, pod_request(pod()))["allowed"] is True


# -- UPDATE and kubectl debug (Kyverno #12978) ---------------------------------------------------------------------


def test_update_with_unchanged_images_is_not_redenied(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    running = pod(adm_images.unsigned)  # admitted before the policy existed
    relabelled = pod(adm_images.unsigned, labels={"team": "a"})
    assert decide(env, pod_request(relabelled, operation="UPDATE", old=running))["allowed"] is True


def test_kubectl_debug_checks_only_the_new_ephemeral_container(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    running = pod(adm_images.unsigned)
    debug_signed = pod(adm_images.unsigned, ephemeral=(adm_images.signed,))
    response = decide(
        env, pod_request(debug_signed, operation="UPDATE", old=running, sub_resource="ephemeralcontainers")
    )
    assert response["allowed"] is True, response
    assert [p["path"] for p in decode_patch({"response": response})] == ["/spec/ephemeralContainers/0/image"]
    debug_unsigned = pod(adm_images.signed, ephemeral=(adm_images.unsigned,))
    response = decide(
        env,
        pod_request(debug_unsigned, operation="UPDATE", old=pod(adm_images.signed), sub_resource="ephemeralcontainers"),
    )
    assert response["allowed"] is False
    assert adm_images.unsigned in response["status"]["message"]


def test_update_changing_an_image_is_verified(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    request = pod_request(pod(adm_images.unsigned), operation="UPDATE", old=pod(adm_images.signed))
    assert decide(env, request)["allowed"] is False


# -- patches only for matched images (Kyverno #11167) ----------------------------------------------------------------


def test_only_images_the_entry_matched_are_patched(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host, pattern=f"{adm_images.host}/adm/signed*"))
    # the second image is not matched by the policy and must be neither contacted nor patched
    request = pod_request(pod(adm_images.signed, "docker.io/library/busybox:1.36", adm_images.other))
    response = decide(env, request)
    assert response["allowed"] is True
    assert decode_patch({"response": response}) == [
        {
            "op": "replace",
            "path": "/spec/containers/0/image",
            "value": f"{adm_images.signed}@{adm_images.signed_digest}",
        }
    ]


def test_mutate_digest_false_gives_no_patch(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host, mutate_digest=False))
    response = decide(env, pod_request(pod(adm_images.signed)))
    assert response["allowed"] is True and "patch" not in response


# -- extractors, match / exclude ------------------------------------------------------------------------------------


def test_custom_resource_through_image_extractors(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    policy = require_signed_policy(adm_images.host)
    rule = policy["spec"]["rules"][0]
    rule["match"] = {"any": [{"resources": {"kinds": ["tekton.dev/v1/Task"]}}]}
    rule["imageExtractors"] = {"Task": [{"path": "/spec/steps/*/image"}]}
    env = admission_env(policy)
    task = {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": "t", "namespace": "ci"},
        "spec": {"steps": [{"name": "a", "image": adm_images.signed}, {"name": "b", "image": adm_images.unsigned}]},
    }
    request = pod_request(task, kind="Task", group="tekton.dev")
    response = decide(env, request)
    assert response["allowed"] is False
    assert "resource Task/ci/t was blocked" in response["status"]["message"]
    assert adm_images.unsigned in response["status"]["message"]


def test_exclude_namespaces(admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages) -> None:
    policy = require_signed_policy(adm_images.host)
    policy["spec"]["rules"][0]["exclude"] = {"any": [{"resources": {"namespaces": ["sandbox-*"]}}]}
    env = admission_env(policy)
    assert decide(env, pod_request(pod(adm_images.unsigned, namespace="sandbox-1")))["allowed"] is True
    assert decide(env, pod_request(pod(adm_images.unsigned, namespace="prod")))["allowed"] is False


def test_label_selector(admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages) -> None:
    policy = require_signed_policy(adm_images.host)
    policy["spec"]["rules"][0]["match"] = {
        "any": [{"resources": {"kinds": ["Pod"], "selector": {"matchLabels": {"tier": "prod"}}}}]
    }
    env = admission_env(policy)
    assert decide(env, pod_request(pod(adm_images.unsigned, labels={"tier": "dev"})))["allowed"] is True
    assert decide(env, pod_request(pod(adm_images.unsigned, labels={"tier": "prod"})))["allowed"] is False


def test_autogen_can_be_turned_off(admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages) -> None:
    policy = require_signed_policy(adm_images.host)
    policy["metadata"]["annotations"] = {"pod-policies.kyverno.io/autogen-controllers": "none"}
    env = admission_env(policy)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": adm_images.unsigned}]}}},
    }
    assert decide(env, pod_request(deployment, kind="Deployment", group="apps"))["allowed"] is True
    assert decide(env, pod_request(pod(adm_images.unsigned)))["allowed"] is False


def test_per_entry_failure_action_overrides(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    policy = require_signed_policy(adm_images.host, action="Audit", mutate_digest=False)
    policy["spec"]["rules"][0]["verifyImages"][0]["failureAction"] = "Enforce"
    env = admission_env(policy)
    assert decide(env, pod_request(pod(adm_images.unsigned)))["allowed"] is False


# -- failurePolicy, deadline -----------------------------------------------------------------------------------------


def _fresh_images(registry: LocalRegistry) -> tuple[str, str]:
    digest = registry.push_image("down/app", tag="v1")
    attach_signatures(registry, "down/app", digest, [signed_layer(new_key("p256"), image_digest=digest)])
    return f"{registry.host}/down/app:v1", digest


@pytest.mark.parametrize(("failure_policy", "allowed"), [("Fail", False), ("Ignore", True)])
def test_registry_stopped_mid_test(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    fresh_registry: LocalRegistry,
    failure_policy: str,
    allowed: bool,
) -> None:
    image, _digest = _fresh_images(fresh_registry)
    policy = require_signed_policy(
        adm_images.host, failure_policy=failure_policy, pattern=f"{fresh_registry.host}/*", mutate_digest=False
    )
    env = admission_env(policy, extra_env={"SIGWARD_INSECURE_REGISTRIES": fresh_registry.host})
    assert decide(env, pod_request(pod(image)))["allowed"] is True  # up: verified
    fresh_registry.stop()
    wiring.reset()  # a new instance: nothing cached
    response = decide(env, pod_request(pod(image)))
    assert response["allowed"] is allowed, response
    if allowed:
        (warning,) = response["warnings"]
        assert warning.startswith("policy require-signed.verify-signature: failed to verify image")
    else:
        assert "failed to verify image" in response["status"]["message"]


@pytest.mark.parametrize(("failure_policy", "allowed"), [("Fail", False), ("Ignore", True)])
def test_deadline_holds_against_a_registry_that_never_answers(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, failure_policy: str, allowed: bool
) -> None:
    with SilentServer() as silent:
        policy = require_signed_policy(adm_images.host, failure_policy=failure_policy, pattern=f"{silent.host}/*")
        env = admission_env(
            policy,
            extra_env={"SIGWARD_INSECURE_REGISTRIES": silent.host, "SIGWARD_DEADLINE_SECONDS": "1.5"},
        )
        started = time.monotonic()
        response = decide(env, pod_request(pod(f"{silent.host}/app:v1", f"{silent.host}/other:v1", adm_images.signed)))
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"decision took {elapsed:.2f}s with a 1.5s deadline"
    assert elapsed > 1.2, "the silent registry was never waited on"
    assert response["allowed"] is allowed, response
    text = response["status"]["message"] if not allowed else " ".join(response["warnings"])
    assert "deadline" in text or "timed out" in text, text


def test_second_admission_is_a_cache_hit_with_zero_registry_requests(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    env = admission_env(require_signed_policy(adm_images.host))
    pinned = f"{adm_images.signed}@{adm_images.signed_digest}"
    first = decide(env, pod_request(pod(pinned, adm_images.other)))
    assert first["allowed"] is True
    client = wiring.process_services().registry()
    before = client.stats.total
    assert before > 0
    second = decide(env, pod_request(pod(pinned, adm_images.other)))
    assert second["allowed"] is True
    # the tag resolution is cached briefly too, so not one request goes out
    assert client.stats.total == before

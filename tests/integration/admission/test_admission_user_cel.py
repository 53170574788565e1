"""Admission through the real registry with celPreconditions, webhookConfiguration.matchConditions and match/exclude
on the requesting user (subjects; roles through the Kubernetes API stand-in), each with its negative twin: the
unsigned image is denied only where the rule applies, an evaluation error or an unreadable RoleBinding list is an
error failurePolicy decides."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sigward.cluster.rbac import CLUSTER_ROLE_BINDINGS_PATH, ROLE_BINDINGS_PATH
from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.support.admission import pod, pod_request, review
from tests.support.httpservers import Reply
from tests.support.kubeapi import KubeAPI
from tests.support.policies import cluster_policy, key_verification, keys_entry
from tests.support.signing import new_key

pytestmark = pytest.mark.registry

SIGNER = new_key("p256").public_pem
NO_CLUSTER = {"SIGWARD_CLUSTER": "none"}


def decide(env: AdmissionEnv, obj: dict[str, Any], *, user: str = "tester", groups: tuple[str, ...] = ()) -> Any:
    req = pod_request(obj)
    req["userInfo"] = {"username": user, "groups": list(groups)}
    resp = env.post("/mutate", review(req))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["response"]


def base(host: str, *, failure_policy: str | None = None) -> dict[str, Any]:
    return cluster_policy(
        "p",
        [key_verification([f"{host}/adm/*"], [keys_entry(SIGNER)], mutate_digest=False)],
        failure_policy=failure_policy,
    )


PROD_ONLY = [{"name": "prod-only", "expression": "request.namespace == 'prod'"}]
LABELLED = [{"name": "labelled", "expression": "object.metadata.labels.tier == 'web'"}]


def test_cel_preconditions_skip_and_apply(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    doc = base(adm_images.host)
    doc["spec"]["rules"][0]["celPreconditions"] = PROD_ONLY
    env = admission_env(doc, extra_env=NO_CLUSTER)
    assert decide(env, pod(adm_images.unsigned, namespace="dev"))["allowed"] is True  # cel preconditions not met
    assert decide(env, pod(adm_images.unsigned, namespace="prod"))["allowed"] is False
    assert decide(env, pod(adm_images.signed, namespace="prod"))["allowed"] is True


@pytest.mark.parametrize(("failure_policy", "allowed"), [("Fail", False), ("Ignore", True)])
def test_cel_precondition_error_failure_policy_decides(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, failure_policy: str, allowed: bool
) -> None:
    doc = base(adm_images.host, failure_policy=failure_policy)
    doc["spec"]["rules"][0]["celPreconditions"] = LABELLED  # the pod has no labels: evaluation error
    env = admission_env(doc, extra_env=NO_CLUSTER)
    response = decide(env, pod(adm_images.unsigned, namespace="prod"))
    assert response["allowed"] is allowed
    if not allowed:
        assert "cel preconditions" in response["status"]["message"]


def test_webhook_match_conditions_decide_whether_the_policy_applies(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    doc = base(adm_images.host)
    doc["spec"]["webhookConfiguration"] = {"matchConditions": PROD_ONLY}
    env = admission_env(doc, extra_env=NO_CLUSTER)
    assert decide(env, pod(adm_images.unsigned, namespace="dev"))["allowed"] is True
    assert decide(env, pod(adm_images.unsigned, namespace="prod"))["allowed"] is False
    assert decide(env, pod(adm_images.signed, namespace="prod"))["allowed"] is True


# (failurePolicy, matchConditions, image, allowed). The API server evaluates the policy's webhook matchConditions:
# false -> the webhook is not called (the policy does not apply); an error -> the webhook's failurePolicy for the
# WHOLE request (Fail rejects it even for a signed or unrelated image; Ignore skips the policy).
MATCH_CONDITIONS_TABLE = [
    ("Fail", PROD_ONLY, "signed", True),
    ("Fail", PROD_ONLY, "unsigned", False),
    ("Fail", [{"name": "no", "expression": "false"}], "unsigned", True),
    ("Fail", LABELLED, "signed", False),
    ("Fail", LABELLED, "unsigned", False),
    ("Fail", LABELLED, "other", False),
    ("Ignore", PROD_ONLY, "signed", True),
    ("Ignore", PROD_ONLY, "unsigned", False),
    ("Ignore", [{"name": "no", "expression": "false"}], "unsigned", True),
    ("Ignore", LABELLED, "signed", True),
    ("Ignore", LABELLED, "unsigned", True),
]


@pytest.mark.parametrize(
    ("failure_policy", "conditions", "image", "allowed"),
    MATCH_CONDITIONS_TABLE,
    ids=[f"{f}-{c[0]['name']}-{i}" for f, c, i, _ in MATCH_CONDITIONS_TABLE],
)
def test_webhook_match_conditions_error_applies_the_policy_failure_policy_to_the_request(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    failure_policy: str,
    conditions: list[dict[str, str]],
    image: str,
    allowed: bool,
) -> None:
    doc = base(adm_images.host)
    doc["spec"]["webhookConfiguration"] = {"matchConditions": conditions, "failurePolicy": failure_policy}
    env = admission_env(doc, extra_env=NO_CLUSTER)
    ref = {"signed": adm_images.signed, "unsigned": adm_images.unsigned, "other": "docker.io/library/busybox:1"}[image]
    # /validate would want a digest the mutating webhook pins: only the (request-wide) error rows go through both.
    for path in ("/mutate", "/validate") if conditions is LABELLED else ("/mutate",):
        req = pod_request(pod(ref, namespace="prod"))
        response = env.post(path, review(req)).get_json()["response"]
        assert response["allowed"] is allowed, (path, response)
        if not allowed and conditions is LABELLED:
            message = response["status"]["message"]
            assert "policy p: failed to evaluate webhookConfiguration.matchConditions" in message
            assert "failurePolicy Fail rejects the request" in message


def test_webhook_match_conditions_error_spares_requests_the_policy_webhook_does_not_cover(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    """The policy's webhook is only called for its match kinds: a Pod request never reaches a Deployment policy."""
    doc = cluster_policy(
        "p",
        [key_verification([f"{adm_images.host}/adm/*"], [keys_entry(SIGNER)], mutate_digest=False)],
        kinds=("Deployment",),
    )
    doc["metadata"]["annotations"] = {"pod-policies.kyverno.io/autogen-controllers": "none"}
    doc["spec"]["webhookConfiguration"] = {"matchConditions": LABELLED}
    env = admission_env(doc, extra_env=NO_CLUSTER)
    assert decide(env, pod(adm_images.unsigned, namespace="prod"))["allowed"] is True


def test_exclude_subjects(admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages) -> None:
    doc = base(adm_images.host)
    doc["spec"]["background"] = False
    doc["spec"]["rules"][0]["exclude"] = {
        "any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "Group", "name": "break-glass"}]}]
    }
    env = admission_env(doc, extra_env=NO_CLUSTER)
    assert decide(env, pod(adm_images.unsigned), groups=("break-glass",))["allowed"] is True
    assert decide(env, pod(adm_images.unsigned), groups=("developers",))["allowed"] is False


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeAPI]:
    binding = {
        "metadata": {"name": "ci", "namespace": "default"},
        "roleRef": {"kind": "Role", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "ci"}],
    }
    with KubeAPI(tmp_path / "kube-tls") as api:
        api.raw[ROLE_BINDINGS_PATH] = Reply(
            200, {"Content-Type": "application/json"}, json.dumps({"items": [binding]}).encode()
        )
        api.raw[CLUSTER_ROLE_BINDINGS_PATH] = Reply(200, {"Content-Type": "application/json"}, b'{"items": []}')
        yield api


def _roles_policy(host: str, failure_policy: str | None = None) -> dict[str, Any]:
    doc = base(host, failure_policy=failure_policy)
    doc["spec"]["background"] = False
    doc["spec"]["rules"][0]["match"] = {"any": [{"resources": {"kinds": ["Pod"]}, "roles": ["default:deployer"]}]}
    return doc


def test_match_roles_through_the_cluster_connection(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, kube: KubeAPI, tmp_path: Path
) -> None:
    env = admission_env(
        _roles_policy(adm_images.host), extra_env={"SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kc"))}
    )
    ci = "system:serviceaccount:default:ci"
    assert decide(env, pod(adm_images.unsigned), user=ci)["allowed"] is False  # the rule applies to ci
    assert decide(env, pod(adm_images.signed), user=ci)["allowed"] is True
    assert decide(env, pod(adm_images.unsigned), user="alice")["allowed"] is True  # alice holds no such role


def test_unreadable_role_bindings_fail_closed(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages, kube: KubeAPI, tmp_path: Path
) -> None:
    kube.raw[ROLE_BINDINGS_PATH] = Reply(403, {"Content-Type": "application/json"}, b"{}")
    env = admission_env(
        _roles_policy(adm_images.host), extra_env={"SIGWARD_KUBECONFIG": str(kube.kubeconfig(tmp_path / "kc"))}
    )
    response = decide(env, pod(adm_images.signed), user="alice")
    assert response["allowed"] is False
    assert "failed to match roles" in response["status"]["message"]

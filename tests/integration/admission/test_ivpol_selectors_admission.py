"""ImageValidatingPolicy selectors and auditAnnotations through the admission function and the real registry:
on the plain path the namespaceSelector reads Namespace manifests shipped beside the policy and the objectSelector
the object's labels (unsigned image denied only where both match; other namespace / other labels / unknown
namespace are the negative twins), auditAnnotations come back in the AdmissionResponse; with
SIGWARD_NAMESPACE_SELECTORS=webhook and no cluster data the policy is decided on its selector path only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sigward.admission.selectors import policy_routes
from sigward.policy.loader import load_policy_text
from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.support.admission import pod, pod_request, review
from tests.support.kubeapi import namespace
from tests.support.policies import dump
from tests.support.signing import new_key

pytestmark = pytest.mark.registry

KEY = new_key("p256")  # the key adm_images signs with
NS_SELECTOR = {"matchLabels": {"team": "a"}}
OBJ_SELECTOR = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}


def ivpol(host: str) -> dict[str, Any]:
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "team-a-web"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                ],
                "namespaceSelector": NS_SELECTOR,
                "objectSelector": OBJ_SELECTOR,
            },
            "matchImageReferences": [{"glob": f"{host}/adm/*"}],
            "attestors": [
                {"name": "k", "cosign": {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}}
            ],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"}],
            "validationConfigurations": {"mutateDigest": False, "verifyDigest": False},
            "auditAnnotations": [{"key": "images", "valueExpression": "images.containers.join(',')"}],
        },
    }


def decide(env: AdmissionEnv, path: str, image: str, ns: str, app: str) -> dict[str, Any]:
    resp = env.post(path, review(pod_request(pod(image, namespace=ns, labels={"app": app}))))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out: dict[str, Any] = resp.get_json()["response"]
    return out


@pytest.mark.parametrize(
    ("signed", "ns", "app", "allowed", "evaluated"),
    [
        (False, "team-a", "web", False, True),  # both selectors match: the unsigned image is denied
        (True, "team-a", "web", True, True),
        (False, "team-b", "web", True, False),  # namespace labels do not match
        (False, "team-a", "db", True, False),  # object labels do not match
        (False, "nowhere", "web", False, False),  # namespace unknown: an error, failurePolicy Fail denies
    ],
)
def test_selectors_on_the_plain_path_with_shipped_namespaces(
    admission_env: Callable[..., AdmissionEnv],
    adm_images: AdmissionImages,
    signed: bool,
    ns: str,
    app: str,
    allowed: bool,
    evaluated: bool,
) -> None:
    env = admission_env(
        ivpol(adm_images.host),
        namespace("team-a", {"team": "a"}),
        namespace("team-b", {"team": "b"}),
        extra_env={"SIGWARD_CLUSTER": "none"},
    )
    image = adm_images.signed if signed else adm_images.unsigned
    response = decide(env, "/validate", image, ns, app)
    assert response["allowed"] is allowed, response
    if not allowed:
        assert "team-a-web" in response["status"]["message"]
    if ns == "nowhere":
        assert "namespaceSelector" in response["status"]["message"]
    annotations = response.get("auditAnnotations", {})
    assert annotations == ({"team-a-web.images": image} if evaluated else {})


def test_selector_path_with_selector_webhooks(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    doc = ivpol(adm_images.host)
    env = admission_env(doc, extra_env={"SIGWARD_CLUSTER": "none", "SIGWARD_NAMESPACE_SELECTORS": "webhook"})
    loaded = load_policy_text(dump(doc), "p.yaml")
    (key,) = policy_routes(loaded.policies, loaded.image_policies)
    # on its path the API server has matched both selectors: decided without any namespace data
    denied = decide(env, f"/validate/sel-{key}", adm_images.unsigned, "team-a", "web")
    assert denied["allowed"] is False and "team-a-web" in denied["status"]["message"]
    assert decide(env, f"/validate/sel-{key}", adm_images.signed, "team-a", "web")["allowed"] is True
    # sigward still checks the objectSelector itself (defence in depth): other labels are not evaluated
    assert decide(env, f"/validate/sel-{key}", adm_images.unsigned, "team-a", "db")["allowed"] is True
    # the plain path and another selector's path leave the policy to its webhook
    assert decide(env, "/validate", adm_images.unsigned, "team-a", "web")["allowed"] is True
    assert decide(env, "/validate/sel-0000000000000000", adm_images.unsigned, "team-a", "web")["allowed"] is True

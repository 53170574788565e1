"""Admission through per-selector webhook paths (``/mutate/sel-<key>``) without any cluster data, through the real
registry: a request on a selector's path is evaluated under exactly the rules routed to that selector; the plain
path leaves them to it (SIGWARD_NAMESPACE_SELECTORS=webhook). Negative twins: unsigned image denied on the path, a
namespace the policy excludes by name, another policy's selector path, an unknown selector path, the plain path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sigward.admission.selectors import policy_routes
from sigward.policy.loader import load_policy_text
from tests.integration.admission.conftest import AdmissionEnv, AdmissionImages
from tests.support.admission import pod, pod_request, review
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

pytestmark = pytest.mark.registry

SIGNER = new_key("p256").public_pem
STRANGER = new_key("p256", slot=7).public_pem
ROUTED = {"SIGWARD_CLUSTER": "none", "SIGWARD_NAMESPACE_SELECTORS": "webhook"}


def _policy(
    name: str, host: str, key: str, match: dict[str, Any], exclude: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc = cluster_policy(name, [key_verification([f"{host}/adm/*"], [keys_entry(key)], mutate_digest=False)])
    doc["spec"]["rules"][0]["match"] = match
    if exclude is not None:
        doc["spec"]["rules"][0]["exclude"] = exclude
    return doc


def _team(team: str) -> dict[str, Any]:
    return {"any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": {"team": team}}}}]}


def _route(doc: dict[str, Any]) -> str:
    (key,) = policy_routes(load_policy_text(dump(doc), "p.yaml").policies)
    return key


def _decide(env: AdmissionEnv, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    resp = env.post(path, review(pod_request(obj)))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out: dict[str, Any] = resp.get_json()["response"]
    return out


def test_selector_path_applies_exactly_its_policies(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    team_a = _policy(
        "team-a", adm_images.host, SIGNER, _team("a"), exclude={"any": [{"resources": {"namespaces": ["lax"]}}]}
    )
    not_a = _policy(  # everything outside team a must be signed by a key nobody used
        "not-team-a",
        adm_images.host,
        STRANGER,
        {"any": [{"resources": {"kinds": ["Pod"]}}]},
        exclude={"any": [{"resources": {"namespaceSelector": {"matchLabels": {"team": "a"}}}}]},
    )
    env = admission_env(team_a, not_a, extra_env=ROUTED)
    a, other = _route(team_a), _route(not_a)
    assert a != other
    assert _decide(env, f"/mutate/sel-{a}", pod(adm_images.signed, namespace="strict"))["allowed"] is True
    pinned = f"{adm_images.host}/adm/signed@{adm_images.signed_digest}"
    assert _decide(env, f"/validate/sel-{a}", pod(pinned, namespace="strict"))["allowed"] is True
    assert _decide(env, f"/validate/sel-{other}", pod(pinned, namespace="strict"))["allowed"] is False
    denied = _decide(env, f"/mutate/sel-{a}", pod(adm_images.unsigned, namespace="strict"))
    assert denied["allowed"] is False and "team-a" in denied["status"]["message"]
    assert "not-team-a" not in denied["status"]["message"]
    # a namespace the policy excludes by name is not evaluated even on its selector's path
    assert _decide(env, f"/mutate/sel-{a}", pod(adm_images.unsigned, namespace="lax"))["allowed"] is True
    # the other policy's path evaluates only that policy (signed by SIGNER, not STRANGER: denied by not-team-a)
    other_denied = _decide(env, f"/mutate/sel-{other}", pod(adm_images.signed, namespace="strict"))
    assert other_denied["allowed"] is False and "not-team-a" in other_denied["status"]["message"]
    # a selector no policy routes evaluates nothing; the plain path leaves routed rules to their webhooks
    assert _decide(env, "/mutate/sel-0000000000000000", pod(adm_images.unsigned, namespace="strict"))["allowed"]
    assert _decide(env, "/mutate", pod(adm_images.unsigned, namespace="strict"))["allowed"] is True


def test_plain_path_still_decides_selector_rules_without_the_switch(
    admission_env: Callable[..., AdmissionEnv], adm_images: AdmissionImages
) -> None:
    """Without SIGWARD_NAMESPACE_SELECTORS=webhook the plain path needs the labels: no cluster data is an error
    (fail closed), so a missing selector webhook can never turn into a silent allow."""
    env = admission_env(_policy("team-a", adm_images.host, SIGNER, _team("a")), extra_env={"SIGWARD_CLUSTER": "none"})
    response = _decide(env, "/mutate", pod(adm_images.unsigned, namespace="strict"))
    assert response["allowed"] is False
    assert "namespace strict" in response["status"]["message"]

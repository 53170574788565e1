"""``applyRules: One`` at push: the first rule that applies decides, later rules are recorded as not run, and a rule
decided at admission (preconditions) leaves every later rule of the policy to admission too."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sigward.events import PushEvent
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.push.service import PushService, PushSettings
from sigward.store.memory import MemoryStore
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key, signed_layer

HOST = "registry.test"
REPO = "team/app"
DIGEST = "sha256:" + "2" * 64
KEY, OTHER = new_key("p256", slot=30), new_key("p256", slot=31)


def one_policy(first_key: Any, second_key: Any, *, first_precondition: bool = False) -> list[Policy]:
    doc = cluster_policy("one", [key_verification([f"{HOST}/*"], [keys_entry(first_key.public_pem)])], rule="first")
    second = copy.deepcopy(doc["spec"]["rules"][0])
    second["name"] = "second"
    second["verifyImages"] = [key_verification([f"{HOST}/*"], [keys_entry(second_key.public_pem)])]
    if first_precondition:
        doc["spec"]["rules"][0]["preconditions"] = {
            "all": [{"key": "{{ request.operation }}", "operator": "Equals", "value": "CREATE"}]
        }
    doc["spec"]["rules"].append(second)
    doc["spec"]["applyRules"] = "One"
    return list(load_policy_text(dump(doc), "one.yaml").policies)


def service_for(policies: list[Policy]) -> PushService:
    source = MemorySignatureSource()
    source.add_image(f"{HOST}/{REPO}:v1", DIGEST)
    s = signed_layer(KEY, image_digest=DIGEST)
    layer = SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))
    source.add_signatures(f"{HOST}/{REPO}", DIGEST, (layer,))
    return PushService(
        policies=lambda: policies,
        verifier=Verifier(source=source),
        store=MemoryStore(),
        settings=PushSettings(grace_seconds=0),
    )


def push() -> PushEvent:
    return PushEvent(
        source="distribution",
        event_id="e1",
        action="push",
        registry=HOST,
        repository=REPO,
        digest=DIGEST,
        tag="v1",
        media_type="application/vnd.oci.image.manifest.v1+json",
    )


def by_rule(service: PushService, status: str = "recorded") -> dict[str, tuple[str, str]]:
    outcome = service.handle(push())
    assert outcome.status == status
    return {r.rule: (r.verdict, r.message) for r in outcome.rules}


@pytest.mark.parametrize(
    ("first", "second", "want_first"),
    [
        pytest.param(KEY, OTHER, "pass", id="first-passes-second-not-run"),
        pytest.param(OTHER, KEY, "fail", id="first-fails-second-not-run"),
    ],
)
def test_first_applied_rule_decides_and_the_rest_is_not_run(first: Any, second: Any, want_first: str) -> None:
    rules = by_rule(service_for(one_policy(first, second)))
    assert rules["first"][0] == want_first
    assert rules["second"] == ("skip", "applyRules: One: not run, an earlier rule of the policy applied")


def test_apply_rules_all_runs_both_rules() -> None:
    doc = cluster_policy("all", [key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)])], rule="first")
    second = copy.deepcopy(doc["spec"]["rules"][0])
    second["name"] = "second"
    second["verifyImages"] = [key_verification([f"{HOST}/*"], [keys_entry(OTHER.public_pem)])]
    doc["spec"]["rules"].append(second)
    policies = list(load_policy_text(dump(doc), "all.yaml").policies)
    rules = by_rule(service_for(policies))
    assert rules["first"][0] == "pass"
    assert rules["second"][0] == "fail"


def test_rule_after_an_admission_only_rule_is_left_to_admission() -> None:
    rules = by_rule(service_for(one_policy(OTHER, KEY, first_precondition=True)), status="ignored")
    assert rules["first"][0] == "skip" and "decided at admission" in rules["first"][1]
    assert rules["second"][0] == "skip" and "depends on rule first" in rules["second"][1]

"""CEL PolicyExceptions in ImageValidatingPolicy evaluation, on Kyverno's exceptions/autogen vector (its Notary
attestor swapped for a cosign key served from memory, as in test_ivpol_vectors): the named policy is skipped with
Kyverno's message when every condition holds, autogen'ed controllers included, nothing is pinned; and each negative
twin (condition false, another policy named, wrong kind, expired, not loaded, condition error, policy's own
matchConditions false) leaves the policy enforced."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.deadline import Deadline
from sigward.policy.loader import PolicySet, load_policy_text
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import Decision, evaluate_request
from tests.unit.verify.test_ivpol_vectors import SIGNED, UNSIGNED, adapted, source

VECTORS = Path("/work/shared/vectors/kyverno-ivpol/chainsaw")
AUTOGEN = VECTORS / "exceptions/autogen"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
RESOURCES = {"Deployment": ("apps", "deployments"), "StatefulSet": ("apps", "statefulsets"), "Pod": ("", "pods")}


def policy_doc() -> dict[str, Any]:
    return adapted(yaml.safe_load((AUTOGEN / "policy.yaml").read_text()))


def exception_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((AUTOGEN / "exception.yaml").read_text())
    doc["spec"].update(changes)
    return doc


def loaded(*exceptions: dict[str, Any], policy: dict[str, Any] | None = None) -> PolicySet:
    return load_policy_text(yaml.safe_dump_all([policy or policy_doc(), *exceptions]), "p.yaml")


def request(kind: str, name: str, image: str) -> dict[str, Any]:
    group, resource = RESOURCES[kind]
    labels = {"prod": "true"}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": image}]}
    if kind == "Pod":
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "labels": labels}}
        obj["spec"] = spec
    else:
        obj = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "labels": labels},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": spec}},
        }
    return {
        "uid": "1",
        "operation": "CREATE",
        "resource": {"group": group, "version": "v1", "resource": resource},
        "namespace": "default",
        "name": name,
        "object": obj,
    }


def decide(policy_set: PolicySet, req: dict[str, Any], *, now: datetime = NOW) -> Decision:
    return evaluate_request(
        policy_set.image_policies,
        req,
        verifier=Verifier(source=source()),
        deadline=Deadline.after(5),
        now=now,
    )


SKIP_MESSAGE = "rule is skipped due to policy exception: default/check-name"


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "StatefulSet"])
def test_vector_exception_skips_the_policy_autogen_included(kind: str) -> None:
    decision = decide(loaded(exception_doc()), request(kind, "skipped-deployment", UNSIGNED))
    assert decision.allowed and not decision.patches, decision
    (outcome,) = decision.outcomes
    assert (outcome.verdict.value, outcome.message) == ("skip", SKIP_MESSAGE)
    assert outcome.exceptions == ("default/check-name",)


@pytest.mark.parametrize(
    ("case", "exceptions", "name"),
    [
        ("condition false", [exception_doc()], "bad-deployment"),
        ("another policy named", [exception_doc(policyRefs=[{"name": "other", "kind": "ImageValidatingPolicy"}])], ""),
        ("wrong kind", [exception_doc(policyRefs=[{"name": "ivpol-autogen-sample", "kind": "ValidatingPolicy"}])], ""),
        ("expired", [exception_doc(expiresAt="2026-05-31T23:59:59Z")], ""),
        ("not loaded (exceptions not configured)", [], ""),
        (  # Kubernetes' matcher: a false condition wins over another one's error (not an error, not exempted)
            "false beats error",
            [
                exception_doc(
                    matchConditions=[
                        {"name": "broken", "expression": "object.metadata.annotations.owner == 'x'"},
                        {"name": "no", "expression": "object.metadata.name == 'someone-else'"},
                    ]
                )
            ],
            "",
        ),
        (
            "one of two conditions false",
            [
                exception_doc(
                    matchConditions=[
                        {"name": "a", "expression": "object.metadata.name == 'skipped-deployment'"},
                        {"name": "b", "expression": "request.namespace == 'kube-system'"},
                    ]
                )
            ],
            "",
        ),
    ],
)
def test_policy_stays_enforced(case: str, exceptions: list[dict[str, Any]], name: str) -> None:
    decision = decide(loaded(*exceptions), request("Deployment", name or "skipped-deployment", UNSIGNED))
    assert not decision.allowed, case
    assert decision.message == "Policy ivpol-autogen-sample failed: failed to verify image with notary cert", case
    assert not any(o.exceptions for o in decision.outcomes), case


def test_exception_not_yet_expired_applies() -> None:
    decision = decide(
        loaded(exception_doc(expiresAt="2026-06-01T00:00:01Z")), request("Pod", "skipped-deployment", UNSIGNED)
    )
    assert decision.allowed and decision.outcomes[0].exceptions == ("default/check-name",)


def test_exception_without_conditions_exempts_every_matched_request() -> None:
    decision = decide(loaded(exception_doc(matchConditions=[])), request("Pod", "anything", UNSIGNED))
    assert decision.allowed and decision.outcomes[0].message == SKIP_MESSAGE


def test_several_exceptions_are_named_sorted() -> None:
    second = exception_doc()
    second["metadata"] = {"name": "a-first", "namespace": "ops"}
    decision = decide(loaded(exception_doc(), second), request("Pod", "skipped-deployment", UNSIGNED))
    (outcome,) = decision.outcomes
    assert outcome.exceptions == ("default/check-name", "ops/a-first")
    assert outcome.message == "rule is skipped due to policy exception: default/check-name, ops/a-first"


def test_policy_match_conditions_come_first() -> None:
    """Kyverno checks exceptions only for a request the policy matched: unlabelled → the policy's own skip."""
    req = request("Pod", "skipped-deployment", UNSIGNED)
    req["object"]["metadata"]["labels"] = {}
    (outcome,) = decide(loaded(exception_doc()), req).outcomes
    assert (outcome.verdict.value, outcome.message, outcome.exceptions) == ("skip", "matchConditions not met", ())


@pytest.mark.parametrize(("failure_policy", "verdict"), [("Fail", "error"), ("Ignore", "fail")])
def test_condition_error_is_the_policys_error(failure_policy: str, verdict: str) -> None:
    """A condition that cannot be evaluated (a missing key) never exempts: under failurePolicy Fail the policy errors,
    under Ignore the exception does not match and the policy is evaluated (the unsigned image fails), as Kyverno's
    ``match`` does (evaluator/policy.go); denied either way."""
    policy = policy_doc()
    policy["spec"]["failurePolicy"] = failure_policy
    broken = exception_doc(matchConditions=[{"name": "x", "expression": "object.metadata.annotations.owner == 'x'"}])
    decision = decide(loaded(broken, policy=policy), request("Pod", "skipped-deployment", UNSIGNED))
    (outcome,) = decision.outcomes
    assert outcome.verdict.value == verdict and not outcome.exceptions
    assert ("annotations" in outcome.message) is (verdict == "error"), outcome.message
    assert decision.allowed is False and not decision.patches


def test_exempted_policy_pins_nothing_and_the_others_still_pin() -> None:
    policy = policy_doc()
    policy["spec"]["validationConfigurations"] = {}  # mutateDigest on
    exempted = decide(loaded(exception_doc(), policy=policy), request("Pod", "skipped-deployment", SIGNED))
    assert exempted.allowed and exempted.patches == ()
    enforced = decide(loaded(exception_doc(), policy=policy), request("Pod", "good-pod", SIGNED))
    assert enforced.allowed and len(enforced.patches) == 1, enforced


def test_an_image_checked_alone_is_never_exempted() -> None:
    """``verify``/push evaluate a synthetic Pod: an exception (even one without conditions) does not apply there."""
    from sigward.verify.ivpol import DirectChecks, evaluate_image

    policy = policy_doc()
    policy["spec"]["matchConditions"] = []  # the synthetic Pod has no prod label
    policy_set = loaded(exception_doc(matchConditions=[]), policy=policy)
    assert policy_set.image_policies[0].exceptions  # attached by the loader
    (verdict,) = evaluate_image(
        policy_set.image_policies,
        UNSIGNED,
        checks=DirectChecks(Verifier(source=source())),
        deadline=Deadline.after(5),
    )
    assert verdict.verdict.value == "fail", verdict


DYN_CONDITION = [{"name": "prod-label", "expression": "object.metadata.labels.prod"}]  # dyn: the label's string


def test_policy_match_condition_of_a_non_bool_value_applies_the_policy() -> None:
    """Bug: a matchCondition reading an object field (``dyn``) that gave a string counted as false, so the policy
    was skipped and an unsigned image admitted; the API server counts only ``false`` as not met."""
    policy = policy_doc()
    policy["spec"]["matchConditions"] = DYN_CONDITION
    decision = decide(loaded(policy=policy), request("Pod", "any-name", UNSIGNED))
    (outcome,) = decision.outcomes
    assert outcome.verdict.value == "fail" and not decision.allowed


@pytest.mark.parametrize(("failure_policy", "verdict"), [("Fail", "error"), ("Ignore", "fail")])
def test_exception_condition_of_a_non_bool_value_never_exempts(failure_policy: str, verdict: str) -> None:
    """An exception's condition that gives a non-bool is an error, not a met condition (the API server's "only false
    fails" would exempt here): under Fail the policy errors, under Ignore the exception does not match and the
    unsigned image fails — denied either way, never exempted."""
    policy = policy_doc()
    policy["spec"]["failurePolicy"] = failure_policy
    decision = decide(
        loaded(exception_doc(matchConditions=DYN_CONDITION), policy=policy), request("Pod", "x", UNSIGNED)
    )
    (outcome,) = decision.outcomes
    assert outcome.verdict.value == verdict and not outcome.exceptions
    assert ("prod-label: evaluated to a string, not a bool" in outcome.message) is (verdict == "error")
    assert decision.allowed is False


@pytest.mark.parametrize(("failure_policy", "verdict", "allowed"), [("Fail", "error", False), ("Ignore", "skip", True)])
def test_policy_condition_error_follows_failure_policy_as_kyvernos_match(
    failure_policy: str, verdict: str, allowed: bool
) -> None:
    """Kyverno's ``match`` (evaluator/policy.go): a policy matchCondition that cannot be evaluated is the policy's
    error under failurePolicy Fail (denied) and "not matched" under Ignore (skipped) — the only place failurePolicy
    Ignore lets an error through; an error after matching denies under Deny whatever the failurePolicy."""
    policy = policy_doc()
    policy["spec"]["failurePolicy"] = failure_policy
    policy["spec"]["matchConditions"] = [{"name": "owner", "expression": "object.metadata.annotations.owner == 'x'"}]
    decision = decide(loaded(policy=policy), request("Pod", "any", UNSIGNED))
    (outcome,) = decision.outcomes
    assert outcome.verdict.value == verdict and "annotations" in outcome.message, outcome
    assert decision.allowed is allowed

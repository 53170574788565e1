"""Which CEL PolicyExceptions apply to which (Namespaced)ImageValidatingPolicy, and in which namespaces — pinned to
Kyverno (pkg/cel/engine/exception.go ``ListExceptions`` + ``NewPolicyExceptionLister``): exceptions are listed from
every namespace (``--exceptionNamespace`` unset) and matched on policyRef ``name`` + ``kind`` only, so an exception in
namespace A exempts requests in namespace B, and a ref to a NamespacedImageValidatingPolicy exempts every same-named
NIVPOL in every namespace. Only the exception's ``matchConditions`` narrow it (e.g. on ``request.namespace``).
Negative twins: wrong kind for the namespaced policy, a condition naming another namespace, a NIVPOL not applying
outside its namespace at all."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.verify.ivpol import Decision
from tests.unit.verify.test_ivpol_exceptions import decide, exception_doc, loaded, policy_doc, request
from tests.unit.verify.test_ivpol_vectors import UNSIGNED

POLICY = "ivpol-autogen-sample"


def nivpol(namespace: str) -> dict[str, Any]:
    doc = policy_doc()
    doc["kind"] = "NamespacedImageValidatingPolicy"
    doc["metadata"] = {"name": POLICY, "namespace": namespace}
    return doc


def exception_in(namespace: str, kind: str = "NamespacedImageValidatingPolicy", **changes: Any) -> dict[str, Any]:
    doc = exception_doc(policyRefs=[{"name": POLICY, "kind": kind}], **changes)
    doc["metadata"] = {"name": "check-name", "namespace": namespace}
    return doc


def in_namespace(namespace: str, name: str = "skipped-deployment") -> dict[str, Any]:
    req = request("Pod", name, UNSIGNED)
    req["namespace"] = namespace
    req["object"]["metadata"]["namespace"] = namespace
    return req


def verdicts(decision: Decision) -> list[tuple[str, tuple[str, ...]]]:
    return [(o.verdict.value, o.exceptions) for o in decision.outcomes]


@pytest.mark.parametrize(
    ("case", "policy_ns", "exception", "request_ns", "expected"),
    [
        # Kyverno: an exception in any namespace applies to the NIVPOL of another namespace (wider than ideal; kept)
        (
            "exception in another namespace",
            "team-a",
            exception_in("team-b"),
            "team-a",
            [("skip", ("team-b/check-name",))],
        ),
        ("exception beside the policy", "team-a", exception_in("team-a"), "team-a", [("skip", ("team-a/check-name",))]),
        # negative twins
        (
            "ref kind ImageValidatingPolicy",
            "team-a",
            exception_in("team-a", "ImageValidatingPolicy"),
            "team-a",
            [("fail", ())],
        ),
        (
            "condition scopes it to another namespace",
            "team-a",
            exception_in("team-a", matchConditions=[{"name": "ns", "expression": "request.namespace == 'team-b'"}]),
            "team-a",
            [("fail", ())],
        ),
        ("NIVPOL outside its namespace: not applied at all", "team-a", exception_in("team-a"), "team-c", []),
    ],
)
def test_namespaced_policy_exception_scope(
    case: str, policy_ns: str, exception: dict[str, Any], request_ns: str, expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    decision = decide(loaded(exception, policy=nivpol(policy_ns)), in_namespace(request_ns))
    assert verdicts(decision) == expected, case
    assert decision.allowed == (expected != [("fail", ())]), case


def test_ref_to_namespaced_policy_exempts_the_same_name_in_every_namespace() -> None:
    """Kyverno matches policyRefs by name and kind, never by namespace: one exception exempts NIVPOL ``x`` in team-a
    and NIVPOL ``x`` in team-b."""
    policy_set = loaded(nivpol("team-b"), exception_in("ops"), policy=nivpol("team-a"))
    for namespace in ("team-a", "team-b"):
        assert verdicts(decide(policy_set, in_namespace(namespace))) == [("skip", ("ops/check-name",))], namespace
    # twin: a request the exception's condition does not select stays enforced in both namespaces
    for namespace in ("team-a", "team-b"):
        decision = decide(policy_set, in_namespace(namespace, "bad-deployment"))
        assert verdicts(decision) == [("fail", ())] and not decision.allowed, namespace


@pytest.mark.parametrize("request_ns", ["default", "team-b", "kube-system"])
def test_cluster_policy_exception_from_any_namespace_applies_in_every_namespace(request_ns: str) -> None:
    decision = decide(loaded(exception_in("team-a", "ImageValidatingPolicy")), in_namespace(request_ns))
    assert verdicts(decision) == [("skip", ("team-a/check-name",))]
    # twin: the same exception naming the namespaced kind does not touch the cluster-wide policy
    decision = decide(loaded(exception_in("team-a")), in_namespace(request_ns))
    assert verdicts(decision) == [("fail", ())] and not decision.allowed

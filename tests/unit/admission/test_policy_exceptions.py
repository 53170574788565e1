"""Kyverno PolicyException (kyverno.io/v2, v2beta1): loading (and refusing what sigward cannot honour), matching
with Kyverno's semantics (cases after kyverno pkg/engine/utils/exceptions_test.go and the PolicyException docs), and
the admission outcome: skip with Kyverno's message, nothing verified, no patch, never blocking."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.admission.exceptions import SKIP_MESSAGE, matching_exceptions
from sigward.admission.match import request_info
from sigward.admission.review import parse_review
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.errors import PolicyError
from sigward.policy.loader import load_policies, load_policy_text
from sigward.verify.engine import Verifier
from sigward.verify.results import Verdict
from tests.support.admission import pod, pod_request, review
from tests.unit.admission.test_service import HOST, SIGNED, UNSIGNED, make_source, policies


def exception(
    *,
    name: str = "polex",
    namespace: str = "kyverno",
    policy: str = "p",
    rules: tuple[str, ...] = ("verify-signature",),
    any_: list[dict[str, Any]] | None = None,
    all_: list[dict[str, Any]] | None = None,
    conditions: dict[str, Any] | None = None,
    api_version: str = "kyverno.io/v2",
) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if any_ is not None:
        match["any"] = any_
    if all_ is not None:
        match["all"] = all_
    if not match:
        match["any"] = [{"resources": {"kinds": ["Pod"], "namespaces": ["legacy"]}}]
    spec: dict[str, Any] = {"exceptions": [{"policyName": policy, "ruleNames": list(rules)}], "match": match}
    if conditions is not None:
        spec["conditions"] = conditions
    return {
        "apiVersion": api_version,
        "kind": "PolicyException",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def load_exceptions(*docs: dict[str, Any]) -> Any:
    text = yaml.safe_dump_all(docs)
    return load_policy_text(text, "ex.yaml").exceptions


def req(
    *,
    kind: str = "Pod",
    namespace: str = "legacy",
    name: str = "web-1",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    user: str = "alice",
    operation: str = "CREATE",
) -> tuple[Any, dict[str, Any]]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    obj = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": UNSIGNED}]},
    }
    info = request_info(
        kind=kind, group="", version="v1", sub_resource="", namespace=namespace, name=name, operation=operation, obj=obj
    )
    raw = {"operation": operation, "namespace": namespace, "userInfo": {"username": user}, "object": obj}
    return info, raw


@dataclass(frozen=True)
class Case:
    name: str
    exception: dict[str, Any]
    request: dict[str, Any] = field(default_factory=dict)
    rule: str = "verify-signature"
    policy: str = "p"
    applies: bool = True


CASES = [
    Case("namespace-and-kind", exception()),
    Case("other-namespace", exception(), {"namespace": "prod"}, applies=False),
    Case("kind-differs", exception(any_=[{"resources": {"kinds": ["Deployment"]}}]), applies=False),
    Case("name-wildcard", exception(any_=[{"resources": {"kinds": ["Pod"], "names": ["web-*"]}}])),
    Case("name-wildcard-miss", exception(any_=[{"resources": {"names": ["test-*"]}}]), applies=False),
    Case("namespace-wildcard", exception(any_=[{"resources": {"namespaces": ["leg*"]}}])),
    Case(
        "selector",
        exception(any_=[{"resources": {"selector": {"matchLabels": {"tier": "legacy"}}}}]),
        {"labels": {"tier": "legacy"}},
    ),
    Case(
        "selector-miss",
        exception(any_=[{"resources": {"selector": {"matchLabels": {"tier": "legacy"}}}}]),
        {"labels": {"tier": "web"}},
        applies=False,
    ),
    Case(
        "annotations",
        exception(any_=[{"resources": {"annotations": {"team": "old-*"}}}]),
        {"annotations": {"team": "old-apps"}},
    ),
    Case(
        "any-one-filter",
        exception(any_=[{"resources": {"namespaces": ["prod"]}}, {"resources": {"names": ["web-1"]}}]),
    ),
    Case(
        "all-every-filter",
        exception(all_=[{"resources": {"namespaces": ["legacy"]}}, {"resources": {"names": ["web-1"]}}]),
    ),
    Case(
        "all-one-fails",
        exception(all_=[{"resources": {"namespaces": ["legacy"]}}, {"resources": {"names": ["db-*"]}}]),
        applies=False,
    ),
    Case("other-policy", exception(policy="q"), applies=False),
    Case("rule-wildcard", exception(rules=("verify-*",))),
    Case("rule-not-listed", exception(rules=("check-other",)), applies=False),
    # Kyverno: autogen names must be listed or globbed
    Case(
        "autogen-not-listed",
        exception(any_=[{"resources": {"kinds": ["Deployment"]}}]),
        {"kind": "Deployment"},
        rule="autogen-verify-signature",
        applies=False,
    ),
    Case(
        "autogen-globbed",
        exception(rules=("*verify-signature",), any_=[{"resources": {"kinds": ["Deployment"]}}]),
        {"kind": "Deployment"},
        rule="autogen-verify-signature",
    ),
    Case("namespaced-policy-key", exception(policy="team/p"), policy="team/p"),
    Case("namespaced-policy-needs-key", exception(policy="p"), policy="team/p", applies=False),
    # operations are not checked for exceptions (Kyverno)
    Case(
        "operations-ignored",
        exception(any_=[{"resources": {"kinds": ["Pod"], "operations": ["DELETE"]}}]),
        {"operation": "CREATE"},
    ),
    Case(
        "condition-holds",
        exception(
            conditions={"all": [{"key": "{{ request.userInfo.username }}", "operator": "Equals", "value": "alice"}]}
        ),
    ),
    Case(
        "condition-fails",
        exception(
            conditions={"all": [{"key": "{{ request.userInfo.username }}", "operator": "Equals", "value": "bob"}]}
        ),
        applies=False,
    ),
    Case(
        "any-condition-one-holds",
        exception(
            conditions={
                "any": [
                    {"key": "{{ request.userInfo.username }}", "operator": "Equals", "value": "bob"},
                    {"key": "{{ request.object.metadata.name }}", "operator": "Equals", "value": "web-1"},
                ]
            }
        ),
    ),
    Case(
        "condition-error-skips-exception",
        exception(
            conditions={"all": [{"key": "{{ request.object.missing.path }}", "operator": "Equals", "value": "x"}]}
        ),
        applies=False,
    ),
    Case("v2beta1", exception(api_version="kyverno.io/v2beta1")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matching_table(case: Case) -> None:
    (exc,) = load_exceptions(case.exception)
    info, raw = req(**case.request)
    found = matching_exceptions([exc], policy_key=case.policy, rule_name=case.rule, info=info, request=raw)
    assert found == (("kyverno/polex",) if case.applies else ())


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["spec"]["match"]["any"][0].update({"clusterRoles": ["admin"]}), "any[0].clusterRoles: roles and"),
        (
            lambda d: d["spec"]["match"]["any"][0].update({"subjects": [{"kind": "User", "name": "a"}]}),
            "Usage of user info is forbidden",
        ),
        (lambda d: d["spec"]["match"]["any"][0].update({"roles": ["ns:r"]}), "none is configured"),
        (
            lambda d: d["spec"]["match"]["any"][0]["resources"].update(
                {"namespaceSelector": {"matchLabels": {"a": "b"}}}
            ),
            "namespaceSelector: not supported",
        ),
        (lambda d: d["spec"].update({"podSecurity": [{"controlName": "Capabilities"}]}), "spec.podSecurity"),
        (lambda d: d["spec"].update({"match": {"resources": {"kinds": ["Pod"]}}}), "spec.match"),
        (lambda d: d["spec"]["match"].update({"any": [{"resources": {}}]}), "would exempt every resource"),
        (lambda d: d["spec"].update({"exceptions": []}), "spec.exceptions"),
        (lambda d: d["spec"]["exceptions"][0].update({"ruleNames": []}), "ruleNames"),
        (lambda d: d["spec"].update({"surprise": True}), "surprise"),
        (lambda d: d["metadata"].update({"name": ""}), "metadata.name"),
    ],
)
def test_refused_exceptions(mutate: Any, needle: str) -> None:
    doc = exception()
    mutate(doc)
    with pytest.raises(PolicyError) as err:
        load_policy_text(yaml.safe_dump(doc), "ex.yaml")
    assert any(needle in str(p) for p in err.value.problems), err.value.problems


def _write(tmp_path: Path, name: str, *docs: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_exceptions_load_beside_policies_but_not_alone(tmp_path: Path) -> None:
    from tests.support.policies import dump

    policy_doc = yaml.safe_load(dump(_policy_doc()))
    loaded = load_policies([_write(tmp_path, "p.yaml", policy_doc), _write(tmp_path, "ex.yaml", exception())])
    assert [e.key for e in loaded.exceptions] == ["kyverno/polex"] and len(loaded.policies) == 1
    with pytest.raises(PolicyError, match="only PolicyExceptions"):
        load_policies([_write(tmp_path, "only.yaml", exception())])
    with pytest.raises(PolicyError, match="also defined"):
        load_policies([tmp_path / "p.yaml", _write(tmp_path, "dup.yaml", exception(), exception())])


def _policy_doc() -> dict[str, Any]:
    from tests.support.policies import cluster_policy, key_verification, keys_entry
    from tests.support.signing import new_key

    return cluster_policy("p", [key_verification([f"{HOST}/*"], [keys_entry(new_key().public_pem)])])


def _decide(images: tuple[str, ...], namespace: str, exceptions: Any, mode: str = "mutate") -> Any:
    source = make_source()
    svc = AdmissionService(
        policies=lambda: policies(),
        verifier=Verifier(source=source),
        settings=AdmissionSettings(deadline_seconds=5),
        exceptions=lambda: exceptions,
    )
    obj = pod(*images)
    obj["metadata"]["namespace"] = namespace
    request = pod_request(obj)
    request["namespace"] = namespace
    try:
        return svc.decide(parse_review(review(request)), mode=mode), source  # type: ignore[arg-type]
    finally:
        svc.close()


@pytest.mark.parametrize("mode", ["mutate", "validate"])
def test_exempted_unsigned_pod_is_admitted_unverified(mode: str) -> None:
    exceptions = load_exceptions(exception())
    decision, source = _decide((UNSIGNED,), "legacy", exceptions, mode)
    assert decision.allowed
    (check,) = decision.checks
    assert check.verdict.verdict == Verdict.SKIP and check.exceptions == ("kyverno/polex",)
    assert check.verdict.message == SKIP_MESSAGE + "kyverno/polex"  # Kyverno's wording, verbatim
    assert not decision.patch and source.requests == 0  # nothing verified, nothing pinned
    assert any("rule is skipped due to policy exceptions" in w for w in decision.warnings)


def test_exception_elsewhere_still_denies_and_signed_still_pinned() -> None:
    exceptions = load_exceptions(exception())
    denied, _ = _decide((UNSIGNED,), "prod", exceptions)
    assert not denied.allowed and not any(c.exceptions for c in denied.checks)
    signed, _ = _decide((SIGNED,), "prod", exceptions)
    assert signed.allowed and len(signed.patch) == 1
    no_exceptions, _ = _decide((UNSIGNED,), "legacy", ())
    assert not no_exceptions.allowed


def test_exceptions_beside_only_image_validating_policies_load(tmp_path: Path) -> None:
    """Merge regression (f-ops x IVPOL): an ImageValidatingPolicy enforces something, so PolicyExceptions beside
    only IVPOLs are not "only PolicyExceptions"; exceptions alone are still refused."""
    from tests.unit.policy.test_ivpol_loader import ivpol

    loaded = load_policies([_write(tmp_path, "iv.yaml", ivpol()), _write(tmp_path, "ex.yaml", exception())])
    assert len(loaded.image_policies) == 1 and [e.key for e in loaded.exceptions] == ["kyverno/polex"]
    assert not loaded.policies
    with pytest.raises(PolicyError, match="only PolicyExceptions"):
        load_policies([tmp_path / "ex.yaml"])


class _CountingObjects:
    """A live cluster that counts lookups and has nothing."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def get(self, ref: Any) -> None:
        self.asked.append(ref)  # and finds nothing


@pytest.mark.parametrize("exempt", [True, False], ids=["exempted", "not-exempted"])
def test_exempted_rule_with_context_reads_no_cluster(exempt: bool) -> None:
    """Merge regression (f-ops x d-context): as in Kyverno, an exception is checked before the rule's context is
    loaded, so an exempted rule reads no cluster data and is answered on the memory-only path; its twin, not
    exempted, reads the (missing) ConfigMap and errs under failurePolicy Fail."""
    from sigward.cluster.data import ClusterData
    from tests.support.policies import dump

    doc = _policy_doc()
    rule = doc["spec"]["rules"][0]
    rule["context"] = [{"name": "cm", "configMap": {"name": "keys", "namespace": "kyverno"}}]
    rule["preconditions"] = {"all": [{"key": "{{ cm.data.enabled }}", "operator": "Equals", "value": "yes"}]}
    loaded = list(load_policy_text(dump(doc), "p.yaml").policies)
    objects = _CountingObjects()
    svc = AdmissionService(
        policies=lambda: loaded,
        verifier=Verifier(source=make_source()),
        settings=AdmissionSettings(deadline_seconds=5),
        exceptions=lambda: load_exceptions(exception()),
        cluster=ClusterData(live=objects),
    )
    obj = pod(UNSIGNED)
    namespace = "legacy" if exempt else "default"
    obj["metadata"]["namespace"] = namespace
    request = pod_request(obj)
    request["namespace"] = namespace
    try:
        parsed = parse_review(review(request))
        from_memory = svc.decide_from_memory(parsed, mode="validate")
        decision = svc.decide(parsed, mode="validate")
    finally:
        svc.close()
    if exempt:
        assert from_memory is not None and from_memory.allowed and decision.allowed
        assert objects.asked == []
    else:
        assert from_memory is None and not decision.allowed and "kyverno/keys" in decision.message
        assert len(objects.asked) == 1

"""match/exclude on the requesting user, against Kyverno (engine/utils/match.go checkUserInfo, utils/match/subjects.go
CheckSubjects): subjects by username/groups with wildcards, ServiceAccount with its namespace, roles/clusterRoles
from the bound roles, exclude wins, a request without user info ignores user criteria in match only, and an
unreadable role lookup is an error (never "no roles")."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.admission.exceptions import matching_exceptions
from sigward.admission.match import UserInfo, request_info, rule_applies
from sigward.cluster.data import ClusterLookupError
from sigward.cluster.rbac import BoundRoles
from sigward.policy.capabilities import for_cluster
from sigward.policy.exceptions import PolicyException
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

PEM = new_key("p256").public_pem.strip()
SA = {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}
ALICE = {"kind": "User", "name": "alice"}
DEVS = {"kind": "Group", "name": "dev*"}


def policy(match: dict[str, Any], exclude: dict[str, Any] | None = None) -> Policy:
    doc = cluster_policy("p", [key_verification(["*"], [keys_entry(PEM)])])
    doc["spec"]["background"] = False
    doc["spec"]["rules"][0]["match"] = match
    if exclude is not None:
        doc["spec"]["rules"][0]["exclude"] = exclude
    return load_policy_text(dump(doc), "t.yaml", capabilities=for_cluster(True)).policies[0]


def info(user: UserInfo | None, roles: BoundRoles | Exception | None = None) -> Any:
    def bound() -> BoundRoles:
        if isinstance(roles, Exception):
            raise roles
        return roles or BoundRoles()

    return request_info(
        kind="Pod",
        group="",
        version="v1",
        sub_resource="",
        namespace="ci",
        name="p",
        operation="CREATE",
        obj={"metadata": {"name": "p"}},
        user=user,
        roles=bound if roles is not None else None,
    )


def pods(**user: Any) -> dict[str, Any]:
    return {"any": [{"resources": {"kinds": ["Pod"]}, **user}]}


SA_USER = UserInfo("system:serviceaccount:ci:deployer", ("system:serviceaccounts",))
SA_OTHER_NS = UserInfo("system:serviceaccount:prod:deployer")
ALICE_USER = UserInfo("alice", ("developers",))
BOB = UserInfo("bob", ("ops",))


@pytest.mark.parametrize(
    ("case", "match", "exclude", "user", "applies"),
    [
        ("service account", pods(subjects=[SA]), None, SA_USER, True),
        ("service account, wrong namespace", pods(subjects=[SA]), None, SA_OTHER_NS, False),
        ("user", pods(subjects=[ALICE]), None, ALICE_USER, True),
        ("other user", pods(subjects=[ALICE]), None, BOB, False),
        ("group wildcard", pods(subjects=[DEVS]), None, ALICE_USER, True),
        ("group not held", pods(subjects=[DEVS]), None, BOB, False),
        ("exclude wins", pods(subjects=[ALICE, DEVS]), pods(subjects=[ALICE]), ALICE_USER, False),
        ("exclude other user", pods(), pods(subjects=[ALICE]), BOB, True),
        ("legacy form", {"resources": {"kinds": ["Pod"]}, "subjects": [ALICE]}, None, ALICE_USER, True),
        ("legacy form, other user", {"resources": {"kinds": ["Pod"]}, "subjects": [ALICE]}, None, BOB, False),
        (
            "all: every filter",
            {"all": [{"resources": {"kinds": ["Pod"]}}, {"resources": {"kinds": ["Pod"]}, "subjects": [DEVS]}]},
            None,
            BOB,
            False,
        ),
        ("no user info: match ignores", pods(subjects=[ALICE]), None, None, True),
        ("no user info: exclude does not", pods(), pods(subjects=[ALICE]), None, True),
    ],
)
def test_subjects(case: str, match: Any, exclude: Any, user: UserInfo | None, applies: bool) -> None:
    p = policy(match, exclude)
    assert (rule_applies(p, p.spec.rules[0], info(user)) is not None) is applies


CI_ROLES = BoundRoles(roles=("ci:deployer",), cluster_roles=("view",))


@pytest.mark.parametrize(
    ("case", "match", "exclude", "roles", "applies"),
    [
        ("role bound", pods(roles=["ci:deployer"]), None, CI_ROLES, True),
        ("role not bound", pods(roles=["ci:admin"]), None, CI_ROLES, False),
        ("cluster role bound", pods(clusterRoles=["view", "edit"]), None, CI_ROLES, True),
        ("cluster role not bound", pods(clusterRoles=["admin"]), None, CI_ROLES, False),
        ("exclude by cluster role", pods(), pods(clusterRoles=["view"]), CI_ROLES, False),
        ("roles and subjects both needed", pods(roles=["ci:deployer"], subjects=[ALICE]), None, CI_ROLES, False),
    ],
)
def test_roles(case: str, match: Any, exclude: Any, roles: BoundRoles, applies: bool) -> None:
    p = policy(match, exclude)
    assert (rule_applies(p, p.spec.rules[0], info(BOB, roles)) is not None) is applies


@pytest.mark.parametrize("where", ["match", "exclude"])
def test_unreadable_roles_raise_never_no_roles(where: str) -> None:
    p = policy(pods(roles=["ci:deployer"])) if where == "match" else policy(pods(), pods(roles=["ci:deployer"]))
    with pytest.raises(ClusterLookupError):
        rule_applies(p, p.spec.rules[0], info(BOB, ClusterLookupError("rolebindings: permission denied")))


def test_roles_without_a_connection_are_refused_at_load_with_the_path() -> None:
    from sigward.errors import PolicyError

    doc = cluster_policy("p", [key_verification(["*"], [keys_entry(PEM)])])
    doc["spec"]["rules"][0]["match"] = pods(clusterRoles=["admin"])
    doc["spec"]["background"] = False
    with pytest.raises(PolicyError) as err:
        load_policy_text(dump(doc), "t.yaml")
    assert "spec.rules[0].match.any[0].clusterRoles" in str(err.value)
    assert "SIGWARD_KUBECONFIG" in str(err.value)
    assert load_policy_text(dump(doc), "t.yaml", capabilities=for_cluster(True)).policies


def exception(**user: Any) -> PolicyException:
    doc = {
        "apiVersion": "kyverno.io/v2",
        "kind": "PolicyException",
        "metadata": {"name": "polex", "namespace": "kyverno"},
        "spec": {
            "background": False,
            "exceptions": [{"policyName": "p", "ruleNames": ["*"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"]}, **user}]},
        },
    }
    return load_policy_text(dump(doc), "ex.yaml", capabilities=for_cluster(True)).exceptions[0]


@pytest.mark.parametrize(
    ("case", "exc", "user", "roles", "exempt"),
    [
        ("subject matches", exception(subjects=[SA]), SA_USER, None, True),
        ("other subject", exception(subjects=[SA]), SA_OTHER_NS, None, False),
        ("no user info: user criteria never ignored", exception(subjects=[SA]), None, None, False),
        ("cluster role bound", exception(clusterRoles=["view"]), BOB, CI_ROLES, True),
        ("cluster role not bound", exception(clusterRoles=["admin"]), BOB, CI_ROLES, False),
        ("role lookup fails: no exemption", exception(roles=["ci:deployer"]), BOB, ClusterLookupError("down"), False),
    ],
)
def test_exception_user_info(case: str, exc: PolicyException, user: Any, roles: Any, exempt: bool) -> None:
    found = matching_exceptions([exc], policy_key="p", rule_name="r", info=info(user, roles), request={})
    assert bool(found) is exempt

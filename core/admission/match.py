"""Does a rule apply to this admission request? Kyverno's ``match``/``exclude`` and autogen: kinds, names,
namespaces, annotations, label ``selector``, ``namespaceSelector``, operations, and the requesting user
(``subjects``, ``roles``, ``clusterRoles``; engine/utils/match.go ``checkUserInfo``, utils/match/subjects.go).

User info: ``subjects`` match ``request.userInfo`` (User and ServiceAccount by username, Group by one of the groups,
wildcards allowed); ``roles``/``clusterRoles`` match when one of the roles bound to the user
(:mod:`sigward.cluster.rbac`, read lazily and only for a rule that names roles) is listed. A request without any
user info (a background scan) ignores them in ``match`` (as Kyverno does) but never in ``exclude``.

Autogen (``pkg/autogen``): a rule that matches only ``Pod`` — without names, selectors or annotations — also applies
to the Pod controllers, named ``autogen-<rule>`` (and ``autogen-cronjob-<rule>`` for CronJobs), unless the policy's
``pod-policies.kyverno.io/autogen-controllers`` annotation is ``none`` or lists other kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigward.admission.images import POD_CONTROLLERS
from sigward.admission.selectors import selector_key
from sigward.cluster.data import ClusterLookupError
from sigward.cluster.rbac import BoundRoles
from sigward.policy.models import (
    LabelSelector,
    MatchResources,
    Policy,
    ResourceDescription,
    ResourceFilter,
    Rule,
    Subject,
)
from sigward.references import wildcard_match

AUTOGEN_ANNOTATION = "pod-policies.kyverno.io/autogen-controllers"
DEFAULT_AUTOGEN = (
    "DaemonSet",
    "Deployment",
    "Job",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
    "CronJob",
)
# verifyImages runs on these unless the rule lists operations.
DEFAULT_OPERATIONS = frozenset({"CREATE", "UPDATE"})


@dataclass(frozen=True)
class RequestInfo:
    """What matching needs from a request."""

    kind: str
    group: str
    version: str
    sub_resource: str
    namespace: str
    name: str
    operation: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    # The request namespace's labels, read only when a namespaceSelector needs them (the AdmissionReview carries
    # none); raises when they cannot be read (sigward.cluster). None: no cluster data at all.
    namespace_labels: Callable[[], Mapping[str, str]] | None = None
    # Selector keys (sigward.admission.selectors) the API server decided for this request: it reached the webhook
    # of a selector route, so the namespace is known to match (True) or not to match (False) them.
    known_selectors: Mapping[str, bool] = field(default_factory=dict)
    # The requesting user (AdmissionRequest.userInfo); None: the request carries none (background scan).
    user: UserInfo | None = None
    # The roles bound to the user, read only when a rule names roles/clusterRoles; raises when unreadable.
    roles: Callable[[], BoundRoles] | None = None


@dataclass(frozen=True)
class UserInfo:
    username: str
    groups: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: Any) -> UserInfo | None:
        """From ``AdmissionRequest.userInfo``; None when absent or empty."""
        if not isinstance(value, Mapping):
            return None
        groups = value.get("groups")
        user = cls(
            username=str(value.get("username") or ""),
            groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        )
        return user if user.username or user.groups else None


def subjects_match(subjects: Sequence[Subject], user: UserInfo) -> bool:
    """Kyverno's ``CheckSubjects``: one subject names the user (wildcards in names)."""
    for subject in subjects:
        if subject.kind == "ServiceAccount":
            if wildcard_match(f"system:serviceaccount:{subject.namespace}:{subject.name}", user.username):
                return True
        elif subject.kind == "Group":
            if any(wildcard_match(subject.name, g) for g in user.groups):
                return True
        elif subject.kind == "User" and wildcard_match(subject.name, user.username):
            return True
    return False


def _user_matches(flt: ResourceFilter, info: RequestInfo, *, exclude: bool) -> bool:
    if not flt.has_user_info():
        return True
    if info.user is None and info.roles is None and not exclude:
        return True  # Kyverno: no request info at all -> match ignores user criteria
    if flt.roles or flt.cluster_roles:
        if info.roles is None:
            raise ClusterLookupError("roles/clusterRoles need the user's RoleBindings: no cluster connection")
        bound = info.roles()
        if flt.roles and not set(flt.roles) & set(bound.roles):
            return False
        if flt.cluster_roles and not set(flt.cluster_roles) & set(bound.cluster_roles):
            return False
    return not flt.subjects or (info.user is not None and subjects_match(flt.subjects, info.user))


def request_info(
    *,
    kind: str,
    group: str,
    version: str,
    sub_resource: str,
    namespace: str,
    name: str,
    operation: str,
    obj: Mapping[str, Any],
    namespace_labels: Callable[[], Mapping[str, str]] | None = None,
    user: UserInfo | None = None,
    roles: Callable[[], BoundRoles] | None = None,
) -> RequestInfo:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), Mapping) else {}
    return RequestInfo(
        kind=kind,
        group=group,
        version=version,
        sub_resource=sub_resource,
        namespace=namespace,
        name=name or str(meta.get("name") or meta.get("generateName") or ""),
        operation=operation,
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        annotations={str(k): str(v) for k, v in (annotations or {}).items()},
        namespace_labels=namespace_labels,
        user=user,
        roles=roles,
    )


def _kind_matches(selector: str, info: RequestInfo) -> bool:
    if selector == "*":
        return True
    parts = selector.split("/")
    sub = ""
    if len(parts) >= 2 and parts[-1] and parts[-1][0].islower() and parts[-2][:1].isupper():
        sub = parts[-1]
        parts = parts[:-1]
    kind = parts[-1]
    if not wildcard_match(kind, info.kind):
        return False
    if len(parts) == 2 and not wildcard_match(parts[0], info.version):
        return False
    if len(parts) >= 3 and not (wildcard_match(parts[0], info.group) and wildcard_match(parts[1], info.version)):
        return False
    if sub:
        return wildcard_match(sub, info.sub_resource)
    # A plain kind also covers pods/ephemeralcontainers (kubectl debug): its new images must be checked too.
    return info.sub_resource in ("", "ephemeralcontainers")


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    return selector.matches(labels)


def _description_matches(desc: ResourceDescription, info: RequestInfo, autogen: bool) -> bool:
    wanted_kinds: Sequence[str] = desc.kinds
    if autogen and desc.kinds and all(k in ("Pod", "v1/Pod") for k in desc.kinds):
        wanted_kinds = (info.kind,)
    if wanted_kinds and not any(_kind_matches(k, info) for k in wanted_kinds):
        return False
    names = (*desc.names, *((desc.name,) if desc.name else ()))
    if names and not any(wildcard_match(n, info.name) for n in names):
        return False
    if desc.namespaces and not any(wildcard_match(n, info.namespace) for n in desc.namespaces):
        return False
    for key, value in desc.annotations.items():
        if not any(wildcard_match(key, k) and wildcard_match(value, v) for k, v in info.annotations.items()):
            return False
    if desc.selector is not None and not selector_matches(desc.selector, info.labels):
        return False
    if desc.namespace_selector is not None:
        # Kyverno: never matches a Namespace object; a cluster-scoped resource has no namespace labels.
        if info.kind == "Namespace" or not info.namespace:
            return False
        known = info.known_selectors.get(selector_key(desc.namespace_selector)) if info.known_selectors else None
        if known is not None:
            if not known:
                return False
        elif info.namespace_labels is None:
            raise ClusterLookupError(
                f"namespaceSelector needs the labels of namespace {info.namespace}: no cluster data"
            )
        elif not selector_matches(desc.namespace_selector, info.namespace_labels()):
            return False
    ops = desc.operations or ()
    return not (ops and info.operation not in ops)


def _filter_matches(flt: ResourceFilter, info: RequestInfo, autogen: bool, exclude: bool = False) -> bool:
    return _description_matches(flt.resources, info, autogen) and _user_matches(flt, info, exclude=exclude)


def _is_empty(desc: ResourceDescription) -> bool:
    return not (
        desc.kinds
        or desc.names
        or desc.name
        or desc.namespaces
        or desc.annotations
        or desc.selector
        or desc.namespace_selector
    )


def match_resources(match: MatchResources, info: RequestInfo, *, autogen: bool = False, exclude: bool = False) -> bool:
    """Kyverno's match semantics: ``any`` (one filter), ``all`` (every filter), or the legacy ``resources`` with
    user info. With ``autogen``, a Pod-only kinds list stands for the controller kind of the request; ``exclude``:
    the block is an exclude (user criteria are never ignored there)."""
    if not (match.any or match.all) and _is_empty(match.resources) and not match.has_user_info():
        return False  # Kyverno: "match cannot be empty"; an empty exclude excludes nothing
    return (any if match.any else all)(_filter_matches(f, info, autogen, exclude) for f in match.filters())


def _descriptions(match: MatchResources | None) -> list[ResourceDescription]:
    if match is None:
        return []
    if match.any or match.all:
        return [f.resources for f in (*match.any, *match.all)]
    return [match.resources]


def autogen_controllers(policy: Policy, rule: Rule) -> tuple[str, ...]:
    """The Pod controllers a Pod rule also applies to (empty when autogen does not apply)."""
    value = policy.annotations.get(AUTOGEN_ANNOTATION)
    if value is not None and value.strip().lower() == "none":
        return ()
    descs = _descriptions(rule.match) + _descriptions(rule.exclude)
    match_descs = _descriptions(rule.match)
    if not match_descs or not all(d.kinds and all(k in ("Pod", "v1/Pod") for k in d.kinds) for d in match_descs):
        return ()
    if any(d.name or d.names or d.selector or d.annotations for d in descs):
        return ()
    if value is None:
        return DEFAULT_AUTOGEN
    listed = tuple(k.strip() for k in value.split(",") if k.strip())
    return tuple(k for k in listed if k in POD_CONTROLLERS)


@dataclass(frozen=True)
class RuleMatch:
    rule: Rule
    name: str  # the rule name Kyverno reports (``autogen-…`` for controllers)


def rule_applies(policy: Policy, rule: Rule, info: RequestInfo) -> RuleMatch | None:
    """The rule (and the name it reports under) when it applies to the request, else None."""
    if policy.kind == "Policy" and policy.namespace and info.namespace != policy.namespace:
        return None
    if info.operation not in DEFAULT_OPERATIONS and not any(d.operations for d in _descriptions(rule.match)):
        return None
    name = rule.name
    autogen = False
    if not match_resources(rule.match, info):
        if info.kind not in autogen_controllers(policy, rule) or not match_resources(rule.match, info, autogen=True):
            return None
        autogen = True
        name = f"autogen-cronjob-{rule.name}" if info.kind == "CronJob" else f"autogen-{rule.name}"
    if rule.exclude is not None and match_resources(rule.exclude, info, autogen=autogen, exclude=True):
        return None
    return RuleMatch(rule=rule, name=name)


def webhook_covers(policy: Policy, rule: Rule, info: RequestInfo) -> bool:
    """Whether the API server calls the policy's webhook for this request on the rule's behalf: Kyverno builds
    the webhook's rules from the kinds in ``match`` (plus autogen's Pod controllers); names, selectors, exclude
    and user info are decided by Kyverno after the call, so they do not narrow it. A namespaced Policy is only
    ever about its own namespace."""
    if policy.kind == "Policy" and policy.namespace and info.namespace != policy.namespace:
        return False
    if any(_kind_matches(k, info) for d in _descriptions(rule.match) for k in d.kinds):
        return True
    return info.kind in autogen_controllers(policy, rule)

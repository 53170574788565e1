"""The Mutating and Validating webhook configurations that point a cluster at the admission function.

``clientConfig.url`` must be https without query or fragment; the token rides as a path segment (Kubernetes cannot
add headers to webhook calls). ``sideEffects: None`` holds because dry-run requests record nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from sigward.errors import BadRequestError

if TYPE_CHECKING:
    from sigward.admission.selectors import SelectorRoute
    from sigward.policy.ivpol.load import ImagePolicy
    from sigward.policy.models import Policy

# Never sent to the webhook: the control plane's own namespaces (a broken webhook must not lock the cluster out).
DEFAULT_EXCLUDED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["batch"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["jobs", "cronjobs"],
        "scope": "Namespaced",
    },
]


def _endpoint(url: str, token: str, suffix: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise BadRequestError(f"webhook URL {url!r} must use https (Kubernetes requires it)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise BadRequestError("webhook URL must not carry a query, fragment or user info")
    if token and ("/" in token or not token.strip()):
        raise BadRequestError("the admission token must be a single path segment")
    if "," in token or "=" in token:
        # SIGWARD_ADMISSION_TOKEN may list several (CLUSTER=)TOKEN entries; a cluster's URL carries exactly one token
        raise BadRequestError("pass one cluster's token with --token, not the SIGWARD_ADMISSION_TOKEN list")
    base = url.rstrip("/")
    return f"{base}/{token}/{suffix}" if token else f"{base}/{suffix}"


def _webhook(
    name: str,
    url: str,
    *,
    failure_policy: str,
    timeout_seconds: int,
    exclude: Sequence[str],
    mutating: bool,
    extra_rules: Sequence[dict[str, Any]] = (),
    selector: Mapping[str, Any] | None = None,
    object_selector: Mapping[str, Any] | None = None,
    match_conditions: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": url},
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": timeout_seconds,
        "namespaceSelector": _namespace_selector(exclude, selector),
        "rules": copy.deepcopy(RULES) + copy.deepcopy(list(extra_rules)),
    }
    if object_selector:
        hook["objectSelector"] = copy.deepcopy(dict(object_selector))
    if match_conditions:
        hook["matchConditions"] = [{"name": n, "expression": e} for n, e in match_conditions]
    if mutating:
        hook["reinvocationPolicy"] = "IfNeeded"
    return hook


def _namespace_selector(exclude: Sequence[str], selector: Mapping[str, Any] | None) -> dict[str, Any]:
    """The excluded namespaces, ANDed with a selector route's own selector (sigward.admission.selectors)."""
    excluded = {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(exclude)}
    if selector is None:
        return {"matchExpressions": [excluded]}
    out: dict[str, Any] = {}
    if selector.get("matchLabels"):
        out["matchLabels"] = copy.deepcopy(dict(selector["matchLabels"]))
    out["matchExpressions"] = [excluded, *copy.deepcopy(list(selector.get("matchExpressions") or ()))]
    return out


def webhook_configurations(
    *,
    url: str,
    token: str = "",
    failure_policy: str = "Fail",
    timeout_seconds: int = 10,
    name: str = "sigward",
    exclude_namespaces: Sequence[str] | None = None,
    extra_rules: Sequence[dict[str, Any]] = (),
    routes: Sequence[SelectorRoute] = (),
) -> list[dict[str, Any]]:
    """The two webhook configurations; with selector ``routes``, each also carries one webhook per route whose
    namespaceSelector is the route's selector and whose path ends in ``sel-<key>``. A route's own failurePolicy and
    timeoutSeconds (:class:`SelectorRoute`) win over ``failure_policy``/``timeout_seconds``."""
    if failure_policy not in ("Fail", "Ignore"):
        raise BadRequestError(f"failurePolicy {failure_policy!r} must be Fail or Ignore")
    if not 1 <= timeout_seconds <= 30:
        raise BadRequestError("timeoutSeconds must be between 1 and 30")
    exclude = tuple(dict.fromkeys((*DEFAULT_EXCLUDED_NAMESPACES, *(exclude_namespaces or ()))))

    def hook(kind: str, mutating: bool, route: SelectorRoute | None = None) -> dict[str, Any]:
        suffix = f"{kind}/{route.segment}" if route is not None else kind
        return _webhook(
            f"{kind}-{route.segment}.{name}.dev" if route is not None else f"{kind}.{name}.dev",
            _endpoint(url, token, suffix),
            failure_policy=route.failure_policy if route is not None and route.failure_policy else failure_policy,
            timeout_seconds=route.timeout_seconds if route is not None and route.timeout_seconds else timeout_seconds,
            exclude=exclude,
            mutating=mutating,
            extra_rules=extra_rules,
            selector=route.selector if route is not None and route.selector else None,
            object_selector=route.object_selector if route is not None else None,
            match_conditions=route.match_conditions if route is not None else (),
        )

    def hooks(kind: str, mutating: bool) -> list[dict[str, Any]]:
        return [hook(kind, mutating), *(hook(kind, mutating, r) for r in routes)]

    labels = {"app.kubernetes.io/name": "sigward"}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name, "labels": labels},
            "webhooks": hooks("mutate", mutating=True),
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "labels": labels},
            "webhooks": hooks("validate", mutating=False),
        },
    ]


def render_webhook_configurations(**kwargs: Any) -> str:
    return yaml.safe_dump_all(webhook_configurations(**kwargs), sort_keys=False)


@dataclass(frozen=True)
class PolicyWebhookSettings:
    """What the loaded policies ask of the plain webhook: ``failurePolicy`` (Ignore only when every policy of either
    form says Ignore), ``timeoutSeconds`` (the largest any policy asks for, never below Kyverno's default 10 s) and
    the rules IVPOL ``matchConstraints`` add beyond :data:`RULES`."""

    failure_policy: str
    timeout_seconds: int
    extra_rules: tuple[dict[str, Any], ...] = ()


# sigward decides CREATE and UPDATE only (service.AdmissionService); other operations are never sent to it.
_DECIDED_OPERATIONS = ("CREATE", "UPDATE")


def _covered(group: str, resource: str, versions: Sequence[str] | None = None) -> bool:
    """Does :data:`RULES` already send ``group``/``resource`` (and, for an IVPOL asking ``matchPolicy: Exact``,
    each of its ``versions`` exactly: the shared Equivalent webhook would otherwise convert such a request to v1,
    while Kyverno's Exact webhook sends it as asked — pkg/controllers/webhook/validating.go ``buildWebhookRules``)?"""
    return any(
        group in r["apiGroups"]
        and resource in r["resources"]
        and (versions is None or all(v in r["apiVersions"] for v in versions))
        for r in RULES
    )


def policy_webhook_settings(policies: Sequence[Policy], image_policies: Sequence[ImagePolicy]) -> PolicyWebhookSettings:
    from sigward.admission.selectors import webhook_settings

    asked = [(p.spec.failure_policy, p.spec.webhook_timeout_seconds) for p in policies]
    asked += [(p.spec.failure_policy, p.timeout_seconds) for p in image_policies]
    failure_policy, timeout_seconds = webhook_settings(asked)
    extra: list[dict[str, Any]] = []
    for ip in image_policies:
        mc = ip.spec.match_constraints
        for rule in mc.resource_rules if mc is not None else ():
            groups = list(rule.api_groups) or [""]
            exact = (list(rule.api_versions) or ["*"]) if mc is not None and mc.match_policy == "Exact" else None
            resources = [r for r in rule.resources if not all(_covered(g, r, exact) for g in groups)]
            operations = [o for o in (rule.operations or ("*",)) if o in (*_DECIDED_OPERATIONS, "*")]
            if not resources or not operations:
                continue
            extra.append(
                {
                    "apiGroups": groups,
                    "apiVersions": list(rule.api_versions) or ["*"],
                    "operations": list(_DECIDED_OPERATIONS),
                    "resources": resources,
                    "scope": rule.scope,
                }
            )
    unique = {yaml.safe_dump(r, sort_keys=True): r for r in extra}
    return PolicyWebhookSettings(
        failure_policy=failure_policy,
        timeout_seconds=timeout_seconds,
        extra_rules=tuple(unique.values()),
    )

"""``namespaceSelector`` and ``webhookConfiguration.matchConditions`` expressed at the API server: one webhook per
distinct (selector, matchConditions) pair (``sigward webhook-config``).

Without a cluster connection sigward cannot read a namespace's labels, but the API server can: a webhook whose own
``namespaceSelector`` is the rule's selector is called only for namespaces that match it. Each such webhook posts to
its own path, ``/mutate/sel-<key>`` or ``/validate/sel-<key>``; the key is a hash of the selector, so a request on
that path proves (as far as the API server's filtering goes) that the namespace matched it. On such a path sigward
evaluates exactly the rules whose route has that key, treating their namespace condition as decided; every other
rule is evaluated on the plain path. An ImageValidatingPolicy with a ``namespaceSelector`` or ``objectSelector``
gets a route too: its webhook carries both selectors, and the policy is evaluated only there.

A rule's route is the AND of its ``match`` selectors with the negation of its ``exclude`` selectors. Only what one
Kubernetes label selector can express exactly is routed; anything else is refused with the rule's name (configure
the cluster connection instead) — never approximated, which could skip a rule for some namespaces.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sigward.errors import ConfigurationError
from sigward.policy.ivpol.matchconditions import webhook_match_conditions

if TYPE_CHECKING:
    from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.models import (
    DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
    MAX_WEBHOOK_TIMEOUT_SECONDS,
    LabelSelector,
    LabelSelectorRequirement,
    MatchResources,
    Policy,
    Rule,
)

# The path segment that names a selector route, followed by the key.
ROUTE_PREFIX = "sel-"
# Hex digits of the selector hash in the path: 64 bits, ample against accidental collisions among a few selectors.
KEY_HEX_DIGITS = 16
# Environment switch: the plain path leaves namespaceSelector rules to their selector webhooks.
SELECTOR_WEBHOOKS_ENV = "SIGWARD_NAMESPACE_SELECTORS"
_NEGATED = {"In": "NotIn", "NotIn": "In", "Exists": "DoesNotExist", "DoesNotExist": "Exists"}


class SelectorRouteError(ConfigurationError):
    """A rule's namespace selectors cannot be expressed as one webhook namespaceSelector."""


def _canonical(selector: LabelSelector) -> dict[str, Any]:
    return {
        "matchLabels": dict(sorted(selector.match_labels.items())),
        "matchExpressions": sorted(
            ({"key": e.key, "operator": e.operator, "values": sorted(e.values)} for e in selector.match_expressions),
            key=lambda e: json.dumps(e, sort_keys=True),
        ),
    }


def selector_key(selector: LabelSelector) -> str:
    """A stable key of a selector's meaning (order of labels, expressions and values does not change it)."""
    text = json.dumps(_canonical(selector), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_HEX_DIGITS]


@dataclass(frozen=True)
class SelectorRoute:
    """Where one rule's namespace condition is decided by the API server.

    ``selector`` is the webhook's namespaceSelector (Kubernetes form); ``matching``/``not_matching`` are the keys of
    the rule's own selectors that a request on this route is known to match / not to match."""

    key: str
    selector: Mapping[str, Any]
    matching: frozenset[str]
    not_matching: frozenset[str]
    # An ImageValidatingPolicy's ``objectSelector``: the webhook's own objectSelector (Kubernetes form).
    object_selector: Mapping[str, Any] | None = None
    # The policy's spec.webhookConfiguration.matchConditions, (name, expression) as written: the webhook carries
    # them, so the API server calls it only for requests they admit (one webhook per distinct set, as Kyverno's
    # per-policy "fine-grained" webhooks; conditions of different policies never share one).
    match_conditions: tuple[tuple[str, str], ...] = ()
    # The webhook's failurePolicy and timeoutSeconds (None: the configuration's defaults). A matchConditions route
    # is one policy's own ("fine-grained") webhook and carries that policy's values, part of its key; a route
    # shared by several policies gets what Kyverno's shared webhooks get (see :func:`webhook_settings`).
    failure_policy: str | None = None
    timeout_seconds: int | None = None

    @property
    def segment(self) -> str:
        return ROUTE_PREFIX + self.key

    def known(self) -> dict[str, bool]:
        return {**{k: True for k in self.matching}, **{k: False for k in self.not_matching}}


def _where(policy: Policy, rule: Rule) -> str:
    return f"policy {policy.name} rule {rule.name}"


def _match_selectors(match: MatchResources, where: str) -> list[LabelSelector]:
    if match.any:
        with_sel = [f.resources.namespace_selector for f in match.any if f.resources.namespace_selector is not None]
        if with_sel and len(match.any) > 1:
            raise SelectorRouteError(
                f"{where}: match.any with several filters and a namespaceSelector is an OR of selectors; "
                "one webhook cannot express it: configure the cluster connection (SIGWARD_KUBECONFIG)"
            )
        return with_sel
    if match.all:
        return [f.resources.namespace_selector for f in match.all if f.resources.namespace_selector is not None]
    sel = match.resources.namespace_selector
    return [sel] if sel is not None else []


def _negation(selector: LabelSelector, where: str) -> LabelSelectorRequirement:
    reqs = [LabelSelectorRequirement(key=k, operator="In", values=(v,)) for k, v in selector.match_labels.items()]
    reqs += list(selector.match_expressions)
    if len(reqs) != 1 or reqs[0].operator not in _NEGATED or any("*" in v or "?" in v for v in reqs[0].values):
        raise SelectorRouteError(
            f"{where}: exclude namespaceSelector must be a single requirement without wildcards to be negated into "
            "a webhook namespaceSelector: configure the cluster connection (SIGWARD_KUBECONFIG)"
        )
    req = reqs[0]
    return LabelSelectorRequirement(key=req.key, operator=_NEGATED[req.operator], values=req.values)


def _exclude_selectors(exclude: MatchResources | None, where: str) -> list[LabelSelector]:
    if exclude is None:
        return []
    descs = [f.resources for f in (*exclude.any, *exclude.all)] if exclude.any or exclude.all else [exclude.resources]
    out: list[LabelSelector] = []
    for desc in descs:
        if desc.namespace_selector is None:
            continue
        alone = desc.model_copy(update={"namespace_selector": None}).is_empty()
        if not alone or len(exclude.all) > 1:
            # Excluded only when other conditions hold too: negating the selector alone would skip the rule for
            # resources the exclude does not cover.
            raise SelectorRouteError(
                f"{where}: an exclude namespaceSelector combined with other conditions cannot be expressed at the "
                "API server: configure the cluster connection (SIGWARD_KUBECONFIG)"
            )
        out.append(desc.namespace_selector)
    return out


def rule_route(policy: Policy, rule: Rule) -> SelectorRoute | None:
    """The route of a rule that has a namespaceSelector or whose policy has webhook matchConditions (None when
    it has neither)."""
    route = _selector_route(policy, rule)
    conditions = webhook_match_conditions(policy.spec.webhook_configuration).sources()
    if not conditions:
        return route
    if route is None:
        route = SelectorRoute(key="", selector={}, matching=frozenset(), not_matching=frozenset())
    # pkg/controllers/webhook newWebhookPerPolicy: the policy's own failurePolicy, and its timeout raised from the
    # default (never lowered below it) and capped. Policies differing in either never share the webhook.
    failure_policy, timeout = webhook_settings([(policy.spec.failure_policy, policy.spec.webhook_timeout_seconds)])
    text = json.dumps(
        {
            "selector": route.selector,
            "matchConditions": conditions,
            "failurePolicy": failure_policy,
            "timeoutSeconds": timeout,
        },
        sort_keys=True,
    )
    return SelectorRoute(
        key=hashlib.sha256(text.encode()).hexdigest()[:KEY_HEX_DIGITS],
        selector=route.selector,
        matching=route.matching,
        not_matching=route.not_matching,
        match_conditions=conditions,
        failure_policy=failure_policy,
        timeout_seconds=timeout,
    )


def webhook_settings(asked: Iterable[tuple[str, int]]) -> tuple[str, int]:
    """(failurePolicy, timeoutSeconds) of a webhook serving policies that ask for ``asked`` (failurePolicy,
    timeout) pairs, as Kyverno builds its webhooks (pkg/controllers/webhook ``mergeWebhook``, ``capTimeout``):
    the timeout starts at the default and only rises, capped at 30 s. Kyverno splits its shared webhook into a
    ``-fail`` and an ``-ignore`` one; one sigward webhook serving both kinds fails closed (Fail), so a Fail
    policy is never skipped when sigward cannot be reached."""
    pairs = list(asked)
    failure = "Ignore" if pairs and all(f == "Ignore" for f, _ in pairs) else "Fail"
    timeout = max([DEFAULT_WEBHOOK_TIMEOUT_SECONDS, *(t for _, t in pairs)])
    return failure, min(timeout, MAX_WEBHOOK_TIMEOUT_SECONDS)


def _selector_route(policy: Policy, rule: Rule) -> SelectorRoute | None:
    where = _where(policy, rule)
    matches = _match_selectors(rule.match, where)
    excludes = _exclude_selectors(rule.exclude, where)
    if not matches and not excludes:
        return None
    labels: dict[str, str] = {}
    expressions: list[LabelSelectorRequirement] = []
    for sel in matches:
        for key, value in sel.match_labels.items():
            if "*" in value or "?" in value or "*" in key or "?" in key:
                raise SelectorRouteError(
                    f"{where}: namespaceSelector matchLabels {key}={value} uses a Kyverno wildcard the API server "
                    "does not understand: configure the cluster connection (SIGWARD_KUBECONFIG)"
                )
            if labels.get(key, value) != value:
                expressions.append(LabelSelectorRequirement(key=key, operator="In", values=(value,)))
            else:
                labels[key] = value
        expressions.extend(sel.match_expressions)
    expressions.extend(_negation(sel, where) for sel in excludes)
    combined = LabelSelector(match_labels=labels, match_expressions=tuple(expressions))
    canonical = _canonical(combined)
    selector = {k: v for k, v in canonical.items() if v}
    return SelectorRoute(
        key=selector_key(combined),
        selector=selector,
        matching=frozenset(selector_key(s) for s in matches),
        not_matching=frozenset(selector_key(s) for s in excludes),
    )


def image_policy_route(policy: ImagePolicy) -> SelectorRoute | None:
    """The route of an ImageValidatingPolicy with a ``namespaceSelector`` and/or ``objectSelector``: a webhook with
    exactly those selectors (Kubernetes label selectors, so always expressible). A namespace selector alone shares
    the key (and so the webhook) of a ClusterPolicy rule with the same selector."""
    from sigward.policy.ivpol.policy_fields import selectors

    ns, obj = selectors(policy.spec)
    if ns is None and obj is None:
        return None
    namespace = ns if ns is not None else LabelSelector()
    key = selector_key(namespace)
    object_selector = None
    if obj is not None:
        object_selector = {k: v for k, v in _canonical(obj).items() if v}
        both = json.dumps([_canonical(namespace), object_selector], sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(("object:" + both).encode()).hexdigest()[:KEY_HEX_DIGITS]
    return SelectorRoute(
        key=key,
        selector={k: v for k, v in _canonical(namespace).items() if v},
        matching=frozenset({selector_key(ns)}) if ns is not None else frozenset(),
        not_matching=frozenset(),
        object_selector=object_selector,
    )


def policy_routes(policies: Sequence[Policy], image_policies: Sequence[ImagePolicy] = ()) -> dict[str, SelectorRoute]:
    """Every distinct route of the loaded policies (and ImageValidatingPolicies), by key, in a stable order (sorted
    by key)."""
    found: dict[str, SelectorRoute] = {}
    asked: dict[str, list[tuple[str, int]]] = {}
    for image_policy in image_policies:
        if image_policy.spec.evaluation.admission.enabled and (route := image_policy_route(image_policy)) is not None:
            found.setdefault(route.key, route)
            asked.setdefault(route.key, []).append((image_policy.spec.failure_policy, image_policy.timeout_seconds))
    for policy in policies:
        if not policy.spec.admission:
            continue
        for rule in policy.spec.rules:
            route = rule_route(policy, rule)
            if route is not None:
                found.setdefault(route.key, route)
                asked.setdefault(route.key, []).append(
                    (policy.spec.failure_policy, policy.spec.webhook_timeout_seconds)
                )
    out: dict[str, SelectorRoute] = {}
    for key, route in sorted(found.items()):
        failure, timeout = webhook_settings(asked[key])
        out[key] = replace(route, failure_policy=failure, timeout_seconds=timeout)
    return out


def parse_route(segments: Iterable[str]) -> str:
    """The route key in a request path's segments ("" for the plain path). A malformed ``sel-`` segment is kept
    as given: it matches no rule's key, so nothing is evaluated under it."""
    for seg in segments:
        if seg.startswith(ROUTE_PREFIX):
            return seg[len(ROUTE_PREFIX) :]
    return ""


def selector_webhooks_enabled(environ: Mapping[str, str]) -> bool:
    value = environ.get(SELECTOR_WEBHOOKS_ENV, "").strip().lower()
    if value not in ("", "webhook", "cluster"):
        raise ConfigurationError(f"{SELECTOR_WEBHOOKS_ENV}={value!r} must be 'webhook' or 'cluster'")
    return value == "webhook"

"""The Mutating and Validating webhook configurations that point a cluster at the admission function.

``clientConfig.url`` must be https without query or fragment; the token rides as a path segment (Kubernetes cannot
add headers to webhook calls). ``sideEffects: None`` holds because dry-run requests record nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import yaml

from sigward.errors import BadRequestError

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
) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": url},
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": timeout_seconds,
        "namespaceSelector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(exclude)}]
        },
        "rules": copy.deepcopy(RULES),
    }
    if mutating:
        hook["reinvocationPolicy"] = "IfNeeded"
    return hook


def webhook_configurations(
    *,
    url: str,
    token: str = "",
    failure_policy: str = "Fail",
    timeout_seconds: int = 10,
    name: str = "sigward",
    exclude_namespaces: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    if failure_policy not in ("Fail", "Ignore"):
        raise BadRequestError(f"failurePolicy {failure_policy!r} must be Fail or Ignore")
    if not 1 <= timeout_seconds <= 30:
        raise BadRequestError("timeoutSeconds must be between 1 and 30")
    exclude = tuple(dict.fromkeys((*DEFAULT_EXCLUDED_NAMESPACES, *(exclude_namespaces or ()))))

    def hook(kind: str, mutating: bool) -> dict[str, Any]:
        return _webhook(
            f"{kind}.{name}.dev",
            _endpoint(url, token, kind),
            failure_policy=failure_policy,
            timeout_seconds=timeout_seconds,
            exclude=exclude,
            mutating=mutating,
        )

    labels = {"app.kubernetes.io/name": "sigward"}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name, "labels": labels},
            "webhooks": [hook("mutate", mutating=True)],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "labels": labels},
            "webhooks": [hook("validate", mutating=False)],
        },
    ]


def render_webhook_configurations(**kwargs: Any) -> str:
    return yaml.safe_dump_all(webhook_configurations(**kwargs), sort_keys=False)

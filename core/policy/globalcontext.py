"""Kyverno's ``GlobalContextEntry`` (kyverno.io v2alpha1, v2beta1, v2): cluster data cached across requests, read by
ClusterPolicy ``context[].globalReference`` and ImageValidatingPolicy ``globalContext.Get``.

Entries are configuration shipped beside the policies (same files and directories). The model refuses unknown fields
with their YAML paths and applies the CRD's defaults (``refreshInterval: 10m``, ``retryLimit: 3``, ``method: GET``);
:func:`spec_problems` is Kyverno's ``GlobalContextEntrySpec.Validate``
(api/kyverno/v2beta1/global_context_entry_types.go) plus unique projection names. What an entry's data is, and how
fresh, is :mod:`sigward.cluster.globalcontext`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, StrictInt, StrictStr

from sigward.errors import SigwardError
from sigward.policy.durations import SECOND, parse_duration
from sigward.policy.jmes import compile_expression
from sigward.policy.models import KyvernoModel
from sigward.policy.validation import Problem

KIND = "GlobalContextEntry"
# Every version Kyverno's CRD serves (v2beta1 is the storage version; v2alpha1 is deprecated but served).
API_VERSIONS = ("kyverno.io/v2alpha1", "kyverno.io/v2beta1", "kyverno.io/v2")
DEFAULT_REFRESH_INTERVAL = "10m"  # the CRD's default
DEFAULT_RETRY_LIMIT = 3  # the CRD's default


class RequestData(KyvernoModel):
    key: StrictStr
    value: Any = None


class Header(KyvernoModel):
    key: StrictStr
    value: StrictStr


class ServiceCall(KyvernoModel):
    url: StrictStr
    ca_bundle: StrictStr = ""
    headers: tuple[Header, ...] = ()


class ExternalAPICall(KyvernoModel):
    """``spec.apiCall``: Kyverno's APICall (``urlPath`` XOR ``service``) plus how often it is polled."""

    url_path: StrictStr = ""
    method: Literal["GET", "POST"] = "GET"
    data: tuple[RequestData, ...] | None = None
    service: ServiceCall | None = None
    refresh_interval: StrictStr = DEFAULT_REFRESH_INTERVAL
    retry_limit: StrictInt = Field(default=DEFAULT_RETRY_LIMIT, ge=1)

    def call(self) -> dict[str, Any]:
        """The call as rule ``context[].apiCall`` writes it (what :func:`sigward.cluster.apicall.execute` reads)."""
        out: dict[str, Any] = {"method": self.method}
        if self.url_path:
            out["urlPath"] = self.url_path
        if self.service is not None:
            out["service"] = self.service.model_dump(by_alias=True)
        if self.data is not None:
            out["data"] = [d.model_dump(by_alias=True) for d in self.data]
        return out


class KubernetesResource(KyvernoModel):
    """``spec.kubernetesResource``: every object of one collection (of one namespace, or all when empty)."""

    group: StrictStr = ""
    version: StrictStr = ""
    resource: StrictStr = ""
    namespace: StrictStr = ""


class Projection(KyvernoModel):
    name: StrictStr = ""
    jmes_path: StrictStr = ""


class GlobalContextEntrySpec(KyvernoModel):
    kubernetes_resource: KubernetesResource | None = None
    api_call: ExternalAPICall | None = None
    projections: tuple[Projection, ...] = ()


@dataclass(frozen=True)
class GlobalContextEntry:
    """One loaded entry (cluster-scoped: a name, no namespace); ``refresh_seconds`` from ``apiCall.refreshInterval``."""

    name: str
    spec: GlobalContextEntrySpec
    source: str
    refresh_seconds: float = 0.0

    @property
    def projections(self) -> Mapping[str, str]:
        return {p.name: p.jmes_path for p in self.spec.projections}


def refresh_seconds(spec: GlobalContextEntrySpec) -> float:
    """``apiCall.refreshInterval`` in seconds (0 for a kubernetesResource entry); ValueError when it is no duration."""
    if spec.api_call is None:
        return 0.0
    return parse_duration(spec.api_call.refresh_interval) / SECOND


def spec_problems(spec: GlobalContextEntrySpec, name: str) -> list[Problem]:
    """Kyverno's validation of a GlobalContextEntry spec, each problem with its YAML path."""
    out: list[Problem] = []
    resource, call = spec.kubernetes_resource, spec.api_call
    if (resource is None) == (call is None):
        out.append(
            ("spec.kubernetesResource", "A global context entry should either have KubernetesResource or APICall")
        )
    if resource is not None:
        if not resource.group and resource.version != "v1":
            out.append(("spec.kubernetesResource.group", "A Resource entry requires a group"))
        if not resource.version:
            out.append(("spec.kubernetesResource.version", "A Resource entry requires a version"))
        if not resource.resource:
            out.append(("spec.kubernetesResource.resource", "A Resource entry requires a resource"))
    if call is not None:
        try:
            seconds = refresh_seconds(spec)
        except ValueError as exc:
            out.append(("spec.apiCall.refreshInterval", f"not a duration (e.g. 30s, 10m, 1h): {exc}"))
        else:
            if seconds <= 0:
                out.append(
                    (
                        "spec.apiCall.refreshInterval",
                        "A Resource entry requires a refresh interval greater than 0 seconds",
                    )
                )
        if (call.service is None) == (not call.url_path):
            out.append(("spec.apiCall.service", "An External API call should either have Service or URLPath"))
        if call.data is not None and call.method != "POST":
            out.append(("spec.apiCall.method", "An External API call with data should have method as POST"))
    seen: set[str] = set()
    for i, p in enumerate(spec.projections):
        path = f"spec.projections[{i}]"
        if not p.name:
            out.append((f"{path}.name", "A projection entry requires a name"))
        elif p.name == name:
            out.append(
                (f"{path}.name", "A projection entry requires a name different from the global context entry name")
            )
        elif p.name in seen:
            # Kyverno keeps the last of two same-named projections; which one a rule reads would be ambiguous.
            out.append((f"{path}.name", f"projection {p.name} is defined twice"))
        seen.add(p.name)
        if not p.jmes_path:
            out.append((f"{path}.jmesPath", "A projection entry requires a JMESPath"))
        else:
            out.extend(_jmes_problem(p.jmes_path, f"{path}.jmesPath"))
    return out


def _jmes_problem(expression: str, path: str) -> list[Problem]:
    try:
        compile_expression(expression)
    except SigwardError as exc:
        return [(path, exc.message)]
    return []

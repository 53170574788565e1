"""Kyverno's ``APICall`` executed: ``urlPath`` through the live cluster connection, ``service`` to an allowlisted URL
(``SIGWARD_APICALL_SERVICES``). The one implementation behind rule ``context[].apiCall`` and GlobalContextEntry
``apiCall``, so both get the same SSRF rules, size caps and Secret filtering
(:class:`~sigward.cluster.data.ClusterData`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sigward.cluster.data import ClusterData, ClusterLookupError


def execute(cluster: ClusterData, call: Mapping[str, Any]) -> Any:
    """The JSON answer to ``call`` (``urlPath`` or ``service``, ``method``, ``data``, already substituted);
    :class:`ClusterLookupError` (or another :class:`~sigward.errors.SigwardError`) when it cannot be read."""
    method = str(call.get("method") or "GET")
    if method not in ("GET", "POST"):
        raise ClusterLookupError(f"apiCall method {method} is not GET or POST")
    body = {str(d.get("key")): d.get("value") for d in call.get("data") or () if isinstance(d, Mapping)}
    service = call.get("service")
    if service is not None:
        if not isinstance(service, Mapping) or not isinstance(service.get("url"), str):
            raise ClusterLookupError("apiCall service.url must be a string")
        return cluster.service(
            service["url"],
            method=method,
            headers=service.get("headers") or (),
            body=body if method == "POST" else None,
            ca_bundle=str(service.get("caBundle") or ""),
        )
    path = call.get("urlPath")
    if not isinstance(path, str) or not path:
        raise ClusterLookupError("apiCall urlPath is required")
    return cluster.raw(path, method=method, body=body if method == "POST" else None)

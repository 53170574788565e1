"""AdmissionReview v1 in and out, with precise errors for anything else.

The API server sends ``{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{…}}`` and expects the
same apiVersion/kind back with ``response.uid`` echoing ``request.uid``. Malformed input is refused before any work.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigward.errors import BadRequestError
from sigward.jsonbody import MAX_JSON_DEPTH, parse_json_body

__all__ = ["MAX_JSON_DEPTH", "parse_json_body"]  # their home is sigward.jsonbody; kept importable here

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
# etcd stores objects up to 1.5 MiB; a review carries the object and the old object plus metadata.
MAX_REVIEW_BYTES = 4 * 1024 * 1024
# Kubernetes documents that warnings over 120 characters may be truncated; we cut them ourselves, with a marker.
MAX_WARNING_CHARS = 120
# More warnings than this help nobody reading kubectl output and bloat the response.
MAX_WARNINGS = 32
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})


@dataclass(frozen=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str


@dataclass(frozen=True)
class AdmissionRequest:
    uid: str
    kind: GroupVersionKind
    resource: str
    sub_resource: str
    name: str
    namespace: str
    operation: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None
    dry_run: bool
    user: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def effective_object(self) -> Mapping[str, Any]:
        return self.object or self.old_object or {}

    @property
    def object_name(self) -> str:
        meta = self.effective_object.get("metadata")
        if isinstance(meta, Mapping):
            for key in ("name", "generateName"):
                value = meta.get(key)
                if isinstance(value, str) and value:
                    return value
        return self.name


def _str(req: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = req.get(key)
    if value is None:
        if required:
            raise BadRequestError(f"AdmissionReview: request.{key} is required")
        return ""
    if not isinstance(value, str):
        raise BadRequestError(f"AdmissionReview: request.{key} must be a string")
    return value


def _obj(req: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = req.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequestError(f"AdmissionReview: request.{key} must be an object or null")
    return value


def parse_review(doc: Any) -> AdmissionRequest:
    if not isinstance(doc, dict):
        raise BadRequestError("AdmissionReview: expected a JSON object")
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        raise BadRequestError(
            f"AdmissionReview: apiVersion {api_version!r} is not supported; configure admissionReviewVersions: "
            f'["v1"] ({API_VERSION})'
        )
    if doc.get("kind") != KIND:
        raise BadRequestError(f"AdmissionReview: kind {doc.get('kind')!r} is not {KIND!r}")
    req = doc.get("request")
    if not isinstance(req, dict):
        raise BadRequestError("AdmissionReview: request is missing")
    uid = _str(req, "uid", required=True)
    if not uid:
        raise BadRequestError("AdmissionReview: request.uid is empty")
    kind_doc = req.get("kind")
    if not isinstance(kind_doc, dict) or not isinstance(kind_doc.get("kind"), str) or not kind_doc.get("kind"):
        raise BadRequestError("AdmissionReview: request.kind.kind is required")
    gvk = GroupVersionKind(
        group=str(kind_doc.get("group") or ""),
        version=str(kind_doc.get("version") or ""),
        kind=kind_doc["kind"],
    )
    operation = _str(req, "operation", required=True)
    if operation not in OPERATIONS:
        raise BadRequestError(f"AdmissionReview: request.operation {operation!r} is not one of {sorted(OPERATIONS)}")
    resource_doc = req.get("resource")
    resource = ""
    if isinstance(resource_doc, dict) and isinstance(resource_doc.get("resource"), str):
        resource = resource_doc["resource"]
    dry_run = req.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise BadRequestError("AdmissionReview: request.dryRun must be a boolean")
    user_info = req.get("userInfo")
    user = user_info.get("username", "") if isinstance(user_info, dict) else ""
    obj = _obj(req, "object")
    old = _obj(req, "oldObject")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise BadRequestError(f"AdmissionReview: request.object is required for {operation}")
    return AdmissionRequest(
        uid=uid,
        kind=gvk,
        resource=resource,
        sub_resource=_str(req, "subResource"),
        name=_str(req, "name"),
        namespace=_str(req, "namespace"),
        operation=operation,
        object=obj,
        old_object=old,
        dry_run=dry_run,
        user=user if isinstance(user, str) else "",
        raw=req,
    )


def clip_warning(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_WARNING_CHARS:
        return text
    return text[: MAX_WARNING_CHARS - 1] + "…"


def review_response(
    uid: str,
    *,
    allowed: bool,
    message: str = "",
    code: int | None = None,
    patch: Sequence[Mapping[str, Any]] = (),
    warnings: Sequence[str] = (),
    audit_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The AdmissionReview v1 response document (``auditAnnotations``: ImageValidatingPolicies' ``auditAnnotations``
    as ``<policy>.<key>``; the API server stores them under ``<webhook name>/``)."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": code or 403, "message": message}
    elif message:
        response["status"] = {"code": code or 200, "message": message}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(patch), separators=(",", ":")).encode()).decode()
    clipped = list(dict.fromkeys(clip_warning(w) for w in warnings if w.strip()))
    if clipped:
        response["warnings"] = clipped[:MAX_WARNINGS]
    if audit_annotations:
        response["auditAnnotations"] = dict(audit_annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}

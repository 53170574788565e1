"""AdmissionReview helpers: wrap bare requests, rewrite the vectors' images to the local registry, decode patches."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tests.support.vectors import require_vectors


def review(request: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": dict(request)}


def load_request(name: str) -> dict[str, Any]:
    path = require_vectors("admission-requests", name)
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def rewrite_images(obj: Any, mapping: Callable[[str], str]) -> Any:
    """Every ``image`` string in ``obj`` passed through ``mapping`` (a deep copy)."""
    out = copy.deepcopy(obj)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    node[key] = mapping(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    return out


def pod(
    *images: str,
    name: str = "app",
    namespace: str = "default",
    init: tuple[str, ...] = (),
    ephemeral: tuple[str, ...] = (),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}
    if init:
        spec["initContainers"] = [{"name": f"init{i}", "image": img} for i, img in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [{"name": f"debug{i}", "image": img} for i, img in enumerate(ephemeral)]
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def pod_request(
    obj: Mapping[str, Any],
    *,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
    sub_resource: str = "",
    dry_run: bool = False,
    kind: str = "Pod",
    group: str = "",
) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    req: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "operation": operation,
        "userInfo": {"username": "tester"},
        "object": dict(obj) if operation != "DELETE" else None,
        "oldObject": dict(old) if old is not None else None,
        "dryRun": dry_run,
    }
    if sub_resource:
        req["subResource"] = sub_resource
    return req


def decode_patch(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    resp = response["response"]
    if "patch" not in resp:
        return []
    assert resp["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(resp["patch"]))
    return patch

"""Validators for sigward's report formats against the vendored upstream schemas (tests/support/schemas/):
OASIS SARIF 2.1.0 (oasis-tcs/sarif-spec sarif-2.1/schema/sarif-schema-2.1.0.json @ e0583813) and the PolicyReport CRD
(kyverno/kyverno config/crds/policyreport/wgpolicyk8s.io_policyreports.yaml @ 111e07bb)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).parent / "schemas"


@cache
def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def _closed(schema: Any) -> Any:
    """The CRD's structural schema with every object closed (``additionalProperties: false`` where it lists
    ``properties``): the API server would silently prune an unknown field; a test must see it."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@cache
def policy_report_validator() -> jsonschema.Draft7Validator:
    crd = yaml.safe_load((SCHEMAS / "wgpolicyk8s.io_policyreports.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha2"]
    schema = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    schema["properties"]["apiVersion"]["const"] = "wgpolicyk8s.io/v1alpha2"
    schema["properties"]["kind"]["const"] = "PolicyReport"
    schema["required"] = ["apiVersion", "kind", "metadata"]
    return jsonschema.Draft7Validator(schema)


def errors(validator: jsonschema.protocols.Validator, doc: Any) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc))

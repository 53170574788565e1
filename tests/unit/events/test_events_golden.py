"""Golden files: one platform payload in, the normalized result (or the precise error) out.

Each ``golden/<source>-<case>.json`` holds ``description``, ``entry`` (``webhook``, ``pubsub_push`` or
``pubsub_cloudevent``), the input (``method``, ``headers``, ``body`` as JSON or ``body_text`` as the exact raw body,
or ``cloudevent: {data, attributes}``), an optional ``secret`` (then :func:`authenticate` runs first, as the HTTP
adapter does), and ``expect``: ``{"result": …}`` (``WebhookResult.json()``), ``{"pushes": […]}`` (Pub/Sub entries),
or ``{"error": class name, "message": exact message}``.

``SIGWARD_UPDATE_GOLDEN=1`` rewrites every ``expect`` from the current output — review the diff before keeping it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sigward.errors import SigwardError
from sigward.events import authenticate, from_pubsub_cloudevent, from_pubsub_push, parse_webhook

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))
UPDATE = os.environ.get("SIGWARD_UPDATE_GOLDEN") == "1"


def _body(case: dict[str, Any]) -> bytes:
    if "body_text" in case:
        return str(case["body_text"]).encode()
    return json.dumps(case["body"], separators=(",", ":")).encode()


def _run(case: dict[str, Any]) -> dict[str, Any]:
    headers: dict[str, str] = case.get("headers", {})
    try:
        entry = case["entry"]
        if entry == "pubsub_cloudevent":
            event = case["cloudevent"]
            pushes = from_pubsub_cloudevent(event["data"], event.get("attributes", {}))
            return {"pushes": [p.json() for p in pushes]}
        body = _body(case)
        if case.get("secret"):
            authenticate(headers, body, secret=case["secret"])
        if entry == "pubsub_push":
            return {"pushes": [p.json() for p in from_pubsub_push(body, headers)]}
        assert entry == "webhook", entry
        return {"result": parse_webhook(case.get("method", "POST"), headers, body).json()}
    except SigwardError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


def test_there_are_golden_cases_for_every_source() -> None:
    prefixes = {path.name.split("-", 1)[0] for path in CASES}
    assert {"gcr", "ecr", "acr", "distribution", "harbor", "github", "webhook"} <= prefixes


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    actual = _run(case)
    if UPDATE:
        case["expect"] = actual
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
        return
    assert case.get("expect") is not None, f"{path.name} has no expect (run with SIGWARD_UPDATE_GOLDEN=1 and review)"
    assert actual == case["expect"], case["description"]
    # A case named *-error-* must fail; every other case must not.
    assert ("error" in actual) == ("-error-" in path.stem), case["description"]

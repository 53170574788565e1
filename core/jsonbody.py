"""Request bodies are hostile: one bounded JSON parser for admission reviews, push webhooks and Pub/Sub messages
(a module of its own so event parsers need not import the admission package)."""

from __future__ import annotations

import json
from typing import Any

from sigward.errors import BadRequestError

# Python's json recursion limit is ~1000 frames; refuse deeper documents before they become a RecursionError.
MAX_JSON_DEPTH = 128


def _depth_ok(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def parse_json_body(body: bytes, *, what: str, max_bytes: int) -> Any:
    """Parse a request body, refusing oversize, non-JSON and pathologically nested input with a precise message."""
    if len(body) > max_bytes:
        raise BadRequestError(f"{what}: body of {len(body)} bytes exceeds the limit of {max_bytes} bytes")
    if not body.strip():
        raise BadRequestError(f"{what}: empty body")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise BadRequestError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"{what}: not valid JSON: {exc}") from None
    # Each level opens with "{" or "[": a body with no more of them than the limit cannot nest deeper (the count
    # is C-fast; the walk only runs for bodies that might).
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH and not _depth_ok(doc, MAX_JSON_DEPTH):
        raise BadRequestError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return doc

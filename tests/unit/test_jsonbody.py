"""The bounded JSON body parser: the nesting limit holds exactly at its boundary, for every encoding json accepts,
and the depth walk is skipped only for bodies that cannot be that deep (regression: serve cache-hit throughput)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sigward import jsonbody
from sigward.errors import BadRequestError
from sigward.jsonbody import MAX_JSON_DEPTH, parse_json_body


def nested(levels: int, *, mixed: bool = False) -> str:
    """``levels`` containers inside each other (alternating objects and arrays when ``mixed``)."""
    doc: Any = 1
    for i in range(levels):
        doc = {"k": doc} if mixed and i % 2 else [doc]
    return json.dumps(doc)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize(("levels", "refused"), [(MAX_JSON_DEPTH, False), (MAX_JSON_DEPTH + 1, True)])
def test_nesting_limit_at_its_boundary(encoding: str, mixed: bool, levels: int, refused: bool) -> None:
    body = nested(levels, mixed=mixed).encode(encoding)
    if refused:
        with pytest.raises(BadRequestError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
            parse_json_body(body, what="test", max_bytes=1 << 20)
    else:
        assert parse_json_body(body, what="test", max_bytes=1 << 20) is not None


def test_a_body_with_few_brackets_is_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    def walked(*args: Any) -> bool:
        raise AssertionError("depth walk ran for a body that cannot be too deep")

    monkeypatch.setattr(jsonbody, "_depth_ok", walked)
    assert parse_json_body(b'{"a": [1, {"b": "[[[{{{"}]}', what="t", max_bytes=1000) == {"a": [1, {"b": "[[[{{{"}]}
    # negative twin: brackets inside strings count too, so such a body is walked (and accepted by the real walk)
    many = json.dumps({"s": "[" * (MAX_JSON_DEPTH + 1)}).encode()
    with pytest.raises(AssertionError, match="depth walk ran"):
        parse_json_body(many, what="t", max_bytes=1000)
    monkeypatch.undo()
    assert parse_json_body(many, what="t", max_bytes=1000) == {"s": "[" * (MAX_JSON_DEPTH + 1)}

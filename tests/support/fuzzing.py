"""Shared pieces of the hypothesis fuzz tests: bounded settings, JSON-ish values, mutation of real documents, and
the one property every parser must have (a result, or sigward's own error — never anything else)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from sigward.errors import SigwardError

T = TypeVar("T")

# Examples per property: small enough that the suite stays fast, overridable for a longer run
# (SIGWARD_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/unit/fuzz). Runs are derandomized (the same examples every time,
# so the suite is reproducible); SIGWARD_FUZZ_RANDOM=1 explores new ones.
EXAMPLES = int(os.environ.get("SIGWARD_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    derandomize=os.environ.get("SIGWARD_FUZZ_RANDOM", "") == "",
)

scalars: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) into ``doc``, the root included."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.extend(paths_of(value, (*prefix, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found.extend(paths_of(value, (*prefix, i)))
    return found


def mutate_at(doc: Any, path: tuple[Any, ...], replacement: Any, *, drop: bool) -> Any:
    """A copy of ``doc`` with the value at ``path`` replaced (or, in a mapping, dropped when ``drop``)."""
    if not path:
        return replacement
    out = copy.deepcopy(doc)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    if drop and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return out


def mutations(doc: Any, values: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[Any]:
    """``doc`` with one value replaced by an arbitrary JSON value, or one key dropped (up to three times), so the
    checks deep inside a parser are reached, not only its first ``isinstance``."""

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        current = doc
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            path = draw(st.sampled_from(paths_of(current)))
            current = mutate_at(current, path, draw(values), drop=draw(st.booleans()))
        return current

    return build()


def byte_mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    """``raw`` with a few bytes flipped, inserted or cut: syntax-level damage to a valid document."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(raw)
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            if not data:
                break
            at = draw(st.integers(min_value=0, max_value=len(data) - 1))
            action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
            if action == "flip":
                data[at] = draw(st.integers(min_value=0, max_value=255))
            elif action == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif action == "delete":
                del data[at : at + draw(st.integers(min_value=1, max_value=8))]
            else:
                del data[at:]
        return bytes(data)

    return build()


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def only_ours(call: Callable[[], T], *allowed: type[BaseException]) -> T | None:
    """Run ``call``; a result or sigward's own error (or one of ``allowed``) is fine, anything else fails the test."""
    try:
        return call()
    except SigwardError:
        return None
    except allowed:
        return None

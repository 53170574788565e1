"""A Terraform module read with python-hcl2 into plain dictionaries: ``{"resource": {TYPE: {NAME: body}},
"variable": {NAME: body}, "output": {...}, "locals": {...}, "module": {...}, "terraform": [...]}``. Blocks are lists
of bodies (as HCL allows repeats), string quotes stripped, expressions kept as ``${...}`` text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def load_module(directory: Path) -> dict[str, Any]:
    import hcl2
    from hcl2 import SerializationOptions

    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    merged: dict[str, Any] = {
        "resource": {},
        "data": {},
        "variable": {},
        "output": {},
        "locals": {},
        "module": {},
        "provider": {},
        "terraform": [],
    }
    for path in sorted(directory.glob("*.tf")):
        with open(path) as fh:
            doc = hcl2.load(fh, serialization_options=options)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        merged[kind].setdefault(rtype, {})[name] = body
        for kind in ("variable", "output", "module", "provider"):
            for block in doc.get(kind, []):
                merged[kind].update(block)
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        merged["terraform"].extend(doc.get("terraform", []))
    return merged


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) pair below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")
    else:
        yield path, node


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block ``name`` of a resource body."""
    found = body[name]
    assert isinstance(found, list) and len(found) == 1, f"expected one {name} block, got {found!r}"
    inner: dict[str, Any] = found[0]
    return inner

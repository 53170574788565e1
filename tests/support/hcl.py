"""A Terraform module read with python-hcl2 into plain dictionaries: ``{"resource": {TYPE: {NAME: body}},
"variable": {NAME: body}, "output": {...}, "locals": {...}, "module": {...}, "terraform": [...], "moved": [...]}``.
Blocks are lists of bodies (as HCL allows repeats), string quotes stripped, expressions kept as ``${...}`` text."""

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
        "moved": [],
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
        merged["moved"].extend(doc.get("moved", []))
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


def _substitute(node: Any, values: dict[str, Any]) -> Any:
    """``node`` with every ``"${NAME}"`` leaf whose NAME is in ``values`` replaced by that value."""
    if isinstance(node, dict):
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    if isinstance(node, str) and node.startswith("${") and node.endswith("}") and node[2:-1] in values:
        return values[node[2:-1]]
    return node


def _expand_dynamic(body: dict[str, Any]) -> dict[str, Any]:
    """A ``dynamic`` block over a literal list becomes its blocks; one over an expression stays dynamic."""
    out: dict[str, Any] = {}
    kept: list[dict[str, Any]] = []
    for key, value in body.items():
        if key == "dynamic":
            continue
        out[key] = (
            [_expand_dynamic(v) if isinstance(v, dict) else v for v in value] if isinstance(value, list) else value
        )
    for entry in body.get("dynamic", []):
        for name, spec in entry.items():
            items = spec["for_each"]
            (content,) = spec["content"]
            if isinstance(items, list):
                for item in items:
                    values = {f"{name}.value.{k}": v for k, v in item.items()}
                    out.setdefault(name, []).append(_expand_dynamic(_substitute(content, values)))
            else:
                kept.append({name: {"for_each": items, "content": [_expand_dynamic(content)]}})
    if kept:
        out["dynamic"] = kept
    return out


def values_text(values: dict[str, Any]) -> set[str]:
    return {f"${{{name}}}" for name in values}


def render_call(parent: dict[str, Any], directory: Path, call: str) -> dict[str, dict[str, Any]]:
    """The resources a local module call creates, as the parent would have written them inline: the child's
    ``${var.X}`` replaced by the call's argument (or the variable's default), dynamic blocks over literal lists
    expanded, and the call's ``count`` and ``depends_on`` carried onto each resource. ``{TYPE: body}``."""
    args = parent["module"][call]
    child = load_module((directory / args["source"]).resolve())
    values: dict[str, Any] = {}
    for name, variable in child["variable"].items():
        if name in args:
            values[f"var.{name}"] = args[name]
        else:
            assert "default" in variable, f"module {call}: required variable {name} not given"
            values[f"var.{name}"] = variable["default"]
    unknown = set(args) - set(child["variable"]) - {"source", "count", "for_each", "depends_on", "providers"}
    assert not unknown, f"module {call}: arguments the child does not declare: {sorted(unknown)}"
    rendered: dict[str, dict[str, Any]] = {}
    for rtype, named in child["resource"].items():
        (body,) = named.values()  # one resource per type in a function-like child
        # Only whole-value references are rendered; an expression around a variable would stay unrendered.
        partial = [p for p, v in walk(body) if isinstance(v, str) and "var." in v and v not in values_text(values)]
        assert not partial, f"module {call}: variable references inside expressions at {partial}"
        out = _expand_dynamic(_substitute(body, values))
        for key in ("count", "depends_on"):
            if key in args:
                out[key] = args[key]
        rendered[rtype] = out
    return rendered

"""google/cel-spec's conformance tests (tests/simple/testdata), read from the pinned npm package that
scripts/cel-spec.sh renders to JSON, and a harness that runs them through a CEL implementation.

Shared by tests/conformance/ (cel-expr-python through sigward's CEL entry points) and ``python -m bench.cel_candidates``
(the other Python candidates). Values are compared as typed trees (``("uint", 1)`` is not ``("int", 1)``), as
cel-spec's runners compare ``cel.expr.Value`` messages; an expected error passes on any evaluation or check error
(the spec's messages are cel-go's wording)."""

from __future__ import annotations

import base64
import datetime
import functools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = REPO / "scripts" / "cel-spec.sh"


def spec_version() -> str:
    """The pinned @bufbuild/cel-spec version (scripts/cel-spec.sh is the one place it is written)."""
    found = re.search(r"^CEL_SPEC_VERSION=(\S+)$", _SCRIPT.read_text(), re.M)
    assert found is not None, "scripts/cel-spec.sh has no CEL_SPEC_VERSION"
    return found.group(1)


def data_path() -> Path:
    return REPO / ".cache" / "cel-spec" / spec_version() / "conformance.json"


class TypeMismatch(Exception):
    """The checker deduced another result type than the case's ``typedResult.deducedType``."""


class Unsupported(Exception):
    """The case needs something the harness cannot express (a protobuf message type)."""


@dataclass(frozen=True)
class Case:
    file: str
    section: str
    name: str
    expr: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.file}/{self.section}/{self.name}"

    @property
    def container(self) -> str:
        return str(self.raw.get("container", ""))

    @property
    def check(self) -> bool:
        return not self.raw.get("disableCheck", False)


def load_cases() -> list[Case]:
    path = data_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `bash scripts/setup.sh` (or scripts/cel-spec.sh)")
    root = json.loads(path.read_text())["tests"]
    cases: list[Case] = []
    seen: set[str] = set()
    for file in root["suites"]:
        for section in file.get("suites", []):
            for test in section.get("tests", []):
                o = test["original"]
                name, n = o["name"], 1
                while f"{file['name']}/{section['name']}/{name}" in seen:  # a few names repeat within a section
                    n += 1
                    name = f"{o['name']}#{n}"
                seen.add(f"{file['name']}/{section['name']}/{name}")
                cases.append(Case(file["name"], section["name"], name, o["expr"], o))
    return cases


# -- expected values ---------------------------------------------------------------------------------------------

_WRAPPERS = {
    "google.protobuf.Int64Value": "int",
    "google.protobuf.Int32Value": "int",
    "google.protobuf.UInt64Value": "uint",
    "google.protobuf.UInt32Value": "uint",
    "google.protobuf.DoubleValue": "double",
    "google.protobuf.FloatValue": "double",
    "google.protobuf.StringValue": "string",
    "google.protobuf.BytesValue": "bytes",
    "google.protobuf.BoolValue": "bool",
}


@functools.cache
def descriptor_pool() -> Any:
    """The default protobuf pool with cel-spec's TestAllTypes files added (once per process). protobuf-es strips a
    file's imports, so they are restored from the well-known types each file refers to."""
    from google.protobuf import (
        any_pb2,
        descriptor_pb2,
        duration_pb2,
        empty_pb2,
        field_mask_pb2,
        struct_pb2,
        timestamp_pb2,
        wrappers_pb2,
    )
    from google.protobuf import descriptor_pool as pools

    wkt = {
        f".{full}": module.DESCRIPTOR.name
        for module in (any_pb2, duration_pb2, empty_pb2, field_mask_pb2, struct_pb2, timestamp_pb2, wrappers_pb2)
        for full in [
            *(m.full_name for m in module.DESCRIPTOR.message_types_by_name.values()),
            *(e.full_name for e in module.DESCRIPTOR.enum_types_by_name.values()),
        ]
    }
    pool = pools.Default()
    for b64 in json.loads(data_path().read_text())["descriptors"]:  # in dependency order
        fd = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(b64 + "=" * (-len(b64) % 4)))
        refs = {f.type_name for m in fd.message_type for f in _fields(m)}
        refs |= {f.type_name for f in fd.extension} | {f.extendee for f in fd.extension}
        fd.dependency[:] = sorted({wkt[r] for r in refs if r in wkt and wkt[r] != fd.name})
        try:
            pool.FindFileByName(fd.name)
        except KeyError:
            pool.Add(fd)
        for m in fd.message_type:
            wkt[f".{fd.package}.{m.name}"] = fd.name
    return pool


def _fields(message: Any) -> Iterator[Any]:
    yield from message.field
    yield from message.extension
    for nested in message.nested_type:
        yield from _fields(nested)


def _message(obj: dict[str, Any]) -> Any:
    """An ``Any`` in protobuf JSON as the message it holds."""
    from google.protobuf import any_pb2, json_format, message_factory

    pool = descriptor_pool()
    holder = json_format.ParseDict(obj, any_pb2.Any(), descriptor_pool=pool)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(holder.TypeName()))
    msg = cls()
    holder.Unpack(msg)
    return msg


def _double(v: Any) -> float:
    return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(v, v)) if isinstance(v, str) else float(v)


def _timestamp(text: str) -> datetime.datetime:
    head, _, frac = text.rstrip("Z").partition(".")
    when = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
    return when + datetime.timedelta(microseconds=int((frac or "0")[:6].ljust(6, "0")))


def _duration(text: str) -> datetime.timedelta:
    return datetime.timedelta(seconds=float(text.rstrip("s")))


def _json_value(v: Any) -> Any:
    """google.protobuf.Value's JSON as CEL's typed tree (JSON numbers are doubles)."""
    if v is None:
        return ("null", None)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        return ("double", float(v))
    if isinstance(v, str):
        return ("string", v)
    if isinstance(v, list):
        return ("list", tuple(_json_value(x) for x in v))
    return ("map", frozenset((("string", k), _json_value(x)) for k, x in v.items()))


def expected(value: dict[str, Any]) -> Any:
    """A ``cel.expr.Value`` (protobuf JSON) as a typed tree; :class:`Unsupported` for message values."""
    if "int64Value" in value:
        return ("int", int(value["int64Value"]))
    if "uint64Value" in value:
        return ("uint", int(value["uint64Value"]))
    if "doubleValue" in value:
        return ("double", _double(value["doubleValue"]))
    if "stringValue" in value:
        return ("string", value["stringValue"])
    if "bytesValue" in value:
        return ("bytes", base64.b64decode(value["bytesValue"]))
    if "boolValue" in value:
        return ("bool", value["boolValue"])
    if "nullValue" in value:
        return ("null", None)
    if "typeValue" in value:
        return ("type", value["typeValue"])
    if "listValue" in value:
        return ("list", tuple(expected(v) for v in value["listValue"].get("values", [])))
    if "mapValue" in value:
        return (
            "map",
            frozenset((expected(e["key"]), expected(e["value"])) for e in value["mapValue"].get("entries", [])),
        )
    if "objectValue" in value:
        obj = value["objectValue"]
        kind = obj.get("@type", "").rsplit("/", 1)[-1]
        if kind == "google.protobuf.Timestamp":
            return ("timestamp", _timestamp(obj["value"]))
        if kind == "google.protobuf.Duration":
            return ("duration", _duration(obj["value"]))
        if kind in _WRAPPERS:
            wrapped = _WRAPPERS[kind]
            raw = obj.get("value", _ZERO[wrapped])
            if wrapped in ("int", "uint"):
                return (wrapped, int(raw))
            if wrapped == "double":
                return (wrapped, _double(raw))
            return (wrapped, base64.b64decode(raw) if wrapped == "bytes" else raw)
        if kind in ("google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue"):
            return _json_value(obj.get("value"))
        return ("message", _message(obj))
    if "enumValue" in value:  # cel-cpp's default: enums are ints (cel-spec's legacy enum semantics)
        return ("int", int(value["enumValue"].get("value", 0)))
    raise Unsupported(f"value {sorted(value)}")


_ZERO: dict[str, Any] = {"int": 0, "uint": 0, "double": 0.0, "string": "", "bytes": "", "bool": False}


def plain(value: dict[str, Any]) -> Any:
    """A binding's ``cel.expr.Value`` as the Python value an implementation is given (a message, wrappers and
    JSON types included, stays a message: its declared type may be the message type)."""
    obj = value.get("objectValue", {})
    if obj and obj.get("@type", "").rsplit("/", 1)[-1] not in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return _message(obj)
    return _untyped(expected(value))


def _untyped(tree: Any) -> Any:
    kind, v = tree
    if kind == "list":
        return [_untyped(x) for x in v]
    if kind == "map":
        return {_untyped(k): _untyped(x) for k, x in v}
    return v


def same(a: Any, b: Any) -> bool:
    """Typed trees equal, NaN equal to NaN (cel-spec's runners compare the messages)."""
    if a[0] != b[0]:
        return False
    if a[0] == "double":
        return bool(a[1] == b[1] or (math.isnan(a[1]) and math.isnan(b[1])))
    if a[0] == "list":
        return len(a[1]) == len(b[1]) and all(same(x, y) for x, y in zip(a[1], b[1], strict=True))
    if a[0] == "map":
        rest = list(b[1])
        for k, v in a[1]:
            match = next((i for i, (k2, v2) in enumerate(rest) if same(k, k2) and same(v, v2)), None)
            if match is None:
                return False
            rest.pop(match)
        return not rest
    if a[0] == "type":
        return str(a[1]).lower() == str(b[1]).lower()
    return bool(a[1] == b[1])


# -- running -----------------------------------------------------------------------------------------------------


class Engine(Protocol):
    """One CEL implementation: compile ``case`` and evaluate it; a typed tree, or raise (any exception = error)."""

    name: str

    def run(self, case: Case) -> Any: ...


@dataclass(frozen=True)
class Result:
    case: Case
    passed: bool
    detail: str


def judge(engine: Engine, case: Case) -> Result:
    """Run one case: pass when the value (or the presence of an error) is what cel-spec expects."""
    raw = case.raw
    try:
        want = (
            expected(raw["value"])
            if "value" in raw
            else (expected(raw["typedResult"]["result"]) if "result" in raw.get("typedResult", {}) else None)
        )
    except Unsupported as exc:
        return Result(case, False, f"unsupported: {exc}")
    want_error = "evalError" in raw
    try:
        got = engine.run(case)
    except Unsupported as exc:
        return Result(case, False, f"unsupported: {exc}")
    except Exception as exc:  # any failure of the implementation is the case's outcome
        if want_error:
            return Result(case, True, "error as expected")
        return Result(case, False, f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    if want_error:
        return Result(case, False, f"expected an error, got {got!r}"[:300])
    if raw.get("checkOnly") or want is None:
        return Result(case, True, "checked")
    if got is None or not same(want, got):
        return Result(case, False, f"expected {want!r}, got {got!r}"[:300])
    return Result(case, True, "ok")


def per_file(results: list[Result]) -> Iterator[tuple[str, int, int]]:
    """(file, passed, total) for each conformance file, in file order."""
    order: dict[str, list[int]] = {}
    for r in results:
        counts = order.setdefault(r.case.file, [0, 0])
        counts[0] += r.passed
        counts[1] += 1
    for name, (ok, total) in order.items():
        yield name, ok, total


# -- cel-expr-python through sigward's CEL entry points ------------------------------------------------------------

_PRIMITIVES = {
    "BOOL": "BOOL",
    "INT64": "INT",
    "UINT64": "UINT",
    "DOUBLE": "DOUBLE",
    "STRING": "STRING",
    "BYTES": "BYTES",
}
_WRAPPER_TYPES = {
    "BOOL": "google.protobuf.BoolValue",
    "INT64": "google.protobuf.Int64Value",
    "UINT64": "google.protobuf.UInt64Value",
    "DOUBLE": "google.protobuf.DoubleValue",
    "STRING": "google.protobuf.StringValue",
    "BYTES": "google.protobuf.BytesValue",
}
_TYPE_NAMES = {"null": "null_type", "timestamp": "google.protobuf.Timestamp", "duration": "google.protobuf.Duration"}


def _cel_type(spec: dict[str, Any]) -> Any:
    from cel_expr_python import cel

    t = cel.Type
    if "primitive" in spec:
        return getattr(t, _PRIMITIVES[spec["primitive"]])
    if "listType" in spec:
        return t.List(_cel_type(spec["listType"].get("elemType", {"dyn": {}})))
    if "mapType" in spec:
        m = spec["mapType"]
        return t.Map(_cel_type(m.get("keyType", {"dyn": {}})), _cel_type(m.get("valueType", {"dyn": {}})))
    if "dyn" in spec:
        return t.DYN
    if "null" in spec:
        return t.NULL
    if spec.get("wellKnown") in ("TIMESTAMP", "DURATION"):
        return getattr(t, spec["wellKnown"])
    if "type" in spec:
        return t.Type(_cel_type(spec["type"]))
    if "wrapper" in spec:
        return t(_WRAPPER_TYPES[spec["wrapper"]])
    if "messageType" in spec:
        descriptor_pool()
        return t(spec["messageType"])
    if "abstractType" in spec:
        a = spec["abstractType"]
        return t.AbstractType(a["name"], [_cel_type(p) for p in a.get("parameterTypes", [])])
    raise Unsupported(f"declared type {sorted(spec)}")


def typed(value: Any) -> Any:
    """A cel-expr-python Value as a typed tree."""
    kind = value.type().name().split("<")[0].lower()
    v = value.value()
    if kind == "list":
        return ("list", tuple(typed(x) for x in v))
    if kind == "map":
        return ("map", frozenset((_plain_key(k), typed(x)) for k, x in v.items()))
    if kind == "bytes":
        return ("bytes", bytes(v))
    if kind == "type":
        name = v.name().split("<")[0].lower()
        return ("type", _TYPE_NAMES.get(name, name))
    if kind in ("int", "uint", "double", "string", "bool", "null", "timestamp", "duration"):
        return (kind, v)
    if value.type().is_message():
        return ("message", v)
    return (kind, repr(v))


def _plain_key(k: Any) -> Any:
    if isinstance(k, bool):
        return ("bool", k)
    if isinstance(k, int):
        return ("int", k)
    return ("string", k)


class SigwardEngine:
    """cel-expr-python as sigward runs it: :func:`sigward.policy.ivpol.cel.environment` (every extension library
    sigward enables), :func:`~sigward.policy.ivpol.cel.compile_in` (sigward's limits) and ``evaluate_value``."""

    name = "cel-expr-python"

    def __init__(self) -> None:
        self._envs: dict[str, Any] = {}

    def _env(self, case: Case) -> Any:
        from sigward.policy.ivpol.cel import environment

        decls = case.raw.get("typeEnv", [])
        key = json.dumps([decls, case.container])
        if key not in self._envs:
            variables: dict[str, Any] = {}
            for decl in decls:
                if "ident" not in decl:
                    raise Unsupported("function declarations in the type environment")
                variables[decl["name"]] = _cel_type(decl["ident"]["type"])
            self._envs[key] = environment(variables, container=case.container, descriptor_pool=descriptor_pool())
        return self._envs[key]

    def run(self, case: Case) -> Any:
        from sigward.policy.ivpol.cel import compile_in

        program = compile_in(self._env(case), case.expr, case.id, check=case.check)
        deduced = case.raw.get("typedResult", {}).get("deducedType")
        if deduced is not None:
            want, got = _cel_type(deduced), program.program.return_type()
            if not want == got:
                raise TypeMismatch(f"deduced type {got.name()}, cel-spec says {want.name()}")
        if case.raw.get("checkOnly"):
            return None
        data = {}
        for name, binding in case.raw.get("bindings", {}).items():
            if "value" not in binding:
                raise Unsupported("unknown or error binding")
            data[name] = plain(binding["value"])
        return typed(program.evaluate_value(data))

"""The Python CEL implementations compared (issue 16): google/cel-spec's conformance tests and evaluation speed on
Kyverno-like expressions. ``python -m bench.cel_candidates`` (not part of the test suite).

Candidates: cel-expr-python (Google's cel-cpp; what sigward uses, run through sigward's CEL entry points exactly as
tests/conformance/ runs it), cel-python (``celpy``, pure Python) and common-expression-language (``cel``, cel-rust
bindings). The other two are not dependencies: ``pip install -e '.[celbench]'``; a missing one is reported and skipped.

Conformance is the same harness and the same cases as tests/conformance/ (its EXCLUDED sections left out). The
candidates that return plain Python ints cannot tell ``1u`` from ``1``: they are compared with uint taken as int
(in their favour), and only cel-expr-python is also judged on deduced result types. ``no-proto`` counts the cases
without protobuf messages or well-known-type names, which only cel-expr-python can load, so the other two are not
judged on what they never claim.
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conformance.test_cel_spec import EXCLUDED  # noqa: E402
from tests.support import celspec  # noqa: E402

# A case that runs longer than this is a failure (a pure-Python evaluator can take very long on a few cases).
CASE_SECONDS = 5
EVALUATIONS = 2_000


def needs_proto(case: celspec.Case) -> bool:
    text = json.dumps(case.raw)
    return any(
        m in text for m in ("cel.expr.conformance", "google.protobuf", "TestAllTypes", "messageType", "enumValue")
    )


def _loose(tree: Any) -> Any:
    kind, v = tree
    if kind == "uint":
        return ("int", v)
    if kind == "list":
        return ("list", tuple(_loose(x) for x in v))
    if kind == "map":
        return ("map", frozenset((_loose(k), _loose(x)) for k, x in v))
    return tree


def _typed_plain(v: Any) -> Any:
    """A plain Python result (ints untyped) as a typed tree."""
    if v is None:
        return ("null", None)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", int(v))
    if isinstance(v, float):
        return ("double", float(v))
    if isinstance(v, str):
        return ("string", str(v))
    if isinstance(v, (bytes, bytearray)):
        return ("bytes", bytes(v))
    if isinstance(v, (list, tuple)):
        return ("list", tuple(_typed_plain(x) for x in v))
    if isinstance(v, dict):
        return ("map", frozenset((_typed_plain(k), _typed_plain(x)) for k, x in v.items()))
    if isinstance(v, datetime.datetime):
        return ("timestamp", v)
    if isinstance(v, datetime.timedelta):
        return ("duration", v)
    if isinstance(v, type):
        return ("type", v.__name__.lower().replace("type", "") or "type")
    return ("other", repr(v))


def _bindings(case: celspec.Case) -> dict[str, Any]:
    out = {}
    for name, binding in case.raw.get("bindings", {}).items():
        if "value" not in binding or "objectValue" in binding["value"]:
            raise celspec.Unsupported("message or unknown binding")
        out[name] = celspec.plain(binding["value"])
    return out


class Loose:
    """Judge with uint taken as int (for candidates whose results are plain Python ints)."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.name = engine, engine.name

    def run(self, case: celspec.Case) -> Any:
        got = self.engine.run(case)
        return None if got is None else _loose(got)


class CelpyEngine:
    name = "cel-python (celpy) 0.5.0"

    def __init__(self) -> None:
        import celpy
        from celpy import adapter, celtypes, evaluation

        self.celpy, self.t, self.to_cel, self.eval_error = celpy, celtypes, adapter.json_to_cel, evaluation.CELEvalError

    def _annotation(self, spec: dict[str, Any]) -> Any:
        t = self.t
        prim = {
            "BOOL": t.BoolType,
            "INT64": t.IntType,
            "UINT64": t.UintType,
            "DOUBLE": t.DoubleType,
            "STRING": t.StringType,
            "BYTES": t.BytesType,
        }
        if "primitive" in spec:
            return prim[spec["primitive"]]
        if "listType" in spec:
            return t.ListType
        if "mapType" in spec:
            return t.MapType
        if spec.get("wellKnown") == "TIMESTAMP":
            return t.TimestampType
        if spec.get("wellKnown") == "DURATION":
            return t.DurationType
        raise celspec.Unsupported(f"declared type {sorted(spec)}")

    def _value(self, v: Any) -> Any:
        return (
            self.to_cel(v)
            if not isinstance(v, (bytes, datetime.datetime, datetime.timedelta))
            else (
                self.t.BytesType(v)
                if isinstance(v, bytes)
                else self.t.TimestampType(v)
                if isinstance(v, datetime.datetime)
                else self.t.DurationType(v)
            )
        )

    def run(self, case: celspec.Case) -> Any:
        annotations = {}
        for decl in case.raw.get("typeEnv", []):
            if "ident" not in decl:
                raise celspec.Unsupported("function declarations")
            annotations[decl["name"]] = self._annotation(decl["ident"]["type"])
        env = self.celpy.Environment(package=case.container or None, annotations=annotations)
        program = env.program(env.compile(case.expr))
        if case.raw.get("checkOnly"):
            return None
        data = {k: self._value(v) for k, v in _bindings(case).items()}
        result = program.evaluate(data)
        if isinstance(result, self.eval_error):
            raise RuntimeError(str(result))
        return self._typed(result)

    def _typed(self, v: Any) -> Any:
        t = self.t
        if isinstance(v, t.BoolType):
            return ("bool", bool(v))
        if isinstance(v, t.UintType):
            return ("uint", int(v))
        if isinstance(v, t.IntType):
            return ("int", int(v))
        if isinstance(v, t.ListType):
            return ("list", tuple(self._typed(x) for x in v))
        if isinstance(v, t.MapType):
            return ("map", frozenset((self._typed(k), self._typed(x)) for k, x in v.items()))
        if isinstance(v, t.TimestampType):
            return ("timestamp", datetime.datetime.fromtimestamp(v.timestamp(), datetime.UTC))
        if isinstance(v, t.DurationType):
            return ("duration", datetime.timedelta(seconds=v.total_seconds()))
        if isinstance(v, type):
            name = {
                "IntType": "int",
                "UintType": "uint",
                "DoubleType": "double",
                "StringType": "string",
                "BoolType": "bool",
                "BytesType": "bytes",
                "ListType": "list",
                "MapType": "map",
                "NullType": "null_type",
                "TimestampType": "google.protobuf.Timestamp",
                "DurationType": "google.protobuf.Duration",
                "TypeType": "type",
            }.get(v.__name__, v.__name__)
            return ("type", name)
        return _typed_plain(v)


class CelRustEngine:
    name = "common-expression-language (cel-rust) 0.10.0"

    def __init__(self) -> None:
        import cel

        self.cel = cel

    def run(self, case: celspec.Case) -> Any:
        if case.container:
            raise celspec.Unsupported("containers")
        program = self.cel.compile(case.expr)
        if case.raw.get("checkOnly"):
            return None
        return _typed_plain(program.execute(_bindings(case)))


def _alarm(_signum: int, _frame: Any) -> None:
    raise TimeoutError(f"case ran longer than {CASE_SECONDS} s")


def conformance(engine: Any, cases: list[celspec.Case]) -> tuple[int, int, int, int, float]:
    """(passed, run, passed without protobuf, run without protobuf, seconds)."""
    signal.signal(signal.SIGALRM, _alarm)
    ok = total = ok_np = total_np = 0
    start = time.perf_counter()
    for case in cases:
        signal.alarm(CASE_SECONDS)
        try:
            passed = celspec.judge(engine, case).passed
        except TimeoutError:
            passed = False
        finally:
            signal.alarm(0)
        total += 1
        ok += passed
        if not needs_proto(case):
            total_np += 1
            ok_np += passed
    return ok, total, ok_np, total_np, time.perf_counter() - start


# Kyverno-like expressions over a Pod (matchConditions / validations without the image functions).
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web", "tier": "frontend"}},
    "spec": {
        "containers": [
            {"name": f"c{i}", "image": f"registry.example.com/team/app{i}@sha256:{'a' * 64}"} for i in range(5)
        ],
        "initContainers": [{"name": "init", "image": "registry.example.com/team/init:1.0"}],
    },
}
REQUEST = {"operation": "CREATE", "namespace": "prod", "userInfo": {"username": "alice"}}
EXPRESSIONS = {
    "all images from the registry": "object.spec.containers.all(c, c.image.startsWith('registry.example.com/'))",
    "digest regexp on every image": (
        "object.spec.containers.map(c, c.image).all(i, i.matches('^registry[.]example[.]com/.+@sha256:[a-f0-9]{64}$'))"
    ),
    "label and operation": (
        "request.operation in ['CREATE', 'UPDATE'] && has(object.metadata.labels) && "
        "object.metadata.labels['app'] == 'web' && object.metadata.namespace != 'kube-system'"
    ),
    "init + containers exist": (
        "(object.spec.containers + object.spec.initContainers).exists(c, c.image.endsWith(':latest')) == false"
    ),
}


def _timer(evaluate: Callable[[], Any]) -> float:
    """Median microseconds per evaluation over a few batches."""
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(EVALUATIONS // 5):
            evaluate()
        samples.append((time.perf_counter() - start) / (EVALUATIONS // 5) * 1e6)
    return statistics.median(samples)


def _compiled(name: str, expr: str) -> Callable[[], Any]:
    """One evaluation of ``expr`` over the Pod, compiled once by candidate ``name``."""
    data = {"object": POD, "request": REQUEST}
    if name == "sigward":
        from sigward.policy.ivpol.cel import compile_expression

        program = compile_expression(expr, "bench", kind="request")
        full = {"oldObject": None, "namespaceObject": None, "variables": {}, **data}
        return lambda: program.evaluate(full)
    if name == "celpy":
        import celpy
        from celpy import adapter

        env = celpy.Environment()
        runner = env.program(env.compile(expr))
        activation = {k: adapter.json_to_cel(v) for k, v in data.items()}
        return lambda: runner.evaluate(activation)
    import cel

    compiled = cel.compile(expr)
    return lambda: compiled.execute(data)


def speed(name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, expr in EXPRESSIONS.items():
        evaluate = _compiled(name, expr)
        assert bool(evaluate()) is True, f"{name}: {label} is not true"
        out[label] = _timer(evaluate)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cel_candidates", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    cases = [c for c in celspec.load_cases() if c.file not in EXCLUDED and f"{c.file}/{c.section}" not in EXCLUDED]
    engines: list[tuple[str, Callable[[], Any]]] = [
        ("sigward", celspec.SigwardEngine),
        ("celpy", lambda: Loose(CelpyEngine())),
        ("cel-rust", lambda: Loose(CelRustEngine())),
    ]
    report: dict[str, Any] = {}
    for key, make in engines:
        try:
            engine = make()
        except ImportError as exc:
            print(f"{key}: not installed ({exc.name}); pip install -e '.[celbench]'", file=sys.stderr)
            continue
        ok, total, ok_np, total_np, seconds = conformance(engine, cases)
        report[key] = {
            "name": engine.name,
            "conformance": [ok, total],
            "conformance_no_proto": [ok_np, total_np],
            "conformance_seconds": round(seconds, 1),
            "microseconds_per_evaluation": {k: round(v, 1) for k, v in speed(key).items()},
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for row in report.values():
        ok, total = row["conformance"]
        ok_np, total_np = row["conformance_no_proto"]
        seconds = row["conformance_seconds"]
        print(f"{row['name']}: cel-spec {ok}/{total} ({ok_np}/{total_np} without protobuf) in {seconds} s")
        for label, us in row["microseconds_per_evaluation"].items():
            print(f"    {label:<32} {us:>10.1f} µs/evaluation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

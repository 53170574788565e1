"""Per-file pass counts of the CEL conformance suite, at the end of a run that included it."""

from __future__ import annotations

import sys
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    module = sys.modules.get("tests.conformance.test_cel_spec")
    results = getattr(module, "RESULTS", None)
    if not results:
        return
    from tests.support.celspec import per_file

    terminalreporter.section("cel-spec conformance (cel-expr-python through sigward), passed/run per file")
    total_ok = total = 0
    for name, ok, n in per_file(results):
        terminalreporter.write_line(f"  {name:<20} {ok:>4}/{n}")
        total_ok, total = total_ok + ok, total + n
    terminalreporter.write_line(f"  {'all':<20} {total_ok:>4}/{total}")

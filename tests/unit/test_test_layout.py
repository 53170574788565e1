"""Test modules have unique file names.

Regression (bug: duplicate_test_basenames_shadowed_modules): ``tests/unit`` and ``tests/integration`` have no
``__init__.py``, so pytest names ``tests/unit/reverify/test_x.py`` and ``tests/integration/reverify/test_x.py`` both
``reverify.test_x``; under xdist one shadowed the other and its fixtures went missing (4 errors in CI)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_name_is_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []

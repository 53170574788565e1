"""The layer contracts of pyproject's [tool.importlinter] hold: edges → wiring → services → checks → models, pure
checks never import a service, and sibling packages form no cycle. The negative twins build a throwaway package with
an upward import and with a cycle, and expect the same contract types to catch them (a checker that passes
everything would pass the real tree too)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

if not LINT.exists():  # pragma: no cover - the dev extra installs it
    pytest.skip("lint-imports (import-linter, dev extra) is not installed", allow_module_level=True)


def lint(cwd: Path, *extra: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath or cwd)}
    return subprocess.run(
        [str(LINT), "--no-cache", *extra], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_sigward_keeps_its_layer_and_cycle_contracts() -> None:
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in ("edges -> wiring -> services", "pure checks import no service", "no cycles between"):
        assert f"{contract}" in result.stdout and "BROKEN" not in result.stdout


def _toy(tmp_path: Path, modules: dict[str, str]) -> Path:
    """A package ``toy`` with a layers contract (edge over service over model) and a cycle contract."""
    for name, body in {
        "__init__": "",
        "model/__init__": "",
        "service/__init__": "",
        "edge/__init__": "",
        **modules,
    }.items():
        path = tmp_path / "toy" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body))
    (tmp_path / ".importlinter").write_text(
        textwrap.dedent(
            """
            [importlinter]
            root_package = toy

            [importlinter:contract:layers]
            name = toy layers
            type = layers
            layers =
                toy.edge
                toy.service
                toy.model

            [importlinter:contract:acyclic]
            name = toy acyclic
            type = acyclic_siblings
            ancestors =
                toy
            """
        )
    )
    return tmp_path


@pytest.mark.parametrize(
    ("case", "modules", "broken"),
    [
        ("clean", {"edge/a": "import toy.service.b\n", "service/b": "import toy.model.c\n", "model/c": ""}, []),
        (
            "upward import",
            {"edge/a": "", "service/b": "", "model/c": "import toy.edge.a\n"},
            ["toy layers BROKEN"],
        ),
        (
            "lazy upward import",
            {"edge/a": "", "service/b": "def f():\n    import toy.edge.a\n", "model/c": ""},
            ["toy layers BROKEN"],
        ),
        (
            "cycle between siblings",
            {
                "edge/a": "",
                "service/b": "",
                "model/c": "",
                "model/d": "import toy.model.e\n",
                "model/e": "import toy.model.d\n",
            },
            ["toy acyclic BROKEN"],
        ),
    ],
)
def test_contracts_catch_upward_imports_and_cycles(
    tmp_path: Path, case: str, modules: dict[str, str], broken: list[str]
) -> None:
    result = lint(_toy(tmp_path, modules))
    for name in broken:
        assert name in result.stdout, result.stdout
    assert (result.returncode != 0) == bool(broken), result.stdout + result.stderr

"""The import name is ``sigward``: pyproject maps core/ and functions/ onto it, and an install adds nothing else."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import sigward

REPO = Path(__file__).resolve().parents[2]
_FOLDER_IMPORT = re.compile(r"^\s*(from|import)\s+(core|functions)(\.|\s|$)")


def test_source_tree_imports_sigward_from_core() -> None:
    assert (REPO / "sigward").is_symlink()
    assert Path(sigward.__file__).resolve() == (REPO / "core" / "__init__.py").resolve()


def test_pyproject_lists_every_package_of_core() -> None:
    with open(REPO / "pyproject.toml", "rb") as fh:
        tool = tomllib.load(fh)["tool"]["setuptools"]
    assert tool["package-dir"] == {"sigward": "core", "sigward.functions": "functions"}
    core = REPO / "core"
    found = {
        ".".join(("sigward", *d.relative_to(core).parts))
        for d in [core, *core.rglob("*")]
        if d.is_dir() and (d / "__init__.py").is_file()
    }
    assert set(tool["packages"]) == found | {"sigward.functions"}


def test_no_module_imports_the_folder_names() -> None:
    """Regression: a stray ``import core`` would load a second copy of every module (two caches, two registries)."""
    offenders = []
    for folder in ("core", "functions", "tests", "bench", "scripts"):
        for path in (REPO / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _FOLDER_IMPORT.match(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert offenders == []


def test_wheel_adds_only_sigward(tmp_path: Path) -> None:
    """Build the wheel as pip would and read its top-level names (no install, no network). From a copy of the
    checkout, so setuptools' build/ and egg-info land in the temporary directory, not in the repository."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("core", "functions"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("sigward-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"sigward"}
    assert "sigward/functions/main.py" in names and "sigward/verify/engine.py" in names and "sigward/py.typed" in names
    assert any(n.startswith("sigward/data/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as zf:
        assert "sigward = sigward.cli:main" in zf.read(entry_points).decode()

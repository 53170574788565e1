"""Python code run in a fresh interpreter: what process-wide state (metrics' multiprocess mode, prometheus-client's
registry) needs, since enabling it once in the test process would leak into every later test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sigward import metrics

REPO = Path(__file__).resolve().parents[2]


def run_fresh(code: str, cwd: Path) -> str:
    """``code`` (dedented) in a new interpreter importing this checkout, without an inherited metrics
    multiprocess directory; its stdout (the test fails with stderr when it exits non-zero)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(metrics.MULTIPROC_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout

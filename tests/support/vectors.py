"""Locating ../shared/vectors (beside the repository); tests skip with a visible reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def vectors_dir() -> Path:
    """The shared vectors folder; ``SIGWARD_VECTORS`` overrides the default ``<repo>/../shared/vectors``."""
    override = os.environ.get("SIGWARD_VECTORS")
    return Path(override) if override else (REPO_ROOT.parent / "shared" / "vectors").resolve()


def require_vectors(*parts: str) -> Path:
    path = vectors_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test vectors not found at {path} (a clone without ../shared/vectors)")
    return path

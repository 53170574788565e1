"""Pins of the sigstore-python internals sigward relies on (sigward.verify.sigstore_private). If one of these fails
after
an upgrade, sigstore-python changed something sigward uses without a public API: fix sigstore_private.py (and
nothing else) before shipping the upgrade."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import sigward
from sigward.verify.sigstore_private import (
    BUNDLED_TRUSTED_ROOT,
    BUNDLED_TUF_ROOT,
    PUBLIC_GOOD_TUF_URL,
    bundled_file,
)
from sigward.verify.trust import parse_trusted_root


def test_bundled_public_good_files_are_where_sigward_reads_them() -> None:
    root = json.loads(bundled_file(PUBLIC_GOOD_TUF_URL, BUNDLED_TUF_ROOT))
    assert root["signed"]["_type"] == "root"
    trusted = parse_trusted_root(bundled_file(PUBLIC_GOOD_TUF_URL, BUNDLED_TRUSTED_ROOT), source="bundled")
    assert trusted.tlogs and trusted.certificate_authorities
    # sigstore-python's own default URL is the one sigward repeats.
    from sigstore._internal.tuf import DEFAULT_TUF_URL

    assert DEFAULT_TUF_URL == PUBLIC_GOOD_TUF_URL


def test_no_bundled_files_for_other_repositories() -> None:
    with pytest.raises(FileNotFoundError):
        bundled_file("https://tuf-repo.example.test", BUNDLED_TUF_ROOT)


def test_private_sigstore_imports_live_only_in_sigstore_private() -> None:
    """Regression: sigward.verify.bundles imported sigstore._internal.timestamp directly. Since bundles are verified
    on sigward's own checks, no product module imports sigstore-python's verifier either."""
    base = Path(sigward.__file__).resolve().parent.parent
    offenders = []
    for path in [*base.joinpath("core").rglob("*.py"), *base.joinpath("functions").rglob("*.py")]:
        if path.name == "sigstore_private.py":
            continue
        text = path.read_text()
        if re.search(r"sigstore\._|\._verify_common_signing_cert|\._establish_time", text):
            offenders.append(str(path.relative_to(base)))
        if re.search(r"from sigstore\.verify import|from sigstore\.models import", text):
            offenders.append(str(path.relative_to(base)))
    assert offenders == []

"""Pins of the sigstore-python internals sigward relies on (sigward.verify.sigstore_private). If one of these fails
after
an upgrade, sigstore-python changed something sigward uses without a public API: fix sigstore_private.py (and
nothing else) before shipping the upgrade."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import sigward
from sigward.verify.sigstore_private import (
    BUNDLED_TRUSTED_ROOT,
    BUNDLED_TUF_ROOT,
    PUBLIC_GOOD_TUF_URL,
    bundled_file,
    pinned_time_verifier_class,
)
from sigward.verify.trust import parse_trusted_root

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_timestamp_result_types_are_as_sigward_builds_them() -> None:
    from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult

    assert {m.name for m in TimestampSource} >= {"TIMESTAMP_AUTHORITY", "TRANSPARENCY_SERVICE"}
    assert [f.name for f in dataclasses.fields(TimestampVerificationResult)] == ["source", "time"]


def test_verifier_still_establishes_time_through_the_overridden_hook() -> None:
    from sigstore.verify import Verifier

    assert list(inspect.signature(Verifier._establish_time).parameters) == ["self", "bundle"]
    # The override only matters if the certificate checks still ask it for the signing times.
    assert "self._establish_time(" in inspect.getsource(Verifier._verify_common_signing_cert)


def test_common_signing_cert_check_keeps_its_signature() -> None:
    from sigstore.verify import Verifier

    assert list(inspect.signature(Verifier._verify_common_signing_cert).parameters) == ["self", "bundle", "policy"]


def test_pinned_verifier_reports_the_times_sigward_verified() -> None:
    from sigstore._internal.timestamp import TimestampSource
    from sigstore.models import TrustedRoot as SigstoreTrustedRoot
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootModel

    root = SigstoreTrustedRoot(TrustedRootModel.from_json(bundled_file(PUBLIC_GOOD_TUF_URL, BUNDLED_TRUSTED_ROOT)))
    verifier = pinned_time_verifier_class()(trusted_root=root, times=[(True, WHEN), (False, WHEN)])
    results = verifier._establish_time(object())  # type: ignore[arg-type]  # the override ignores it
    assert [(r.source, r.time) for r in results] == [
        (TimestampSource.TIMESTAMP_AUTHORITY, WHEN),
        (TimestampSource.TRANSPARENCY_SERVICE, WHEN),
    ]


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
    """Regression: sigward.verify.bundles imported sigstore._internal.timestamp directly."""
    base = Path(sigward.__file__).resolve().parent.parent
    offenders = []
    for path in [*base.joinpath("core").rglob("*.py"), *base.joinpath("functions").rglob("*.py")]:
        if path.name == "sigstore_private.py":
            continue
        text = path.read_text()
        if re.search(r"sigstore\._|\._verify_common_signing_cert|\._establish_time", text):
            offenders.append(str(path.relative_to(base)))
    assert offenders == []

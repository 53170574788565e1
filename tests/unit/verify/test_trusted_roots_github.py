"""Choosing GitHub's or public-good's trusted root (sigward.verify.trust): gh's JSONL, per-leaf selection, and the
GitHub root's settings (SIGWARD_GITHUB_*), on the real roots and bundles in ../shared/vectors/github-attestations."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509

from sigward.errors import ConfigurationError
from sigward.verify.trust import (
    load_github_trusted_root,
    parse_trusted_roots,
    root_for_certificate,
)
from sigward.verify.tuf import GITHUB_TUF_URL, github_source_from_env
from tests.support.vectors import vectors_dir

pytestmark = pytest.mark.vectors


def _dir() -> Path:
    return vectors_dir() / "github-attestations"


def _leaf(bundle: str) -> x509.Certificate:
    material = json.loads((_dir() / bundle).read_bytes())["verificationMaterial"]
    return x509.load_der_x509_certificate(base64.b64decode(material["certificate"]["rawBytes"]))


GITHUB_BUNDLE = "github-instance/actions-attest-build-provenance-attestation-13531551.sigstore.json"
PUBLIC_BUNDLE = "public-good/actions-attest-build-provenance-attestation-13532655.sigstore.json"
RELEASE_BUNDLE = "release/github_release_bundle.json"


def _jsonl() -> bytes:
    return (_dir() / "trusted-roots" / "gh-attestation-trusted-root-2025-11.jsonl").read_bytes()


def test_gh_jsonl_is_two_roots_public_good_then_github() -> None:
    public_good, github = parse_trusted_roots(_jsonl(), source="gh.jsonl")
    assert public_good.tlogs and public_good.ctlogs and not github.tlogs and not github.ctlogs
    assert len(github.certificate_authorities) == 5 and len(github.timestamp_authorities) == 5
    assert github.source == "gh.jsonl line 2"


def test_single_root_files_pretty_or_compact_are_one_root() -> None:
    pretty = (_dir() / "trusted-roots" / "github.json").read_bytes()
    compact = json.dumps(json.loads(pretty)).encode()
    assert len(parse_trusted_roots(pretty, source="p")) == 1
    assert len(parse_trusted_roots(compact, source="c")) == 1


def test_a_bad_jsonl_line_is_named() -> None:
    lines = _jsonl().splitlines()
    broken = lines[0] + b"\n" + b'{"mediaType": "text/plain"}' + b"\n"
    with pytest.raises(ConfigurationError, match="line 2"):
        parse_trusted_roots(broken, source="gh.jsonl")
    assert lines  # the real file has both lines


@pytest.mark.parametrize(
    ("bundle", "which"),
    [(GITHUB_BUNDLE, 1), (RELEASE_BUNDLE, 1), (PUBLIC_BUNDLE, 0)],
)
def test_leaf_selects_the_root_of_its_issuer(bundle: str, which: int) -> None:
    roots = parse_trusted_roots(_jsonl(), source="gh.jsonl")
    assert root_for_certificate(roots, _leaf(bundle)) is roots[which]


@pytest.mark.parametrize("bundle", [GITHUB_BUNDLE, RELEASE_BUNDLE])
def test_a_root_not_offered_is_never_selected(bundle: str) -> None:
    """The negative twin: offered only public-good, a GitHub-instance leaf gets no root at all."""
    public_good = parse_trusted_roots((_dir() / "trusted-roots" / "public-good.json").read_bytes(), source="pg")
    assert root_for_certificate(public_good, _leaf(bundle)) is None


def test_same_named_ca_generations_are_told_apart_by_key_identifier() -> None:
    """Regression guard: every GitHub CA generation is 'Fulcio Intermediate l2'; a root holding only generations 1-4
    must not be chosen for a generation-5 leaf."""
    doc = json.loads((_dir() / "trusted-roots" / "github.json").read_bytes())
    doc["certificateAuthorities"] = doc["certificateAuthorities"][:4]
    older = parse_trusted_roots(json.dumps(doc).encode(), source="gen1-4")
    assert root_for_certificate(older, _leaf(GITHUB_BUNDLE)) is None


def test_pinned_github_root_from_gh_jsonl_takes_the_line_without_tlogs(tmp_path: Path) -> None:
    path = tmp_path / "roots.jsonl"
    path.write_bytes(_jsonl())
    root = load_github_trusted_root({"SIGWARD_GITHUB_TRUSTED_ROOT": str(path)})
    assert not root.tlogs and len(root.timestamp_authorities) == 5


def test_pinned_github_root_with_two_tlog_free_roots_is_refused(tmp_path: Path) -> None:
    line = _jsonl().splitlines()[1]
    path = tmp_path / "twice.jsonl"
    path.write_bytes(line + b"\n" + line + b"\n")
    with pytest.raises(ConfigurationError, match="expected exactly one"):
        load_github_trusted_root({"SIGWARD_GITHUB_TRUSTED_ROOT": str(path)})


def test_github_source_defaults_to_gh_mirror_and_its_embedded_root(tmp_path: Path) -> None:
    source, offline = github_source_from_env({"SIGWARD_TUF_CACHE": str(tmp_path)})
    assert source.url == GITHUB_TUF_URL and not offline and source.fallback is None
    assert json.loads(source.bootstrap_root)["signed"]["_type"] == "root"
    assert source.refresh_seconds == 24 * 3600


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIGWARD_GITHUB_TUF_URL": "https://mirror.example.test"}, "SIGWARD_GITHUB_TUF_ROOT"),
        ({"SIGWARD_GITHUB_TUF_URL": "ftp://x"}, "SIGWARD_GITHUB_TUF_URL='ftp://x' is not an http"),
        ({"SIGWARD_GITHUB_TUF_URL": "https://u:p@x.test"}, "must not carry credentials"),
        ({"SIGWARD_GITHUB_TUF_ROOT": "/nonexistent/root.json"}, "cannot read SIGWARD_GITHUB_TUF_ROOT"),
    ],
)
def test_github_source_settings_fail_closed(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        github_source_from_env(env)

"""GitHub's trusted root kept current over TUF: a local python-tuf repository stands in for tuf-repo.github.com
(SIGWARD_GITHUB_TUF_URL/ROOT), and a new Fulcio/TSA generation reaches sigward only through it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from sigward.errors import ConfigurationError
from sigward.verify import tuf as tufmod
from sigward.verify.trust import load_github_trusted_root, parse_trusted_roots, root_for_certificate
from sigward.verify.tuf import RootOrigin, github_holder
from tests.support.tuf_repo import TufRepository
from tests.support.vectors import require_vectors

pytestmark = pytest.mark.vectors


def _vectors() -> Path:
    return require_vectors("github-attestations")


def _roots() -> tuple[bytes, bytes]:
    """(GitHub's root with CA/TSA generations 1-4 only, the full root with generation 5)."""
    full = (_vectors() / "trusted-roots" / "github.json").read_bytes()
    doc = json.loads(full)
    doc["certificateAuthorities"] = doc["certificateAuthorities"][:4]
    doc["timestampAuthorities"] = doc["timestampAuthorities"][:4]
    return json.dumps(doc).encode(), full


def _generation_5_leaf() -> x509.Certificate:
    bundle = _vectors() / "github-instance" / "actions-attest-build-provenance-attestation-13531551.sigstore.json"
    raw = json.loads(bundle.read_bytes())["verificationMaterial"]["certificate"]["rawBytes"]
    return x509.load_der_x509_certificate(base64.b64decode(raw))


@pytest.fixture
def repo() -> Iterator[TufRepository]:
    older, _ = _roots()
    with TufRepository({"trusted_root.json": older}) as served:
        yield served


@pytest.fixture(autouse=True)
def _fresh_holders() -> Iterator[None]:
    tufmod.reset()
    yield
    tufmod.reset()


def _env(repo: TufRepository, tmp_path: Path) -> dict[str, str]:
    bootstrap = tmp_path / "github-root.json"
    bootstrap.write_bytes(repo.bootstrap_root)
    return {
        "SIGWARD_GITHUB_TUF_URL": repo.url,
        "SIGWARD_GITHUB_TUF_ROOT": str(bootstrap),
        "SIGWARD_TUF_CACHE": str(tmp_path / "cache"),
    }


def test_new_generation_arrives_only_through_tuf(repo: TufRepository, tmp_path: Path) -> None:
    env = _env(repo, tmp_path)
    leaf = _generation_5_leaf()
    first = load_github_trusted_root(env)
    assert github_holder(env).origin is RootOrigin.TUF
    assert root_for_certificate([first], leaf) is None  # generation 5 not published yet

    _, full = _roots()
    repo.publish({"trusted_root.json": full})
    assert github_holder(env).refresh()
    rotated = load_github_trusted_root(env)
    assert rotated.raw == full and rotated.fingerprint != first.fingerprint
    assert root_for_certificate([rotated], leaf) is rotated


def test_restart_reads_the_verified_copy_offline(repo: TufRepository, tmp_path: Path) -> None:
    env = _env(repo, tmp_path)
    fetched = load_github_trusted_root(env)
    tufmod.reset()
    offline = {**env, "SIGWARD_TUF_OFFLINE": "1"}
    again = load_github_trusted_root(offline)
    assert again.raw == fetched.raw and github_holder(offline).origin is RootOrigin.CACHE


def test_offline_without_a_copy_names_the_file_setting(repo: TufRepository, tmp_path: Path) -> None:
    env = {**_env(repo, tmp_path), "SIGWARD_TUF_OFFLINE": "1"}
    with pytest.raises(ConfigurationError, match="SIGWARD_GITHUB_TRUSTED_ROOT"):
        load_github_trusted_root(env)


def test_a_target_signed_by_an_untrusted_key_is_not_taken(repo: TufRepository, tmp_path: Path) -> None:
    """The negative twin of rotation: a mirror serving a root.json the repository's keys did not sign."""
    env = _env(repo, tmp_path)
    other = tmp_path / "other-root.json"
    with TufRepository({"trusted_root.json": _roots()[1]}) as impostor:
        other.write_bytes(impostor.bootstrap_root)  # a different repository's keys
    env["SIGWARD_GITHUB_TUF_ROOT"] = str(other)
    holder = github_holder(env)
    assert not holder.refresh()
    assert holder.origin is None
    assert parse_trusted_roots(_roots()[0], source="x")  # the served root itself is well formed

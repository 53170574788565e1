"""SIGWARD_TUF_* settings (sigward.verify.tuf.source_from_env): defaults, and a precise ConfigurationError for each bad
value; the pinned SIGWARD_TRUSTED_ROOT never touches TUF."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from sigward.errors import ConfigurationError
from sigward.verify.sigstore_private import PUBLIC_GOOD_TUF_URL
from sigward.verify.trust import load_trusted_root
from sigward.verify.tuf import DEFAULT_REFRESH_SECONDS, TrustRootHolder, default_cache_dir, source_from_env

TUF_ROOT_FILE = "tuf-root.json"  # written by the fixture: a real TUF root from tests/support/tuf_repo.py


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    from tests.support.tuf_repo import TufRepository

    with TufRepository({"trusted_root.json": b"{}"}) as repo:
        (tmp_path / TUF_ROOT_FILE).write_bytes(repo.bootstrap_root)
    (tmp_path / "timestamp.json").write_bytes(repo.files["timestamp.json"])
    (tmp_path / "junk.json").write_bytes(b"not json")
    return tmp_path


def test_defaults_are_the_public_good_repository() -> None:
    src, offline = source_from_env({})
    assert src.url == PUBLIC_GOOD_TUF_URL and not offline
    assert src.fallback is not None and src.bootstrap_root.startswith(b"{")
    assert src.refresh_seconds == DEFAULT_REFRESH_SECONDS
    assert src.cache_dir == Path(tempfile.gettempdir()) / f"sigward-tuf-{os.getuid()}"
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/sigward/tuf")


def test_private_repository_with_its_root(workdir: Path) -> None:
    env = {
        "SIGWARD_TUF_URL": "https://tuf.example.test/",
        "SIGWARD_TUF_ROOT": str(workdir / TUF_ROOT_FILE),
        "SIGWARD_TUF_CACHE": str(workdir / "cache"),
        "SIGWARD_TUF_REFRESH_SECONDS": "60",
    }
    src, _ = source_from_env(env)
    assert (src.url, src.cache_dir, src.refresh_seconds, src.fallback) == (
        "https://tuf.example.test",
        workdir / "cache",
        60.0,
        None,
    )
    assert src.bootstrap_root == (workdir / TUF_ROOT_FILE).read_bytes()


@dataclass(frozen=True)
class Bad:
    name: str
    env: dict[str, str]
    message: str


BAD = [
    Bad("offline-not-boolean", {"SIGWARD_TUF_OFFLINE": "maybe"}, "SIGWARD_TUF_OFFLINE='maybe' is not a boolean"),
    Bad("url-scheme", {"SIGWARD_TUF_URL": "file:///etc"}, "is not an http(s) URL"),
    Bad("url-credentials", {"SIGWARD_TUF_URL": "https://u:p@tuf.example.test"}, "must not carry credentials"),
    Bad("url-query", {"SIGWARD_TUF_URL": "https://tuf.example.test/?x=1"}, "must not have a query"),
    Bad("no-root-for-private-url", {"SIGWARD_TUF_URL": "https://tuf.example.test"}, "set SIGWARD_TUF_ROOT"),
    Bad("root-missing", {"SIGWARD_TUF_ROOT": "{dir}/absent.json"}, "cannot read SIGWARD_TUF_ROOT"),
    Bad("root-not-json", {"SIGWARD_TUF_ROOT": "{dir}/junk.json"}, "is not TUF root metadata"),
    Bad("root-is-a-timestamp", {"SIGWARD_TUF_ROOT": "{dir}/timestamp.json"}, "is TUF timestamp metadata, not root"),
    Bad("refresh-not-a-number", {"SIGWARD_TUF_REFRESH_SECONDS": "soon"}, "is not a positive number"),
    Bad("refresh-zero", {"SIGWARD_TUF_REFRESH_SECONDS": "0"}, "is not a positive number"),
    Bad("refresh-infinite", {"SIGWARD_TUF_REFRESH_SECONDS": "inf"}, "is not a positive number"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_bad_settings_are_named(case: Bad, workdir: Path) -> None:
    env = {k: v.replace("{dir}", str(workdir)) for k, v in case.env.items()}
    with pytest.raises(ConfigurationError) as err:
        source_from_env(env)
    assert case.message in str(err.value)
    assert "u:p" not in str(err.value)


def test_offline_uses_the_bundled_root_and_never_refreshes(tmp_path: Path) -> None:
    src, offline = source_from_env({"SIGWARD_TUF_OFFLINE": "1", "SIGWARD_TUF_CACHE": str(tmp_path / "c")})
    calls: list[object] = []

    def fetch(source: object) -> bytes:
        calls.append(source)
        return b""

    holder = TrustRootHolder(src, offline=offline, fetch=fetch)
    assert src.fallback is not None and holder.current().raw == src.fallback
    assert not holder.refresh()
    holder.start()
    assert calls == [] and not (tmp_path / "c").exists()  # no network, not even a cache directory


def test_pinned_root_bypasses_tuf(tmp_path: Path) -> None:
    # A TUF setting that would be an error is never read when a file is pinned.
    root = load_trusted_root(environ={"SIGWARD_TRUSTED_ROOT": "public-good", "SIGWARD_TUF_OFFLINE": "maybe"})
    assert root.tlogs
    with pytest.raises(ConfigurationError, match="cannot read trusted root"):
        load_trusted_root(environ={"SIGWARD_TRUSTED_ROOT": str(tmp_path / "absent.json")})

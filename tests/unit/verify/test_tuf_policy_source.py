"""Policy-named TUF repositories (sigward.verify.tuf.policy_source / policy_trusted_root): cached per bootstrap
root, the public-good mirror bootstrapped from the root sigward ships, and every connection through the network
guard: a private or metadata address is never contacted (only the exact loopback mirror is)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.errors import ConfigurationError
from sigward.verify import policy_tuf
from sigward.verify import tuf as tufmod
from sigward.verify.policy_tuf import policy_source
from sigward.verify.tuf import RefreshFailure, TrustRootRefreshError, fetch_trusted_root
from tests.support.tuf_repo import TufRepository

PUBLIC_GOOD = "https://tuf-repo-cdn.sigstore.dev"


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    tufmod.reset()
    yield
    tufmod.reset()


def env(tmp_path: Path) -> dict[str, str]:
    return {"SIGWARD_TUF_CACHE": str(tmp_path)}


def test_cache_is_per_bootstrap_root(tmp_path: Path) -> None:
    a, _ = policy_source("https://tuf.example.test", b"root-a", env(tmp_path))
    b, _ = policy_source("https://tuf.example.test", b"root-b", env(tmp_path))
    assert a.repo_dir != b.repo_dir and a.cache_dir.parent == tmp_path / "policy"


def test_public_good_mirror_without_root_uses_the_shipped_one(tmp_path: Path) -> None:
    source, offline = policy_source(PUBLIC_GOOD, b"", env(tmp_path))
    assert source.bootstrap_root and source.fallback and not offline


def test_other_mirror_without_root_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cosign\.tuf\.root"):
        policy_source("https://tuf.example.test", b"", env(tmp_path))


@pytest.mark.parametrize("mirror", ["https://10.0.0.1", "https://169.254.169.254", "https://metadata.google.internal"])
def test_private_and_metadata_addresses_are_never_contacted(tmp_path: Path, mirror: str) -> None:
    with TufRepository({"trusted_root.json": b"{}"}) as repo:
        source, _ = policy_source(mirror, repo.bootstrap_root, env(tmp_path))
    started = time.monotonic()
    with pytest.raises(TrustRootRefreshError) as info:
        fetch_trusted_root(source)
    assert info.value.reason is RefreshFailure.UNREACHABLE
    assert time.monotonic() - started < 2.0  # refused before any connection attempt, not a timeout


def test_loopback_mirror_is_reached_through_the_guard(tmp_path: Path) -> None:
    """The exact loopback host:port is allowed (tests, a sidecar mirror); the target must still verify."""
    with TufRepository({"trusted_root.json": b'{"not": "a trusted root"}'}) as repo:
        source, _ = policy_source(repo.url, repo.bootstrap_root, env(tmp_path))
        with pytest.raises(TrustRootRefreshError) as info:
            fetch_trusted_root(source)
    assert info.value.reason is RefreshFailure.INVALID_TARGET  # fetched and TUF-verified, then refused as a root


def test_holders_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_tuf, "MAX_POLICY_REPOSITORIES", 2)
    holders = [policy_tuf._policies.get(PUBLIC_GOOD, b"", env(tmp_path / str(i))) for i in range(3)]
    assert policy_tuf._policies.get(PUBLIC_GOOD, b"", env(tmp_path / "2")) is holders[2]
    assert policy_tuf._policies.get(PUBLIC_GOOD, b"", env(tmp_path / "0")) is not holders[0]  # dropped, rebuilt


def test_trickling_policy_mirror_meets_the_refresh_deadline() -> None:
    """Bug: the guarded fetcher read ``stream(400000)``, which waits for 400 kB however slowly they come, so a mirror
    a policy names, trickling a byte every 0.1 s, held the refresh (and a first admission waiting on it) past the
    deadline: the deadline was only checked between 400 kB chunks."""
    from tuf.api import exceptions as tuf_errors

    from sigward.netguard import NetworkGuard, host_port
    from tests.support.trickle import TrickleServer

    with TrickleServer(interval=0.1, duration=8.0, announced=50_000) as server:
        port = int(server.url.rsplit(":", 1)[1])
        fetcher = policy_tuf._guarded_fetcher(
            time.monotonic() + 1.0, guard=NetworkGuard.create([host_port("127.0.0.1", port)])
        )
        started = time.monotonic()
        with pytest.raises(tuf_errors.SlowRetrievalError):
            b"".join(fetcher.fetch(f"{server.url}/1.root.json"))
        assert time.monotonic() - started < 4.0

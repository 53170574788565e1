"""The trusted root kept current over TUF (sigward.verify.tuf) against a real TUF repository on 127.0.0.1
(tests/support/tuf_repo.py): a rotated root is picked up and changes verdicts; a broken mirror keeps the last good
root and logs once; a restart reads the verified copy on disk; nothing ever blocks verification."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from sigward import logs
from sigward.errors import ConfigurationError, ExternalServiceError, VerificationFailure
from sigward.policy.models import KeylessAttestor
from sigward.verify import tuf as tufmod
from sigward.verify.keyless import verify_layer_keyless
from sigward.verify.trust import load_trusted_root, parse_trusted_root
from sigward.verify.tuf import RefreshFailure, RootOrigin, TrustRootHolder, TrustRootRefreshError, TrustRootSource
from tests.support.fulcio import TEST_EMAIL, TEST_ISSUER, cert_layer, issue_leaf, make_fulcio, trusted_root_json
from tests.support.httpservers import SilentServer
from tests.support.signing import new_key
from tests.support.tuf_repo import TufRepository

DIGEST = "sha256:" + "c" * 64
ROOT_A = trusted_root_json(make_fulcio(0))  # what the process starts with
ROOT_B = trusted_root_json(make_fulcio(1))  # the rotated root the repository publishes


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, object]]]]:
    stream = io.StringIO()
    logs.set_stream(stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logs.set_stream(None)


@pytest.fixture
def repo() -> Iterator[TufRepository]:
    with TufRepository({"trusted_root.json": ROOT_A}) as served:
        yield served


def source(repo: TufRepository, cache: Path, *, fallback: bytes | None = ROOT_A) -> TrustRootSource:
    return TrustRootSource(url=repo.url, bootstrap_root=repo.bootstrap_root, cache_dir=cache, fallback=fallback)


def signed_by_ca_1() -> object:
    which = make_fulcio(1)
    signer = new_key("p256", slot=61)
    return cert_layer(signer, issue_leaf(which, signer), image_digest=DIGEST, chain=which.chain, rekor=which.rekor)


def verify(layer: object, holder: TrustRootHolder) -> None:
    verify_layer_keyless(
        layer,  # type: ignore[arg-type]
        image_digest=DIGEST,
        keyless=KeylessAttestor.model_validate({"subject": TEST_EMAIL, "issuer": TEST_ISSUER}),
        annotations={},
        trusted_root=holder.current(),
    )


def test_rotated_root_is_picked_up_and_changes_the_verdict(repo: TufRepository, tmp_path: Path) -> None:
    holder = TrustRootHolder(source(repo, tmp_path))
    layer = signed_by_ca_1()
    before = holder.current()
    assert holder.origin is RootOrigin.BUNDLED and before.raw == ROOT_A
    with pytest.raises(VerificationFailure):
        verify(layer, holder)  # signed under the rotated root's CA: not trusted yet

    repo.publish({"trusted_root.json": ROOT_B})
    repo.rotate_root("root", "timestamp")  # the TUF keys rotate too: the client must follow 1 -> 2 root chain
    assert holder.refresh()
    after = holder.current()
    assert after.raw == ROOT_B
    assert holder.origin.value == "tuf"  # (mypy narrowed origin to BUNDLED above)
    assert after.fingerprint != before.fingerprint
    verify(layer, holder)  # passes under the rotated root
    assert "/2.root.json" in repo.paths_served()


@dataclass(frozen=True)
class Breakage:
    name: str
    apply: Callable[[TufRepository], None]
    reason: RefreshFailure


def _wrong_timestamp_key(repo: TufRepository) -> None:
    repo.publish({"trusted_root.json": ROOT_B}, timestamp_signer=CryptoSigner.generate_ecdsa())


BREAKAGES = [
    Breakage("http-500", lambda r: r.publish_and_fail({"trusted_root.json": ROOT_B}, 500), RefreshFailure.UNREACHABLE),
    Breakage("wrong-timestamp-signature", _wrong_timestamp_key, RefreshFailure.REJECTED),
    Breakage(
        "expired-timestamp",
        lambda r: r.publish({"trusted_root.json": ROOT_B}, timestamp_expires=timedelta(seconds=-60)),
        RefreshFailure.REJECTED,
    ),
    Breakage("rollback-timestamp", lambda r: r.replay_timestamp(0), RefreshFailure.REJECTED),
    Breakage(
        "tampered-target",
        lambda r: r.publish_and_tamper({"trusted_root.json": ROOT_B}, "trusted_root.json", ROOT_A),
        RefreshFailure.REJECTED,
    ),
    Breakage("target-missing", lambda r: r.publish({"other.json": ROOT_B}), RefreshFailure.NO_TARGET),
    Breakage(
        "target-not-a-trusted-root", lambda r: r.publish({"trusted_root.json": b"{}"}), RefreshFailure.INVALID_TARGET
    ),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_broken_mirror_keeps_the_last_good_root_and_logs_once(
    repo: TufRepository, tmp_path: Path, breakage: Breakage, log_lines: Callable[[], list[dict[str, object]]]
) -> None:
    holder = TrustRootHolder(source(repo, tmp_path, fallback=None))
    assert holder.refresh()  # a verified ROOT_A (timestamp v1) is the last good root
    good = holder.current()
    if breakage.name == "rollback-timestamp":
        repo.publish({"trusted_root.json": ROOT_B})
        assert holder.refresh() and holder.current().raw == ROOT_B  # the client has now seen timestamp v2
        good = holder.current()
    breakage.apply(repo)

    with pytest.raises(TrustRootRefreshError) as err:
        tufmod.fetch_trusted_root(holder.source)
    assert err.value.reason is breakage.reason
    assert not holder.refresh()
    assert not holder.refresh()
    assert holder.current() is good  # the last good root, untouched
    warnings = [line for line in log_lines() if line["severity"] == "WARNING"]
    assert len(warnings) == 1, warnings  # two failed attempts, one line
    assert warnings[0]["kept"] == good.fingerprint

    repo.heal()
    repo.publish({"trusted_root.json": ROOT_B})
    assert holder.refresh()
    assert holder.current().raw == ROOT_B
    assert any(line["message"] == "trusted root refresh recovered" for line in log_lines())


def test_refresh_runs_in_the_background_and_never_blocks(tmp_path: Path) -> None:
    with SilentServer() as silent:
        src = TrustRootSource(url=f"http://{silent.host}", bootstrap_root=b"{}", cache_dir=tmp_path, fallback=ROOT_A)
        holder = TrustRootHolder(src)
        started = time.monotonic()
        assert holder.current().raw == ROOT_A
        assert holder.current().raw == ROOT_A
        assert time.monotonic() - started < 0.5  # the hung mirror is someone else's problem (a background thread)
    holder.wait(10)  # the mirror is gone: the refresh fails fast now and logs its one line inside this test


def test_background_refresh_swaps_the_root(repo: TufRepository, tmp_path: Path) -> None:
    now = [1_000_000.0]
    holder = TrustRootHolder(source(repo, tmp_path), clock=lambda: now[0])
    repo.publish({"trusted_root.json": ROOT_B})
    assert holder.current().raw == ROOT_A  # immediately, from the bundled copy; the refresh starts behind it
    holder.wait(10)
    assert holder.current().raw == ROOT_B
    served = len(repo.paths_served())
    holder.current()
    assert len(repo.paths_served()) == served  # not due again before refresh_seconds
    now[0] += holder.source.refresh_seconds + 1
    holder.current()
    holder.wait(10)
    assert len(repo.paths_served()) > served


def test_restart_uses_the_verified_copy_on_disk_without_network(repo: TufRepository, tmp_path: Path) -> None:
    repo.publish({"trusted_root.json": ROOT_B})
    assert TrustRootHolder(source(repo, tmp_path)).refresh()
    repo.fail_with(500)
    served = len(repo.paths_served())
    restarted = TrustRootHolder(source(repo, tmp_path))
    assert restarted.origin is RootOrigin.CACHE and restarted.current().raw == ROOT_B
    assert len(repo.paths_served()) == served  # young cache: no refresh due yet


def test_stale_copy_on_disk_is_not_used(repo: TufRepository, tmp_path: Path) -> None:
    repo.publish({"trusted_root.json": ROOT_B})
    src = source(repo, tmp_path)
    assert TrustRootHolder(src).refresh()
    old = time.time() - src.max_age_seconds - 60
    os.utime(src.verified_copy, (old, old))
    repo.fail_with(500)
    holder = TrustRootHolder(src)
    assert holder.origin is RootOrigin.BUNDLED and holder.current().raw == ROOT_A


def test_cache_directory_writable_by_others_is_refused(repo: TufRepository, tmp_path: Path) -> None:
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    holder = TrustRootHolder(source(repo, cache))
    with pytest.raises(TrustRootRefreshError) as err:
        tufmod.fetch_trusted_root(holder.source)
    assert err.value.reason is RefreshFailure.CACHE
    assert not holder.refresh() and holder.current().raw == ROOT_A


def test_no_root_at_all_fails_closed_after_a_bounded_wait(
    repo: TufRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tufmod, "FIRST_ROOT_WAIT_SECONDS", 2.0)
    repo.fail_with(503)
    holder = TrustRootHolder(source(repo, tmp_path, fallback=None))
    started = time.monotonic()
    with pytest.raises(ExternalServiceError, match="no trusted root yet"):
        holder.current()
    assert time.monotonic() - started < 3


def test_environment_points_sigward_at_a_private_tuf_repository(
    repo: TufRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = tmp_path / "root.json"
    bootstrap.write_bytes(repo.bootstrap_root)
    repo.publish({"trusted_root.json": ROOT_B})
    env = {
        "SIGWARD_TUF_URL": repo.url + "/",
        "SIGWARD_TUF_ROOT": str(bootstrap),
        "SIGWARD_TUF_CACHE": str(tmp_path / "cache"),
        "SIGWARD_TUF_OFFLINE": "0",
    }
    tufmod.reset()
    try:
        assert load_trusted_root(environ=env).raw == ROOT_B  # no bundled root for it: the first load waits (bounded)
        assert load_trusted_root(environ={**env, "SIGWARD_TRUSTED_ROOT": "public-good"}).raw != ROOT_B  # pinned wins
        offline = {**env, "SIGWARD_TUF_OFFLINE": "1"}
        assert load_trusted_root(environ=offline).raw == ROOT_B  # offline: the verified copy on disk
        with pytest.raises(ConfigurationError, match="SIGWARD_TUF_OFFLINE"):
            load_trusted_root(environ={**offline, "SIGWARD_TUF_CACHE": str(tmp_path / "empty")})
    finally:
        tufmod.reset()


def test_fingerprint_follows_the_bytes() -> None:
    a = parse_trusted_root(ROOT_A, source="a")
    assert a.fingerprint == parse_trusted_root(ROOT_A, source="other name").fingerprint
    assert a.fingerprint != parse_trusted_root(ROOT_B, source="a").fingerprint
    assert a.fingerprint.startswith("sha256:") and len(a.fingerprint) == 71

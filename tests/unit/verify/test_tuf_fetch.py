"""The shared python-tuf fetcher (sigward.verify.tuf_fetch) as the process-wide TUF root and policy-named mirrors use
it (regression test: the process-wide fetcher read with urllib3 ``stream()``, so a trickling mirror held a refresh
far past its budget)."""

from __future__ import annotations

import time

import pytest
from tuf.api import exceptions as tuf_errors

from sigward.netguard import NetworkGuard, host_port
from sigward.verify import policy_tuf
from sigward.verify import tuf as tufmod
from tests.support.httpservers import Reply, ScriptedServer, Seen
from tests.support.trickle import TrickleServer


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_process_wide_fetcher_cuts_a_trickling_mirror_at_the_deadline() -> None:
    with TrickleServer(interval=0.1, duration=8.0, announced=50_000) as server:
        fetcher = tufmod._fetcher(time.monotonic() + 1.0)
        started = time.monotonic()
        with pytest.raises(tuf_errors.SlowRetrievalError):
            b"".join(fetcher.fetch(f"{server.url}/1.root.json"))
        assert time.monotonic() - started < 4.0


def test_past_deadline_refuses_before_connecting() -> None:
    with ScriptedServer(lambda _: Reply(200, {}, b"{}")) as server:
        with pytest.raises(tuf_errors.SlowRetrievalError):
            b"".join(tufmod._fetcher(time.monotonic() - 1.0).fetch(f"{server.url}/1.root.json"))
        assert server.requests_seen() == []


def redirecting(seen: Seen) -> Reply:
    if seen.path == "/old/1.root.json":
        return Reply(302, {"Location": "/new/1.root.json"})
    if seen.path == "/new/1.root.json":
        return Reply(200, {"Content-Type": "application/json"}, b'{"signed": {}}')
    return Reply(404, {}, b"no")


def test_well_behaved_mirror_answers_both_fetchers() -> None:
    with ScriptedServer(redirecting) as server:
        deadline = time.monotonic() + 10
        for fetcher in (
            tufmod._fetcher(deadline),
            policy_tuf._guarded_fetcher(deadline, guard=NetworkGuard.create([host_port("127.0.0.1", server.port)])),
        ):
            assert b"".join(fetcher.fetch(f"{server.url}/new/1.root.json")) == b'{"signed": {}}'
        assert {s.headers.get("accept-encoding") for s in server.requests_seen()} == {"identity"}


def test_operator_mirror_redirect_is_followed_policy_mirror_redirect_is_not() -> None:
    with ScriptedServer(redirecting) as server:
        deadline = time.monotonic() + 10
        assert b"".join(tufmod._fetcher(deadline).fetch(f"{server.url}/old/1.root.json")) == b'{"signed": {}}'
        guarded = policy_tuf._guarded_fetcher(
            deadline, guard=NetworkGuard.create([host_port("127.0.0.1", server.port)])
        )
        with pytest.raises(tuf_errors.DownloadHTTPError, match="302"):
            b"".join(guarded.fetch(f"{server.url}/old/1.root.json"))


def test_missing_file_and_server_down_are_download_errors() -> None:
    with ScriptedServer(redirecting) as server:
        url = server.url
        with pytest.raises(tuf_errors.DownloadHTTPError, match="404"):
            b"".join(tufmod._fetcher(time.monotonic() + 10).fetch(f"{url}/missing.json"))
    with pytest.raises((tuf_errors.DownloadError, OSError)):
        b"".join(tufmod._fetcher(time.monotonic() + 10).fetch(f"{url}/new/1.root.json"))


def test_policy_mirror_on_a_private_address_is_refused_by_the_guard() -> None:
    from sigward.netguard import BlockedAddressError

    fetcher = policy_tuf._guarded_fetcher(time.monotonic() + 10, guard=NetworkGuard.create([]))
    with pytest.raises(tuf_errors.DownloadError) as info:
        b"".join(fetcher.fetch("http://127.0.0.1:9/1.root.json"))
    assert isinstance(info.value.__cause__, BlockedAddressError)

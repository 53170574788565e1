"""apiCall.service / the IVPOL ``http`` library against hostile answers and hostile URLs (regression tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from sigward.cluster import api
from sigward.cluster.data import ClusterData, ClusterLookupError
from sigward.cluster.services import ServiceCaller
from sigward.policy.serviceurls import shown_url
from tests.support.httpservers import Reply, ScriptedServer, Seen
from tests.support.trickle import TrickleServer


def test_trickling_service_answer_is_cut_at_the_read_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug: the per-read timeout was the only bound, so a service sending a byte every 0.1 s held the admission
    thread until it chose to stop (here 8 s; in general hours)."""
    monkeypatch.setattr(api, "MAX_READ_SECONDS", 1.0)
    with TrickleServer(interval=0.1, duration=8.0) as server:
        caller = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": f"{server.url}/svc/"})
        started = time.monotonic()
        with pytest.raises(ClusterLookupError, match="took longer than 1 s"):
            caller.call(f"{server.url}/svc/keys")
        assert time.monotonic() - started < 4.0


@pytest.mark.parametrize(
    ("case", "headers", "body", "message"),
    [
        ("compressed", {"Content-Encoding": "gzip"}, b"\x1f\x8b", "Content-Encoding 'gzip'"),
        ("oversize", {}, b"{}", "larger than"),
    ],
)
def test_service_answers_the_reader_refuses(case: str, headers: dict[str, str], body: bytes, message: str) -> None:
    length = api.MAX_RESPONSE_BYTES + 1 if case == "oversize" else None
    seen: list[str] = []

    def handler(request: Seen) -> Reply:
        seen.append(str(request.headers.get("accept-encoding")))
        return Reply(200, {"Content-Type": "application/json", **headers}, body, content_length=length)

    with ScriptedServer(handler) as server:
        caller = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": f"{server.url}/svc/"})
        with pytest.raises(ClusterLookupError, match=message):
            caller.call(f"{server.url}/svc/keys")
    assert seen == ["identity"]


def test_well_behaved_service_still_answers() -> None:
    with ScriptedServer(lambda _: Reply(200, {"Content-Type": "application/json"}, b'{"k": [1, 2]}')) as server:
        caller = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": f"{server.url}/svc/"})
        assert caller.call(f"{server.url}/svc/keys") == {"k": [1, 2]}


@pytest.mark.parametrize(
    "url",
    [
        "https://svc-user:s3cret-pw@keys.example/v1/x",
        "https://keys.example/v2/x?token=s3cret-pw",
        "https://other.example/v1/x?access_token=s3cret-pw#s3cret-pw",
    ],
)
def test_refused_service_url_secrets_stay_out_of_the_message(url: str) -> None:
    """Bug: the refusal quoted the URL whole, so user info or a query token a policy put in it reached the
    admission response and the logs."""
    caller = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": "https://keys.example/v1/"})
    unconfigured = ClusterData()
    calls: tuple[Callable[[], object], ...] = (
        lambda: caller.call(url),
        lambda: unconfigured.service(url, method="GET", headers=(), body=None, ca_bundle=""),
    )
    for call in calls:
        with pytest.raises(ClusterLookupError) as info:
            call()
        assert "s3cret" not in info.value.message
        assert "not allowlisted" in info.value.message and (urlsplit(url).hostname or "") in info.value.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://keys.example/v1/x", "https://keys.example/v1/x"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
        ("https://u:p@h/x?q=1", "https://h/x (user info, query and fragment not shown)"),
        ("https://h:99999/x", "(a malformed URL)"),
    ],
)
def test_shown_url(url: str, shown: str) -> None:
    assert shown_url(url) == shown

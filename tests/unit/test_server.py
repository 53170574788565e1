"""``sigward.server.Front``'s admission dispatch (issue 13: serve throughput), over a real loopback socket: a POST to
``/admission/...`` goes to the admission handlers, not the WSGI app — a small review answered from memory on the
event loop, anything else on an admission thread — and authentication before the body still comes first."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from sigward.server import INLINE_REVIEW_BYTES, AdmissionHandlers, Answer, Front, admission_path


@dataclass
class Calls:
    memory: list[tuple[str, str]] = field(default_factory=list)  # (path, thread name)
    decide: list[tuple[str, str]] = field(default_factory=list)
    wsgi: list[str] = field(default_factory=list)
    hit: bool = True


def handlers(calls: Calls) -> AdmissionHandlers:
    def from_memory(path: str, headers: Mapping[str, str], body: bytes) -> Answer | None:
        calls.memory.append((path, threading.current_thread().name))
        return Answer(200, (("Content-Type", "application/json"),), b'{"from":"memory"}') if calls.hit else None

    def decide(path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        calls.decide.append((path, threading.current_thread().name))
        return Answer(200, (("Content-Type", "application/json"),), b'{"from":"thread"}')

    return AdmissionHandlers(decide=decide, from_memory=from_memory)


def wsgi(calls: Calls) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        calls.wsgi.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"from":"wsgi"}']

    return app


@contextlib.contextmanager
def front(calls: Calls, environ: Mapping[str, str] | None = None) -> Iterator[int]:
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        f = Front(wsgi(calls), environ=environ or {}, admission=handlers(calls))
        server = await asyncio.start_server(f.handle, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["stop"] = stop = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        async with server:
            await stop.wait()
        f.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="loop")
    thread.start()
    assert ready.wait(10)
    try:
        yield state["port"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


def post(port: int, path: str, body: bytes, method: str = "POST", **headers: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_small_cache_hit_is_answered_on_the_loop_without_a_thread() -> None:
    calls = Calls()
    with front(calls) as port:
        status, doc = post(port, "/admission/mutate", b"{}")
    assert (status, doc) == (200, {"from": "memory"})
    assert calls.memory == [("/mutate", "loop")]
    assert calls.decide == [] and calls.wsgi == []


def test_miss_goes_to_an_admission_thread() -> None:
    calls = Calls(hit=False)
    with front(calls) as port:
        status, doc = post(port, "/admission/validate", b"{}")
    assert (status, doc) == (200, {"from": "thread"})
    assert [p for p, _ in calls.memory] == ["/validate"]
    assert [(p, t.startswith("serve-admission")) for p, t in calls.decide] == [("/validate", True)]


def test_large_review_is_never_decided_on_the_loop() -> None:
    calls = Calls()
    with front(calls) as port:
        status, doc = post(port, "/admission", b" " * (INLINE_REVIEW_BYTES + 1))
    assert (status, doc) == (200, {"from": "thread"})
    assert calls.memory == []
    assert [p for p, _ in calls.decide] == ["/"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_keep_the_app_route(method: str) -> None:
    calls = Calls()
    with front(calls) as port:
        status, doc = post(port, "/admission/mutate", b"{}", method=method)
    assert (status, doc) == (200, {"from": "wsgi"})
    assert calls.memory == [] and calls.decide == []


def test_token_is_checked_before_the_direct_handlers() -> None:
    calls = Calls()
    with front(calls, {"SIGWARD_ADMISSION_TOKEN": "tok-1"}) as port:
        refused = post(port, "/admission/wrong/mutate", b"{}")
        accepted = post(port, "/admission/tok-1/mutate", b"{}")
    assert refused[0] == 401 and "tok-1" not in json.dumps(refused[1])
    assert accepted == (200, {"from": "memory"})
    assert [p for p, _ in calls.memory] == ["/tok-1/mutate"]  # the handler strips the token itself


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/admission", "/"),
        ("/admission/", None),
        ("/admission/mutate", "/mutate"),
        ("/admission//validate", None),
        ("/admission/a//b", "/a//b"),
        ("/admission/t\xc3\xa9/x", "/t\xe9/x"),
        ("/admissionx/mutate", None),
    ],
)
def test_admission_path_as_the_flask_route_gives_it(path: str, expected: str | None) -> None:
    """The same paths reach the handler as through the app's route (where it 404s, so does the direct path)."""
    from sigward.server import create_app

    assert admission_path(path) == expected
    try:
        _endpoint, args = create_app().url_map.bind("sigward").match(path, method="POST")
    except Exception:  # werkzeug's NotFound
        assert expected is None
    else:
        assert expected == "/" + args["rest"].encode("latin-1").decode("utf-8", "replace")


def test_path_the_route_does_not_match_stays_with_the_app() -> None:
    calls = Calls()
    with front(calls) as port:
        status, _doc = post(port, "/admission//mutate", b"{}")
    assert status == 200 and calls.wsgi == ["/admission//mutate"]
    assert calls.memory == [] and calls.decide == []

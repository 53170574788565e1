"""``sigward serve`` under slow, idle and unauthenticated clients (issue 12 §3), process-level on loopback: a valid
signed admission is still answered in under a second; the token / push secret is checked on the head, so an
unauthenticated body is never waited for (its twin with the right credentials is); slow and idle sockets are closed
by the server within its head/body time limits (sigward.server.HEAD_SECONDS, BODY_SECONDS)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from sigward.server import BODY_SECONDS, HEAD_SECONDS
from tests.support.admission import pod, pod_request, review
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.serve import Served
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry

TOKEN = "starvation-token-1618033"
SECRET = "starvation-push-secret-1414"
KEY = new_key("p256", slot=72)


@pytest.fixture(scope="module")
def stack(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    workdir = tmp_path_factory.mktemp("starvation")
    digest = registry.push_image("starve/app", tag="v1")
    attach_signatures(registry, "starve/app", digest, [signed_layer(KEY, image_digest=digest)])
    policy = workdir / "policy.yaml"
    policy.write_text(
        dump(
            cluster_policy(
                "require-signed",
                [key_verification([f"{registry.host}/*"], [keys_entry(KEY.public_pem)])],
                failure_policy="Ignore",
            )
        )
    )
    served = Served(
        workdir,
        {
            "SIGWARD_POLICY": str(policy),
            "SIGWARD_ADMISSION_TOKEN": TOKEN,
            "SIGWARD_PUSH_SECRET": SECRET,
            "SIGWARD_STORE": f"sqlite:///{workdir / 'verdicts.db'}",  # shared by the worker processes
            "SIGWARD_INSECURE_REGISTRIES": registry.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        },
    )
    served.start()
    try:
        image = f"{registry.host}/starve/app:v1"
        for _ in range(4):  # every worker process has verified (or found the stored verdict) once
            assert admit(served, image)[0] is True
        yield served, image
    finally:
        served.stop()


def admit(served: Served, image: str) -> tuple[bool, float]:
    body = json.dumps(review(pod_request(pod(image))))
    started = time.monotonic()
    resp = requests.post(f"{served.url}/admission/{TOKEN}/mutate", data=body, timeout=10)
    elapsed = time.monotonic() - started
    assert resp.status_code == 200, resp.text
    return bool(resp.json()["response"]["allowed"]), elapsed


def connect(served: Served, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    if data:
        sock.sendall(data)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> tuple[bool, bytes]:
    """(closed within ``within`` seconds, what the server sent before closing)."""
    sock.settimeout(within)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, got
            got += chunk
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got


@contextlib.contextmanager
def sockets(*socks: socket.socket) -> Iterator[list[socket.socket]]:
    held = list(socks)
    try:
        yield held
    finally:
        for s in held:
            s.close()


def head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    ).encode()


def test_slow_headers_and_slow_bodies_do_not_delay_a_valid_admission(stack: tuple[Served, str]) -> None:
    served, image = stack
    slow_heads = [connect(served, b"POST /admission/mutate HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(200)]
    slow_bodies = [connect(served, head(f"/admission/{TOKEN}/mutate", 100_000) + b'{"kind"') for _ in range(200)]
    with sockets(*slow_heads, *slow_bodies):
        for sock in slow_heads[:50] + slow_bodies[:50]:
            sock.sendall(b"a")  # trickling, not dead
        allowed, elapsed = admit(served, image)
        assert allowed is True
        assert elapsed < 1.0, elapsed
        # the server ends them, not the clients: heads without an answer, bodies with 408
        closed, sent = closed_by_server(slow_heads[0], HEAD_SECONDS + 2)
        assert closed and sent == b"", sent
        closed, sent = closed_by_server(slow_bodies[0], BODY_SECONDS + 2)
        assert closed and sent.startswith(b"HTTP/1.1 408"), sent[:100]


def test_idle_keep_alive_connections_are_closed_and_do_not_block(stack: tuple[Served, str]) -> None:
    served, image = stack
    idle = [connect(served) for _ in range(100)]
    keep = connect(served, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    with sockets(*idle, keep):
        keep.settimeout(5)
        assert keep.recv(65536).startswith(b"HTTP/1.1 200")  # answered, then left idle on a keep-alive connection
        allowed, elapsed = admit(served, image)
        assert allowed is True and elapsed < 1.0, elapsed
        started = time.monotonic()
        assert closed_by_server(keep, HEAD_SECONDS + 2)[0]
        assert closed_by_server(idle[-1], 2)[0]
        assert time.monotonic() - started < HEAD_SECONDS + 2


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/admission/mutate", ""),
        ("/admission/wrong-token/mutate", "Authorization: Bearer wrong\r\n"),
        ("/push/webhook", ""),
        ("/push/webhook", "Authorization: Bearer wrong\r\n"),
        ("/push/pubsub", "X-Sigward-Secret: wrong\r\n"),
    ],
    ids=["admission-no-token", "admission-wrong-token", "push-no-secret", "push-wrong-secret", "pubsub-wrong"],
)
def test_unauthenticated_body_is_refused_without_waiting_for_it(
    stack: tuple[Served, str], path: str, extra: str
) -> None:
    """4 MB announced, none of it sent: the 401 comes at once, so the server read none of the body."""
    served, _ = stack
    with sockets(connect(served, head(path, 4_000_000, extra))) as [sock]:
        started = time.monotonic()
        closed, sent = closed_by_server(sock, 1.0)
        assert sent.startswith(b"HTTP/1.1 401"), sent[:200]
        assert b"Connection: close" in sent or closed
        assert time.monotonic() - started < 0.5
        assert TOKEN.encode() not in sent and SECRET.encode() not in sent


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        (f"/admission/{TOKEN}/mutate", ""),
        ("/admission/mutate", f"Authorization: Bearer {TOKEN}\r\n"),
        ("/push/webhook", f"Authorization: Bearer {SECRET}\r\n"),
        ("/push/webhook", "X-Hub-Signature-256: sha256=" + "0" * 64 + "\r\n"),  # judged on the body: waited for
    ],
    ids=["admission-token-segment", "admission-bearer", "push-secret", "push-hmac"],
)
def test_authenticated_body_is_waited_for(stack: tuple[Served, str], path: str, extra: str) -> None:
    """The twin: with credentials (or an HMAC that needs the body) the server waits for the body."""
    served, _ = stack
    with sockets(connect(served, head(path, 4_000, extra))) as [sock]:
        closed, sent = closed_by_server(sock, 0.5)
        assert not closed and sent == b"", sent[:200]


def test_expect_continue_is_answered_only_after_authentication(stack: tuple[Served, str]) -> None:
    served, _ = stack
    for path, first in ((f"/admission/{TOKEN}/mutate", b"HTTP/1.1 100"), ("/admission/mutate", b"HTTP/1.1 401")):
        with sockets(connect(served, head(path, 1_000_000, "Expect: 100-continue\r\n"))) as [sock]:
            sock.settimeout(1.0)
            assert sock.recv(65536).startswith(first)


def test_connection_flood_does_not_lock_out_a_valid_admission(stack: tuple[Served, str]) -> None:
    """Many sockets that never send anything: a valid admission is still answered within a second."""
    served, image = stack
    flood = [connect(served) for _ in range(600)]
    with sockets(*flood):
        allowed, elapsed = admit(served, image)
        assert allowed is True and elapsed < 1.0, elapsed

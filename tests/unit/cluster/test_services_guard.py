"""apiCall.service / IVPOL ``http`` / GlobalContextEntry apiCall calls through the network guard, and what a failing
service's answer may put in a message (regression tests: before, only the allowlist stood between a policy and a
metadata address, and a 401 body echoing a credential was quoted into the admission response)."""

from __future__ import annotations

import socket

import pytest

from sigward.cluster.apicall import execute
from sigward.cluster.data import ClusterData, ClusterLookupError
from sigward.cluster.services import ERROR_EXCERPT_CHARS, ServiceCaller, error_excerpt
from tests.support.httpservers import Reply, ScriptedServer, Seen

JSON = {"Content-Type": "application/json"}


def resolver_to(answers: dict[str, list[str]]) -> object:
    """A resolver hook for the guard: fixed answers, nothing else resolves (no /etc/hosts edits)."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return answers[host]

    return resolve


def caller(prefixes: list[str], answers: dict[str, list[str]]) -> ServiceCaller:
    return ServiceCaller(tuple(prefixes), resolver=resolver_to(answers))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "answers"),
    [
        ("http://keys.internal.example/v1/k", {"keys.internal.example": ["169.254.169.254"]}),
        ("http://keys.internal.example/v1/k", {"keys.internal.example": ["fd00:ec2::254"]}),
        ("http://keys.internal.example/v1/k", {"keys.internal.example": ["169.254.170.2"]}),
        ("http://keys.internal.example/v1/k", {"keys.internal.example": ["127.0.0.1", "169.254.169.254"]}),
        ("http://keys.internal.example/v1/k", {"keys.internal.example": ["::ffff:169.254.169.254"]}),
        ("http://metadata.google.internal/v1/k", {"metadata.google.internal": ["127.0.0.1"]}),
        ("http://169.254.169.254/v1/k", {}),
        ("http://[fd00:ec2::254]/v1/k", {}),
    ],
)
def test_allowlisted_service_resolving_to_metadata_is_refused(url: str, answers: dict[str, list[str]]) -> None:
    """Bug: an allowlisted name (or literal) that resolves to a metadata address was called."""
    prefix = url.rsplit("/", 1)[0] + "/"
    with pytest.raises(ClusterLookupError, match="refused: refusing to connect") as info:
        caller([prefix], answers).call(url)
    assert "metadata" in info.value.message or "link-local" in info.value.message


def test_every_route_into_services_is_guarded() -> None:
    """Rule context apiCall and GlobalContextEntry apiCall (apicall.execute) and the IVPOL http library
    (ClusterData.service) reach the same guarded caller."""
    services = caller(["http://keys.internal.example/v1/"], {"keys.internal.example": ["169.254.169.254"]})
    cluster = ClusterData(services=services)
    with pytest.raises(ClusterLookupError, match="refused"):
        execute(cluster, {"service": {"url": "http://keys.internal.example/v1/k"}})
    with pytest.raises(ClusterLookupError, match="refused"):
        cluster.service("http://keys.internal.example/v1/k", method="GET", headers=(), body=None, ca_bundle="")


def test_allowlisted_in_cluster_name_on_a_private_address_still_works() -> None:
    """An in-cluster service (a name resolving to a private address) keeps working when the allowlist names it:
    the socket goes to the address the guard checked."""
    with ScriptedServer(lambda _: Reply(200, JSON, b'{"ok": true}')) as server:
        name = "svc.ns.svc.cluster.local"
        services = caller([f"http://{name}:{server.port}/v1/"], {name: ["127.0.0.1"]})
        assert services.call(f"http://{name}:{server.port}/v1/k") == {"ok": True}
        assert [s.path for s in server.requests_seen()] == ["/v1/k"]


def test_allowlisted_loopback_server_still_works() -> None:
    with ScriptedServer(lambda _: Reply(200, JSON, b"[1]")) as server:
        services = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": f"{server.url}/v1/"})
        assert services.call(f"{server.url}/v1/k") == [1]


def test_private_address_of_a_host_the_allowlist_does_not_name_is_refused() -> None:
    """The guard of one caller only lets the allowlisted host:port onto private addresses (a second port of the
    same host is another service)."""
    services = caller(["http://svc.ns.svc.cluster.local:8080/v1/"], {"svc.ns.svc.cluster.local": ["10.0.0.7"]})
    guard = services.guard()
    guard.vetted_addresses("svc.ns.svc.cluster.local", 8080)
    with pytest.raises(Exception, match="private or loopback"):
        guard.vetted_addresses("svc.ns.svc.cluster.local", 9090)


def test_redirect_to_metadata_is_not_followed() -> None:
    with ScriptedServer(lambda _: Reply(302, {"Location": "http://169.254.169.254/latest/meta-data/"})) as server:
        services = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": f"{server.url}/v1/"})
        with pytest.raises(ClusterLookupError, match="HTTP 302"):
            services.call(f"{server.url}/v1/k")
        assert len(server.requests_seen()) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorized_service_body_is_never_quoted(status: int) -> None:
    """Bug: the 200 first characters of the body were quoted; a service echoing the refused credential put it into
    the admission response and the logs."""

    def handler(seen: Seen) -> Reply:
        return Reply(status, JSON, f'{{"error": "bad token {seen.headers.get("authorization")}"}}'.encode())

    with ScriptedServer(handler) as server:
        services = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": f"{server.url}/v1/"})
        headers = [{"key": "Authorization", "value": "Bearer s3cret-token"}]
        with pytest.raises(ClusterLookupError) as info:
            services.call(f"{server.url}/v1/k", headers=headers)
    assert info.value.message == f"HTTP {status}: permission denied"


def test_error_body_excerpt_is_short_and_printable() -> None:
    body = b"\x1b[31mboom\r\nforged: log line\x00" + b"x" * 500
    with ScriptedServer(lambda _: Reply(500, {"Content-Type": "text/plain"}, body)) as server:
        services = ServiceCaller.from_env({"SIGWARD_APICALL_SERVICES": f"{server.url}/v1/"})
        with pytest.raises(ClusterLookupError) as info:
            services.call(f"{server.url}/v1/k")
    message = info.value.message
    assert message.startswith("HTTP 500: [31mboom forged: log line")
    assert message.isprintable() and len(message) <= len("HTTP 500: ") + ERROR_EXCERPT_CHARS


@pytest.mark.parametrize(
    ("status", "data", "text"),
    [
        (500, b"", "HTTP 500"),
        (502, b"\x00\x01\x02", "HTTP 502"),
        (404, b"not found", "HTTP 404: not found"),
        (404, "n\u00e4 \u202e".encode(), "HTTP 404: n\u00e4"),
        (401, b"token=abc", "HTTP 401: permission denied"),
    ],
)
def test_error_excerpt(status: int, data: bytes, text: str) -> None:
    assert error_excerpt(status, data) == text

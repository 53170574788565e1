"""The network guard's decisions, the URL rules in front of it, and its place at connect time."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from sigward.netguard import BlockedAddressError, NetworkGuard, classify_address
from sigward.registry.config import RegistryConfig
from sigward.registry.transport import RequestStats, Transport


def fixed_resolver(answers: dict[str, list[str]]) -> object:
    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "blocked"),
        ("169.254.170.2", "blocked"),
        ("169.254.1.1", "blocked"),
        ("fd00:ec2::254", "blocked"),
        ("fe80::1", "blocked"),
        ("100.100.100.200", "blocked"),
        ("192.0.0.192", "blocked"),
        ("0.0.0.0", "blocked"),
        ("::", "blocked"),
        ("224.0.0.1", "blocked"),
        ("255.255.255.255", "blocked"),
        ("ff02::1", "blocked"),
        ("::ffff:169.254.169.254", "blocked"),
        ("64:ff9b::a9fe:a9fe", "blocked"),  # NAT64 of 169.254.169.254
        ("127.0.0.1", "private"),
        ("127.0.0.2", "private"),
        ("::1", "private"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12:3456::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("192.0.2.10", "private"),  # documentation range: not global
        ("8.8.8.8", "public"),
        ("140.82.112.3", "public"),
        ("2606:4700::1111", "public"),
    ],
)
def test_address_classes(address: str, kind: str) -> None:
    assert classify_address(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("host", "port", "private", "allowed"),
    [
        ("169.254.169.254", 80, (), False),
        ("169.254.169.254", 80, ("169.254.169.254",), False),  # never, even when allowlisted
        ("metadata.google.internal", 80, ("metadata.google.internal",), False),
        ("METADATA.google.internal.", 80, (), False),
        ("metadata", 80, (), False),
        ("metadata.goog", 443, (), False),
        ("instance-data", 80, (), False),
        ("[fd00:ec2::254]", 80, (), False),
        ("fd00:ec2::254", 80, ("fd00:ec2::254",), False),
        ("10.0.0.1", 443, (), False),
        ("10.0.0.1", 443, ("10.0.0.1",), True),
        ("10.0.0.1", 5000, ("10.0.0.1:5000",), True),
        ("10.0.0.1", 5001, ("10.0.0.1:5000",), False),
        ("127.0.0.1", 5000, (), False),
        ("127.0.0.1", 5000, ("127.0.0.1",), True),
        ("::1", 5000, ("[::1]:5000",), True),
        ("::1", 5000, ("::1",), True),
        ("8.8.8.8", 443, (), True),
    ],
)
def test_name_and_literal_decisions(host: str, port: int, private: tuple[str, ...], allowed: bool) -> None:
    guard = NetworkGuard.create(private, resolver=fixed_resolver({}))  # type: ignore[arg-type]
    if allowed:
        guard.check_name(host, port)
    else:
        with pytest.raises(BlockedAddressError):
            guard.check_name(host, port)


def test_every_resolved_address_must_pass() -> None:
    resolver = fixed_resolver(
        {
            "public.example": ["140.82.112.3", "2606:4700::1111"],
            "mixed.example": ["140.82.112.3", "169.254.169.254"],  # one bad answer poisons the name
            "internal.example": ["10.1.2.3"],
            "rebind.example": ["127.0.0.1"],
        }
    )
    guard = NetworkGuard.create(["internal.example"], resolver=resolver)  # type: ignore[arg-type]
    assert guard.vetted_addresses("public.example", 443) == ["140.82.112.3", "2606:4700::1111"]
    assert guard.vetted_addresses("internal.example", 443) == ["10.1.2.3"]
    with pytest.raises(BlockedAddressError, match=r"169\.254\.169\.254"):
        guard.vetted_addresses("mixed.example", 443)
    with pytest.raises(BlockedAddressError, match="SIGWARD_PRIVATE_REGISTRIES"):
        guard.vetted_addresses("rebind.example", 443)


def test_unresolvable_name_is_a_resolution_error() -> None:
    guard = NetworkGuard.create([], resolver=fixed_resolver({}))  # type: ignore[arg-type]
    with pytest.raises(socket.gaierror):
        guard.vetted_addresses("nowhere.example", 443)


def make_transport(**kwargs: object) -> Transport:
    return Transport(RegistryConfig(**kwargs), RequestStats())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://registry.example/v2/",  # plain http to an unlisted host
        "http://127.0.0.1:5001/v2/",  # listed host, other port
        "ftp://registry.example/x",
        "file:///etc/passwd",
        "https://user:pass@registry.example/v2/",
        "https://registry.example:99999/",
        "https:///nohost",
        "https://169.254.169.254/latest/meta-data/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://[fd00:ec2::254]/latest/",
        "https://10.0.0.1/v2/",
    ],
)
def test_url_rules_refuse(url: str) -> None:
    transport = make_transport(insecure_registries=frozenset({"127.0.0.1:5000"}))
    with pytest.raises(BlockedAddressError):
        transport.check_url(url)


@pytest.mark.parametrize("url", ["https://registry.example/v2/", "http://127.0.0.1:5000/v2/", "https://8.8.8.8/v2/"])
def test_url_rules_allow(url: str) -> None:
    transport = make_transport(
        insecure_registries=frozenset({"127.0.0.1:5000"}), private_registries=frozenset({"127.0.0.1"})
    )
    assert transport.check_url(url).netloc in url


def test_guard_runs_at_connect_time_for_names(unused_tcp_port: int) -> None:
    """``localhost`` passes the name checks but resolves to loopback: refused when the socket is made."""
    transport = make_transport(insecure_registries=frozenset({f"localhost:{unused_tcp_port}"}))
    from sigward.deadline import Deadline

    with pytest.raises(BlockedAddressError, match="private or loopback"):
        transport.send("GET", f"http://localhost:{unused_tcp_port}/v2/", deadline=Deadline.after(5), kind="t")
    assert transport.stats.connections == 0


@pytest.fixture
def unused_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

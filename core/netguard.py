"""Where sigward may connect: a guard against server-side request forgery.

Registry names come from admission requests and push events, token realms and redirect targets come from
registry answers: all of it is attacker-controlled. Without a guard, ``image: 169.254.169.254/latest/...`` or
a ``WWW-Authenticate`` realm pointing at the cloud metadata service would make sigward fetch its own cloud
credentials.

The check runs where the socket is made (:func:`guarded_pool_manager`), on the addresses the name resolved to,
and the socket connects to the vetted address itself, so a second DNS answer (rebinding) can never swap in
another address. Certificate checks and SNI still use the host name.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.poolmanager import PoolManager
from urllib3.util import connection as urllib3_connection
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from sigward.errors import ConfigurationError, VerificationFailure
from sigward.references import normalize_registry_host

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata endpoints (AWS/GCP/Azure/OpenStack/DigitalOcean 169.254.169.254, AWS IPv6
# fd00:ec2::254, AWS ECS task credentials 169.254.170.2, Alibaba 100.100.100.200, Oracle 192.0.0.192): they
# hand out the machine's credentials, so never, whatever is allowlisted.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "169.254.170.2")
)
# Names under which metadata services answer on the clouds' internal DNS.
METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
# Ranges never contacted: link-local (where metadata services live), "this network", multicast, broadcast.
ALWAYS_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "::/128",
        "fe80::/10",
        "ff00::/8",
    )
)
# Ranges that need the host to be in ``private_registries``: loopback, RFC 1918, CGNAT, unique-local IPv6.
# Anything else that is not globally routable (documentation, benchmarking, reserved) is treated the same way.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
    )
)
# NAT64 (RFC 6052) embeds an IPv4 address in the last 32 bits; judge the embedded address.
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")
# A resolver answer with more addresses than this is not a registry; stop before checking thousands.
MAX_RESOLVED_ADDRESSES = 64

Resolver = Callable[[str, int], list[str]]


class BlockedAddressError(VerificationFailure, ConfigurationError):
    """A connection was refused by the network guard.

    A decided failure, not an outage: a registry that sends us to the metadata service must not turn into an
    "unreachable" error that a fail-open admission policy would wave through. And a configuration problem (an
    image's registry that is private and not in SIGWARD_PRIVATE_REGISTRIES, or hostile): reported as such (CLI exit
    2), never as an unsigned image.
    """


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_NETWORK:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify_address(ip: IPAddress) -> str:
    """``"blocked"``, ``"private"`` or ``"public"`` for one address (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "blocked"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = classify_address(embedded)
            return "blocked" if ip in METADATA_ADDRESSES else inner
    if ip in METADATA_ADDRESSES or any(ip in net for net in ALWAYS_BLOCKED_NETWORKS):
        return "blocked"
    if any(ip in net for net in PRIVATE_NETWORKS) or not ip.is_global:
        return "private"
    return "public"


def normalize_host(host: str) -> str:
    """Lower-case, without brackets and trailing dot: the form names are compared in."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def host_port(host: str, port: int) -> str:
    """``host:port`` as registries are named (``[v6]:port`` for IPv6 literals)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class NetworkGuard:
    """Decides whether a host may be contacted and which of its addresses to use."""

    private_hosts: frozenset[str] = frozenset()
    resolver: Resolver = _system_resolver

    @classmethod
    def create(cls, private_hosts: Iterable[str], resolver: Resolver | None = None) -> NetworkGuard:
        names = frozenset(_normalize_entry(h) for h in private_hosts if h.strip())
        return cls(private_hosts=names, resolver=resolver or _system_resolver)

    def private_allowed(self, host: str, port: int) -> bool:
        name = normalize_host(host)
        return (
            _normalize_entry(name) in self.private_hosts
            or _normalize_entry(host_port(name, port)) in self.private_hosts
        )

    def check_name(self, host: str, port: int) -> None:
        """Checks that need no DNS (metadata names, address literals); raises :class:`BlockedAddressError`."""
        name = normalize_host(host)
        if not name:
            raise BlockedAddressError("refusing to connect: empty host name")
        if name in METADATA_HOSTNAMES or name.endswith(".metadata.google.internal"):
            raise BlockedAddressError(f"refusing to connect to {name}: cloud metadata service")
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return
        self._check_ip(name, port, ip)

    def _check_ip(self, name: str, port: int, ip: IPAddress) -> None:
        kind = classify_address(ip)
        if kind == "blocked":
            raise BlockedAddressError(
                f"refusing to connect to {host_port(name, port)}: address {ip} is link-local, metadata, "
                "multicast or unspecified"
            )
        if kind == "private" and not self.private_allowed(name, port):
            raise BlockedAddressError(
                f"refusing to connect to {host_port(name, port)}: address {ip} is private or loopback "
                "and the host is not in SIGWARD_PRIVATE_REGISTRIES"
            )

    def vetted_addresses(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and return its addresses when *every* one of them may be contacted."""
        self.check_name(host, port)
        name = normalize_host(host)
        addresses = self.resolver(name, port)[: MAX_RESOLVED_ADDRESSES + 1]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} did not resolve")
        if len(addresses) > MAX_RESOLVED_ADDRESSES:
            raise BlockedAddressError(f"refusing to connect to {name}: it resolves to too many addresses")
        vetted: list[str] = []
        for text in addresses:
            ip = ipaddress.ip_address(text)
            self._check_ip(name, port, ip)
            if text not in vetted:
                vetted.append(text)
        return vetted


def _normalize_entry(entry: str) -> str:
    """An operator's entry (``host``, ``host:port``, a URL) or a connection's name, spelled as image references
    spell registries (``Host:443`` is ``host``; Docker Hub's names are ``docker.io``); IPv6 without brackets."""
    entry = entry.strip().lower().rstrip("/")
    if "://" in entry:
        entry = urlsplit(entry).netloc
    entry = normalize_registry_host(entry)
    if entry.startswith("[") and entry.endswith("]"):
        return entry[1:-1]
    return entry


@dataclass(frozen=True)
class _Hooks:
    guard: NetworkGuard
    on_connect: Callable[[str], None] | None


class _GuardedConnectionMixin:
    """Replaces urllib3's ``_new_conn``: resolve once, vet every address, connect to a vetted one."""

    hooks: _Hooks

    # Provided by urllib3's HTTPConnection.
    host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        try:
            addresses = self.hooks.guard.vetted_addresses(self._dns_host, self.port)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, conn, e) from e
        timeout = self.timeout
        if timeout is _DEFAULT_TIMEOUT:
            timeout = socket.getdefaulttimeout()
        last: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as e:
                raise ConnectTimeoutError(
                    conn, f"connection to {self.host} timed out (connect timeout={timeout})"
                ) from e
            except OSError as e:
                last = e
                continue
            if self.hooks.on_connect is not None:
                self.hooks.on_connect(host_port(normalize_host(self.host), self.port))
            return sock
        raise NewConnectionError(conn, f"failed to establish a new connection: {last}") from last


def _pool_classes(guard: NetworkGuard, on_connect: Callable[[str], None] | None) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections carry this guard (one set per adapter: clients never share guards)."""

    class _HTTPConnection(_GuardedConnectionMixin, HTTPConnection):
        pass

    class _HTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
        pass

    hooks = _Hooks(guard=guard, on_connect=on_connect)
    _HTTPConnection.hooks = hooks
    _HTTPSConnection.hooks = hooks

    class _HTTPPool(HTTPConnectionPool):
        ConnectionCls = _HTTPConnection

    class _HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _HTTPSConnection

    return {"http": _HTTPPool, "https": _HTTPSPool}


def guarded_pool_manager(
    guard: NetworkGuard,
    *,
    on_connect: Callable[[str], None] | None = None,
    num_pools: int = 10,
    maxsize: int = 10,
    **connection_kw: Any,
) -> PoolManager:
    """A urllib3 pool manager whose every connection (registry, token realm, redirect target) passes the guard.
    It has no proxy support at all: a proxy would connect to an unchecked address on our behalf."""
    manager = PoolManager(num_pools=num_pools, maxsize=maxsize, block=False, **connection_kw)
    manager.pool_classes_by_scheme = _pool_classes(guard, on_connect)
    return manager


class GuardedHTTPAdapter(HTTPAdapter):
    """A requests adapter whose every connection passes the guard (the findings webhook; the registry client uses
    :func:`guarded_pool_manager`)."""

    def __init__(
        self,
        guard: NetworkGuard,
        *,
        on_connect: Callable[[str], None] | None = None,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
    ) -> None:
        self._guard = guard
        self._on_connect = on_connect
        super().__init__(pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._guard, self._on_connect)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Proxies would connect to an unchecked address on our behalf; sigward does not use them."""
        raise BlockedAddressError("refusing to use an HTTP proxy for registry traffic")

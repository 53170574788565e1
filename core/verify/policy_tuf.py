"""TUF repositories named by policies (ImageValidatingPolicy ``attestors[].cosign.tuf``): the holder of
:mod:`sigward.verify.tuf` (same cache, background refresh, last-good and offline rules) for each (mirror, bootstrap
root), with every connection through sigward's network guard — a policy must not make sigward fetch from a private
or metadata address (only a mirror that is exactly loopback may be, for tests or a sidecar). Kept apart from
:mod:`sigward.verify.tuf` so the trusted-root loader the pure checks reach does not pull in the registry layer."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sigward.errors import ConfigurationError
from sigward.netguard import NetworkGuard, guarded_pool_manager, host_port
from sigward.policy.tufroot import LOOPBACK_HOSTS
from sigward.verify import tuf as tufmod
from sigward.verify.sigstore_private import BUNDLED_TRUSTED_ROOT, BUNDLED_TUF_ROOT, bundled_file
from sigward.verify.trust import TrustedRoot
from sigward.verify.tuf import (
    SOCKET_TIMEOUT_SECONDS,
    USER_AGENT,
    TrustRootHolder,
    TrustRootSource,
    default_cache_dir,
    env_flag,
)
from sigward.verify.tuf_fetch import budget_fetcher

if TYPE_CHECKING:
    from tuf.ngclient.fetcher import FetcherInterface


def _guarded_fetcher(deadline: float, *, guard: NetworkGuard) -> FetcherInterface:
    """The shared fetcher (:mod:`sigward.verify.tuf_fetch`) on sigward's guarded connection pool: the addresses a
    policy-named mirror resolves to are checked where the socket is made, no proxy, no redirect followed."""
    pool = guarded_pool_manager(guard, num_pools=2, maxsize=2)
    return budget_fetcher(
        deadline,
        lambda _url: pool,
        user_agent=USER_AGENT,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        follow_redirects=False,
    )


_POLICY_ENV_KEYS = ("SIGWARD_TUF_CACHE", "SIGWARD_TUF_OFFLINE", "XDG_CACHE_HOME")
# Distinct policy-named repositories held at once (each keeps a root in memory and may run a refresh thread); the
# least recently used one is dropped beyond this, its verified copy stays on disk for the next use.
MAX_POLICY_REPOSITORIES = 32


def policy_source(mirror: str, root: bytes, env: Mapping[str, str]) -> tuple[TrustRootSource, bool]:
    """The source of a policy-named repository: ``root`` its bootstrap TUF root (empty: the one sigward ships for
    the public-good mirror, with its trusted root as the starting point), cached per bootstrap root (two policies
    trusting different roots for one mirror never share metadata), connections through the network guard (a
    private address only when the mirror is exactly loopback), and whether it is offline."""
    offline = env_flag(env, "SIGWARD_TUF_OFFLINE")
    fallback: bytes | None = None
    bootstrap = root
    if not bootstrap:
        try:
            bootstrap = bundled_file(mirror, BUNDLED_TUF_ROOT)
            fallback = bundled_file(mirror, BUNDLED_TRUSTED_ROOT)
        except FileNotFoundError:
            raise ConfigurationError(f"no TUF root ships for {mirror}: set cosign.tuf.root") from None
    cache_text = env.get("SIGWARD_TUF_CACHE", "").strip()
    base = Path(cache_text) if cache_text else default_cache_dir(env)
    parts = urlsplit(mirror)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    guard = NetworkGuard.create([host_port(host, port)] if host in LOOPBACK_HOSTS else [])
    source = TrustRootSource(
        url=mirror,
        bootstrap_root=bootstrap,
        cache_dir=base / "policy" / hashlib.sha256(bootstrap).hexdigest()[:32],
        fallback=fallback,
        pinned_setting="cosign.trustedRoot",
        fetcher=functools.partial(_guarded_fetcher, guard=guard),
    )
    return source, offline


class _PolicyHolders:
    """One :class:`TrustRootHolder` per (mirror, bootstrap root digest, cache settings), kept across evaluations so
    the cache, refresh and last-good rules are those of the process-wide root."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[tuple[str, ...], TrustRootHolder] = {}

    def get(self, mirror: str, root: bytes, env: Mapping[str, str]) -> TrustRootHolder:
        key = (mirror, hashlib.sha256(root).hexdigest(), *(env.get(name, "") for name in _POLICY_ENV_KEYS))
        with self._lock:
            found = self._holders.pop(key, None)
            if found is None:
                source, offline = policy_source(mirror, root, env)
                found = TrustRootHolder(source, offline=offline)
            self._holders[key] = found  # most recently used last
            while len(self._holders) > MAX_POLICY_REPOSITORIES:
                del self._holders[next(iter(self._holders))]
            return found

    def reset(self) -> None:
        with self._lock:
            self._holders.clear()


_policies = _PolicyHolders()


def policy_trusted_root(
    mirror: str,
    root: bytes,
    env: Mapping[str, str] | None = None,
    *,
    wait: Callable[[Callable[[], TrustedRoot]], TrustedRoot] | None = None,
) -> TrustedRoot:
    """The trusted root a policy's TUF repository publishes now (see :class:`TrustRootHolder`: never waits when it
    has one; the last good root is kept when a refresh fails; an error when there has never been one). ``wait``
    runs the read when it could block (no root yet: the first fetch is waited for); a caller that must not block
    (admission's memory-only pass) refuses there."""
    holder = _policies.get(mirror, root, os.environ if env is None else env)
    if holder.origin is None and wait is not None:
        return wait(holder.current)
    return holder.current()


tufmod._RESET_HOOKS.append(_policies.reset)

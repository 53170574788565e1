"""The Sigstore trusted root kept current over TUF.

A :class:`TrustRootSource` names a TUF repository (URL, bootstrap ``root.json``, target name, cache directory); the
public-good instance is the default and GitHub's (``https://tuf-repo.github.com``, target ``trusted_root.json``) or a
private mirror is the same code with other values. A :class:`TrustRootHolder` holds the root verification uses and
swaps it atomically when a refresh succeeds. The client is python-tuf's public ``tuf.ngclient.Updater`` (the one
sigstore-python itself wraps privately): it gives sigward the cache directory, the target name and a time bound that
sigstore-python's ``ClientTrustConfig.from_tuf`` does not.

Why verification never waits on the network (the chosen design): admission answers within Kubernetes' webhook
timeout and every cold start would otherwise pay a TUF round trip, or fail outright, when the CDN is slow or
unreachable. So the holder starts with the best root it has locally — a TUF-verified copy on disk younger than
:data:`CACHE_MAX_AGE_SECONDS`, else the root sigstore-python ships — and refreshes in a background thread, bounded by
:data:`REFRESH_BUDGET_SECONDS`, then every ``refresh_seconds``. A failed refresh keeps the last good root and is logged
once (until one succeeds again). Only when there is no root at all (a private TUF repository, nothing cached) does the
first verification wait, at most :data:`FIRST_ROOT_WAIT_SECONDS`, and then fails closed.

``SIGWARD_TRUSTED_ROOT`` (a pinned file, handled in :mod:`sigward.verify.trust`) bypasses all of this.
"""

from __future__ import annotations

import enum
import fcntl
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from sigward import logs
from sigward.errors import ConfigurationError, ExternalServiceError
from sigward.policy.trustroots import MAX_TRUSTED_ROOT_BYTES
from sigward.policy.tufroot import MAX_TUF_ROOT_BYTES, tuf_root_problem
from sigward.verify.sigstore_private import BUNDLED_TRUSTED_ROOT, BUNDLED_TUF_ROOT, PUBLIC_GOOD_TUF_URL, bundled_file
from sigward.verify.trust import TrustedRoot, parse_trusted_root

if TYPE_CHECKING:
    from tuf.ngclient.fetcher import FetcherInterface

# Sigstore re-signs its TUF timestamp daily and rotates keys rarely: every 6 h keeps a long-lived process within a
# quarter of a timestamp's life without loading the CDN.
DEFAULT_REFRESH_SECONDS = 6 * 3600.0
# A verified copy on disk older than this is not trusted at start (a week: the longest Sigstore lets a timestamp live);
# the bundled root is used instead until a refresh succeeds.
CACHE_MAX_AGE_SECONDS = 7 * 24 * 3600.0
# A whole refresh (root chain, timestamp, snapshot, targets, target file) must finish within this, and each socket
# operation within SOCKET_TIMEOUT_SECONDS: a hung mirror cannot hold the refresh thread for long.
REFRESH_BUDGET_SECONDS = 20.0
SOCKET_TIMEOUT_SECONDS = 5
# After a failed refresh, try again this soon (or at the refresh interval, if that is shorter).
RETRY_AFTER_FAILURE_SECONDS = 300.0
# How long the first verification waits when there is no root at all yet (never when a cached/bundled one exists).
FIRST_ROOT_WAIT_SECONDS = 5.0
TARGET_NAME = "trusted_root.json"
USER_AGENT = "sigward"


class RefreshFailure(enum.Enum):
    """Why a refresh kept the previous root."""

    UNREACHABLE = "repository unreachable"  # network, HTTP error, time budget
    REJECTED = "repository metadata rejected"  # bad signature, expired, rollback, hash/length mismatch
    NO_TARGET = "target not published"
    INVALID_TARGET = "target is not a usable trusted root"
    CACHE = "cache directory unusable"


class TrustRootRefreshError(ExternalServiceError):
    """A TUF refresh did not produce a new trusted root; the holder keeps the last good one."""

    def __init__(self, reason: RefreshFailure, url: str, detail: str) -> None:
        super().__init__(f"trusted root refresh from {url} failed: {reason.value}: {detail}")
        self.reason = reason


class RootOrigin(enum.Enum):
    BUNDLED = "bundled"
    CACHE = "cache"
    TUF = "tuf"


@dataclass(frozen=True)
class TrustRootSource:
    """Where a trusted root comes from and how it is kept."""

    url: str  # TUF repository: metadata at the root, targets under /targets/
    bootstrap_root: bytes  # a TUF root.json the repository's root chain starts from
    cache_dir: Path
    target_name: str = TARGET_NAME
    fallback: bytes | None = None  # a trusted root to use until the first refresh (the bundled one), or none
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    max_age_seconds: float = CACHE_MAX_AGE_SECONDS
    pinned_setting: str = "SIGWARD_TRUSTED_ROOT"  # the setting that names a file instead (for error messages)
    # Builds the fetcher for one refresh from its deadline (:mod:`sigward.verify.policy_tuf`: a repository a policy
    # names, every connection through the network guard); None = python-tuf's urllib3 fetcher (operator-configured).
    fetcher: Callable[[float], FetcherInterface] | None = field(default=None, compare=False)

    @property
    def repo_dir(self) -> Path:
        return self.cache_dir / quote(self.url, safe="")

    @property
    def verified_copy(self) -> Path:
        """The last target TUF verified, written atomically; its mtime is when."""
        return self.repo_dir / ("verified-" + quote(self.target_name, safe=""))


@dataclass(frozen=True)
class _Loaded:
    root: TrustedRoot
    origin: RootOrigin


# -- the TUF client


def _fetcher(deadline: float) -> FetcherInterface:
    """The operator-configured mirror's fetcher: the environment's proxy settings, redirects followed, the whole
    refresh within ``deadline`` (:mod:`sigward.verify.tuf_fetch`)."""
    from sigward.verify.tuf_fetch import EnvironmentPools, budget_fetcher

    return budget_fetcher(
        deadline,
        EnvironmentPools(),
        user_agent=USER_AGENT,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        follow_redirects=True,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _private_dir(path: Path, url: str) -> None:
    """Create ``path`` (0700) or accept it only if it is ours and nobody else can write to it: the default lives
    under the shared temp directory, where another user could otherwise plant a trusted root."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise TrustRootRefreshError(RefreshFailure.CACHE, url, f"{path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise TrustRootRefreshError(
            RefreshFailure.CACHE, url, f"{path} is not a directory owned by this user and closed to others"
        )


def fetch_trusted_root(source: TrustRootSource) -> bytes:
    """One TUF refresh of ``source``: the verified bytes of its target, also kept on disk for the next start."""

    url = source.url
    _private_dir(source.cache_dir, url)
    _private_dir(source.repo_dir, url)
    metadata_dir, targets_dir = source.repo_dir / "metadata", source.repo_dir / "targets"
    _private_dir(metadata_dir, url)
    _private_dir(targets_dir, url)
    # One TUF client at a time per cache directory, across threads and the serve processes that share it: python-tuf
    # rewrites root.json and root_history/ in place, and two clients at once trip over each other's files.
    with _THREAD_LOCK, (source.repo_dir / ".lock").open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            return _fetch_locked(source, metadata_dir, targets_dir)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


_THREAD_LOCK = threading.Lock()


def _fetch_locked(source: TrustRootSource, metadata_dir: Path, targets_dir: Path) -> bytes:
    from tuf.api import exceptions as tuf_errors
    from tuf.ngclient.config import UpdaterConfig
    from tuf.ngclient.updater import Updater

    url = source.url
    try:
        updater = Updater(
            metadata_dir=str(metadata_dir),
            metadata_base_url=url,
            target_dir=str(targets_dir),
            target_base_url=url + "/targets/",
            fetcher=(source.fetcher or _fetcher)(time.monotonic() + REFRESH_BUDGET_SECONDS),
            config=UpdaterConfig(app_user_agent=USER_AGENT),
            bootstrap=source.bootstrap_root,
        )
        updater.refresh()
        info = updater.get_targetinfo(source.target_name)
        if info is None:
            raise TrustRootRefreshError(RefreshFailure.NO_TARGET, url, source.target_name)
        path = updater.find_cached_target(info) or updater.download_target(info)
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except tuf_errors.RepositoryError as exc:
        raise TrustRootRefreshError(RefreshFailure.REJECTED, url, _describe(exc)) from exc
    except tuf_errors.DownloadLengthMismatchError as exc:
        # more bytes than the signed metadata allows: the mirror serves something else (tampered), not an outage
        raise TrustRootRefreshError(RefreshFailure.REJECTED, url, _describe(exc)) from exc
    except tuf_errors.DownloadError as exc:
        raise TrustRootRefreshError(RefreshFailure.UNREACHABLE, url, _describe(exc)) from exc
    except OSError as exc:  # urllib3 connection errors are OSErrors too
        raise TrustRootRefreshError(RefreshFailure.UNREACHABLE, url, _describe(exc)) from exc
    except ValueError as exc:  # python-tuf raises it for a malformed bootstrap root
        raise TrustRootRefreshError(RefreshFailure.REJECTED, url, _describe(exc)) from exc
    try:
        parse_trusted_root(raw, source=f"{url} {source.target_name}")
    except ConfigurationError as exc:
        raise TrustRootRefreshError(RefreshFailure.INVALID_TARGET, url, str(exc)) from None
    _write_atomically(source.verified_copy, raw)
    return raw


def _write_atomically(path: Path, raw: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_verified_copy(source: TrustRootSource, *, now: float) -> TrustedRoot | None:
    """The copy the last successful refresh left on disk, if it is ours, a regular file and younger than the bound."""
    path = source.verified_copy
    try:
        dir_info = source.repo_dir.lstat()
        info = path.lstat()
    except OSError:
        return None
    for entry in (dir_info, info):
        if entry.st_uid != os.getuid() or entry.st_mode & 0o022:
            return None
    if not stat.S_ISREG(info.st_mode) or now - info.st_mtime > source.max_age_seconds:
        return None
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TRUSTED_ROOT_BYTES + 1)
        return parse_trusted_root(raw, source=f"{source.url} {source.target_name} (cached)")
    except (OSError, ConfigurationError):
        return None


# -- the holder


class TrustRootHolder:
    """The trusted root in use, swapped atomically by background refreshes (see the module docstring)."""

    def __init__(
        self,
        source: TrustRootSource,
        *,
        offline: bool = False,
        clock: Callable[[], float] = time.time,
        fetch: Callable[[TrustRootSource], bytes] = fetch_trusted_root,
    ) -> None:
        self.source = source
        self.offline = offline
        self._clock = clock
        self._fetch = fetch
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._last_error = ""
        self._current: _Loaded | None = None
        now = clock()
        self._next_attempt = now
        cached = read_verified_copy(source, now=now) if not offline or source.fallback is None else None
        if cached is not None:
            self._current = _Loaded(cached, RootOrigin.CACHE)
            mtime = source.verified_copy.stat().st_mtime
            self._next_attempt = mtime + source.refresh_seconds
        elif source.fallback is not None:
            self._current = _Loaded(
                parse_trusted_root(source.fallback, source=f"{source.url} {source.target_name} (bundled)"),
                RootOrigin.BUNDLED,
            )
        elif offline:
            raise ConfigurationError(
                f"SIGWARD_TUF_OFFLINE is set but there is no trusted root for {source.url} on disk or bundled: "
                f"set {source.pinned_setting} to a trusted_root.json"
            )

    @property
    def origin(self) -> RootOrigin | None:
        loaded = self._current
        return loaded.origin if loaded is not None else None

    def current(self) -> TrustedRoot:
        """The root to verify with now; starts a background refresh when one is due, never waits when it has one."""
        if not self.offline and self._clock() >= self._next_attempt:
            self.start()
        loaded = self._current
        if loaded is None:
            self.wait(FIRST_ROOT_WAIT_SECONDS)
            loaded = self._current
        if loaded is None:
            raise ExternalServiceError(
                f"no trusted root yet from TUF repository {self.source.url}: {self._last_error or 'refresh pending'}"
            )
        return loaded.root

    def start(self) -> None:
        """Start a background refresh unless one is running (single flight)."""
        if self.offline:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._next_attempt = self._clock() + self._retry_interval()
            self._thread = threading.Thread(target=self.refresh, name="sigward-tuf-refresh", daemon=True)
            self._thread.start()

    def settle(self, timeout: float = REFRESH_BUDGET_SECONDS) -> None:
        """For short-lived commands (``sigward verify``/``review``), which get no later refresh: when the root in
        use is not a TUF-verified one younger than the max age (it is the bundled root, or none) and the network
        is allowed, run the first refresh now and wait for it at most ``timeout`` seconds (a refresh is bounded by
        :data:`REFRESH_BUDGET_SECONDS` anyway); a failed or slow refresh leaves the root as it was. Nothing at all
        when offline or when a fresh verified copy was on disk."""
        if self.offline or self.origin in (RootOrigin.CACHE, RootOrigin.TUF):
            return
        self.start()
        self.wait(timeout)

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a running background refresh (tests, short-lived commands)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _retry_interval(self) -> float:
        return min(RETRY_AFTER_FAILURE_SECONDS, self.source.refresh_seconds)

    def refresh(self) -> bool:
        """One refresh now (in the caller's thread); True when a verified root is in use afterwards."""
        if self.offline:
            return False
        try:
            raw = self._fetch(self.source)
            root = parse_trusted_root(raw, source=f"{self.source.url} {self.source.target_name}")
        except (TrustRootRefreshError, ConfigurationError) as exc:
            self._failed(str(exc))
            return False
        previous = self._current
        self._current = _Loaded(root, RootOrigin.TUF)  # one reference assignment: readers see old or new, whole
        self._next_attempt = self._clock() + self.source.refresh_seconds
        if self._failing:
            self._failing = False
            self._last_error = ""
            logs.emit("INFO", "trusted root refresh recovered", tuf_url=self.source.url, fingerprint=root.fingerprint)
        if previous is None or previous.root.fingerprint != root.fingerprint:
            logs.emit("INFO", "trusted root updated over TUF", tuf_url=self.source.url, fingerprint=root.fingerprint)
        return True

    def _failed(self, error: str) -> None:
        self._next_attempt = self._clock() + self._retry_interval()
        self._last_error = error
        if not self._failing:
            self._failing = True
            loaded = self._current
            logs.emit(
                "WARNING",
                "trusted root refresh failed; keeping the last good root",
                tuf_url=self.source.url,
                error=error[:500],
                kept=loaded.root.fingerprint if loaded is not None else None,
                kept_origin=loaded.origin.value if loaded is not None else None,
            )


# -- configuration

_ENV_KEYS = (
    "SIGWARD_TUF_URL",
    "SIGWARD_TUF_ROOT",
    "SIGWARD_TUF_CACHE",
    "SIGWARD_TUF_REFRESH_SECONDS",
    "SIGWARD_TUF_OFFLINE",
    "XDG_CACHE_HOME",
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A boolean setting (1/0, true/false, …): anything else is a configuration error naming the variable."""
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r} is not a boolean (use 1 or 0)")


def _url(value: str, name: str = "SIGWARD_TUF_URL") -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise ConfigurationError(f"{name}={value!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(f"{name} must not carry credentials")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name}={value!r} must not have a query or fragment")
    return value.strip().rstrip("/")


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/sigward/tuf``, else a per-user directory under the temp dir (Cloud Run: only /tmp is
    writable)."""
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        return Path(xdg) / "sigward" / "tuf"
    return Path(tempfile.gettempdir()) / f"sigward-tuf-{os.getuid()}"


def _read_bootstrap(path: str, name: str = "SIGWARD_TUF_ROOT") -> bytes:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TUF_ROOT_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {name} {path}: {exc.strerror}") from None
    if len(raw) > MAX_TUF_ROOT_BYTES:
        raise ConfigurationError(f"{name} {path}: larger than {MAX_TUF_ROOT_BYTES} bytes")
    return raw


def _check_tuf_root(raw: bytes, where: str) -> None:
    problem = tuf_root_problem(raw)
    if problem is not None:
        raise ConfigurationError(f"{where} {problem}")


def source_from_env(env: Mapping[str, str]) -> tuple[TrustRootSource, bool]:
    """The TUF source the environment names, and whether it is offline (``SIGWARD_TUF_OFFLINE``)."""
    offline = env_flag(env, "SIGWARD_TUF_OFFLINE")
    url = _url(env.get("SIGWARD_TUF_URL") or PUBLIC_GOOD_TUF_URL)
    root_path = env.get("SIGWARD_TUF_ROOT", "").strip()
    if root_path:
        bootstrap = _read_bootstrap(root_path)
        _check_tuf_root(bootstrap, f"SIGWARD_TUF_ROOT {root_path}")
    else:
        try:
            bootstrap = bundled_file(url, BUNDLED_TUF_ROOT)
        except FileNotFoundError:
            if not offline:
                raise ConfigurationError(
                    f"SIGWARD_TUF_URL={url} has no bundled TUF root: set SIGWARD_TUF_ROOT to its root.json"
                ) from None
            bootstrap = b""
    try:
        fallback: bytes | None = bundled_file(url, BUNDLED_TRUSTED_ROOT)
    except FileNotFoundError:
        fallback = None
    refresh_text = env.get("SIGWARD_TUF_REFRESH_SECONDS", "").strip()
    refresh = DEFAULT_REFRESH_SECONDS
    if refresh_text:
        try:
            refresh = float(refresh_text)
        except ValueError:
            refresh = -1.0
        if not refresh > 0 or refresh == float("inf"):
            raise ConfigurationError(f"SIGWARD_TUF_REFRESH_SECONDS={refresh_text!r} is not a positive number")
    cache_text = env.get("SIGWARD_TUF_CACHE", "").strip()
    cache = Path(cache_text) if cache_text else default_cache_dir(env)
    source = TrustRootSource(
        url=url, bootstrap_root=bootstrap, cache_dir=cache, fallback=fallback, refresh_seconds=refresh
    )
    return source, offline


class _ProcessHolder:
    """One :class:`TrustRootHolder` per process for one TUF repository's settings, rebuilt only when they change
    (tests change them); one trusted root per process, like the other runtime singletons."""

    def __init__(
        self, env_keys: tuple[str, ...], from_env: Callable[[Mapping[str, str]], tuple[TrustRootSource, bool]]
    ) -> None:
        self._env_keys = env_keys
        self._from_env = from_env
        self._lock = threading.Lock()
        self._current: tuple[tuple[str, ...], TrustRootHolder] | None = None

    def get(self, env: Mapping[str, str]) -> TrustRootHolder:
        key = tuple(env.get(name, "") for name in self._env_keys)
        current = self._current
        if current is not None and current[0] == key:
            return current[1]
        with self._lock:
            if self._current is None or self._current[0] != key:
                source, offline = self._from_env(env)
                self._current = (key, TrustRootHolder(source, offline=offline))
            return self._current[1]

    def reset(self) -> None:
        with self._lock:
            self._current = None


_default = _ProcessHolder(_ENV_KEYS, source_from_env)


def default_holder(env: Mapping[str, str]) -> TrustRootHolder:
    """The process-wide holder for the environment's settings (rebuilt only when they change: tests change them)."""
    return _default.get(env)


# -- GitHub's Sigstore instance (private and internal repositories' artifact attestations)

GITHUB_TUF_URL = "https://tuf-repo.github.com"
# gh caches GitHub's trusted root for a day; GitHub rotates its Fulcio/TSA pair every 6-7 months with ~3 weeks of
# overlap, so a day is far inside the overlap and a pinned file (SIGWARD_GITHUB_TRUSTED_ROOT) is for offline use only.
GITHUB_REFRESH_SECONDS = 24 * 3600.0
_GITHUB_ENV_KEYS = (
    "SIGWARD_GITHUB_TUF_URL",
    "SIGWARD_GITHUB_TUF_ROOT",
    "SIGWARD_TUF_CACHE",
    "SIGWARD_TUF_OFFLINE",
    "XDG_CACHE_HOME",
)


def bundled_github_tuf_root() -> bytes:
    """The TUF root sigward ships for ``tuf-repo.github.com`` (the one gh embeds; see sigward/data/tuf/README.md)."""
    from importlib import resources

    return (resources.files("sigward") / "data" / "tuf" / "tuf-repo.github.com" / "root.json").read_bytes()


def github_source_from_env(env: Mapping[str, str]) -> tuple[TrustRootSource, bool]:
    """GitHub's TUF repository (``SIGWARD_GITHUB_TUF_URL``/``SIGWARD_GITHUB_TUF_ROOT`` for a mirror or a test), and
    whether it is offline. No trusted root is bundled for it: offline, or before the first refresh, there is none
    unless a verified copy is on disk."""
    offline = env_flag(env, "SIGWARD_TUF_OFFLINE")
    url = _url(env.get("SIGWARD_GITHUB_TUF_URL") or GITHUB_TUF_URL, "SIGWARD_GITHUB_TUF_URL")
    root_path = env.get("SIGWARD_GITHUB_TUF_ROOT", "").strip()
    if root_path:
        bootstrap = _read_bootstrap(root_path, "SIGWARD_GITHUB_TUF_ROOT")
        _check_tuf_root(bootstrap, f"SIGWARD_GITHUB_TUF_ROOT {root_path}")
    elif url == GITHUB_TUF_URL:
        bootstrap = bundled_github_tuf_root()
    else:
        raise ConfigurationError(
            f"SIGWARD_GITHUB_TUF_URL={url} has no bundled TUF root: set SIGWARD_GITHUB_TUF_ROOT to its root.json"
        )
    cache_text = env.get("SIGWARD_TUF_CACHE", "").strip()
    cache = Path(cache_text) if cache_text else default_cache_dir(env)
    source = TrustRootSource(
        url=url,
        bootstrap_root=bootstrap,
        cache_dir=cache,
        fallback=None,
        refresh_seconds=GITHUB_REFRESH_SECONDS,
        pinned_setting="SIGWARD_GITHUB_TRUSTED_ROOT",
    )
    return source, offline


_github = _ProcessHolder(_GITHUB_ENV_KEYS, github_source_from_env)


def github_holder(env: Mapping[str, str]) -> TrustRootHolder:
    """The process-wide holder of GitHub's trusted root (built on first use: most deployments never need it)."""
    return _github.get(env)


def reset() -> None:
    """Forget the process-wide holders (a running refresh finishes on its own)."""
    _default.reset()
    _github.reset()
    for hook in _RESET_HOOKS:
        hook()


# Further holders to forget on :func:`reset` (:mod:`sigward.verify.policy_tuf` registers its own).
_RESET_HOOKS: list[Callable[[], None]] = []


__all__ = [
    "CACHE_MAX_AGE_SECONDS",
    "DEFAULT_REFRESH_SECONDS",
    "GITHUB_TUF_URL",
    "RefreshFailure",
    "RootOrigin",
    "TrustRootHolder",
    "TrustRootRefreshError",
    "TrustRootSource",
    "default_holder",
    "fetch_trusted_root",
    "github_holder",
    "github_source_from_env",
    "reset",
    "source_from_env",
]

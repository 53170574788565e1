"""Registry credentials from a docker ``config.json``: ``auths``, ``credHelpers`` and ``credsStore``.

The precedence is Docker's: a ``credHelpers`` entry for the host, else the ``credsStore`` helper, else
``auths`` (also used when the store has nothing for the host). Secrets never appear in a message, a log line
or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import selectors
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigward.errors import ConfigurationError

log = logging.getLogger(__name__)

# A docker config is a few kilobytes; a larger file is not one (and is not worth reading into memory).
MAX_CONFIG_BYTES = 1024 * 1024
# docker-credential-ecr-login and -gcloud call their cloud's API; a helper that takes longer is stuck.
HELPER_TIMEOUT_SECONDS = 10.0
# A helper answers with one small JSON object; more output than this is not an answer.
MAX_HELPER_OUTPUT_BYTES = 64 * 1024
# Helpers such as ecr-login hand out credentials that expire (12 h for ECR); re-ask after this long.
CREDENTIAL_CACHE_SECONDS = 300.0
# Docker Hub's credentials are stored under its v1 index URL, whatever name the image uses.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
# A helper name becomes part of an executable name: no path separators, nothing a shell would interpret.
_HELPER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# What helpers print when they have nothing for the host (docker-credential-helpers' ErrCredentialsNotFound).
_NOT_FOUND_MARKER = b"credentials not found"
# Docker's convention: a helper or config entry with this user name carries an identity (refresh) token.
IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 - a marker, not a secret


@dataclass(frozen=True)
class Credentials:
    """A user name with a password or an identity token; ``repr`` and ``str`` never show the secret."""

    username: str
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        kind = "identity-token" if self.identity_token else "password"
        return f"Credentials(username={self.username!r}, {kind}=<hidden>)"

    __str__ = __repr__

    @property
    def identity(self) -> str:
        """A stable, non-reversible name for these credentials (cache keys must not hold the secret)."""
        digest = hashlib.sha256(f"{self.username}\0{self.password}\0{self.identity_token}".encode()).hexdigest()
        return f"{self.username}#{digest[:16]}"

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password)


def config_hostname(key: str) -> str:
    """Docker's ``ConvertToHostname``: ``https://host:5000/v2/`` → ``host:5000``."""
    key = key.strip()
    for prefix in ("http://", "https://"):
        if key.lower().startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.split("/", 1)[0].lower()


def _lookup_names(host: str) -> tuple[str, ...]:
    host = host.lower()
    if host in DOCKER_HUB_NAMES:
        return (DOCKER_HUB_KEY, "index.docker.io", "docker.io", "registry-1.docker.io")
    return (host,)


def _server_url(host: str) -> str:
    """What a helper is asked for: the key docker itself would use."""
    return DOCKER_HUB_KEY if host.lower() in DOCKER_HUB_NAMES else host.lower()


def _from_auth_entry(entry: Any, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    username = entry.get("username") or ""
    password = entry.get("password") or ""
    identity_token = entry.get("identitytoken") or ""
    auth = entry.get("auth") or ""
    if not all(isinstance(v, str) for v in (username, password, identity_token, auth)):
        raise ConfigurationError(f"{source}: an auths entry has a non-string field")
    if auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigurationError(f"{source}: an auths entry has an 'auth' value that is not base64") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise ConfigurationError(f"{source}: an auths entry's 'auth' value is not user:password")
        username, password = user, secret
    if identity_token:
        return Credentials(username=username or IDENTITY_TOKEN_USER, identity_token=identity_token)
    if username and password:
        return Credentials(username=username, password=password)
    return None


def run_helper(helper: str, server_url: str, *, timeout: float = HELPER_TIMEOUT_SECONDS) -> Credentials | None:
    """``docker-credential-<helper> get``: the server URL on stdin, ``{"Username", "Secret"}`` on stdout.

    Output is read with a time and size bound; on failure the message names the helper and exit status only,
    since the output may hold a secret.
    """
    if not _HELPER_NAME_RE.match(helper):
        raise ConfigurationError(f"invalid credential helper name {helper[:64]!r}")
    program = f"docker-credential-{helper}"
    path = shutil.which(program)
    if path is None:
        raise ConfigurationError(f"credential helper {program} not found on PATH")
    deadline = time.monotonic() + timeout
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, helper name validated above, no shell
            [path, "get"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigurationError(f"credential helper {program} could not be run: {exc.strerror}") from None
    out = bytearray()
    too_much = timed_out = False
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(server_url.encode() + b"\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not sel.select(left):
                    continue
                chunk = os.read(proc.stdout.fileno(), 8192)
                if not chunk:
                    break
                out += chunk
                if len(out) > MAX_HELPER_OUTPUT_BYTES:
                    too_much = True
                    break
        if not (timed_out or too_much):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if timed_out:
        raise ConfigurationError(f"credential helper {program} did not answer within {timeout:g} s")
    if too_much:
        raise ConfigurationError(f"credential helper {program} printed more than {MAX_HELPER_OUTPUT_BYTES} bytes")
    if proc.returncode != 0:
        if _NOT_FOUND_MARKER in bytes(out).lower():
            return None
        raise ConfigurationError(f"credential helper {program} failed with exit status {proc.returncode}")
    try:
        answer = json.loads(bytes(out))
    except ValueError:
        raise ConfigurationError(f"credential helper {program} did not print JSON") from None
    if not isinstance(answer, dict):
        raise ConfigurationError(f"credential helper {program} did not print a JSON object")
    username, secret = answer.get("Username", ""), answer.get("Secret", "")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise ConfigurationError(f"credential helper {program} printed a non-string Username or Secret")
    if not secret:
        return None
    if username == IDENTITY_TOKEN_USER:
        return Credentials(username=username, identity_token=secret)
    return Credentials(username=username, password=secret)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"


class CredentialStore:
    """Looks up credentials by registry host; the file is read once, answers are cached per host."""

    def __init__(self, config_path: Path | None = None, *, cache_seconds: float = CREDENTIAL_CACHE_SECONDS) -> None:
        self._path = config_path if config_path is not None else default_config_path()
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._config: dict[str, Any] | None = None
        self._cache: dict[str, tuple[float, Credentials | None]] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CredentialStore:
        return cls(default_config_path(environ))

    @classmethod
    def empty(cls) -> CredentialStore:
        """A store that never has credentials (anonymous access only)."""
        store = cls(Path("/nonexistent/sigward/config.json"))
        store._config = {}
        return store

    @property
    def path(self) -> Path:
        return self._path

    def _load(self) -> dict[str, Any]:
        with self._lock:
            if self._config is not None:
                return self._config
            self._config = self._read()
            return self._config

    def _read(self) -> dict[str, Any]:
        source = str(self._path)
        try:
            with self._path.open("rb") as fh:
                raw = fh.read(MAX_CONFIG_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigurationError(f"cannot read docker config {source}: {exc.strerror}") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigurationError(f"docker config {source} is larger than {MAX_CONFIG_BYTES} bytes")
        try:
            data = json.loads(raw)
        except ValueError:
            # Never echo the parser's message: it may quote part of a secret.
            raise ConfigurationError(f"docker config {source} is not valid JSON") from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"docker config {source} is not a JSON object")
        for key in ("auths", "credHelpers"):
            if not isinstance(data.get(key, {}), dict):
                raise ConfigurationError(f"docker config {source}: {key} must be an object")
        if not isinstance(data.get("credsStore", ""), str):
            raise ConfigurationError(f"docker config {source}: credsStore must be a string")
        return data

    def get(self, host: str) -> Credentials | None:
        """Credentials for a registry host (``host[:port]``), or ``None`` for anonymous access."""
        host = host.lower()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(host)
            if hit is not None and hit[0] > now:
                return hit[1]
            host_lock = self._host_locks.setdefault(host, threading.Lock())
        with host_lock:  # one helper run per host, however many threads ask at once
            with self._lock:
                hit = self._cache.get(host)
                if hit is not None and hit[0] > time.monotonic():
                    return hit[1]
            found = self._lookup(host)
            with self._lock:
                self._cache[host] = (time.monotonic() + self._cache_seconds, found)
            return found

    def _lookup(self, host: str) -> Credentials | None:
        config = self._load()
        if not config:
            return None
        names = _lookup_names(host)
        helpers: dict[str, Any] = config.get("credHelpers", {})
        for key, helper in helpers.items():
            if config_hostname(key) in {config_hostname(n) for n in names} and isinstance(helper, str):
                return run_helper(helper, _server_url(host))
        store = config.get("credsStore", "")
        if store:
            try:
                found = run_helper(store, _server_url(host))
            except ConfigurationError as exc:
                # A desktop store copied into a server image is common and should not break anonymous pulls.
                log.warning("credsStore ignored for %s: %s", host, exc)
                found = None
            if found is not None:
                return found
        auths: dict[str, Any] = config.get("auths", {})
        wanted = {config_hostname(n) for n in names}
        for key, entry in auths.items():
            if config_hostname(key) in wanted:
                creds = _from_auth_entry(entry, str(self._path))
                if creds is not None:
                    return creds
        return None

"""Fixtures shared by every test: real local registries (Debian's ``docker-registry``) and client settings
that trust them. The logic lives in :mod:`tests.support`; this file only wires it to pytest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sigward.registry import RegistryConfig
from tests.support.registry import LocalRegistry, local_config
from tests.support.tokenserver import IDENTITY_TOKEN, TOKEN_PASSWORD, TOKEN_USER, TokenServer

# The suite has no internet: the trusted root is the bundled one unless a test points SIGWARD_TUF_* at a local TUF
# repository (tests/support/tuf_repo.py); nothing may try to reach tuf-repo-cdn.sigstore.dev.
os.environ.setdefault("SIGWARD_TUF_OFFLINE", "1")


def _started(registry: LocalRegistry) -> Iterator[LocalRegistry]:
    registry.start()
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A registry without auth, shared by the whole session (do not stop it; use ``fresh_registry``)."""
    yield from _started(LocalRegistry(tmp_path_factory.mktemp("registry")))


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    """A registry of the test's own, which it may ``stop()`` and ``start()``."""
    yield from _started(LocalRegistry(tmp_path / "registry"))


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A registry behind htpasswd (Basic) auth (user and password in :mod:`tests.support.registry`)."""
    yield from _started(LocalRegistry(tmp_path_factory.mktemp("auth-registry"), auth="htpasswd"))


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(
        tmp_path_factory.mktemp("token-server"),
        users={TOKEN_USER: TOKEN_PASSWORD},
        refresh_tokens={IDENTITY_TOKEN: TOKEN_USER},
    )
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer) -> Iterator[LocalRegistry]:
    """A registry behind token (Bearer) auth, tokens from ``token_server`` (users in its module)."""
    workdir = tmp_path_factory.mktemp("token-registry")
    yield from _started(LocalRegistry(workdir, auth="token", token_server=token_server))


@pytest.fixture
def registry_config(registry: LocalRegistry) -> RegistryConfig:
    """Settings that make a :class:`~sigward.registry.RegistryClient` trust the session ``registry``."""
    return local_config(registry)


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], Path]:
    """Write a docker ``config.json`` and point ``DOCKER_CONFIG`` at it; returns the file's path."""

    def write(config: dict[str, Any]) -> Path:
        directory = tmp_path / "docker-config"
        directory.mkdir(exist_ok=True)
        path = directory / "config.json"
        path.write_text(json.dumps(config))
        monkeypatch.setenv("DOCKER_CONFIG", str(directory))
        return path

    return write

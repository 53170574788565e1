"""Registry authentication end to end against real registries: htpasswd (Basic) and token (Bearer) auth, with
credentials from a docker config.json (DOCKER_CONFIG), a credential helper, and an identity token."""

from __future__ import annotations

import base64
import logging
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sigward.deadline import Deadline
from sigward.errors import AccessDeniedError
from sigward.references import Repository, parse_image_reference
from sigward.registry import CredentialStore, RegistryClient
from tests.support.registry import HTPASSWD_PASSWORD, HTPASSWD_USER, LocalRegistry, local_config
from tests.support.tokenserver import IDENTITY_TOKEN, SERVICE, TOKEN_PASSWORD, TOKEN_USER, TokenServer

pytestmark = pytest.mark.registry

WriteConfig = Callable[[dict[str, Any]], Path]


def auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def deadline() -> Deadline:
    return Deadline.after(10)


# -- Basic (htpasswd) -------------------------------------------------------------------------------------------


def test_basic_auth_with_docker_config(auth_registry: LocalRegistry, docker_config: WriteConfig) -> None:
    digest = auth_registry.push_image("regtest/basic", "v1")
    docker_config({"auths": {f"http://{auth_registry.host}": auth_entry(HTPASSWD_USER, HTPASSWD_PASSWORD)}})
    with RegistryClient(local_config(auth_registry)) as client:  # credentials from $DOCKER_CONFIG
        ref = parse_image_reference(f"{auth_registry.host}/regtest/basic:v1")
        assert client.resolve(ref, deadline=deadline()).digest == digest
        manifest = client.get_manifest(ref.repo, digest, deadline=deadline())
        assert client.get_blob(ref.repo, manifest.layers[0].digest, deadline=deadline())
        # The first request learns the scheme (401); later ones authenticate up front.
        by_kind = client.stats.snapshot()["by_kind"]
        assert by_kind == {"manifest.head": 2, "manifest.get": 1, "blob": 1}, by_kind


def test_basic_auth_wrong_password(auth_registry: LocalRegistry, docker_config: WriteConfig) -> None:
    auth_registry.push_image("regtest/basic", "v1")
    docker_config({"auths": {auth_registry.host: auth_entry(HTPASSWD_USER, "wrong-password-xyz")}})
    with RegistryClient(local_config(auth_registry)) as client, pytest.raises(AccessDeniedError) as err:
        client.get_manifest(Repository(auth_registry.host, "regtest/basic"), "v1", deadline=deadline())
    message = str(err.value)
    assert auth_registry.host in message
    assert "credentials" in message
    assert "wrong-password-xyz" not in message
    assert base64.b64encode(f"{HTPASSWD_USER}:wrong-password-xyz".encode()).decode() not in message


def test_basic_auth_without_credentials(auth_registry: LocalRegistry, docker_config: WriteConfig) -> None:
    docker_config({"auths": {}})
    with (
        RegistryClient(local_config(auth_registry)) as client,
        pytest.raises(AccessDeniedError, match="none are configured"),
    ):
        client.get_manifest(Repository(auth_registry.host, "regtest/basic"), "v1", deadline=deadline())


def test_basic_auth_with_credential_helper(
    auth_registry: LocalRegistry, docker_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = auth_registry.push_image("regtest/helper", "v1")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-sigwardtest"
    helper.write_text(
        "#!/bin/sh\nread host\n"
        f'[ "$host" = "{auth_registry.host}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}\n'
        f'echo \'{{"Username":"{HTPASSWD_USER}","Secret":"{HTPASSWD_PASSWORD}"}}\'\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    docker_config({"credHelpers": {auth_registry.host: "sigwardtest"}})
    with RegistryClient(local_config(auth_registry)) as client:
        got = client.get_manifest(Repository(auth_registry.host, "regtest/helper"), "v1", deadline=deadline())
        assert got.digest == digest


# -- Bearer (token server) --------------------------------------------------------------------------------------


def token_client(token_registry: LocalRegistry, token_server: TokenServer, path: Path) -> RegistryClient:
    return RegistryClient(local_config(token_registry, token_server), credentials=CredentialStore(path))


def test_token_flow_end_to_end(
    token_registry: LocalRegistry, token_server: TokenServer, docker_config: WriteConfig
) -> None:
    digest = token_registry.push_image("regtest/tok", "v1")
    path = docker_config({"auths": {token_registry.host: auth_entry(TOKEN_USER, TOKEN_PASSWORD)}})
    token_server.clear()
    with token_client(token_registry, token_server, path) as client:
        ref = parse_image_reference(f"{token_registry.host}/regtest/tok:v1")
        assert client.resolve(ref, deadline=deadline()).digest == digest
        manifest = client.get_manifest(ref.repo, digest, deadline=deadline())
        blob = client.get_blob(ref.repo, manifest.layers[0].digest, deadline=deadline())
        assert len(blob) == manifest.layers[0].size
        seen = token_server.seen()
        # One token for the repository, requested with the registry's service and a pull-only scope, with the
        # registry's credentials as Basic; reused for the following calls.
        assert len(seen) == 1
        [request] = seen
        assert request.params["service"] == [SERVICE]
        assert request.scopes == ["repository:regtest/tok:pull"]
        assert request.user == TOKEN_USER
        snapshot = client.stats.snapshot()
        assert snapshot["by_kind"] == {"manifest.head": 2, "token": 1, "manifest.get": 1, "blob": 1}
        assert snapshot["by_host"][token_registry.host] == 5  # the realm is the registry's own origin
        # Another repository needs its own token, fetched before the request (the scheme is known).
        token_registry.push_image("regtest/tok2", "v1")
        client.get_manifest(Repository(token_registry.host, "regtest/tok2"), "v1", deadline=deadline())
        assert [r.scopes for r in token_server.seen()] == [
            ["repository:regtest/tok:pull"],
            ["repository:regtest/tok2:pull"],
        ]
        assert client.stats.count(kind="manifest.get") == 2


def test_token_flow_wrong_password(
    token_registry: LocalRegistry,
    token_server: TokenServer,
    docker_config: WriteConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token_registry.push_image("regtest/tok", "v1")
    path = docker_config({"auths": {token_registry.host: auth_entry(TOKEN_USER, "not-the-password")}})
    caplog.set_level(logging.DEBUG)
    with token_client(token_registry, token_server, path) as client, pytest.raises(AccessDeniedError) as err:
        client.get_manifest(Repository(token_registry.host, "regtest/tok"), "v1", deadline=deadline())
    assert "refused the credentials configured for" in str(err.value)
    assert f"token service {token_registry.host}" in str(err.value)
    assert "not-the-password" not in str(err.value)
    assert "not-the-password" not in caplog.text
    assert base64.b64encode(f"{TOKEN_USER}:not-the-password".encode()).decode() not in caplog.text


def test_token_flow_anonymous_is_denied(
    token_registry: LocalRegistry, token_server: TokenServer, docker_config: WriteConfig
) -> None:
    token_registry.push_image("regtest/tok", "v1")
    path = docker_config({"auths": {}})
    with token_client(token_registry, token_server, path) as client, pytest.raises(AccessDeniedError) as err:
        client.get_manifest(Repository(token_registry.host, "regtest/tok"), "v1", deadline=deadline())
    assert "anonymously" in str(err.value)
    assert f"{token_registry.host}/regtest/tok" in str(err.value)


def test_token_flow_with_identity_token(
    token_registry: LocalRegistry, token_server: TokenServer, docker_config: WriteConfig
) -> None:
    digest = token_registry.push_image("regtest/idtok", "v1")
    path = docker_config(
        {
            "auths": {
                token_registry.host: {
                    "auth": base64.b64encode(b"<token>:").decode(),
                    "identitytoken": IDENTITY_TOKEN,
                }
            }
        }
    )
    token_server.clear()
    with token_client(token_registry, token_server, path) as client:
        got = client.get_manifest(Repository(token_registry.host, "regtest/idtok"), "v1", deadline=deadline())
        assert got.digest == digest
    [request] = token_server.seen()
    assert request.method == "POST"
    assert request.params["grant_type"] == ["refresh_token"]
    assert request.params["scope"] == ["repository:regtest/idtok:pull"]
    assert not request.had_authorization


def test_token_is_fetched_once_for_many_threads(
    token_registry: LocalRegistry, token_server: TokenServer, docker_config: WriteConfig
) -> None:
    token_registry.push_image("regtest/tokpar-a", "v1")
    digest = token_registry.push_image("regtest/tokpar-b", "v1")
    path = docker_config({"auths": {token_registry.host: auth_entry(TOKEN_USER, TOKEN_PASSWORD)}})
    token_server.clear()
    with token_client(token_registry, token_server, path) as client:
        # Learn the registry's scheme on one repository, then let 16 threads need a token for another one at once.
        client.get_manifest(Repository(token_registry.host, "regtest/tokpar-a"), "v1", deadline=deadline())
        repo = Repository(token_registry.host, "regtest/tokpar-b")
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda _: client.get_manifest(repo, digest, deadline=deadline()).digest, range(32)))
        assert results == [digest] * 32
    assert [r.scopes for r in token_server.seen()] == [
        ["repository:regtest/tokpar-a:pull"],
        ["repository:regtest/tokpar-b:pull"],
    ]

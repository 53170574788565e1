"""Workload-identity registry credentials against a real docker-registry with token auth, and the regressions of
"credentials only to their registry": real google-auth against a metadata-server stand-in, real boto3 against
moto's ECR, and hostile registries (redirect then 401, a realm on another port or a look-alike host)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.deadline import Deadline
from sigward.errors import AccessDeniedError
from sigward.references import Repository
from sigward.registry import CredentialStore, RegistryClient, RegistryConfig
from sigward.registry.providers import ProviderName
from tests.support.gce_metadata import AccessTokenMetadata, install_access_token_metadata
from tests.support.httpservers import Reply, ScriptedServer, Seen
from tests.support.moto import MotoServer, clear_ambient_aws
from tests.support.registry import LocalRegistry
from tests.support.tokenserver import TokenServer

pytestmark = pytest.mark.registry


def deadline() -> Deadline:
    return Deadline.after(20)


@pytest.fixture
def provider_server(tmp_path: Path) -> Iterator[TokenServer]:
    (tmp_path / "tokens").mkdir()
    # The first user is the one LocalRegistry pushes test images as; clients never know its password.
    server = TokenServer(tmp_path / "tokens", users={"pusher": "pusher-password-unknown-to-clients"})
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def provider_registry(tmp_path: Path, provider_server: TokenServer) -> Iterator[LocalRegistry]:
    reg = LocalRegistry(tmp_path / "reg", auth="token", token_server=provider_server)
    reg.start()
    try:
        yield reg
    finally:
        reg.close()


def _client(reg: LocalRegistry, provider: str, tmp_path: Path) -> RegistryClient:
    config = RegistryConfig.from_env(
        {
            "SIGWARD_INSECURE_REGISTRIES": reg.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
            "SIGWARD_REGISTRY_PROVIDERS": f"{reg.host}={provider}",
        }
    )
    # No docker config at all: the credentials can only come from the workload identity.
    return RegistryClient(config, credentials=CredentialStore(tmp_path / "no-docker-config.json"))


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AccessTokenMetadata]:
    md = install_access_token_metadata(monkeypatch, tmp_path)
    try:
        yield md
    finally:
        md.close()


def test_google_adc_token_pulls_with_no_docker_config(
    provider_registry: LocalRegistry,
    provider_server: TokenServer,
    metadata: AccessTokenMetadata,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider_registry.push_image("prov/google", "v1")
    with _client(provider_registry, "google", tmp_path) as client:
        repo = Repository(provider_registry.host, "prov/google")
        # The token server knows no token yet: the first metadata token is refused (wrong token).
        with pytest.raises(AccessDeniedError, match="refused the credentials"):
            client.get_manifest(repo, "v1", deadline=deadline())
        assert metadata.issued, "google-auth never asked the metadata server"
        # Accept exactly the token the metadata server issued, as Google's token realm would.
        provider_server.users["oauth2accesstoken"] = metadata.issued[-1]
        manifest = client.get_manifest(repo, "v1", deadline=deadline())
        assert manifest.digest.startswith("sha256:")
        basic = [r for r in provider_server.seen() if r.user == "oauth2accesstoken"]
        assert basic, "the token realm never saw oauth2accesstoken"
        # The same rule restricted to providers without google gets no credentials: a decided denial.
        narrowed = client.with_providers((ProviderName.DEFAULT, ProviderName.AMAZON))
        with pytest.raises(AccessDeniedError, match="anonymously"):
            narrowed.get_manifest(Repository(provider_registry.host, "prov/google"), "v1", deadline=deadline())
    for token in metadata.issued:
        assert token not in caplog.text


def test_google_token_refreshed_before_expiry(
    provider_registry: LocalRegistry, provider_server: TokenServer, metadata: AccessTokenMetadata, tmp_path: Path
) -> None:
    from sigward.registry.providers.google import GoogleProvider

    now = [0.0]
    provider = GoogleProvider(clock=lambda: now[0] + __import__("time").time())
    first = provider.get("gcr.io")
    assert first is not None and first.password == metadata.issued[-1]
    assert provider.get("gcr.io") == first  # cached
    assert len(metadata.issued) == 1
    now[0] = 3599 - 299  # inside the 5-minute refresh margin
    second = provider.get("gcr.io")
    assert second is not None and second.password != first.password
    assert len(metadata.issued) == 2


@pytest.mark.parametrize("hostile", ["redirect_then_401", "realm_on_another_port", "realm_on_lookalike_host"])
def test_credentials_never_reach_another_host(hostile: str, tmp_path: Path) -> None:
    """Regression tests named after the bug class: the registry's Basic credentials (docker config) must never be
    sent to the origin that asked after a redirect, nor to a realm that is not the registry's own origin."""
    secret = "reg-password-never-elsewhere"
    evil_seen: list[Seen] = []

    def evil(seen: Seen) -> Reply:
        evil_seen.append(seen)
        if seen.path.startswith("/token"):
            return Reply(status=200, headers={"Content-Type": "application/json"}, body=b'{"token":"anon"}')
        realm = f'Bearer realm="http://{evil_server.host}/token",service="evil"'
        return Reply(status=401, headers={"WWW-Authenticate": realm})

    evil_server = ScriptedServer(evil, "127.0.0.1")

    def registry(seen: Seen) -> Reply:
        if hostile == "redirect_then_401":
            return Reply(status=307, headers={"Location": f"http://{evil_server.host}{seen.path}"})
        if hostile == "realm_on_another_port":
            realm = f"http://{evil_server.host}/token"
        else:
            realm = f"http://localhost:{reg_server.host.rsplit(':', 1)[1]}/token"
        return Reply(status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'})

    reg_server = ScriptedServer(registry, "127.0.0.1")
    try:
        config_path = tmp_path / "config.json"
        pair = base64.b64encode(f"user:{secret}".encode()).decode()
        config_path.write_text(json.dumps({"auths": {reg_server.host: {"auth": pair}}}))
        hosts = f"{reg_server.host},{evil_server.host},localhost:{reg_server.host.rsplit(':', 1)[1]}"
        config = RegistryConfig.from_env(
            {"SIGWARD_INSECURE_REGISTRIES": hosts, "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1,localhost"}
        )
        with (
            RegistryClient(config, credentials=CredentialStore(config_path)) as client,
            pytest.raises(AccessDeniedError) as err,
        ):
            client.get_manifest(Repository(reg_server.host, "app/x"), "v1", deadline=deadline())
        assert secret not in str(err.value)
        everywhere = [s for s in evil_seen + reg_server.requests_seen() if s.headers.get("authorization")]
        assert not any(pair in s.headers.get("authorization", "") for s in everywhere if s in evil_seen)
        assert all("Basic" not in s.headers.get("authorization", "") for s in evil_seen)
        if hostile == "redirect_then_401":
            assert "not sent to another host" in str(err.value)
            assert not [s for s in evil_seen if s.path.startswith("/token")]
    finally:
        reg_server.close()
        evil_server.close()


def test_realm_on_another_port_gets_no_credentials_real_registry(tmp_path: Path, provider_server: TokenServer) -> None:
    """A real docker-registry whose realm is a token server on another loopback port: the token server never sees
    the configured password; the pull fails as a decided denial naming why."""
    provider_server.users["alice"] = "alice-password"
    reg = LocalRegistry(tmp_path / "foreign", auth="token", token_server=provider_server, realm=provider_server.realm)
    reg.start()
    try:
        reg.push_image("prov/foreign", "v1")
        path = tmp_path / "config.json"
        pair = base64.b64encode(b"alice:alice-password").decode()
        path.write_text(json.dumps({"auths": {reg.host: {"auth": pair}}}))
        provider_server.clear()
        config = RegistryConfig.from_env(
            {
                "SIGWARD_INSECURE_REGISTRIES": f"{reg.host},{provider_server.host}",
                "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
            }
        )
        with (
            RegistryClient(config, credentials=CredentialStore(path)) as client,
            pytest.raises(AccessDeniedError, match="token realm is on another host"),
        ):
            client.get_manifest(Repository(reg.host, "prov/foreign"), "v1", deadline=deadline())
        assert provider_server.seen(), "the realm was never asked"
        assert not any(r.had_authorization for r in provider_server.seen())
    finally:
        reg.close()


def test_amazon_ecr_token_from_moto(
    provider_registry: LocalRegistry,
    provider_server: TokenServer,
    aws_moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import boto3  # type: ignore[import-untyped]

    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASIGWARDTESTKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sigward-test-secret-not-a-credential")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", aws_moto_server.url)
    answer = boto3.client("ecr", region_name="us-east-1", endpoint_url=aws_moto_server.url).get_authorization_token()
    user, _, password = base64.b64decode(answer["authorizationData"][0]["authorizationToken"]).decode().partition(":")
    provider_server.users[user] = password
    provider_registry.push_image("prov/ecr", "v1")
    with _client(provider_registry, "amazon", tmp_path) as client:
        manifest = client.get_manifest(Repository(provider_registry.host, "prov/ecr"), "v1", deadline=deadline())
        assert manifest.digest.startswith("sha256:")
        assert any(r.user == user for r in provider_server.seen())
        with pytest.raises(AccessDeniedError):
            client.with_providers((ProviderName.GOOGLE,)).get_manifest(
                Repository(provider_registry.host, "prov/ecr"), "v1", deadline=deadline()
            )
    provider_server.users[user] = "not-the-ecr-password"
    with (
        _client(provider_registry, "amazon", tmp_path) as client,
        pytest.raises(AccessDeniedError, match="refused the credentials"),
    ):
        client.get_manifest(Repository(provider_registry.host, "prov/ecr"), "v1", deadline=deadline())

"""Registry credentials from each cloud's workload identity, with the real client libraries against loopback
stand-ins in front of a real token-auth docker-registry, and no docker config anywhere:

- azure: real azure-identity (``DefaultAzureCredential``, workload identity) against an HTTPS Entra stand-in, the
  token exchanged at an HTTPS ACR stand-in (``/oauth2/exchange``, ``/oauth2/token``);
- github: ``GITHUB_TOKEN`` as Basic to a ghcr-like ``/token`` realm;
- amazon: the GCP → AWS federation (metadata ID token → moto STS AssumeRoleWithWebIdentity) → moto ECR
  GetAuthorizationToken with the federated credentials;
- ECR Public: which hosts reach the amazon provider, and anonymous without AWS credentials (the token itself is
  tested against an ecr-public stand-in in test_registry_ecr_public_real.py: moto has no ecr-public).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sigward import aws_federation
from sigward.deadline import Deadline
from sigward.errors import AccessDeniedError, ConfigurationError
from sigward.references import Repository
from sigward.registry import CredentialStore, RegistryClient, RegistryConfig
from sigward.registry.credentials import Credentials
from sigward.registry.providers import ProviderChain, ProviderName
from tests.support.acr import AcrFront, EntraServer
from tests.support.gce_metadata import FakeMetadataServer
from tests.support.keyvault_server import _CLEARED as AZURE_CLEARED
from tests.support.keyvault_server import TENANT_ID
from tests.support.moto import ACCOUNT, REGION, MotoServer, clear_ambient_aws
from tests.support.registry import LocalRegistry
from tests.support.tokenserver import TokenServer

pytestmark = pytest.mark.registry


def deadline() -> Deadline:
    return Deadline.after(20)


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[TokenServer]:
    (tmp_path / "tokens").mkdir()
    server = TokenServer(tmp_path / "tokens", users={"pusher": "pusher-password-unknown-to-clients"})
    try:
        yield server
    finally:
        server.close()


def _client(host: str, provider: str, tmp_path: Path, *, insecure: bool = True) -> RegistryClient:
    env = {
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        "SIGWARD_REGISTRY_PROVIDERS": f"{host}={provider}",
    }
    if insecure:
        env["SIGWARD_INSECURE_REGISTRIES"] = host
    config = RegistryConfig.from_env(env)
    if os.environ.get("REQUESTS_CA_BUNDLE"):
        config = RegistryConfig(
            insecure_registries=config.insecure_registries,
            private_registries=config.private_registries,
            provider_map=config.provider_map,
            ca_bundle=os.environ["REQUESTS_CA_BUNDLE"],
        )
    return RegistryClient(config, credentials=CredentialStore(tmp_path / "no-docker-config.json"))


# -- azure ---------------------------------------------------------------------------------------------------------


@dataclass
class Acr:
    entra: EntraServer
    front: AcrFront
    registry: LocalRegistry


@pytest.fixture
def acr(tmp_path: Path, token_server: TokenServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Acr]:
    entra = EntraServer(tmp_path / "entra")
    for name in AZURE_CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in entra.environment().items():  # workload identity + the test CA
        monkeypatch.setenv(name, value)
    front = AcrFront(entra.ca, token_server, TENANT_ID, accept_entra=lambda token: token in entra.tokens)
    reg = LocalRegistry(tmp_path / "acr", auth="token", token_server=token_server, realm=front.realm)
    reg.start()
    front.upstream = reg.host
    try:
        yield Acr(entra, front, reg)
    finally:
        reg.close()
        front.close()
        entra.close()


def test_azure_workload_identity_exchange_pulls(
    acr: Acr, token_server: TokenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    repos = ("acr/app", "acr/tool", "acr/base")
    for repo in repos:
        acr.registry.push_image(repo, "v1")
    host = acr.front.host
    with _client(host, "azure", tmp_path, insecure=False) as client:
        for repo in repos:  # three scopes: three registry tokens, each asking the provider for the credential
            manifest = client.get_manifest(Repository(host, repo), "v1", deadline=deadline())
            assert manifest.digest.startswith("sha256:")
    # Real azure-identity asked the Entra stand-in with the federated token for the ACR audience.
    assert acr.entra.token_requests and all(
        r["scope"] == "https://containerregistry.azure.net/.default" for r in acr.entra.token_requests
    )
    # One exchange (the refresh token is cached until exp - 5 min), with the form ACR documents.
    assert len(acr.front.exchanges) == 1, acr.front.problems
    form = acr.front.exchanges[0]
    assert form["grant_type"] == "access_token" and form["service"] == host and form["tenant"] == TENANT_ID
    assert form["access_token"] in acr.entra.tokens
    # The registry token came from the refresh-token grant at the registry's own /oauth2/token realm.
    posts = [r for r in token_server.seen() if r.method == "POST"]
    assert posts and all(r.params["grant_type"] == ["refresh_token"] and r.user == "acr-workload" for r in posts)
    for secret in [*acr.entra.tokens, *token_server.refresh_tokens]:
        assert secret not in caplog.text


def test_azure_refresh_token_renewed_inside_margin(acr: Acr, tmp_path: Path) -> None:
    """A refresh token whose exp is within the 5-minute margin is exchanged again on every use (the twin of the
    single exchange above, counted at the stand-in)."""
    repos = ("acr/app", "acr/tool", "acr/base")
    for repo in repos:
        acr.registry.push_image(repo, "v1")
    host = acr.front.host
    acr.front.refresh_lifetime = 200  # exp inside the 300 s margin: renewed on every use
    with _client(host, "azure", tmp_path, insecure=False) as client:
        for repo in repos:
            client.get_manifest(Repository(host, repo), "v1", deadline=deadline())
    assert len(acr.front.exchanges) == len(repos)


@pytest.mark.parametrize("wrong", ["entra_refuses_the_federated_token", "acr_refuses_the_entra_token"])
def test_azure_wrong_entra_token_refused(acr: Acr, wrong: str, tmp_path: Path) -> None:
    acr.registry.push_image("acr/app", "v1")
    host = acr.front.host
    if wrong == "entra_refuses_the_federated_token":
        acr.entra.refuse_tokens = True
        expected: type[Exception] = ConfigurationError
    else:
        acr.front.accept_entra = lambda token: False  # a token for another tenant / audience
        expected = AccessDeniedError
    with _client(host, "azure", tmp_path, insecure=False) as client, pytest.raises(expected) as err:
        client.get_manifest(Repository(host, "acr/app"), "v1", deadline=deadline())
    assert "registry provider azure" in str(err.value)
    for token in acr.entra.tokens:
        assert token not in str(err.value)
    if wrong == "acr_refuses_the_entra_token":
        assert acr.front.problems == ["access_token"]


def test_azure_provider_excluded_pulls_anonymously_and_is_denied(acr: Acr, tmp_path: Path) -> None:
    acr.registry.push_image("acr/app", "v1")
    host = acr.front.host
    with _client(host, "azure", tmp_path, insecure=False) as client, pytest.raises(AccessDeniedError):
        client.with_providers((ProviderName.GOOGLE,)).get_manifest(
            Repository(host, "acr/app"), "v1", deadline=deadline()
        )
    assert acr.front.exchanges == [] and acr.entra.token_requests == []


# -- github --------------------------------------------------------------------------------------------------------


@pytest.fixture
def ghcr(tmp_path: Path, token_server: TokenServer) -> Iterator[LocalRegistry]:
    reg = LocalRegistry(tmp_path / "ghcr", auth="token", token_server=token_server)
    reg.start()
    try:
        yield reg
    finally:
        reg.close()


def test_github_token_sent_as_basic_to_the_token_realm(
    ghcr: LocalRegistry, token_server: TokenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pat = "ghp_sigwardTestToken0123456789abcdefABCD"
    token_server.users["sigward-bot"] = pat
    monkeypatch.setenv("GITHUB_TOKEN", pat)
    monkeypatch.setenv("GITHUB_ACTOR", "sigward-bot")
    ghcr.push_image("owner/app", "v1")
    with _client(ghcr.host, "github", tmp_path) as client:
        manifest = client.get_manifest(Repository(ghcr.host, "owner/app"), "v1", deadline=deadline())
    assert manifest.digest.startswith("sha256:")
    gets = [r for r in token_server.seen() if r.method == "GET" and r.had_authorization]
    assert gets and all(r.user == "sigward-bot" for r in gets)
    # A wrong token is refused by the realm: a decided denial, the token not in the message.
    token_server.users["sigward-bot"] = "ghp_another"
    with _client(ghcr.host, "github", tmp_path) as client, pytest.raises(AccessDeniedError) as err:
        client.get_manifest(Repository(ghcr.host, "owner/app"), "v1", deadline=deadline())
    assert pat not in str(err.value)


def test_github_without_token_is_anonymous_and_denied(
    ghcr: LocalRegistry, token_server: TokenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    ghcr.push_image("owner/app", "v1")
    with _client(ghcr.host, "github", tmp_path) as client, pytest.raises(AccessDeniedError, match="anonymously"):
        client.get_manifest(Repository(ghcr.host, "owner/app"), "v1", deadline=deadline())
    assert not any(r.had_authorization for r in token_server.seen())


# -- amazon through the GCP → AWS federation ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto-ecr-federation")) as server:
        yield server


@pytest.fixture
def federated(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeMetadataServer]:
    """A Cloud Run function's environment: no AWS credentials, the role to assume, STS and ECR at moto."""
    metadata = FakeMetadataServer()
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("SIGWARD_AWS_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/sigward-ecr")
    monkeypatch.setenv("GCE_METADATA_HOST", metadata.host)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", moto.url)
    monkeypatch.setenv("AWS_REGION", REGION)
    aws_federation.reset()
    moto.reset_recording()
    try:
        yield metadata
    finally:
        aws_federation.reset()
        metadata.close()


def _moto_ecr_password(moto: MotoServer) -> tuple[str, str]:
    """What moto's ECR hands any caller (set-up only, with static keys)."""
    import boto3  # type: ignore[import-untyped]

    client = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=moto.url,
        aws_access_key_id="AKIASIGWARDSETUP0001",
        aws_secret_access_key="setup-only-not-a-secret",
    )
    data = client.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return user, password


def test_amazon_ecr_token_with_federated_credentials(
    federated: FakeMetadataServer, moto: MotoServer, token_server: TokenServer, tmp_path: Path
) -> None:
    user, password = _moto_ecr_password(moto)
    moto.reset_recording()
    token_server.users[user] = password
    reg = LocalRegistry(tmp_path / "ecr", auth="token", token_server=token_server)
    reg.start()
    try:
        reg.push_image("ecr/app", "v1")
        with _client(reg.host, "amazon", tmp_path) as client:
            manifest = client.get_manifest(Repository(reg.host, "ecr/app"), "v1", deadline=deadline())
        assert manifest.digest.startswith("sha256:")
        recorded = moto.recorded()
        sts = [r for r in recorded if r.target == "AssumeRoleWithWebIdentity"]
        ecr = [r for r in recorded if r.target.endswith("GetAuthorizationToken")]
        assert len(sts) == 1 and sts[0].form["WebIdentityToken"] == federated.issued[0]
        # ECR was called with the assumed role's temporary keys, not with any static key.
        assert len(ecr) == 1 and ecr[0].access_key_id.startswith("ASIA")
        assert any(r.user == user for r in token_server.seen())
        # The registry refusing the ECR password: a decided denial.
        token_server.users[user] = "not-the-ecr-password"
        with (
            _client(reg.host, "amazon", tmp_path) as client,
            pytest.raises(AccessDeniedError, match="refused the credentials"),
        ):
            client.get_manifest(Repository(reg.host, "ecr/app"), "v1", deadline=deadline())
    finally:
        reg.close()


def test_amazon_without_role_or_credentials_is_configuration(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sigward.registry.providers.amazon import AmazonProvider

    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.delenv("SIGWARD_AWS_ROLE_ARN", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", moto.url)
    aws_federation.reset()
    with pytest.raises(ConfigurationError, match="no AWS credentials"):
        AmazonProvider().get(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com")
    aws_federation.reset()


# -- ECR Public ----------------------------------------------------------------------------------------------------


class _Counting:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, host: str) -> Credentials | None:
        self.asked.append(host)
        return Credentials(username="AWS", password="private-ecr-password")


@pytest.mark.parametrize(
    ("host", "owned"),
    [
        ("public.ecr.aws", True),
        ("PUBLIC.ECR.AWS:443", True),
        ("ecr-public.aws.com", True),
        ("public.ecr.aws:5000", False),
        ("public.ecr.aws.evil.example", False),
        ("evilpublic.ecr.aws", False),
    ],
)
def test_ecr_public_hosts_reach_amazon_and_are_anonymous_without_credentials(
    host: str, owned: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ECR Public (normalised like image references) is the amazon provider's; a look-alike or another port is not.
    With no AWS credentials in the SDK chain the real provider answers nothing: anonymous, nothing refused."""
    from sigward.registry.providers.amazon import AmazonProvider

    amazon = _Counting()
    chain = ProviderChain(providers={ProviderName.AMAZON: amazon}, host_map={})
    found = chain.get(host)
    assert (found is not None) is owned and amazon.asked == ([host] if owned else [])
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.delenv("SIGWARD_AWS_ROLE_ARN", raising=False)
    aws_federation.reset()
    if owned:
        assert AmazonProvider().get(host) is None

"""ECR Public credentials: the real boto3 ``ecr-public`` client (SigV4, AWS JSON 1.1) against an HTTPS stand-in of
the ECR Public API, its token used as Basic at a real docker-registry's token realm; no docker config anywhere.

Negative twins: a registry that refuses the token, the token never reaching another registry, no AWS credentials
(anonymous, the public registry still serves), credentials AWS refuses (anonymous with a warning), the ECR Public API
failing (an infrastructure error, not anonymous), an expiring token refreshed before the registry sees it expired."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sigward import aws_federation
from sigward.deadline import Deadline
from sigward.errors import AccessDeniedError, ExternalServiceError
from sigward.references import Repository
from sigward.registry import CredentialStore, RegistryClient, RegistryConfig
from sigward.registry.providers import ProviderName
from sigward.registry.providers.amazon import ANONYMOUS_RECHECK_SECONDS, REFRESH_MARGIN_SECONDS, AmazonProvider
from tests.support.ecr_public import CONTENT_TYPE, TARGET, USER, EcrPublicApi
from tests.support.moto import clear_ambient_aws
from tests.support.registry import LocalRegistry
from tests.support.tokenserver import TokenServer

pytestmark = pytest.mark.registry

ACCESS_KEY = "AKIASIGWARDECRPUB001"
SECRET_KEY = "ecr-public-test-secret-not-a-credential"


def deadline() -> Deadline:
    return Deadline.after(20)


@dataclass
class Stack:
    api: EcrPublicApi
    tokens: TokenServer
    registry: LocalRegistry
    now: list[float]

    def provider(self) -> AmazonProvider:
        return AmazonProvider(clock=lambda: time.time() + self.now[0], public_hosts=frozenset({self.registry.host}))

    def client(self, provider: AmazonProvider, tmp_path: Path, *, extra: str = "") -> RegistryClient:
        hosts = ",".join(h for h in (self.registry.host, extra) if h)
        config = RegistryConfig.from_env(
            {
                "SIGWARD_INSECURE_REGISTRIES": hosts,
                "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
                "SIGWARD_REGISTRY_PROVIDERS": f"{self.registry.host}=amazon",
            }
        )
        return RegistryClient(
            config,
            credentials=CredentialStore(tmp_path / "no-docker-config.json"),
            providers={ProviderName.AMAZON: provider},
        )


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    (tmp_path / "tokens").mkdir()
    tokens = TokenServer(tmp_path / "tokens", users={"pusher": "pusher-password-unknown-to-clients"})
    api = EcrPublicApi(tmp_path / "api", tokens, {ACCESS_KEY: SECRET_KEY})
    reg = LocalRegistry(tmp_path / "reg", auth="token", token_server=tokens)
    reg.start()
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # ECR Public is asked in us-east-1 whatever the workload's region
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR_PUBLIC", api.url)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(api.ca.ca_file))
    aws_federation.reset()
    try:
        yield Stack(api, tokens, reg, [0.0])
    finally:
        reg.close()
        api.close()
        tokens.close()


def _pull(client: RegistryClient, stack: Stack, repo: str) -> str:
    return client.get_manifest(Repository(stack.registry.host, repo), "v1", deadline=deadline()).digest


def test_ecr_public_token_pulls_signed_sigv4_once(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for repo in ("pub/app", "pub/tool"):
        stack.registry.push_image(repo, "v1")
    with stack.client(stack.provider(), tmp_path) as client:
        assert _pull(client, stack, "pub/app").startswith("sha256:")
        assert _pull(client, stack, "pub/tool").startswith("sha256:")
    calls = stack.api.calls()
    assert len(calls) == 1, "the token is cached: one GetAuthorizationToken for two repositories"
    call = calls[0]
    assert call.target == TARGET and call.content_type == CONTENT_TYPE
    assert call.authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/us-east-1/ecr-public/aws4_request" in call.authorization
    assert call.signature_ok and call.status == 200
    assert [r.user for r in stack.tokens.seen() if r.had_authorization] == [USER, USER]
    assert stack.api.issued[0] not in caplog.text


def test_ecr_public_token_refused_by_registry_is_a_denial(stack: Stack, tmp_path: Path) -> None:
    stack.registry.push_image("pub/app", "v1")
    provider = stack.provider()
    assert provider.get(stack.registry.host) is not None
    stack.tokens.users[USER] = "not-the-ecr-public-password"  # the registry no longer accepts the cached token
    with (
        stack.client(provider, tmp_path) as client,
        pytest.raises(AccessDeniedError, match="refused the credentials") as err,
    ):
        _pull(client, stack, "pub/app")
    assert stack.api.issued[0] not in str(err.value)


def test_ecr_public_token_never_sent_to_another_registry(stack: Stack, tmp_path: Path) -> None:
    other_tokens = TokenServer(tmp_path / "tokens", users={"pusher": "other-pusher-password"}, anonymous_pull=True)
    other = LocalRegistry(tmp_path / "other", auth="token", token_server=other_tokens)
    other.start()
    try:
        other.push_image("pub/app", "v1")
        stack.registry.push_image("pub/app", "v1")
        with stack.client(stack.provider(), tmp_path, extra=other.host) as client:
            assert _pull(client, stack, "pub/app").startswith("sha256:")  # the ECR Public token is now cached
            digest = client.get_manifest(Repository(other.host, "pub/app"), "v1", deadline=deadline()).digest
        assert digest.startswith("sha256:")
        assert other_tokens.seen() and not any(r.had_authorization for r in other_tokens.seen())
        assert len(stack.api.calls()) == 1
    finally:
        other.close()
        other_tokens.close()


def test_no_aws_credentials_pulls_anonymously(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    stack.tokens.anonymous_pull = True  # ECR Public serves every image anonymously
    stack.registry.push_image("pub/app", "v1")
    provider = stack.provider()
    with stack.client(provider, tmp_path) as client:
        assert _pull(client, stack, "pub/app").startswith("sha256:")
        assert _pull(client, stack, "pub/app").startswith("sha256:")
    assert stack.api.calls() == []
    assert not any(r.had_authorization for r in stack.tokens.seen())
    assert caplog.text.count("no AWS credentials") == 1, "the anonymous decision is remembered, not re-resolved"
    # Credentials appear later (a rotated secret, IRSA mounted): asked again once the recheck interval passed.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    assert provider.get(stack.registry.host) is None
    assert stack.api.calls() == []
    stack.now[0] = ANONYMOUS_RECHECK_SECONDS + 1
    assert provider.get(stack.registry.host) is not None
    assert len(stack.api.calls()) == 1


@pytest.mark.parametrize(
    ("access_key", "secret", "code"),
    [
        (ACCESS_KEY, "the-wrong-secret-key", "InvalidSignatureException"),
        ("AKIAUNKNOWNKEY000001", SECRET_KEY, "UnrecognizedClientException"),
    ],
)
def test_refused_aws_credentials_pull_anonymously_with_a_warning(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    access_key: str,
    secret: str,
    code: str,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    stack.registry.push_image("pub/app", "v1")
    with stack.client(stack.provider(), tmp_path) as client, pytest.raises(AccessDeniedError, match="anonymously"):
        _pull(client, stack, "pub/app")  # this registry grants anonymous callers nothing: the pull was anonymous
    calls = stack.api.calls()
    assert calls and not calls[0].signature_ok and calls[0].status == 403
    assert not any(r.had_authorization for r in stack.tokens.seen())
    warning = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "ECR Public" in r.getMessage()
    ]
    assert warning and code in warning[0] and "ecr-public:GetAuthorizationToken" in warning[0]
    assert secret not in caplog.text


@pytest.mark.parametrize(("error", "status"), [("ServerException", 500), ("LimitExceededException", 400)])
def test_ecr_public_api_failure_is_infrastructure_not_anonymous(
    stack: Stack, tmp_path: Path, error: str, status: int
) -> None:
    stack.api.fail_with = (error, status)
    stack.tokens.anonymous_pull = True  # an anonymous pull would succeed: the failure must not fall back to it
    stack.registry.push_image("pub/app", "v1")
    with stack.client(stack.provider(), tmp_path) as client, pytest.raises(ExternalServiceError, match=error):
        _pull(client, stack, "pub/app")
    assert stack.api.calls()


def test_ecr_public_api_down_is_infrastructure(stack: Stack, tmp_path: Path) -> None:
    stack.api.close()
    with pytest.raises(ExternalServiceError, match="ECR Public GetAuthorizationToken failed"):
        stack.provider().get(stack.registry.host)


def test_expiring_ecr_public_token_refreshed(stack: Stack, tmp_path: Path) -> None:
    stack.registry.push_image("pub/app", "v1")
    provider = stack.provider()
    with stack.client(provider, tmp_path) as client:
        assert _pull(client, stack, "pub/app")
        first = stack.api.issued[-1]
        # Inside the refresh margin: a new token is fetched, and the registry (which now accepts only the new one)
        # is never sent the old one.
        stack.now[0] = stack.api.lifetime - REFRESH_MARGIN_SECONDS + 1
        creds = provider.get(stack.registry.host)
        assert creds is not None and creds.password != first
        assert len(stack.api.calls()) == 2
        stack.tokens.clear()
        stack.registry.push_image("pub/other", "v1")
        assert _pull(client, stack, "pub/other")  # a new scope: a token exchange with the refreshed credentials
    seen = [r for r in stack.tokens.seen() if r.had_authorization]
    assert seen and all(r.user == USER for r in seen), "the registry accepts only the refreshed token"


def test_concurrent_requests_share_one_ecr_public_call(stack: Stack) -> None:
    stack.api.delay = 0.3
    provider = stack.provider()
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(provider.get(stack.registry.host))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(results) == 8 and len(set(map(repr, results))) == 1 and results[0] is not None
    assert len(stack.api.calls()) == 1, "single flight: one GetAuthorizationToken however many callers"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "no authorization data"),
        # a list where ECR Public sends one object: botocore's parser trips, never a stack trace
        ({"authorizationData": [{"authorizationToken": "QVdTOng="}]}, "cannot read"),
        ({"authorizationData": {"authorizationToken": "not base64!"}}, "not base64"),
        ({"authorizationData": {"authorizationToken": "bm8tY29sb24="}}, "not user:password"),  # "no-colon"
    ],
)
def test_malformed_ecr_public_answer_is_infrastructure_regression_parser_attribute_error(
    stack: Stack, body: dict[str, object], reason: str
) -> None:
    stack.api.malformed = body
    with pytest.raises(ExternalServiceError, match=reason) as err:
        stack.provider().get(stack.registry.host)
    assert "ECR Public" in str(err.value)


@pytest.mark.parametrize("body", [b'{"authorizationData": {"authorizationToken": "x"}}', b'{"authorizationData": 7}'])
def test_private_ecr_answer_of_the_wrong_shape_is_infrastructure_regression_parser_attribute_error(
    body: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same parser trap on the private ECR path: an object where ECR sends a list is an infrastructure error."""
    from tests.support.httpservers import Reply, ScriptedServer

    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    aws_federation.reset()
    reply = Reply(status=200, headers={"Content-Type": "application/x-amz-json-1.1"}, body=body)
    with ScriptedServer(lambda seen: reply) as ecr:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", ecr.url)
        with pytest.raises(ExternalServiceError, match="ECR") as err:
            AmazonProvider().get("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
        assert (
            ecr.requests_seen()[0].headers["x-amz-target"]
            == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
        )
    assert SECRET_KEY not in str(err.value)

"""Provider selection, host patterns, SIGWARD_REGISTRY_PROVIDERS parsing, the realm rule and the credential cache."""

from __future__ import annotations

import threading
import time

import pytest

from sigward.errors import ConfigurationError
from sigward.registry.auth import realm_may_receive_credentials
from sigward.registry.config import RegistryConfig
from sigward.registry.credentials import Credentials
from sigward.registry.providers import (
    ExpiringCache,
    ProviderChain,
    ProviderName,
    builtin_provider,
    parse_provider_map,
    selection,
)
from sigward.registry.providers.azure import jwt_expiry
from sigward.registry.providers.github import GithubProvider
from sigward.registry.transport import origin

G, A, Z, H = ProviderName.GOOGLE, ProviderName.AMAZON, ProviderName.AZURE, ProviderName.GITHUB


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("gcr.io", G),
        ("us.gcr.io", G),
        ("europe-west1-docker.pkg.dev", G),
        ("docker.us-east1.rep.pkg.dev", G),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", A),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", A),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", A),
        ("public.ecr.aws", A),
        ("Public.ECR.aws:443", A),
        ("ecr-public.aws.com", A),
        ("acme.azurecr.io", Z),
        ("acme.azurecr.cn", Z),
        ("ghcr.io", H),
        ("gcr.io:443", G),
        # look-alikes and other servers get nothing
        ("gcr.io.evil.example", None),
        ("evilgcr.io", None),
        ("pkg.dev", None),
        ("evil.pkg.dev", None),
        ("12345.dkr.ecr.eu-west-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example", None),
        ("acme.azurecr.io.evil.example", None),
        ("public.ecr.aws.evil.example", None),
        ("public.ecr.aws:5000", None),
        ("xpublic.ecr.aws", None),
        ("ghcr.io.evil.example", None),
        ("ghcr.io:5000", None),
        ("docker.io", None),
        ("127.0.0.1:5000", None),
    ],
)
def test_builtin_provider_by_host(host: str, expected: ProviderName | None) -> None:
    assert builtin_provider(host) == expected


def test_provider_map_parses_hosts_and_ports() -> None:
    parsed = parse_provider_map(" 127.0.0.1:5000=google, Mirror.Example=amazon,,ghcr.internal=github ")
    assert parsed == {"127.0.0.1:5000": G, "mirror.example": A, "ghcr.internal": H}
    assert RegistryConfig.from_env({"SIGWARD_REGISTRY_PROVIDERS": "r.example=azure"}).provider_map == {"r.example": Z}


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("=google", "=google"),
        ("r.example=", "r.example="),
        ("r.example=gcloud", "r.example=gcloud"),
        ("https://r.example=google", "https://r.example=google"),
        ("r.example/path=google", "r.example/path=google"),
        ("ok.example=google,bad host=amazon", "bad host=amazon"),
    ],
)
def test_provider_map_malformed_names_variable_and_item(value: str, bad: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        RegistryConfig.from_env({"SIGWARD_REGISTRY_PROVIDERS": value})
    assert "SIGWARD_REGISTRY_PROVIDERS" in str(err.value)
    assert repr(bad) in str(err.value)


def test_provider_map_same_host_twice_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="two providers"):
        parse_provider_map("r.example=google,R.example=amazon")


def test_selection_is_kyverno_order_without_duplicates() -> None:
    assert selection(["github", "default", "google", "github"]) == (ProviderName.DEFAULT, G, H)
    assert selection(None) == tuple(ProviderName)


class _Fixed:
    def __init__(self, creds: Credentials | None) -> None:
        self.creds = creds
        self.asked: list[str] = []

    def get(self, host: str) -> Credentials | None:
        self.asked.append(host)
        return self.creds


def _chain(**answers: Credentials | None) -> tuple[ProviderChain, dict[str, _Fixed]]:
    providers = {name: _Fixed(answers.get(name.value)) for name in ProviderName}
    chain = ProviderChain(providers=providers, host_map={"mirror.example:5000": G})
    return chain, {k.value: v for k, v in providers.items()}


def test_chain_asks_only_the_hosts_own_provider() -> None:
    token = Credentials("oauth2accesstoken", "ya29.secret")
    chain, seen = _chain(google=token, amazon=Credentials("AWS", "ecr-secret"))
    assert chain.get("us.gcr.io") == token
    assert chain.get("mirror.example:5000") == token  # mapped
    assert chain.get("123456789012.dkr.ecr.eu-west-1.amazonaws.com") == Credentials("AWS", "ecr-secret")
    assert chain.get("registry.example") is None  # no provider owns it; docker config had nothing
    assert "registry.example" not in seen["google"].asked
    assert "us.gcr.io" not in seen["amazon"].asked


def test_chain_default_first_then_cloud() -> None:
    chain, _ = _chain(default=Credentials("user", "from-docker-config"), google=Credentials("o", "token"))
    assert chain.get("gcr.io") == Credentials("user", "from-docker-config")


@pytest.mark.parametrize(
    ("selected", "expected"),
    [((G,), "token"), ((ProviderName.DEFAULT,), None), ((A, Z, H), None), ((), None)],
)
def test_chain_narrowed_to_rule_providers(selected: tuple[ProviderName, ...], expected: str | None) -> None:
    chain, _ = _chain(google=Credentials("oauth2accesstoken", "token"))
    found = chain.narrowed(selected).get("gcr.io")
    assert (found.password if found else None) == expected


REG = origin("https://registry.example")
LOOP = origin("http://127.0.0.1:5000")


@pytest.mark.parametrize(
    ("registry", "realm", "allowed"),
    [
        (REG, "https://registry.example/token", True),
        (REG, "https://registry.example:443/v2/token?x=1", True),
        (LOOP, "http://127.0.0.1:5000/token", True),
        (origin("https://us.gcr.io"), "https://gcr.io/v2/token", True),
        (origin("https://registry-1.docker.io"), "https://auth.docker.io/token", True),
        # realm_on_another_port
        (LOOP, "http://127.0.0.1:5001/token", False),
        (REG, "https://registry.example:8443/token", False),
        # realm_on_lookalike_host
        (REG, "https://registry.example.evil.example/token", False),
        (REG, "https://evilregistry.example/token", False),
        (LOOP, "http://localhost:5000/token", False),
        (origin("https://us.gcr.io"), "https://gcr.io.evil.example/v2/token", False),
        (origin("https://gcr.io"), "https://us.gcr.io/v2/token", False),
        (origin("https://evil.example"), "https://auth.docker.io/token", False),
        # realm_scheme_downgrade
        (REG, "http://registry.example/token", False),
        (origin("https://us.gcr.io"), "http://gcr.io/v2/token", False),
    ],
)
def test_realm_may_receive_credentials(registry: tuple[str, str, int], realm: str, allowed: bool) -> None:
    assert realm_may_receive_credentials(registry, realm) is allowed


def test_expiring_cache_single_flight_and_expiry() -> None:
    now = [1000.0]
    cache = ExpiringCache(60, clock=lambda: now[0])
    calls: list[int] = []
    gate = threading.Event()

    def fetch() -> tuple[Credentials, float | None]:
        calls.append(1)
        gate.wait(2)
        return Credentials("u", f"secret-{len(calls)}"), now[0] + 3600

    results: list[Credentials] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", fetch))) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert {r.password for r in results} == {"secret-1"}
    now[0] += 3600 - 61  # inside the margin: still cached
    assert cache.get("k", fetch).password == "secret-1"
    now[0] += 2  # within 60 s of expiry: fetched again
    assert cache.get("k", fetch).password == "secret-2"
    assert "secret" not in repr(cache)


def test_expiring_cache_does_not_keep_uncacheable_or_failed() -> None:
    cache = ExpiringCache(60)
    n = [0]

    def fetch() -> tuple[Credentials, float | None]:
        n[0] += 1
        return Credentials("u", "p"), None

    cache.get("k", fetch)
    cache.get("k", fetch)
    assert n[0] == 2

    def broken() -> tuple[Credentials, float | None]:
        raise ConfigurationError("no identity")

    with pytest.raises(ConfigurationError):
        cache.get("x", broken)


def test_github_provider_only_with_token() -> None:
    assert GithubProvider({}).get("ghcr.io") is None
    creds = GithubProvider({"GITHUB_TOKEN": "ghp_secret", "GITHUB_ACTOR": "octo"}).get("ghcr.io")
    assert creds == Credentials("octo", "ghp_secret")
    assert "ghp_secret" not in repr(creds)
    assert GithubProvider({"GITHUB_TOKEN": "ghp_secret"}).get("ghcr.io") == Credentials("unset", "ghp_secret")


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("e30.eyJleHAiOjE3MDAwMDAwMDB9.sig", 1700000000.0),
        ("e30.eyJleHAiOiJzb29uIn0.sig", None),  # exp not a number
        ("not-a-jwt", None),
        ("e30.!!!.sig", None),
    ],
)
def test_jwt_expiry(token: str, expected: float | None) -> None:
    assert jwt_expiry(token) == expected

"""SIGWARD_INSECURE_REGISTRIES, SIGWARD_PRIVATE_REGISTRIES and SIGWARD_REGISTRY_PROVIDERS name registries the way
image references do (sigward.references: lower case, no ``:443``, Docker Hub's aliases are ``docker.io``), so
``Host:443`` or ``Host`` in those variables means the same registry as the image ``host/app``."""

from __future__ import annotations

import pytest

from sigward.netguard import NetworkGuard
from sigward.references import normalize_registry_host
from sigward.registry.config import RegistryConfig
from sigward.registry.providers import ProviderChain, ProviderName, parse_provider_map


@pytest.mark.parametrize(
    ("entry", "normal"),
    [
        ("Reg.Example", "reg.example"),
        ("reg.example:443", "reg.example"),
        ("REG.EXAMPLE:443", "reg.example"),
        ("reg.example:5000", "reg.example:5000"),
        ("reg.example.", "reg.example"),
        ("index.docker.io", "docker.io"),
        ("Registry-1.Docker.IO", "docker.io"),
        ("docker.io:443", "docker.io"),
        ("[::1]:443", "[::1]"),
        ("[::1]:5000", "[::1]:5000"),
        ("2001:db8::443", "2001:db8::443"),  # a bare IPv6 literal: its last group is no port
        ("localhost", "localhost"),
    ],
)
def test_normalize_registry_host(entry: str, normal: str) -> None:
    assert normalize_registry_host(entry) == normal


@pytest.mark.parametrize(
    ("listed", "netloc", "insecure"),
    [
        ("Reg.Example:443", "reg.example", True),
        ("reg.example", "REG.example:443", True),
        ("LocalHost:5000", "localhost:5000", True),
        ("index.docker.io", "registry-1.docker.io", True),
        ("reg.example:5000", "reg.example", False),
        ("reg.example", "reg.example:5000", False),
        ("reg.example", "other.example", False),
        ("reg.example:443", "reg.example:8443", False),
    ],
)
def test_insecure_list_normalized(listed: str, netloc: str, insecure: bool) -> None:
    config = RegistryConfig.from_env({"SIGWARD_INSECURE_REGISTRIES": f" {listed} ,"})
    assert config.is_insecure(netloc) is insecure


@pytest.mark.parametrize(
    ("listed", "host", "port", "allowed"),
    [
        ("Reg.Example:443", "reg.example", 443, True),
        ("reg.example", "REG.EXAMPLE", 443, True),
        ("REG.example:5000", "reg.example", 5000, True),
        ("reg.example:5000", "reg.example", 5001, False),
        ("index.docker.io", "registry-1.docker.io", 443, True),
        ("http://Reg.Example:443/", "reg.example", 443, True),
        ("reg.example", "other.example", 443, False),
    ],
)
def test_private_list_normalized(listed: str, host: str, port: int, allowed: bool) -> None:
    config = RegistryConfig.from_env({"SIGWARD_PRIVATE_REGISTRIES": listed})
    guard = NetworkGuard.create(config.private_registries)
    assert guard.private_allowed(host, port) is allowed


@pytest.mark.parametrize(
    ("mapping", "host", "provider"),
    [
        ("Mirror.Example:443=google", "mirror.example", ProviderName.GOOGLE),
        ("mirror.example=amazon", "MIRROR.example:443", ProviderName.AMAZON),
        ("Mirror.Example:5000=azure", "mirror.example:5000", ProviderName.AZURE),
        ("mirror.example:5000=azure", "mirror.example", None),
        ("index.docker.io=default", "docker.io", ProviderName.DEFAULT),
    ],
)
def test_provider_map_normalized(mapping: str, host: str, provider: ProviderName | None) -> None:
    chain = ProviderChain(providers={}, host_map=parse_provider_map(mapping))
    assert chain.provider_for(host) is provider


def test_provider_map_same_registry_two_spellings_two_providers_refused() -> None:
    from sigward.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="mapped to two providers"):
        parse_provider_map("reg.example:443=google,Reg.Example=amazon")

"""Parsing a dockerconfigjson Secret and giving its credentials only to the host each ``auths`` key names."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import pytest

from sigward.errors import ConfigurationError
from sigward.registry.credentials import Credentials
from sigward.registry.secretcreds import SecretCredentials, split_selection

AUTH = base64.b64encode(b"robot:s3cret-value").decode()
FALLBACK = Credentials(username="fallback", password="fallback-password")


class _Fallback:
    def get(self, host: str) -> Credentials | None:
        return FALLBACK if host == "fallback.example" else None


def _source(secrets: Mapping[str, Mapping[str, Any]]) -> SecretCredentials:
    def read(namespace: str, name: str) -> Mapping[str, Any]:
        assert namespace == "kyverno"
        return secrets[name]

    return SecretCredentials(names=tuple(secrets), namespace="kyverno", read=read, fallback=_Fallback())


def _doc(key: str) -> dict[str, Any]:
    return {"data": {".dockerconfigjson": json.dumps({"auths": {key: {"auth": AUTH}}})}}


@pytest.mark.parametrize(
    ("key", "host", "given"),
    [
        ("https://Registry.Example:443/v2/", "registry.example", True),  # normalised like image references
        ("registry.example", "registry.example:443", True),
        ("registry.example:5000", "registry.example:5000", True),
        ("registry.example:5000", "registry.example", False),  # another port is another registry
        ("registry.example", "evil.example", False),  # another host never gets it
        ("registry.example.evil.example", "registry.example", False),
        ("https://index.docker.io/v1/", "docker.io", True),
    ],
)
def test_credential_only_for_its_host(key: str, host: str, given: bool) -> None:
    found = _source({"regcred": _doc(key)}).get(host)
    if given:
        assert found is not None and found.username == "robot" and found.password == "s3cret-value"
    else:
        assert found is None


def test_falls_back_to_providers_and_hides_secret() -> None:
    src = _source({"regcred": _doc("registry.example")})
    assert src.get("fallback.example") is FALLBACK
    assert "s3cret" not in repr(src) and "s3cret" not in repr(src.get("registry.example"))


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({}, "has no .dockerconfigjson"),
        ({".dockerconfigjson": "not json s3cret-value"}, "is not JSON"),
        ({".dockerconfigjson": "{}"}, "no 'auths'"),
        ({".dockerconfigjson": json.dumps({"auths": {"r": {"auth": "!!"}}})}, "not base64"),
    ],
)
def test_malformed_secret_is_a_clear_error(data: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        _source({"regcred": {"data": data}}).get("registry.example")
    assert says in str(err.value) and "secret kyverno/regcred" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_split_selection() -> None:
    assert split_selection(("default", "secret:a", "google", "secret:b")) == (("default", "google"), ("a", "b"))

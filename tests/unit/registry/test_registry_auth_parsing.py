"""WWW-Authenticate parsing, scope sanitizing, the token cache and token responses."""

from __future__ import annotations

import time

import pytest

from sigward.errors import AccessDeniedError
from sigward.registry.auth import (
    DEFAULT_TOKEN_SECONDS,
    MAX_CHALLENGE_LENGTH,
    TOKEN_EXPIRY_MARGIN_SECONDS,
    ChallengeError,
    TokenCache,
    _parse_token_response,
    parse_www_authenticate,
    sanitize_scopes,
)


def test_docker_hub_bearer_challenge() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/alpine:pull",
    }


def test_quoted_commas_and_escapes_stay_inside_the_value() -> None:
    [c] = parse_www_authenticate(
        r'Bearer realm="https://auth.example/token?a=1,b=2", scope="repository:a:pull,push", note="say \"hi\""'
    )
    assert c.params["realm"] == "https://auth.example/token?a=1,b=2"
    assert c.params["scope"] == "repository:a:pull,push"
    assert c.params["note"] == 'say "hi"'


def test_several_challenges_in_one_value() -> None:
    challenges = parse_www_authenticate('Basic realm="Registry Realm", Bearer realm="https://t.example/x",service=s')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == "Registry Realm"
    assert challenges[1].params == {"realm": "https://t.example/x", "service": "s"}


def test_scheme_and_parameter_names_are_case_insensitive() -> None:
    [c] = parse_www_authenticate('BEARER Realm="https://x.example/t", SERVICE="svc"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://x.example/t", "service": "svc"}


def test_error_parameter_after_insufficient_scope() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:app:pull",error="insufficient_scope"'
    )
    assert c.params["error"] == "insufficient_scope"


def test_token68_and_bare_scheme() -> None:
    challenges = parse_www_authenticate('Negotiate abc123==, Basic, Bearer realm="r"')
    assert [(c.scheme, dict(c.params)) for c in challenges] == [
        ("negotiate", {"": "abc123=="}),
        ("basic", {}),
        ("bearer", {"realm": "r"}),
    ]


@pytest.mark.parametrize(
    "value",
    [
        'Bearer realm="unterminated',
        'Bearer realm="a" service="b"',  # missing comma
        'Bearer realm=,service="x"',
        'Bearer realm="a",=',
        'Bearer realm="a",realm="b"',  # duplicate parameter
        '="x"',
        "Bearer realm=a b=c d",
    ],
)
def test_malformed_challenges_are_refused(value: str) -> None:
    with pytest.raises(ChallengeError):
        parse_www_authenticate(value)


def test_overlong_challenge_is_refused() -> None:
    with pytest.raises(ChallengeError):
        parse_www_authenticate('Bearer realm="' + "a" * MAX_CHALLENGE_LENGTH + '"')


def test_empty_value_has_no_challenges() -> None:
    assert parse_www_authenticate("") == []
    assert parse_www_authenticate(" , ") == []


@pytest.mark.parametrize(
    ("challenge_scope", "expected"),
    [
        ("", ("repository:me:pull",)),
        ("repository:app:pull", ("repository:app:pull",)),
        ("repository:app:pull,push", ("repository:app:pull",)),
        ("repository:app:*", ("repository:me:pull",)),
        ("repository:app:push", ("repository:me:pull",)),
        ("registry:catalog:*", ("repository:me:pull",)),
        ("repository:a:pull repository:b:delete,pull", ("repository:a:pull", "repository:b:pull")),
        ("repository(plugin):p:pull", ("repository(plugin):p:pull",)),
        ("repository:host:5000/app:pull", ("repository:host:5000/app:pull",)),
    ],
)
def test_scopes_are_cut_down_to_pull(challenge_scope: str, expected: tuple[str, ...]) -> None:
    got = sanitize_scopes(challenge_scope, "repository:me:pull")
    assert got == expected
    assert all(s.endswith(":pull") for s in got)


def test_token_cache_expires_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache = TokenCache(max_entries=2)
    cache.put(("r", "s", "anon"), "t1", 60)
    assert cache.get(("r", "s", "anon")) == "t1"
    now[0] += 60 - TOKEN_EXPIRY_MARGIN_SECONDS + 0.01
    assert cache.get(("r", "s", "anon")) is None
    for i in range(3):
        cache.put(("r", f"s{i}", "anon"), f"t{i}", 300)
    assert len(cache) == 2
    assert cache.get(("r", "s0", "anon")) is None
    assert cache.get(("r", "s2", "anon")) == "t2"
    cache.invalidate(("r", "s2", "anon"))
    assert cache.get(("r", "s2", "anon")) is None


def test_token_cache_keys_on_credential_identity() -> None:
    cache = TokenCache()
    cache.put(("r", "s", "alice#1"), "alice-token", 300)
    assert cache.get(("r", "s", "bob#2")) is None
    assert cache.get(("r", "s", "anonymous")) is None


def test_token_response_fields() -> None:
    assert _parse_token_response(b'{"token":"abc","expires_in":300}', "t") == ("abc", 300.0)
    assert _parse_token_response(b'{"access_token":"xyz"}', "t") == ("xyz", float(DEFAULT_TOKEN_SECONDS))
    # The token spec: never less than 60 seconds.
    assert _parse_token_response(b'{"token":"abc","expires_in":5}', "t")[1] == DEFAULT_TOKEN_SECONDS
    assert _parse_token_response(b'{"token":"abc","expires_in":"soon"}', "t")[1] == DEFAULT_TOKEN_SECONDS


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"token":""}',
        b'{"token":"a\\r\\nX-Injected: 1"}',
        b'{"token":"has space"}',
    ],
)
def test_unusable_token_responses(body: bytes) -> None:
    with pytest.raises(AccessDeniedError) as err:
        _parse_token_response(body, "auth.example")
    assert "auth.example" in str(err.value)

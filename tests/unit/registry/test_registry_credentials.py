"""docker config.json parsing and credential helpers (fake helpers written as shell scripts on PATH)."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import pytest

from sigward.errors import ConfigurationError
from sigward.registry.credentials import (
    MAX_HELPER_OUTPUT_BYTES,
    Credentials,
    CredentialStore,
    config_hostname,
    default_config_path,
    run_helper,
)

SECRET = "s3cr3t-VALUE-never-shown"


def write_config(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on PATH where tests write docker-credential-* scripts."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    return directory


def write_helper(directory: Path, name: str, script: str) -> Path:
    path = directory / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("registry.example:5000", "registry.example:5000"),
        ("https://registry.example:5000", "registry.example:5000"),
        ("https://registry.example/v2/", "registry.example"),
        ("http://Registry.Example", "registry.example"),
        ("https://index.docker.io/v1/", "index.docker.io"),
    ],
)
def test_config_keys_normalize_like_docker(key: str, host: str) -> None:
    assert config_hostname(key) == host


def test_auths_with_base64_auth(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"auths": {"https://reg.example:5000": {"auth": b64(f"alice:{SECRET}")}}})
    creds = CredentialStore(path).get("reg.example:5000")
    assert creds == Credentials(username="alice", password=SECRET)
    assert CredentialStore(path).get("reg.example") is None
    assert CredentialStore(path).get("other.example:5000") is None


def test_password_with_colon_survives(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"auths": {"reg.example": {"auth": b64("bob:pa:ss:word")}}})
    creds = CredentialStore(path).get("reg.example")
    assert creds is not None and creds.password == "pa:ss:word"


def test_auths_with_username_and_password(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"auths": {"reg.example": {"username": "carol", "password": SECRET}}})
    assert CredentialStore(path).get("REG.example") == Credentials(username="carol", password=SECRET)


def test_docker_hub_credentials_under_the_v1_index_url(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": b64(f"dave:{SECRET}")}}})
    store = CredentialStore(path)
    for host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        creds = store.get(host)
        assert creds is not None and creds.username == "dave"


def test_identity_token_entry(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"auths": {"acr.example": {"auth": b64("00000000-0000:"), "identitytoken": SECRET}}})
    creds = CredentialStore(path).get("acr.example")
    assert creds is not None
    assert creds.identity_token == SECRET
    assert not creds.has_password


def test_empty_entry_means_anonymous(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"auths": {"reg.example": {}}})
    assert CredentialStore(path).get("reg.example") is None


def test_missing_file_means_anonymous(tmp_path: Path) -> None:
    assert CredentialStore(tmp_path / "nope.json").get("reg.example") is None


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        json.dumps({"auths": []}),
        json.dumps({"auths": {"reg.example": {"auth": "!!!not-base64!!!"}}}),
        json.dumps({"auths": {"reg.example": {"auth": b64("no-colon-" + SECRET)}}}),
    ],
)
def test_bad_config_is_a_configuration_error_without_secrets(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError) as err:
        CredentialStore(path).get("reg.example")
    assert SECRET not in str(err.value)
    assert b64("no-colon-" + SECRET) not in str(err.value)


def test_repr_and_str_hide_secrets() -> None:
    creds = Credentials(username="alice", password=SECRET)
    token = Credentials(username="<token>", identity_token=SECRET)
    for text in (repr(creds), str(creds), repr(token), str([creds, token])):
        assert SECRET not in text
    assert "alice" in repr(creds)
    assert SECRET not in creds.identity
    assert creds.identity != Credentials(username="alice", password="other").identity


def test_default_config_path(tmp_path: Path) -> None:
    assert default_config_path({"DOCKER_CONFIG": str(tmp_path)}) == tmp_path / "config.json"
    assert default_config_path({"HOME": str(tmp_path)}) == tmp_path / ".docker" / "config.json"


def test_cred_helper_gets_the_host_on_stdin(tmp_path: Path, helper_dir: Path) -> None:
    log = tmp_path / "helper-stdin"
    write_helper(
        helper_dir,
        "fake",
        f'read host; echo "$host" >> {log}; echo "$1" >> {log}\n'
        f'printf \'{{"ServerURL":"%s","Username":"helper-user","Secret":"{SECRET}"}}\' "$host"\n',
    )
    path = write_config(tmp_path, {"credHelpers": {"reg.example:5000": "fake"}, "auths": {}})
    store = CredentialStore(path)
    assert store.get("reg.example:5000") == Credentials(username="helper-user", password=SECRET)
    assert log.read_text().split() == ["reg.example:5000", "get"]
    # Cached per host: a second lookup does not run the helper again.
    assert store.get("reg.example:5000") is not None
    assert log.read_text().split() == ["reg.example:5000", "get"]
    # Other hosts do not use this helper.
    assert store.get("other.example") is None


def test_cred_helper_identity_token(tmp_path: Path, helper_dir: Path) -> None:
    write_helper(helper_dir, "tok", f'cat >/dev/null; echo \'{{"Username":"<token>","Secret":"{SECRET}"}}\'\n')
    path = write_config(tmp_path, {"credHelpers": {"reg.example": "tok"}})
    creds = CredentialStore(path).get("reg.example")
    assert creds is not None and creds.identity_token == SECRET and not creds.password


def test_creds_store_falls_back_to_auths(tmp_path: Path, helper_dir: Path) -> None:
    write_helper(helper_dir, "desk", "cat >/dev/null; echo 'credentials not found in native keychain'; exit 1\n")
    path = write_config(tmp_path, {"credsStore": "desk", "auths": {"reg.example": {"auth": b64(f"erin:{SECRET}")}}})
    creds = CredentialStore(path).get("reg.example")
    assert creds is not None and creds.username == "erin"


def test_creds_store_answer_wins_over_auths(tmp_path: Path, helper_dir: Path) -> None:
    write_helper(helper_dir, "desk", 'cat >/dev/null; echo \'{"Username":"from-store","Secret":"x"}\'\n')
    path = write_config(tmp_path, {"credsStore": "desk", "auths": {"reg.example": {"auth": b64("erin:pw")}}})
    creds = CredentialStore(path).get("reg.example")
    assert creds is not None and creds.username == "from-store"


def test_missing_creds_store_helper_is_ignored(tmp_path: Path, helper_dir: Path) -> None:
    path = write_config(tmp_path, {"credsStore": "not-installed-anywhere", "auths": {}})
    assert CredentialStore(path).get("reg.example") is None


def test_missing_cred_helper_for_a_host_is_an_error(tmp_path: Path, helper_dir: Path) -> None:
    path = write_config(tmp_path, {"credHelpers": {"reg.example": "not-installed-anywhere"}})
    with pytest.raises(ConfigurationError, match="docker-credential-not-installed-anywhere not found"):
        CredentialStore(path).get("reg.example")


def test_failing_helper_does_not_echo_its_output(tmp_path: Path, helper_dir: Path) -> None:
    write_helper(helper_dir, "bad", f"cat >/dev/null; echo 'oops {SECRET}'; echo '{SECRET}' >&2; exit 3\n")
    with pytest.raises(ConfigurationError) as err:
        run_helper("bad", "reg.example")
    assert "exit status 3" in str(err.value)
    assert SECRET not in str(err.value)


def test_helper_printing_garbage(helper_dir: Path) -> None:
    write_helper(helper_dir, "garbage", f"cat >/dev/null; echo 'Secret={SECRET}'\n")
    with pytest.raises(ConfigurationError) as err:
        run_helper("garbage", "reg.example")
    assert SECRET not in str(err.value)


def test_helper_timeout(helper_dir: Path) -> None:
    write_helper(helper_dir, "slow", "exec sleep 30\n")
    start = time.monotonic()
    with pytest.raises(ConfigurationError, match="did not answer within"):
        run_helper("slow", "reg.example", timeout=0.5)
    assert time.monotonic() - start < 5


def test_helper_output_is_bounded(helper_dir: Path) -> None:
    write_helper(helper_dir, "loud", "cat >/dev/null; exec yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n")
    with pytest.raises(ConfigurationError, match=f"more than {MAX_HELPER_OUTPUT_BYTES} bytes"):
        run_helper("loud", "reg.example")


@pytest.mark.parametrize("name", ["../../bin/sh", "a b", "", "x;rm -rf", "-help"])
def test_helper_names_cannot_be_paths(name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid credential helper name"):
        run_helper(name, "reg.example")

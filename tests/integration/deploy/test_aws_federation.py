"""AWS credentials on GCP without keys (sigward.aws_federation): a local stand-in for the GCE metadata server
serves a Google-style ID token (a JWT minted here), a real ``moto_server`` plays STS and KMS, and the session
``aws_session()`` returns calls AWS as the assumed role — refreshing before the credentials expire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sigward import aws_federation
from sigward.aws_federation import FederationSettings, aws_session
from sigward.errors import ExternalServiceError
from tests.support.gce_metadata import FakeMetadataServer, token_claims
from tests.support.moto import ACCOUNT, REGION, MotoServer, clear_ambient_aws, create_signing_key, kms_admin

ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sigward-gcp"
AUDIENCE = "sts.amazonaws.com"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto-federation")) as server:
        yield server


@pytest.fixture
def metadata() -> Iterator[FakeMetadataServer]:
    server = FakeMetadataServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def gcp_env(
    moto: MotoServer, metadata: FakeMetadataServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[MotoServer]:
    """A Cloud Run function's environment: no AWS credentials at all, the role to assume, STS/KMS endpoints."""
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("SIGWARD_AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("GCE_METADATA_HOST", metadata.host)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto.url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("K_SERVICE", "sigward-admission")
    aws_federation.reset()
    moto.reset_recording()
    yield moto
    aws_federation.reset()


def _sts_calls(moto: MotoServer) -> list[dict[str, str]]:
    return [r.form for r in moto.recorded() if r.target == "AssumeRoleWithWebIdentity"]


def test_federated_session_assumes_the_role_with_the_google_id_token(
    gcp_env: MotoServer, metadata: FakeMetadataServer
) -> None:
    session = aws_session(region_name=REGION)
    creds = session.get_credentials()
    assert creds.method == "sigward-gcp-web-identity"
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.secret_key and frozen.token

    # The metadata server was asked as GCE requires, for the STS audience, in the full format.
    seen = metadata.server.requests_seen()
    assert len(seen) == 1
    assert seen[0].headers["metadata-flavor"] == "Google"
    query = parse_qs(urlsplit(seen[0].path).query)
    assert query == {"audience": [AUDIENCE], "format": ["full"]}

    # STS got exactly that token, for the role, unsigned (AssumeRoleWithWebIdentity needs no credentials).
    calls = _sts_calls(gcp_env)
    assert len(calls) == 1
    assert calls[0]["RoleArn"] == ROLE_ARN
    assert calls[0]["WebIdentityToken"] == metadata.issued[0]
    assert token_claims(metadata.issued[0])["aud"] == AUDIENCE
    assert calls[0]["RoleSessionName"] == "sigward-sigward-admission"
    sts_request = next(r for r in gcp_env.recorded() if r.target == "AssumeRoleWithWebIdentity")
    assert sts_request.access_key_id == ""

    # Calls made with the session are the assumed role's.
    identity = session.client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/sigward-gcp/sigward-sigward-admission"
    key = create_signing_key(kms_admin(gcp_env), "ECC_NIST_P256")
    public = session.client("kms").get_public_key(KeyId=key["id"])
    assert public["KeyUsage"] == "SIGN_VERIFY"
    kms_requests = [r for r in gcp_env.recorded() if r.target == "TrentService.GetPublicKey"]
    assert kms_requests and kms_requests[-1].access_key_id == frozen.access_key


def test_credentials_refresh_before_they_expire(
    gcp_env: MotoServer, metadata: FakeMetadataServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # STS's minimum session (15 min) is inside botocore's advisory refresh window: every use refreshes.
    monkeypatch.setattr(aws_federation, "SESSION_DURATION_SECONDS", 900)
    creds = aws_session().get_credentials()
    assert len(metadata.issued) == 1
    first = creds.get_frozen_credentials()
    second = creds.get_frozen_credentials()
    assert first.access_key != second.access_key
    assert len(metadata.issued) == 3  # a new ID token for every exchange
    assert [c["WebIdentityToken"] for c in _sts_calls(gcp_env)] == metadata.issued

    # An hour-long session is not refreshed: the shared credentials are reused by every new session.
    aws_federation.reset()
    monkeypatch.setattr(aws_federation, "SESSION_DURATION_SECONDS", 3600)
    one = aws_session().get_credentials().get_frozen_credentials()
    two = aws_session().get_credentials().get_frozen_credentials()
    assert one.access_key == two.access_key
    assert len(metadata.issued) == 4


def test_other_credentials_win_and_no_role_means_the_default_chain(
    gcp_env: MotoServer, metadata: FakeMetadataServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOTHERCREDENTIALS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    assert FederationSettings.from_env() is None
    assert aws_session().get_credentials().method == "env"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("SIGWARD_AWS_ROLE_ARN")
    assert aws_session().get_credentials() is None  # nothing configured at all (IMDS disabled in tests)
    assert metadata.server.requests_seen() == []


def test_unreachable_metadata_server_is_an_infrastructure_error(
    gcp_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ExternalServiceError, match="metadata server"):
        aws_session().get_credentials()


def test_a_role_arn_that_is_not_one_is_a_configuration_error(
    gcp_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sigward.errors import ConfigurationError

    monkeypatch.setenv("SIGWARD_AWS_ROLE_ARN", "sigward-gcp")
    with pytest.raises(ConfigurationError, match="SIGWARD_AWS_ROLE_ARN"):
        aws_session()


def test_audience_and_session_name_are_configurable(
    gcp_env: MotoServer, metadata: FakeMetadataServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGWARD_AWS_AUDIENCE", "sigward-aws-federation")
    monkeypatch.setenv("SIGWARD_AWS_ROLE_SESSION_NAME", "ci run #7")
    aws_session().get_credentials().get_frozen_credentials()
    assert token_claims(metadata.issued[0])["aud"] == "sigward-aws-federation"
    (call,) = _sts_calls(gcp_env)
    assert call["RoleSessionName"] == "ci-run--7"  # only the characters STS accepts

"""AWS KMS answers moto cannot give: moto 5 grants every GetPublicKey/Sign (it checks key policies only for
DescribeKey and ignores key state), so access denied, disabled and pending-deletion keys, expired or unknown
credentials, throttling and 5xx come from a local HTTP server answering with AWS's real JSON error wire format
(``{"__type": ..., "message": ...}``, ``application/x-amz-json-1.1``). The real boto3 client parses them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExternalServiceError,
    NotFoundError,
    SigwardError,
    VerificationFailure,
)
from sigward.kms.aws import AwsKms
from sigward.policy.kms_uri import parse_kms_uri
from sigward.verify.keys import KeyLoadError
from tests.support.httpservers import Reply, ScriptedServer, Seen
from tests.support.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, clear_ambient_aws
from tests.support.signing import new_key

URI = "awskms:///alias/cosign"
ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def aws_error(status: int, code: str, message: str) -> Reply:
    body = json.dumps({"__type": code, "message": message}).encode()
    return Reply(
        status=status,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "x-amzn-RequestId": "5e4f2a40-0000-4000-8000-000000000000",
        },
        body=body,
    )


def call(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, sign: bool = False) -> None:
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.url)
    ref = parse_kms_uri(URI)
    if sign:
        AwsKms().sign(ref, b"payload", timeout=5)
    else:
        AwsKms().public_key(ref, timeout=5)


DENIED = (
    f"User: arn:aws:sts::123456789012:assumed-role/sigward/i-0abc is not authorized to perform: kms:GetPublicKey "
    f"on resource: {ARN} because no identity-based policy allows the kms:GetPublicKey action"
)

CASES: list[tuple[str, int, str, type[SigwardError], str]] = [
    ("AccessDeniedException", 400, DENIED, AccessDeniedError, f"access to AWS KMS key {URI} denied: the caller needs"),
    (
        "UnrecognizedClientException",
        400,
        "The security token included in the request is invalid.",
        AccessDeniedError,
        "denied",
    ),
    (
        "ExpiredTokenException",
        400,
        "The security token included in the request is expired",
        AccessDeniedError,
        "denied",
    ),
    ("NotFoundException", 400, f"Alias {ARN} is not found.", NotFoundError, f"AWS KMS key {URI} not found"),
    ("DisabledException", 400, f"{ARN} is disabled.", KeyLoadError, f"AWS KMS key {URI} is disabled"),
    ("KMSInvalidStateException", 400, f"{ARN} is pending deletion.", KeyLoadError, "cannot be used in its state"),
    (
        "UnsupportedOperationException",
        400,
        "GetPublicKey is not supported for symmetric keys",
        KeyLoadError,
        "no public key",
    ),
    ("InvalidArnException", 400, "Invalid arn", VerificationFailure, "rejected key reference"),
    ("ThrottlingException", 400, "Rate exceeded", ExternalServiceError, "unavailable"),
    ("KeyUnavailableException", 500, "The key is unavailable", ExternalServiceError, "unavailable"),
    ("KMSInternalException", 500, "internal error", ExternalServiceError, "unavailable"),
]


@pytest.mark.parametrize(("code", "status", "message", "expected", "text"), CASES, ids=[c[0] for c in CASES])
def test_aws_json_errors_map_to_sigward_errors(
    code: str,
    status: int,
    message: str,
    expected: type[SigwardError],
    text: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with ScriptedServer(lambda seen: aws_error(status, code, message)) as server:
        with pytest.raises(expected) as err:
            call(server, monkeypatch, tmp_path)
        requests_seen = server.requests_seen()
    assert type(err.value) is expected
    assert text in str(err.value)
    assert code in str(err.value)
    assert SECRET_ACCESS_KEY not in str(err.value)
    assert requests_seen[0].headers["x-amz-target"] == "TrentService.GetPublicKey"
    # Throttling and 5xx are retried once (standard mode); decided answers are not.
    retried = expected is ExternalServiceError
    assert len(requests_seen) == (2 if retried else 1)


def test_sign_denied_after_public_key_read_names_kms_sign(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """GetPublicKey answered as AWS does (KeySpec and CustomerMasterKeySpec, key ARN), Sign refused."""
    key = new_key("p256")

    def answer(seen: Seen) -> Reply:
        if seen.headers.get("x-amz-target") == "TrentService.GetPublicKey":
            body = {
                "CustomerMasterKeySpec": "ECC_NIST_P256",
                "KeyId": ARN,
                "KeySpec": "ECC_NIST_P256",
                "KeyUsage": "SIGN_VERIFY",
                "PublicKey": base64.b64encode(key.public_der).decode(),
                "SigningAlgorithms": ["ECDSA_SHA_256"],
            }
            return Reply(200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body).encode())
        return aws_error(400, "AccessDeniedException", DENIED.replace("GetPublicKey", "Sign"))

    with ScriptedServer(answer) as server:
        call(server, monkeypatch, tmp_path)
        with pytest.raises(AccessDeniedError) as err:
            call(server, monkeypatch, tmp_path, sign=True)
        targets = [seen.headers.get("x-amz-target") for seen in server.requests_seen()]
    assert "the caller needs kms:GetPublicKey and kms:Sign" in str(err.value)
    assert targets == ["TrentService.GetPublicKey", "TrentService.GetPublicKey", "TrentService.Sign"]


def test_html_5xx_from_a_proxy_is_an_outage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reply = Reply(status=502, headers={"Content-Type": "text/html"}, body=b"<html>Bad Gateway</html>")
    with ScriptedServer(lambda seen: reply) as server, pytest.raises(ExternalServiceError):
        call(server, monkeypatch, tmp_path)


def test_sts_refusing_the_web_identity_is_access_denied(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """IRSA with a token STS rejects (real STS XML error shape)."""
    sts_error = (
        b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        b"<Code>InvalidIdentityToken</Code><Message>No OpenIDConnect provider found in your account for "
        b"https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE</Message></Error>"
        b"<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
    )

    def answer(seen: Seen) -> Reply:
        return Reply(status=400, headers={"Content-Type": "text/xml"}, body=sts_error)

    with ScriptedServer(answer) as sts:
        clear_ambient_aws(monkeypatch, tmp_path)
        token = tmp_path / "token"
        token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
        monkeypatch.setenv("AWS_REGION", REGION)
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", sts.url)
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/sigward")
        with pytest.raises(AccessDeniedError) as err:
            AwsKms().public_key(parse_kms_uri(URI), timeout=5)
    assert "could not assume the web identity role (AWS_ROLE_ARN)" in str(err.value)
    assert "InvalidIdentityToken" in str(err.value)
    assert "eyJhbGciOiJSUzI1NiJ9" not in str(err.value)


def test_malformed_profile_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ConfigurationError):
        AwsKms().public_key(parse_kms_uri(URI), timeout=5)

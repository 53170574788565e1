"""The awskms backend's tables and decisions without a server: signing algorithm → (hash, padding), GetPublicKey
responses → KmsPublicKey or a refusal, botocore exceptions → sigward errors, region and endpoint resolution, client
reuse, and the cold-start promise (no boto3 import until a key is used)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore import exceptions as boto  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExternalServiceError,
    NotFoundError,
    SigwardError,
    VerificationFailure,
)
from sigward.kms import aws
from sigward.kms.aws import (
    SIGNING_ALGORITHMS,
    AwsKms,
    endpoint_url,
    map_aws_error,
    public_key_from_response,
    resolve_region,
)
from sigward.policy.kms_uri import parse_kms_uri
from sigward.verify.keys import KeyLoadError
from tests.support.moto import clear_ambient_aws
from tests.support.signing import new_key

REF = parse_kms_uri("awskms:///alias/cosign")
ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
REPO_ROOT = Path(__file__).resolve().parents[3]


def der(private: Any) -> bytes:
    return bytes(
        private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def response(public_der: bytes, algorithms: list[str], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "KeyId": ARN,
        "PublicKey": public_der,
        "KeyUsage": "SIGN_VERIFY",
        "KeySpec": "ECC_NIST_P256",
        "SigningAlgorithms": algorithms,
    }
    out.update(extra)
    return out


# -- algorithm table ---------------------------------------------------------------------------------------------

ALGORITHMS = {
    "ECDSA_SHA_256": ("ecdsa", "sha256", "pkcs1v15"),
    "ECDSA_SHA_384": ("ecdsa", "sha384", "pkcs1v15"),
    "ECDSA_SHA_512": ("ecdsa", "sha512", "pkcs1v15"),
    "RSASSA_PKCS1_V1_5_SHA_256": ("rsa", "sha256", "pkcs1v15"),
    "RSASSA_PKCS1_V1_5_SHA_384": ("rsa", "sha384", "pkcs1v15"),
    "RSASSA_PKCS1_V1_5_SHA_512": ("rsa", "sha512", "pkcs1v15"),
    "RSASSA_PSS_SHA_256": ("rsa", "sha256", "pss"),
    "RSASSA_PSS_SHA_384": ("rsa", "sha384", "pss"),
    "RSASSA_PSS_SHA_512": ("rsa", "sha512", "pss"),
    "ED25519_SHA_512": ("ed25519", "sha256", "pkcs1v15"),
}


def test_signing_algorithm_table_is_exactly_the_supported_set() -> None:
    assert {name: (a.family, a.hash_name, a.rsa_padding) for name, a in SIGNING_ALGORITHMS.items()} == ALGORITHMS


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_public_key_from_response_per_algorithm(algorithm: str) -> None:
    family, hash_name, pad = ALGORITHMS[algorithm]
    private: Any
    if family == "ecdsa":
        private = {"sha256": new_key("p256"), "sha384": new_key("p384"), "sha512": new_key("p521")}[hash_name].private
    elif family == "rsa":
        private = new_key("rsa2048").private
    else:
        private = new_key("ed25519").private
    # cosign uses the first listed algorithm; the others do not matter
    public, chosen = public_key_from_response(REF, response(der(private), [algorithm, "RSASSA_PSS_SHA_512"]))
    assert chosen == algorithm
    assert (public.hash_name, public.rsa_padding, public.version) == (hash_name, pad, ARN)
    assert der(private) == public.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_moto_shape_with_customer_master_key_spec_only() -> None:
    body = response(der(new_key("p256").private), ["ECDSA_SHA_256"])
    del body["KeySpec"]
    body["CustomerMasterKeySpec"] = "ECC_NIST_P256"
    body["KeyId"] = "1234abcd-12ab-34cd-56ef-1234567890ab"
    public, _ = public_key_from_response(REF, body)
    assert isinstance(public.key, ec.EllipticCurvePublicKey)
    assert public.version == "1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "RSA_2048", "SigningAlgorithms": None},
            "awskms:///alias/cosign is an ENCRYPT_DECRYPT key (RSA_2048), not a signing key",
        ),
        ({"KeyUsage": "GENERATE_VERIFY_MAC", "KeySpec": "HMAC_256"}, "is a GENERATE_VERIFY_MAC key (HMAC_256)"),
        ({"KeyUsage": None}, "is a key of unknown usage"),
        ({"SigningAlgorithms": []}, "lists no signing algorithms"),
        ({"SigningAlgorithms": ["SM2DSA"], "KeySpec": "SM2"}, "signs with SM2DSA, which cosign signatures do not use"),
        ({"SigningAlgorithms": ["ML_DSA_SHAKE_256"]}, "ML_DSA_SHAKE_256"),
        ({"SigningAlgorithms": ["ED25519_PH_SHA_512"]}, "ED25519_PH_SHA_512"),
        ({"SigningAlgorithms": ["RSASSA_PSS_SHA_256"]}, "RSASSA_PSS_SHA_256 does not fit its ECC_NIST_P256 public key"),
        ({"PublicKey": b"\x30\x03\x02\x01\x00"}, "failed to load public key from DER"),
    ],
)
def test_refused_responses(changes: dict[str, Any], message: str) -> None:
    body = response(der(new_key("p256").private), ["ECDSA_SHA_256"])
    body.update(changes)
    with pytest.raises(KeyLoadError) as err:
        public_key_from_response(REF, body)
    assert message in str(err.value)


def test_secp256k1_key_is_refused() -> None:
    private = ec.generate_private_key(ec.SECP256K1())
    body = response(der(private), ["ECDSA_SHA_256"], KeySpec="ECC_SECG_P256K1")
    with pytest.raises(KeyLoadError) as err:
        public_key_from_response(REF, body)
    assert "(ECC_SECG_P256K1): unsupported elliptic curve secp256k1" in str(err.value)


def test_missing_public_key_bytes_is_an_outage() -> None:
    body = response(b"", ["ECDSA_SHA_256"])
    with pytest.raises(ExternalServiceError):
        public_key_from_response(REF, body)


# -- error mapping -----------------------------------------------------------------------------------------------


def client_error(code: str, status: int = 400, operation: str = "GetPublicKey", message: str = "msg") -> Any:
    return boto.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


ERRORS: list[tuple[str, int, type[SigwardError]]] = [
    ("NotFoundException", 400, NotFoundError),
    ("AccessDeniedException", 400, AccessDeniedError),
    ("UnrecognizedClientException", 400, AccessDeniedError),
    ("InvalidSignatureException", 400, AccessDeniedError),
    ("ExpiredTokenException", 400, AccessDeniedError),
    ("IncompleteSignature", 400, AccessDeniedError),
    ("DisabledException", 400, KeyLoadError),
    ("KMSInvalidStateException", 400, KeyLoadError),
    ("InvalidKeyUsageException", 400, KeyLoadError),
    ("UnsupportedOperationException", 400, KeyLoadError),
    ("InvalidArnException", 400, VerificationFailure),
    ("ValidationException", 400, VerificationFailure),
    ("SomethingNew", 400, VerificationFailure),
    ("ThrottlingException", 400, ExternalServiceError),
    ("KeyUnavailableException", 500, ExternalServiceError),
    ("DependencyTimeoutException", 503, ExternalServiceError),
    ("KMSInternalException", 500, ExternalServiceError),
    ("SomethingNew", 503, ExternalServiceError),
    ("SomethingNew", 429, ExternalServiceError),
]


@pytest.mark.parametrize(("code", "status", "expected"), ERRORS, ids=[f"{c}-{s}" for c, s, _ in ERRORS])
def test_client_errors(code: str, status: int, expected: type[SigwardError]) -> None:
    mapped = map_aws_error(client_error(code, status), REF, "kms:GetPublicKey")
    assert type(mapped) is expected
    assert str(REF) in str(mapped) and code in str(mapped)


def test_access_denied_names_the_permissions() -> None:
    mapped = map_aws_error(client_error("AccessDeniedException"), REF, "kms:GetPublicKey and kms:Sign")
    assert str(mapped) == (
        "access to AWS KMS key awskms:///alias/cosign denied: the caller needs kms:GetPublicKey and kms:Sign "
        "(AccessDeniedException: msg)"
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("InvalidIdentityToken", 400, AccessDeniedError),
        ("AccessDenied", 403, AccessDeniedError),
        ("ExpiredTokenException", 400, AccessDeniedError),
        ("IDPCommunicationError", 400, AccessDeniedError),
        ("ServiceUnavailable", 503, ExternalServiceError),
    ],
)
def test_web_identity_errors(code: str, status: int, expected: type[SigwardError]) -> None:
    mapped = map_aws_error(client_error(code, status, "AssumeRoleWithWebIdentity"), REF, "kms:GetPublicKey")
    assert type(mapped) is expected
    assert "AWS_ROLE_ARN" in str(mapped) or "STS" in str(mapped)


def test_long_aws_messages_are_shortened() -> None:
    mapped = map_aws_error(client_error("AccessDeniedException", message="x" * 5000), REF, "kms:GetPublicKey")
    assert len(str(mapped)) < 500 and str(mapped).endswith("…)")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (boto.NoCredentialsError(), ConfigurationError),
        (boto.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), ConfigurationError),
        (boto.NoRegionError(), ConfigurationError),
        (boto.ProfileNotFound(profile="p"), ConfigurationError),
        (boto.CredentialRetrievalError(provider="container-role", error_msg="timeout"), ExternalServiceError),
        (boto.EndpointConnectionError(endpoint_url="https://kms.eu-west-1.amazonaws.com/"), ExternalServiceError),
        (boto.ConnectTimeoutError(endpoint_url="https://kms.eu-west-1.amazonaws.com/"), ExternalServiceError),
        (boto.ReadTimeoutError(endpoint_url="https://kms.eu-west-1.amazonaws.com/"), ExternalServiceError),
        (boto.SSLError(endpoint_url="https://kms.eu-west-1.amazonaws.com/", error="bad cert"), ExternalServiceError),
        (boto.ParamValidationError(report="bad KeyId"), VerificationFailure),
        (FileNotFoundError(2, "No such file or directory", "/var/run/secrets/eks/token"), ConfigurationError),
        (RuntimeError("boom"), ExternalServiceError),
    ],
)
def test_sdk_exceptions(exc: BaseException, expected: type[SigwardError]) -> None:
    mapped = map_aws_error(exc, REF, "kms:GetPublicKey")
    assert type(mapped) is expected
    assert str(REF) in str(mapped)


def test_sigward_errors_pass_through() -> None:
    err = ConfigurationError("x")
    assert map_aws_error(err, REF, "kms:GetPublicKey") is err


# -- region, endpoint, clients -----------------------------------------------------------------------------------


def test_region_from_arn_wins_over_ambient() -> None:
    assert resolve_region(parse_kms_uri(f"awskms:///{ARN}"), "us-east-1") == "eu-west-1"
    assert resolve_region(REF, "us-east-2") == "us-east-2"
    with pytest.raises(ConfigurationError) as err:
        resolve_region(REF, None)
    assert "set AWS_REGION" in str(err.value) and "ARN" in str(err.value)


def test_endpoint_url_as_cosign() -> None:
    assert endpoint_url(REF) == ""
    assert endpoint_url(parse_kms_uri("awskms://localhost:4566/alias/cosign")) == "https://localhost:4566"


def test_one_client_per_endpoint_region_and_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")  # AWS_REGION comes first
    backend = AwsKms()
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(backend._client(REF, 5.0))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in got}) == 1
    client = got[0]
    assert client.meta.region_name == "eu-central-1"
    assert client.meta.config.connect_timeout == 5 and client.meta.config.read_timeout == 5
    assert client.meta.config.retries["total_max_attempts"] == aws.TOTAL_MAX_ATTEMPTS
    assert backend._client(REF, 4.2) is client  # rounded up to whole seconds
    assert backend._client(REF, 1.5) is not client
    arn_client = backend._client(parse_kms_uri(f"awskms:///{ARN}"), 5.0)
    assert arn_client.meta.region_name == "eu-west-1"
    endpoint_client = backend._client(parse_kms_uri("awskms://kms.internal:8443/alias/cosign"), 5.0)
    assert endpoint_client.meta.endpoint_url == "https://kms.internal:8443"
    assert len(backend._clients) == 4
    # clients the SDK creates itself (STS for web identity) inherit bounded timeouts
    defaults = backend._session._session.get_default_client_config()
    assert (defaults.connect_timeout, defaults.read_timeout) == (5.0, 5.0)


def test_ambient_endpoint_variable_is_the_sdks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:4566")
    client = AwsKms()._client(REF, 5.0)
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client.meta.region_name == "ap-south-1"


def test_cold_start_imports_no_sdk() -> None:
    code = (
        "import sys, sigward.kms.aws, sigward.kms.vault; "
        "bad = [m for m in ('boto3', 'botocore', 'hvac') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)

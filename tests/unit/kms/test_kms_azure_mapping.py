"""Key Vault JWK → public key, hash and signing algorithm; raw ECDSA → DER; and the mapping of azure-core /
azure-identity exceptions (including DefaultAzureCredential's chained report) to sigward's errors."""

from __future__ import annotations

import secrets
from typing import Any, cast

import pytest
from azure.core import exceptions as aexc
from azure.identity import CredentialUnavailableError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExternalServiceError,
    NotFoundError,
    SigwardError,
    VerificationFailure,
)
from sigward.kms.azure import Jwk, credential_attempts, credential_error, key_from_jwk, map_error, raw_to_der
from sigward.verify.keys import KeyLoadError, PublicKeyVerifier, describe_key

VERSION = "https://vault.example/keys/k/0123456789abcdef0123456789abcdef"


def ec_jwk(curve: ec.EllipticCurve, size: int, *, kty: str = "EC", crv: str = "", **extra: Any) -> Jwk:
    numbers = ec.generate_private_key(curve).public_key().public_numbers()
    names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
    return Jwk(
        kty=kty,
        crv=crv or names[curve.name],
        x=numbers.x.to_bytes(size, "big"),
        y=numbers.y.to_bytes(size, "big"),
        **extra,
    )


def rsa_jwk(bits: int, *, kty: str = "RSA", **extra: Any) -> Jwk:
    # Public-key checks need no real factorization: any odd modulus of the size will do (and is fast).
    n = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    return Jwk(kty=kty, n=n.to_bytes(bits // 8, "big"), e=(65537).to_bytes(3, "big"), **extra)


@pytest.mark.parametrize(
    ("jwk", "hash_name", "algorithm", "kind"),
    [
        (ec_jwk(ec.SECP256R1(), 32), "sha256", "ES256", "ECDSA secp256r1"),
        (ec_jwk(ec.SECP384R1(), 48, kty="EC-HSM"), "sha384", "ES384", "ECDSA secp384r1"),
        (ec_jwk(ec.SECP521R1(), 66), "sha512", "ES512", "ECDSA secp521r1"),
        (rsa_jwk(2048), "sha256", "RS256", "RSA-2048"),
        (rsa_jwk(3072, kty="RSA-HSM"), "sha384", "RS384", "RSA-3072"),
        (rsa_jwk(4096), "sha512", "RS512", "RSA-4096"),
    ],
)
def test_jwk_to_key(jwk: Jwk, hash_name: str, algorithm: str, kind: str) -> None:
    found = key_from_jwk(jwk, version=VERSION)
    assert (found.public.hash_name, found.algorithm, describe_key(found.public.key)) == (hash_name, algorithm, kind)
    assert found.public.rsa_padding == "pkcs1v15"
    assert found.public.version == VERSION


def test_jwk_key_is_the_same_key() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    jwk = Jwk(kty="EC", crv="P-256", x=numbers.x.to_bytes(32, "big"), y=numbers.y.to_bytes(32, "big"))
    key = key_from_jwk(jwk, version=VERSION).public.key
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.public_numbers() == numbers


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        (ec_jwk(ec.SECP256K1(), 32, crv="P-256K"), "unsupported curve P-256K"),
        (Jwk(kty="EC", crv="P-256", x=b"\x01" * 32, y=b"\x02" * 32), "invalid EC public key"),
        (Jwk(kty="EC", crv="P-256", x=b"\x01" * 33, y=b"\x02" * 32), "malformed EC coordinates"),
        (Jwk(kty="EC", crv="P-256"), "malformed EC coordinates"),
        (rsa_jwk(1024), "RSA-1024"),
        (rsa_jwk(2560), "RSA-2560"),
        (Jwk(kty="RSA"), "no RSA modulus"),
        (Jwk(kty="oct", key_ops=("sign", "verify")), "key type oct"),
        (Jwk(kty="oct-HSM"), "key type oct-HSM"),
        (Jwk(kty=""), "key type"),
        (rsa_jwk(2048, key_ops=("encrypt", "decrypt", "wrapKey")), "neither sign nor verify"),
        (ec_jwk(ec.SECP256R1(), 32, key_ops=()), "neither sign nor verify"),
    ],
)
def test_keys_that_cannot_verify_cosign_signatures_are_refused(jwk: Jwk, reason: str) -> None:
    with pytest.raises(KeyLoadError, match=reason):
        key_from_jwk(jwk, version=VERSION)


def test_key_ops_with_only_verify_or_sign_are_accepted() -> None:
    assert key_from_jwk(ec_jwk(ec.SECP256R1(), 32, key_ops=("verify",)), version=VERSION).algorithm == "ES256"
    assert key_from_jwk(rsa_jwk(2048, key_ops=("Sign",)), version=VERSION).algorithm == "RS256"


@pytest.mark.parametrize(
    ("curve", "size", "algorithm"),
    [
        (ec.SECP256R1(), 32, hashes.SHA256()),
        (ec.SECP384R1(), 48, hashes.SHA384()),
        (ec.SECP521R1(), 66, hashes.SHA512()),
    ],
)
def test_raw_signature_to_der(curve: ec.EllipticCurve, size: int, algorithm: hashes.HashAlgorithm) -> None:
    private = ec.generate_private_key(curve)
    der = private.sign(b"payload", ec.ECDSA(algorithm))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")  # what Key Vault returns
    converted = raw_to_der(raw, size)
    assert decode_dss_signature(converted) == (r, s)
    PublicKeyVerifier(key=private.public_key(), hash_name=algorithm.name).verify(converted, b"payload")
    with pytest.raises(ExternalServiceError, match="expected"):
        raw_to_der(raw[:-1], size)


def _http_error(status: int, message: str, cls: type[aexc.HttpResponseError] = aexc.HttpResponseError) -> Any:
    exc = cls(message=message)
    exc.status_code = status
    # A Key Vault answer has a response; credential failures have none.
    exc.response = cast(Any, object())
    return exc


@pytest.mark.parametrize(
    ("exc", "operation", "expected", "words"),
    [
        (aexc.ResourceNotFoundError(message="KeyNotFound"), "get", NotFoundError, ["not found", "KeyNotFound"]),
        (
            _http_error(403, "Caller is not authorized"),
            "get",
            AccessDeniedError,
            ["'get'", "Key Vault Crypto User", "Key Vault Reader", "keys/read"],
        ),
        (_http_error(403, "Forbidden"), "sign", AccessDeniedError, ["'sign'", "keys/sign/action"]),
        (_http_error(401, "bad token", aexc.ClientAuthenticationError), "get", AccessDeniedError, ["'get'"]),
        (_http_error(403, "Operation get is not allowed on a disabled key."), "get", KeyLoadError, ["disabled"]),
        (_http_error(404, "gone"), "get", NotFoundError, ["gone"]),
        (_http_error(400, "Invalid algorithm"), "sign", VerificationFailure, ["Invalid algorithm"]),
        (_http_error(429, "Throttled"), "get", ExternalServiceError, ["429"]),
        (_http_error(503, "Service Unavailable"), "get", ExternalServiceError, ["503"]),
        (aexc.ServiceRequestError("Connection refused"), "get", ExternalServiceError, ["unreachable"]),
        (aexc.ServiceResponseError("Read timed out"), "get", ExternalServiceError, ["unreachable"]),
        (ValueError("The challenge resource 'x' does not match"), "get", VerificationFailure, ["challenge"]),
        (aexc.DecodeError("bad json"), "get", ExternalServiceError, ["DecodeError"]),
    ],
)
def test_error_mapping(exc: BaseException, operation: str, expected: type[SigwardError], words: list[str]) -> None:
    mapped = map_error(exc, operation=operation, what="k in https://vault.example")  # type: ignore[arg-type]
    assert type(mapped) is expected
    for word in words:
        assert word in str(mapped)


def _chain(*attempts: str) -> aexc.ClientAuthenticationError:
    """DefaultAzureCredential's failure, in its own format."""
    lines = "".join(f"\n\t{a}" for a in attempts)
    return aexc.ClientAuthenticationError(
        message="DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        f"Attempted credentials:{lines}\nTo mitigate this issue, please refer to the troubleshooting guidelines "
        "here at https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
    )


ENV_UNAVAILABLE = (
    "EnvironmentCredential: EnvironmentCredential authentication unavailable. Environment variables are not fully "
    "configured.\nVisit https://aka.ms/azsdk/python/identity/environmentcredential/troubleshoot to troubleshoot."
)


@pytest.mark.parametrize(
    ("exc", "expected", "words"),
    [
        (
            _chain(
                ENV_UNAVAILABLE,
                "WorkloadIdentityCredential: WorkloadIdentityCredential authentication unavailable.",
                "ManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.",
                "AzureCliCredential: Azure CLI not found on path",
                "BrokerCredential: InteractiveBrowserBrokerCredential unavailable.",
            ),
            ConfigurationError,
            ["EnvironmentCredential, WorkloadIdentityCredential", "AZURE_FEDERATED_TOKEN_FILE"],
        ),
        (
            _chain(
                ENV_UNAVAILABLE,
                "WorkloadIdentityCredential: Microsoft Entra ID error '(invalid_client) AADSTS700213: No matching "
                "federated identity record found'",
            ),
            AccessDeniedError,
            ["WorkloadIdentityCredential", "AADSTS700213"],
        ),
        (
            _chain(
                ENV_UNAVAILABLE,
                "WorkloadIdentityCredential: HTTPSConnection(host='login.microsoftonline.com', port=443): Failed to "
                "establish a new connection: [Errno 111] Connection refused",
            ),
            ExternalServiceError,
            ["identity provider", "Connection refused"],
        ),
        (
            _chain(ENV_UNAVAILABLE, "ManagedIdentityCredential: Read timed out. (read timeout=10)"),
            ExternalServiceError,
            ["ManagedIdentityCredential"],
        ),
        (CredentialUnavailableError(message="nothing"), ConfigurationError, ["nothing"]),
        (
            aexc.ClientAuthenticationError(message="AADSTS7000215: Invalid client secret"),
            AccessDeniedError,
            ["7000215"],
        ),
    ],
)
def test_credential_failures(exc: BaseException, expected: type[SigwardError], words: list[str]) -> None:
    mapped = credential_error(exc)
    assert type(mapped) is expected
    for word in words:
        assert word in str(mapped)
    # map_error sends token failures (no Key Vault response) here too.
    assert type(map_error(exc, operation="get", what="k")) is expected


def test_credential_attempts_parse_multiline_reports() -> None:
    exc = _chain(ENV_UNAVAILABLE, "WorkloadIdentityCredential: refused")
    attempts = credential_attempts(str(exc.message))
    assert [name for name, _ in attempts] == ["EnvironmentCredential", "WorkloadIdentityCredential"]
    assert attempts[0][1].endswith("to troubleshoot.")
    assert attempts[1][1] == "refused"


def test_large_rsa_key_refused_by_size_before_any_use() -> None:
    with pytest.raises(KeyLoadError, match="RSA-8192"):
        key_from_jwk(rsa_jwk(8192), version=VERSION)


def test_real_rsa_jwk_roundtrip() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()
    jwk = Jwk(kty="RSA", n=numbers.n.to_bytes(256, "big"), e=numbers.e.to_bytes(3, "big"), key_ops=("sign",))
    found = key_from_jwk(jwk, version=VERSION)
    assert isinstance(found.public.key, rsa.RSAPublicKey)
    assert found.public.key.public_numbers() == numbers

"""Cloud KMS algorithm → verification parameters, the checks on returned keys, CRC32C, and the mapping of
google-api-core / google-auth exceptions to sigward's decided failures and infrastructure errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExternalServiceError,
    NotFoundError,
    SigwardError,
    VerificationFailure,
)
from sigward.kms.gcp import SIGNING_ALGORITHMS, crc32c, map_error, public_key_for, signing_algorithm
from sigward.verify.keys import KeyLoadError

ROOT = Path(__file__).resolve().parents[3]
VERSION = "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
KEY = "projects/p/locations/l/keyRings/r/cryptoKeys/k"


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    ("algorithm", "hash_name", "padding", "prehashed"),
    [
        ("EC_SIGN_P256_SHA256", "sha256", "pkcs1v15", True),
        ("EC_SIGN_P384_SHA384", "sha384", "pkcs1v15", True),
        ("EC_SIGN_ED25519", "sha512", "pkcs1v15", False),
        ("RSA_SIGN_PKCS1_2048_SHA256", "sha256", "pkcs1v15", True),
        ("RSA_SIGN_PKCS1_3072_SHA256", "sha256", "pkcs1v15", True),
        ("RSA_SIGN_PKCS1_4096_SHA256", "sha256", "pkcs1v15", True),
        ("RSA_SIGN_PKCS1_4096_SHA512", "sha512", "pkcs1v15", True),
        ("RSA_SIGN_PSS_2048_SHA256", "sha256", "pss", True),
        ("RSA_SIGN_PSS_3072_SHA256", "sha256", "pss", True),
        ("RSA_SIGN_PSS_4096_SHA256", "sha256", "pss", True),
        ("RSA_SIGN_PSS_4096_SHA512", "sha512", "pss", True),
    ],
)
def test_signing_algorithms(algorithm: str, hash_name: str, padding: str, prehashed: bool) -> None:
    found = signing_algorithm(algorithm, version=VERSION)
    assert (found.hash_name, found.rsa_padding, found.prehashed) == (hash_name, padding, prehashed)


def test_every_signing_algorithm_of_the_installed_client_is_known() -> None:
    from google.cloud.kms_v1 import CryptoKeyVersion

    names = set(CryptoKeyVersion.CryptoKeyVersionAlgorithm.__members__)
    assert set(SIGNING_ALGORITHMS) <= names


@pytest.mark.parametrize(
    ("algorithm", "reason"),
    [
        ("RSA_DECRYPT_OAEP_2048_SHA256", "purpose ASYMMETRIC_DECRYPT"),
        ("GOOGLE_SYMMETRIC_ENCRYPTION", "purpose ENCRYPT_DECRYPT"),
        ("AES_256_GCM", "purpose RAW_ENCRYPT_DECRYPT"),
        ("HMAC_SHA256", "purpose MAC"),
        ("ML_KEM_768", "purpose KEY_ENCAPSULATION"),
        ("EC_SIGN_SECP256K1_SHA256", "secp256k1"),
        ("RSA_SIGN_RAW_PKCS1_2048", "without a hash"),
        ("PQ_SIGN_ML_DSA_65", "unsupported signing algorithm PQ_SIGN_ML_DSA_65"),
        ("", "unsupported signing algorithm UNSPECIFIED"),
    ],
)
def test_algorithms_cosign_cannot_use_are_refused(algorithm: str, reason: str) -> None:
    with pytest.raises(KeyLoadError, match=reason) as caught:
        signing_algorithm(algorithm, version=VERSION)
    assert VERSION in str(caught.value)


def test_public_key_must_match_its_algorithm() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    loaded = public_key_for(pem(p256), SIGNING_ALGORITHMS["EC_SIGN_P256_SHA256"], version=VERSION)
    assert loaded.hash_name == "sha256"
    assert loaded.version == VERSION
    with pytest.raises(KeyLoadError, match="does not match its algorithm EC_SIGN_P256_SHA256"):
        public_key_for(pem(p384), SIGNING_ALGORITHMS["EC_SIGN_P256_SHA256"], version=VERSION)
    with pytest.raises(KeyLoadError, match="does not match"):
        public_key_for(pem(p256), SIGNING_ALGORITHMS["RSA_SIGN_PKCS1_2048_SHA256"], version=VERSION)
    with pytest.raises(KeyLoadError, match="does not match"):
        public_key_for(pem(ed25519.Ed25519PrivateKey.generate()), SIGNING_ALGORITHMS["EC_SIGN_P256_SHA256"], version="")
    with pytest.raises(KeyLoadError, match="failed to load public key"):
        public_key_for("not a pem", SIGNING_ALGORITHMS["EC_SIGN_P256_SHA256"], version=VERSION)


def test_rsa_size_must_match_its_algorithm() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert public_key_for(pem(key), SIGNING_ALGORITHMS["RSA_SIGN_PSS_2048_SHA256"], version="v").rsa_padding == "pss"
    with pytest.raises(KeyLoadError, match="does not match"):
        public_key_for(pem(key), SIGNING_ALGORITHMS["RSA_SIGN_PKCS1_3072_SHA256"], version="v")


def test_crc32c_check_values() -> None:
    # The CRC-32C check value (RFC 3720 / iSCSI) and an all-zero block from RFC 3720 B.4.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"\x00" * 32) == 0x8A9136AA
    assert crc32c(b"") == 0


def err(cls: type[BaseException], *args: object) -> BaseException:
    """An SDK exception (google-api-core's constructors are untyped)."""
    return cls(*args)


@pytest.mark.parametrize(
    ("exc", "operation", "expected", "words"),
    [
        (err(gexc.NotFound, "CryptoKey x not found."), "get", NotFoundError, ["not found", VERSION]),
        (
            err(gexc.PermissionDenied, "Permission denied"),
            "get",
            AccessDeniedError,
            ["roles/cloudkms.publicKeyViewer", "cloudkms.cryptoKeyVersions.viewPublicKey"],
        ),
        (
            err(gexc.PermissionDenied, "Permission denied"),
            "list",
            AccessDeniedError,
            ["cloudkms.cryptoKeyVersions.list", "roles/cloudkms.viewer", "pin the version", "publicKeyViewer"],
        ),
        (err(gexc.PermissionDenied, "no"), "sign", AccessDeniedError, ["roles/cloudkms.signer"]),
        (err(gexc.Unauthenticated, "bad token"), "get", AccessDeniedError, ["refused the credentials"]),
        (err(gexc.FailedPrecondition, "has value DISABLED"), "get", KeyLoadError, ["DISABLED"]),
        (err(gexc.InvalidArgument, "bad name"), "get", VerificationFailure, ["bad name"]),
        (err(gexc.ServiceUnavailable, "connection refused"), "get", ExternalServiceError, ["unavailable"]),
        (err(gexc.DeadlineExceeded, "Deadline Exceeded"), "get", ExternalServiceError, ["in time"]),
        (err(gexc.TooManyRequests, "quota"), "get", ExternalServiceError, ["quota"]),
        (err(gexc.InternalServerError, "boom"), "get", ExternalServiceError, ["boom"]),
        (
            err(gexc.ServiceUnavailable, "Getting metadata from plugin failed with error: refresh"),
            "get",
            ExternalServiceError,
            ["access token", "Application Default Credentials"],
        ),
        (
            err(gexc.RetryError, "Timeout of 1.0s exceeded", err(gexc.ServiceUnavailable, "down")),
            "get",
            ExternalServiceError,
            [],
        ),
        (
            err(gexc.RetryError, "Timeout", err(gexc.PermissionDenied, "no")),
            "get",
            AccessDeniedError,
            ["publicKeyViewer"],
        ),
        (err(gexc.RetryError, "Timeout", None), "get", ExternalServiceError, ["did not answer"]),
        (
            err(auth_exc.DefaultCredentialsError, "no ADC"),
            "get",
            ConfigurationError,
            ["GOOGLE_APPLICATION_CREDENTIALS"],
        ),
        (err(auth_exc.RefreshError, "invalid_grant"), "get", AccessDeniedError, ["invalid_grant"]),
        (err(auth_exc.TransportError, "dns"), "get", ExternalServiceError, ["dns"]),
        (RuntimeError("odd"), "get", ExternalServiceError, ["RuntimeError"]),
    ],
)
def test_error_mapping(exc: BaseException, operation: str, expected: type[SigwardError], words: list[str]) -> None:
    name = KEY if operation == "list" else VERSION
    mapped = map_error(exc, operation=operation, name=name)  # type: ignore[arg-type]
    assert type(mapped) is expected
    for word in words:
        assert word in str(mapped)


def test_decided_and_infrastructure_classes() -> None:
    # Admission relies on this split: decided failures deny, infrastructure errors go to failurePolicy.
    assert issubclass(KeyLoadError, VerificationFailure)
    assert not issubclass(ConfigurationError, VerificationFailure | ExternalServiceError)


def test_module_imports_no_cloud_sdk() -> None:
    # functions-framework's namespace .pth creates the empty ``google`` / ``google.cloud`` packages at interpreter
    # start, so what counts is what importing the backends adds.
    code = (
        "import sys; before = set(sys.modules); import sigward.kms.gcp, sigward.kms.azure; "
        "added = [m for m in set(sys.modules) - before if m.startswith(('google', 'azure', 'grpc', 'proto'))]; "
        "assert not added, added"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)

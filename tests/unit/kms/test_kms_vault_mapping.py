"""The hashivault backend's tables and decisions without a server: transit key type → (family, hash), settings
from the environment, read-key answers → KmsPublicKey or a refusal, ``vault:vN:`` signatures, and hvac/requests
exceptions → sigward errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hvac import exceptions as hv

from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExternalServiceError,
    NotFoundError,
    SigwardError,
    VerificationFailure,
)
from sigward.kms.vault import (
    VAULT_HASHES,
    VAULT_KEY_TYPES,
    VaultSettings,
    decode_vault_signature,
    map_vault_error,
    map_vault_login_error,
    public_key_from_vault,
)
from sigward.policy.kms_uri import parse_kms_uri
from sigward.verify.keys import KeyLoadError
from tests.support.signing import new_key

REF = parse_kms_uri("hashivault://cosign")
PATH = "transit/keys/cosign"
ADDR = "https://vault.example.com:8200"


def pem(private: Any) -> str:
    return str(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def read_answer(key_type: str, public: str, *, latest: int = 1, supports_signing: bool = True) -> dict[str, Any]:
    return {
        "data": {
            "keys": {str(latest): {"creation_time": "2026-01-01T00:00:00Z", "name": key_type, "public_key": public}},
            "latest_version": latest,
            "name": "cosign",
            "supports_signing": supports_signing,
            "type": key_type,
        }
    }


# -- key types ---------------------------------------------------------------------------------------------------


def test_key_type_table() -> None:
    assert {k: (v.family, v.hash_name, v.curve, v.rsa_bits) for k, v in VAULT_KEY_TYPES.items()} == {
        # cosign asks Vault for SHA-256 with every key (kms.Get(ctx, ref, crypto.SHA256))
        "ecdsa-p256": ("ecdsa", "sha256", "secp256r1", 0),
        "ecdsa-p384": ("ecdsa", "sha256", "secp384r1", 0),
        "ecdsa-p521": ("ecdsa", "sha256", "secp521r1", 0),
        "rsa-2048": ("rsa", "sha256", "", 2048),
        "rsa-3072": ("rsa", "sha256", "", 3072),
        "rsa-4096": ("rsa", "sha256", "", 4096),
        "ed25519": ("ed25519", "sha256", "", 0),
    }
    assert VAULT_HASHES == {"sha256": "sha2-256", "sha384": "sha2-384", "sha512": "sha2-512"}


@pytest.mark.parametrize(
    ("key_type", "kind"),
    [
        ("ecdsa-p256", "p256"),
        ("ecdsa-p384", "p384"),
        ("ecdsa-p521", "p521"),
        ("rsa-2048", "rsa2048"),
        ("rsa-3072", "rsa3072"),
    ],
)
def test_pem_keys(key_type: str, kind: Any) -> None:
    private = new_key(kind).private
    public, found_type = public_key_from_vault(REF, PATH, read_answer(key_type, pem(private), latest=3))
    assert found_type == key_type
    assert (public.hash_name, public.rsa_padding, public.version) == ("sha256", "pkcs1v15", "3")
    assert (
        pem(private)
        == public.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    )


def test_ed25519_raw_base64_key() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public, _ = public_key_from_vault(REF, PATH, read_answer("ed25519", base64.b64encode(raw).decode()))
    assert isinstance(public.key, ed25519.Ed25519PublicKey)
    assert public.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw


def test_only_the_latest_version_is_used() -> None:
    old, new = new_key("p256", slot=0).private, new_key("p256", slot=1).private
    answer = read_answer("ecdsa-p256", pem(new), latest=2)
    answer["data"]["keys"]["1"] = {"creation_time": "2025-01-01T00:00:00Z", "name": "P-256", "public_key": pem(old)}
    public, _ = public_key_from_vault(REF, PATH, answer)
    assert public.version == "2"
    assert isinstance(public.key, ec.EllipticCurvePublicKey) and isinstance(new, ec.EllipticCurvePrivateKey)
    assert public.key.public_numbers() == new.public_key().public_numbers()


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            {
                "data": {
                    "type": "aes256-gcm96",
                    "supports_signing": False,
                    "keys": {"1": 1700000000},
                    "latest_version": 1,
                }
            },
            KeyLoadError,
            "hashivault://cosign is a Vault transit key of type aes256-gcm96, which cannot sign",
        ),
        ({"data": {"type": "hmac", "keys": {"1": 1}, "latest_version": 1}}, KeyLoadError, "type hmac"),
        (read_answer("ecdsa-p256", "x", supports_signing=False), KeyLoadError, "cannot sign"),
        (read_answer("ecdsa-p256", pem(new_key("p384").private)), KeyLoadError, "does not match its type ecdsa-p256"),
        (read_answer("rsa-3072", pem(new_key("rsa2048").private)), KeyLoadError, "does not match its type rsa-3072"),
        (read_answer("ecdsa-p256", "not a pem"), KeyLoadError, "failed to load public key from PEM"),
        (read_answer("ed25519", "!!!"), KeyLoadError, "not base64"),
        (read_answer("ed25519", base64.b64encode(b"short").decode()), KeyLoadError, "has 5 bytes, not 32"),
        ({"data": None}, ExternalServiceError, "without data"),
        ({"data": {"type": "ecdsa-p256", "keys": {}, "latest_version": 1}}, ExternalServiceError, "latest version"),
        ({"data": {"type": "ecdsa-p256", "keys": {"1": {}}, "latest_version": "1"}}, ExternalServiceError, "latest"),
        ("not a dict", ExternalServiceError, "without data"),
    ],
)
def test_refused_answers(answer: Any, error: type[SigwardError], message: str) -> None:
    with pytest.raises(error) as err:
        public_key_from_vault(REF, PATH, answer)
    assert type(err.value) is error
    assert message in str(err.value)


# -- signatures --------------------------------------------------------------------------------------------------


def test_decode_vault_signature() -> None:
    assert decode_vault_signature("vault:v1:" + base64.b64encode(b"\x30\x44sig").decode(), REF) == b"\x30\x44sig"
    assert decode_vault_signature("vault:v12:AAEC", REF) == b"\x00\x01\x02"
    for bad in ("AAEC", "vault:1:AAEC", "vault:vX:AAEC", "vault:v1:", "vault:v1:A A", "vault:v1:AAE"):
        with pytest.raises(ExternalServiceError):
            decode_vault_signature(bad, REF)


# -- settings ----------------------------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = VaultSettings.from_env({"VAULT_ADDR": ADDR + "/", "VAULT_TOKEN": " hvs.abc "})
    assert settings == VaultSettings(address=ADDR, token="hvs.abc")
    assert settings.transit_path == "transit" and settings.verify is True and settings.login_method == "token"
    assert "hvs.abc" not in repr(settings)


def test_settings_from_every_variable() -> None:
    settings = VaultSettings.from_env(
        {
            "VAULT_ADDR": ADDR,
            "VAULT_NAMESPACE": "team-a",
            "TRANSIT_SECRET_ENGINE_PATH": "/platform/transit/",
            "VAULT_CACERT": "/etc/vault/ca.pem",
            "VAULT_CLIENT_CERT": "/etc/vault/client.pem",
            "VAULT_CLIENT_KEY": "/etc/vault/client.key",
            "VAULT_K8S_ROLE": "sigward",
            "VAULT_K8S_MOUNT": "k8s-prod",
            "VAULT_K8S_TOKEN_PATH": "/var/run/token",
            "VAULT_JWT_ROLE": "ci",
            "VAULT_JWT_PATH": "/var/run/jwt",
            "VAULT_JWT_MOUNT": "oidc",
        }
    )
    assert settings.namespace == "team-a"
    assert settings.transit_path == "platform/transit"
    assert settings.verify == "/etc/vault/ca.pem"
    assert settings.client_cert == ("/etc/vault/client.pem", "/etc/vault/client.key")
    assert (settings.k8s_role, settings.k8s_mount, settings.k8s_token_path) == ("sigward", "k8s-prod", "/var/run/token")
    assert (settings.jwt_role, settings.jwt_path, settings.jwt_mount) == ("ci", "/var/run/jwt", "oidc")
    assert settings.login_method == "kubernetes"  # Kubernetes auth before JWT when both are set


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"VAULT_SKIP_VERIFY": "true", "VAULT_CACERT": "/ca.pem"}, False),
        ({"VAULT_SKIP_VERIFY": "1"}, False),
        ({"VAULT_SKIP_VERIFY": "false", "VAULT_CAPATH": "/etc/ssl/vault"}, "/etc/ssl/vault"),
        ({"VAULT_CACERT": "/ca.pem", "VAULT_CAPATH": "/etc/ssl/vault"}, "/ca.pem"),
    ],
)
def test_tls_settings(env: dict[str, str], expected: bool | str) -> None:
    assert VaultSettings.from_env({"VAULT_ADDR": ADDR, **env}).verify == expected


def test_login_method_order() -> None:
    base = {"VAULT_ADDR": ADDR}
    assert VaultSettings.from_env({**base, "VAULT_TOKEN": "t", "VAULT_K8S_ROLE": "r"}).login_method == "token"
    assert VaultSettings.from_env({**base, "VAULT_JWT_ROLE": "r", "VAULT_JWT_PATH": "/j"}).login_method == "jwt"
    assert VaultSettings.from_env(base).login_method == "file"
    settings = VaultSettings.from_env({**base, "VAULT_K8S_ROLE": "r"})
    assert (settings.k8s_mount, settings.k8s_token_path) == (
        "kubernetes",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "VAULT_ADDR is not set"),
        ({"VAULT_ADDR": "vault:8200"}, "must start with http:// or https://"),
        ({"VAULT_ADDR": ADDR, "TRANSIT_SECRET_ENGINE_PATH": "../sys"}, "TRANSIT_SECRET_ENGINE_PATH"),
        ({"VAULT_ADDR": ADDR, "TRANSIT_SECRET_ENGINE_PATH": "a b"}, "is not a Vault mount path"),
        ({"VAULT_ADDR": ADDR, "VAULT_K8S_MOUNT": "x/../y"}, "VAULT_K8S_MOUNT"),
    ],
)
def test_bad_settings(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        VaultSettings.from_env(env)
    assert message in str(err.value)


# -- error mapping -----------------------------------------------------------------------------------------------

URL = f"{ADDR}/v1/transit/keys/cosign"


@pytest.mark.parametrize(
    ("exc", "expected", "text"),
    [
        (hv.InvalidPath(errors=[], method="get", url=URL), NotFoundError, "not found at transit/keys/cosign on"),
        (hv.Forbidden(errors=["permission denied"], url=URL), AccessDeniedError, "needs `read` on transit/keys/cosign"),
        (hv.Unauthorized(errors=["missing client token"], url=URL), AccessDeniedError, "needs `read`"),
        (hv.InvalidRequest(errors=["unsupported hash"], url=URL), VerificationFailure, "unsupported hash"),
        (hv.RateLimitExceeded(errors=["rate limited"], url=URL), ExternalServiceError, "rate limited"),
        (hv.InternalServerError(errors=["internal error"], url=URL), ExternalServiceError, "internal error"),
        (hv.VaultDown(errors=["Vault is sealed"], url=URL), ExternalServiceError, "Vault is sealed"),
        (hv.BadGateway(url=URL), ExternalServiceError, "could not answer"),
        (hv.VaultNotInitialized(errors=["not initialized"], url=URL), ExternalServiceError, "not initialized"),
        (hv.UnexpectedError(url=URL), ExternalServiceError, "could not answer"),
        (requests.exceptions.ConnectionError("refused"), ExternalServiceError, "unreachable"),
        (requests.exceptions.ConnectTimeout("slow"), ExternalServiceError, "did not answer in time"),
        (requests.exceptions.ReadTimeout("slow"), ExternalServiceError, "did not answer in time"),
        (requests.exceptions.SSLError("bad cert"), ExternalServiceError, "VAULT_CACERT"),
        (requests.exceptions.JSONDecodeError("x", "doc", 0), ExternalServiceError, "not JSON"),
        (RuntimeError("boom"), ExternalServiceError, "RuntimeError"),
    ],
)
def test_vault_errors(exc: BaseException, expected: type[SigwardError], text: str) -> None:
    mapped = map_vault_error(exc, REF, path=PATH, capability="read", address=ADDR)
    assert type(mapped) is expected
    assert text in str(mapped)


def test_vault_error_text_is_shortened() -> None:
    mapped = map_vault_error(hv.Forbidden(errors=["x" * 2000]), REF, path=PATH, capability="read", address=ADDR)
    assert len(str(mapped)) < 500


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (hv.Forbidden(errors=["permission denied"]), AccessDeniedError),
        (hv.InvalidRequest(errors=['invalid role name "x"']), AccessDeniedError),
        (hv.InvalidPath(errors=["no handler for route"]), ConfigurationError),
        (hv.VaultDown(errors=["Vault is sealed"]), ExternalServiceError),
        (requests.exceptions.ConnectionError("refused"), ExternalServiceError),
    ],
)
def test_login_errors(exc: BaseException, expected: type[SigwardError]) -> None:
    mapped = map_vault_login_error(exc, REF, path="auth/kubernetes/login", role="sigward", address=ADDR)
    assert type(mapped) is expected


def test_rsa_and_ec_keys_of_the_right_size_only() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(KeyLoadError):
        public_key_from_vault(REF, PATH, read_answer("rsa-4096", pem(private)))

"""HashiCorp Vault transit keys (``hashivault://KEY``), as cosign's Vault signer names them.

The public key is read from ``<TRANSIT_SECRET_ENGINE_PATH>/keys/<KEY>`` (the newest version's ``public_key``) and
signatures are verified here, so verifying needs only ``read`` on that path; ``sigward sign`` also needs ``update`` on
``<TRANSIT_SECRET_ENGINE_PATH>/sign/<KEY>``. Signatures are made as cosign makes them: SHA-256 for ECDSA and RSA keys
(cosign asks every KMS for SHA-256; P-384/P-521 signatures with the curve's own hash verify too), RSA PKCS#1 v1.5,
ASN.1 DER ECDSA, pure Ed25519.

Environment (read when the first ``hashivault://`` key is used):

``VAULT_ADDR``
    Vault's address, e.g. ``https://vault.example.com:8200`` (required).
``VAULT_TOKEN``
    A Vault token. Without it sigward logs in with one of the two methods below, else uses ``~/.vault-token``.
``VAULT_NAMESPACE``
    Vault Enterprise namespace, sent as ``X-Vault-Namespace``.
``TRANSIT_SECRET_ENGINE_PATH``
    Mount path of the transit secrets engine (default ``transit``).
``VAULT_CACERT`` / ``VAULT_CAPATH``
    CA bundle file / directory for Vault's TLS certificate.
``VAULT_SKIP_VERIFY``
    ``true`` or ``1`` turns TLS certificate verification off (testing only).
``VAULT_CLIENT_CERT`` + ``VAULT_CLIENT_KEY``
    Client certificate and key for mutual TLS.
``VAULT_K8S_ROLE``
    Log in with the Kubernetes auth method as this role, with the pod's service-account token.
``VAULT_K8S_MOUNT``
    Mount path of the Kubernetes auth method (default ``kubernetes``).
``VAULT_K8S_TOKEN_PATH``
    Service-account token file (default ``/var/run/secrets/kubernetes.io/serviceaccount/token``).
``VAULT_JWT_ROLE`` + ``VAULT_JWT_PATH``
    Log in with the JWT/OIDC auth method as this role, with the JWT in the file ``VAULT_JWT_PATH`` (for example a
    projected service-account token or a cloud workload identity token).
``VAULT_JWT_MOUNT``
    Mount path of the JWT auth method (default ``jwt``).

A token obtained by logging in is kept until 90% of its lease has passed (a lease of 0 never expires), and a
``403`` answer to it triggers one new login (the token may have been revoked). Token files are read again at every
login (projected tokens rotate). Tokens are never logged or put in messages.

hvac is imported on first use, never at module import (cold start).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExternalServiceError,
    NotFoundError,
    SigwardError,
    VerificationFailure,
)
from sigward.kms.base import KmsPublicKey
from sigward.policy.kms_uri import KmsKeyRef, Scheme
from sigward.verify.keys import KeyLoadError, SupportedKey, check_key, load_public_key_pem

DEFAULT_TRANSIT_PATH = "transit"
DEFAULT_K8S_MOUNT = "kubernetes"
DEFAULT_K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
DEFAULT_JWT_MOUNT = "jwt"
# A login token is used until this share of its lease has passed.
LEASE_USE_FRACTION = 0.9
# A JWT or service-account token larger than this is not one.
MAX_TOKEN_FILE_BYTES = 64 * 1024
MAX_VAULT_MESSAGE_CHARS = 300
_SIGNATURE = re.compile(r"^vault:v(?P<version>\d+):(?P<b64>[A-Za-z0-9+/=]+)$")
_MOUNT = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")

KeyFamily = Literal["ecdsa", "rsa", "ed25519"]


@dataclass(frozen=True)
class VaultKeyType:
    """A transit key type that signs: the key it must hold and how cosign signs with it."""

    family: KeyFamily
    hash_name: str  # what cosign signs with (SHA-256); unused for pure Ed25519
    curve: str = ""  # ECDSA: the cryptography curve name
    rsa_bits: int = 0


VAULT_KEY_TYPES: dict[str, VaultKeyType] = {
    "ecdsa-p256": VaultKeyType("ecdsa", "sha256", curve="secp256r1"),
    "ecdsa-p384": VaultKeyType("ecdsa", "sha256", curve="secp384r1"),
    "ecdsa-p521": VaultKeyType("ecdsa", "sha256", curve="secp521r1"),
    "rsa-2048": VaultKeyType("rsa", "sha256", rsa_bits=2048),
    "rsa-3072": VaultKeyType("rsa", "sha256", rsa_bits=3072),
    "rsa-4096": VaultKeyType("rsa", "sha256", rsa_bits=4096),
    "ed25519": VaultKeyType("ed25519", "sha256"),
}
# Vault's names for the hashes sigward uses.
VAULT_HASHES = {"sha256": "sha2-256", "sha384": "sha2-384", "sha512": "sha2-512"}


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class VaultSettings:
    address: str
    transit_path: str = DEFAULT_TRANSIT_PATH
    namespace: str = ""
    token: str = field(default="", repr=False)
    verify: bool | str = True
    client_cert: tuple[str, str] | None = None
    k8s_role: str = ""
    k8s_mount: str = DEFAULT_K8S_MOUNT
    k8s_token_path: str = DEFAULT_K8S_TOKEN_PATH
    jwt_role: str = ""
    jwt_path: str = ""
    jwt_mount: str = DEFAULT_JWT_MOUNT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VaultSettings:
        address = env.get("VAULT_ADDR", "").strip().rstrip("/")
        if not address:
            raise ConfigurationError("VAULT_ADDR is not set: hashivault:// keys need the address of Vault")
        if not address.startswith(("http://", "https://")):
            raise ConfigurationError(f"VAULT_ADDR {address[:100]!r} must start with http:// or https://")
        transit = env.get("TRANSIT_SECRET_ENGINE_PATH", "").strip().strip("/") or DEFAULT_TRANSIT_PATH
        k8s_mount = env.get("VAULT_K8S_MOUNT", "").strip().strip("/") or DEFAULT_K8S_MOUNT
        jwt_mount = env.get("VAULT_JWT_MOUNT", "").strip().strip("/") or DEFAULT_JWT_MOUNT
        for name, value in (
            ("TRANSIT_SECRET_ENGINE_PATH", transit),
            ("VAULT_K8S_MOUNT", k8s_mount),
            ("VAULT_JWT_MOUNT", jwt_mount),
        ):
            if not _MOUNT.match(value) or ".." in value.split("/"):
                raise ConfigurationError(f"{name} {value[:100]!r} is not a Vault mount path")
        verify: bool | str = True
        if _truthy(env.get("VAULT_SKIP_VERIFY", "")):
            verify = False
        elif env.get("VAULT_CACERT"):
            verify = env["VAULT_CACERT"]
        elif env.get("VAULT_CAPATH"):
            verify = env["VAULT_CAPATH"]
        cert = env.get("VAULT_CLIENT_CERT", "")
        cert_key = env.get("VAULT_CLIENT_KEY", "")
        return cls(
            address=address,
            transit_path=transit,
            namespace=env.get("VAULT_NAMESPACE", "").strip(),
            token=env.get("VAULT_TOKEN", "").strip(),
            verify=verify,
            client_cert=(cert, cert_key) if cert and cert_key else None,
            k8s_role=env.get("VAULT_K8S_ROLE", "").strip(),
            k8s_mount=k8s_mount,
            k8s_token_path=env.get("VAULT_K8S_TOKEN_PATH", "").strip() or DEFAULT_K8S_TOKEN_PATH,
            jwt_role=env.get("VAULT_JWT_ROLE", "").strip(),
            jwt_path=env.get("VAULT_JWT_PATH", "").strip(),
            jwt_mount=jwt_mount,
        )

    @property
    def login_method(self) -> Literal["token", "kubernetes", "jwt", "file"]:
        if self.token:
            return "token"
        if self.k8s_role:
            return "kubernetes"
        if self.jwt_role or self.jwt_path:
            return "jwt"
        return "file"


@dataclass
class _Token:
    value: str = field(default="", repr=False)
    expires_at: float = 0.0  # monotonic; inf = no expiry
    from_login: bool = False


class VaultKms:
    """The ``hashivault`` backend: thread-safe; one hvac client per process, the login token shared."""

    scheme: Scheme = "hashivault"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = environ
        self._lock = threading.Lock()
        self._login_lock = threading.Lock()
        self._settings: VaultSettings | None = None
        self._client: Any = None
        self._token = _Token()

    # -- KmsBackend ----------------------------------------------------------------------------------------------

    def public_key(self, ref: KmsKeyRef, *, timeout: float) -> KmsPublicKey:
        public, _ = self._read_key(ref, timeout=timeout)
        return public

    def sign(self, ref: KmsKeyRef, payload: bytes, *, timeout: float) -> bytes:
        _, key_type = self._read_key(ref, timeout=timeout)
        settings = self._config()
        kind = VAULT_KEY_TYPES[key_type]
        body: dict[str, Any] = {"input": base64.b64encode(payload).decode("ascii")}
        if kind.family != "ed25519":
            body["hash_algorithm"] = VAULT_HASHES[kind.hash_name]
        if kind.family == "rsa":
            body["signature_algorithm"] = "pkcs1v15"
        if kind.family == "ecdsa":
            body["marshaling_algorithm"] = "asn1"
        path = f"{settings.transit_path}/sign/{ref.key}"
        response = self._request("post", path, ref=ref, timeout=timeout, json=body, capability="update")
        data = response.get("data") if isinstance(response, dict) else None
        signature = data.get("signature") if isinstance(data, dict) else None
        if not isinstance(signature, str):
            raise ExternalServiceError(f"Vault returned no signature for {ref}")
        return decode_vault_signature(signature, ref)

    # -- internals -----------------------------------------------------------------------------------------------

    def _read_key(self, ref: KmsKeyRef, *, timeout: float) -> tuple[KmsPublicKey, str]:
        settings = self._config()
        path = f"{settings.transit_path}/keys/{ref.key}"
        response = self._request("get", path, ref=ref, timeout=timeout, capability="read")
        return public_key_from_vault(ref, path, response)

    def _config(self) -> VaultSettings:
        with self._lock:
            if self._settings is None:
                self._settings = VaultSettings.from_env(os.environ if self._env is None else self._env)
            return self._settings

    def _hvac(self, settings: VaultSettings, timeout: float) -> Any:
        with self._lock:
            if self._client is None:
                import hvac

                # The token travels per request (see _request); "" keeps hvac from reading VAULT_TOKEN itself.
                self._client = hvac.Client(
                    url=settings.address,
                    token="",
                    namespace=settings.namespace or None,
                    verify=settings.verify,
                    cert=settings.client_cert,
                    timeout=timeout,
                )
            return self._client

    def _request(
        self, method: str, path: str, *, ref: KmsKeyRef, timeout: float, capability: str, json: Any = None
    ) -> Any:
        settings = self._config()
        client = self._hvac(settings, timeout)
        retried = False
        while True:
            token = self._current_token(settings, ref, timeout)
            kwargs: dict[str, Any] = {"headers": {"X-Vault-Token": token}, "timeout": timeout}
            if json is not None:
                kwargs["json"] = json
            try:
                return client.adapter.request(method, f"/v1/{path}", **kwargs)
            except Exception as exc:
                from hvac import exceptions as hv

                if isinstance(exc, hv.Forbidden) and self._token.from_login and not retried:
                    # A login token may have been revoked or shortened: log in once more.
                    self._forget_token(token)
                    retried = True
                    continue
                raise map_vault_error(exc, ref, path=path, capability=capability, address=settings.address) from exc

    def _current_token(self, settings: VaultSettings, ref: KmsKeyRef, timeout: float) -> str:
        if settings.login_method == "token":
            return settings.token
        with self._login_lock:
            current = self._token
            if current.value and time.monotonic() < current.expires_at:
                return current.value
            if settings.login_method == "file":
                self._token = _Token(value=_home_token(settings), expires_at=float("inf"))
            else:
                self._token = self._login(settings, ref, timeout)
            return self._token.value

    def _forget_token(self, token: str) -> None:
        with self._login_lock:
            if self._token.value == token:
                self._token = _Token()

    def _login(self, settings: VaultSettings, ref: KmsKeyRef, timeout: float) -> _Token:
        if settings.login_method == "kubernetes":
            role, mount, jwt_file = settings.k8s_role, settings.k8s_mount, settings.k8s_token_path
            what = "Kubernetes service-account token (VAULT_K8S_TOKEN_PATH)"
        else:
            if not settings.jwt_role or not settings.jwt_path:
                raise ConfigurationError("Vault JWT login needs both VAULT_JWT_ROLE and VAULT_JWT_PATH")
            role, mount, jwt_file = settings.jwt_role, settings.jwt_mount, settings.jwt_path
            what = "JWT file (VAULT_JWT_PATH)"
        jwt = _read_token_file(jwt_file, what)
        path = f"auth/{mount}/login"
        client = self._hvac(settings, timeout)
        started = time.monotonic()
        try:
            response = client.adapter.login(
                f"/v1/{path}", use_token=False, json={"role": role, "jwt": jwt}, timeout=timeout
            )
        except Exception as exc:
            raise map_vault_login_error(exc, ref, path=path, role=role, address=settings.address) from exc
        auth = response.get("auth") if isinstance(response, dict) else None
        token = auth.get("client_token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise ExternalServiceError(f"Vault login at {path} returned no client token")
        lease = auth.get("lease_duration") if isinstance(auth, dict) else 0
        seconds = float(lease) if isinstance(lease, int | float) and lease > 0 else 0.0
        expires = started + seconds * LEASE_USE_FRACTION if seconds else float("inf")
        return _Token(value=token, expires_at=expires, from_login=True)


def _read_token_file(path: str, what: str) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise ConfigurationError(f"the {what} {path} is larger than a token can be")
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        raise ConfigurationError(f"the {what} {path} is empty")
    return text


def _home_token(settings: VaultSettings) -> str:
    path = Path.home() / ".vault-token"
    if not path.is_file():
        raise ConfigurationError(
            "no Vault credentials: set VAULT_TOKEN, or VAULT_K8S_ROLE (Kubernetes auth), "
            "or VAULT_JWT_ROLE and VAULT_JWT_PATH (JWT auth)"
        )
    return _read_token_file(str(path), "Vault token file")


def public_key_from_vault(ref: KmsKeyRef, path: str, response: Any) -> tuple[KmsPublicKey, str]:
    """The newest version's public key of a ``GET <transit>/keys/<name>`` answer, and the key's type."""
    data = response.get("data") if isinstance(response, dict) else None
    if not isinstance(data, dict):
        raise ExternalServiceError(f"Vault answered {path} for {ref} without data")
    key_type = str(data.get("type") or "")
    kind = VAULT_KEY_TYPES.get(key_type)
    if kind is None or data.get("supports_signing") is False:
        raise KeyLoadError(
            f"{ref} is a Vault transit key of type {key_type or 'unknown'}, which cannot sign "
            f"(signing key types: {', '.join(VAULT_KEY_TYPES)})"
        )
    latest = data.get("latest_version")
    keys = data.get("keys")
    entry = keys.get(str(latest)) if isinstance(keys, dict) and isinstance(latest, int) else None
    public = entry.get("public_key") if isinstance(entry, dict) else None
    if not isinstance(public, str) or not public:
        raise ExternalServiceError(f"Vault answered {path} for {ref} without the public key of its latest version")
    key: SupportedKey
    if kind.family == "ed25519":
        try:
            raw = base64.b64decode(public, validate=True)
        except (binascii.Error, ValueError):
            raise KeyLoadError(f"Vault key {ref}: the ed25519 public key is not base64") from None
        if len(raw) != 32:
            raise KeyLoadError(f"Vault key {ref}: the ed25519 public key has {len(raw)} bytes, not 32")
        key = check_key(ed25519.Ed25519PublicKey.from_public_bytes(raw))
    else:
        try:
            key = load_public_key_pem(public)
        except KeyLoadError as exc:
            raise KeyLoadError(f"Vault key {ref} ({key_type}): {exc.message}") from exc
    if not _fits(key, kind):
        raise KeyLoadError(f"Vault key {ref}: its public key does not match its type {key_type}")
    version = str(latest)
    return KmsPublicKey(key=key, hash_name=kind.hash_name, rsa_padding="pkcs1v15", version=version), key_type


def _fits(key: SupportedKey, kind: VaultKeyType) -> bool:
    if kind.family == "ecdsa":
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == kind.curve
    if kind.family == "rsa":
        return isinstance(key, rsa.RSAPublicKey) and key.key_size == kind.rsa_bits
    return isinstance(key, ed25519.Ed25519PublicKey)


def decode_vault_signature(value: str, ref: KmsKeyRef) -> bytes:
    """``vault:vN:<base64>`` → the signature bytes (ASN.1 DER for ECDSA)."""
    match = _SIGNATURE.match(value.strip())
    if not match:
        raise ExternalServiceError(f"Vault returned a signature for {ref} that is not vault:vN:<base64>")
    try:
        return base64.b64decode(match.group("b64"), validate=True)
    except (binascii.Error, ValueError):
        raise ExternalServiceError(f"Vault returned a signature for {ref} that is not valid base64") from None


def map_vault_error(exc: BaseException, ref: KmsKeyRef, *, path: str, capability: str, address: str) -> SigwardError:
    """sigward's error for an exception of a transit call; Vault's own error texts hold no secrets."""
    if isinstance(exc, SigwardError):
        return exc
    import requests
    from hvac import exceptions as hv

    if isinstance(exc, hv.InvalidPath):
        return NotFoundError(f"Vault transit key {ref} not found at {path} on {address}")
    if isinstance(exc, hv.Forbidden | hv.Unauthorized):
        return AccessDeniedError(
            f"Vault denied access to {ref}: the token needs `{capability}` on {path}{_vault_detail(exc)}"
        )
    if isinstance(exc, hv.InvalidRequest | hv.ParamValidationError | hv.UnsupportedOperation):
        return VerificationFailure(f"Vault refused the request for {ref} at {path}{_vault_detail(exc)}")
    if isinstance(exc, hv.VaultError):
        return ExternalServiceError(f"Vault at {address} could not answer for {ref}{_vault_detail(exc)}")
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        return ExternalServiceError(f"Vault at {address} sent an answer that is not JSON for {ref}")
    if isinstance(exc, requests.exceptions.SSLError):
        return ExternalServiceError(
            f"Vault at {address}: TLS failed (set VAULT_CACERT to Vault's CA): {type(exc).__name__}"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return ExternalServiceError(f"Vault at {address} did not answer in time for {ref}")
    if isinstance(exc, requests.exceptions.RequestException):
        return ExternalServiceError(f"Vault at {address} unreachable for {ref}: {type(exc).__name__}")
    return ExternalServiceError(f"Vault request for {ref} failed: {type(exc).__name__}")


def map_vault_login_error(exc: BaseException, ref: KmsKeyRef, *, path: str, role: str, address: str) -> SigwardError:
    if isinstance(exc, SigwardError):
        return exc
    from hvac import exceptions as hv

    if isinstance(exc, hv.Forbidden | hv.Unauthorized | hv.InvalidRequest):
        # Vault answers a bad JWT with 403 and an unknown role with 400.
        return AccessDeniedError(f"Vault login as role {role!r} at {path} failed for {ref}{_vault_detail(exc)}")
    if isinstance(exc, hv.InvalidPath):
        return ConfigurationError(f"Vault has no auth method at {path} (check the mount path) for {ref}")
    return map_vault_error(exc, ref, path=path, capability="update", address=address)


def _vault_detail(exc: Any) -> str:
    errors = getattr(exc, "errors", None)
    if not errors or not isinstance(errors, list):
        return ""
    text = " ".join("; ".join(str(e) for e in errors).split())
    if len(text) > MAX_VAULT_MESSAGE_CHARS:
        text = text[: MAX_VAULT_MESSAGE_CHARS - 1] + "…"
    return f" (Vault: {text})"

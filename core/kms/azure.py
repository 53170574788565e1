"""Azure Key Vault keys (``azurekms://VAULT.vault.azure.net/KEY[/VERSION]``).

The public key comes from Key Vault's *get key* (a JWK; needs the key permission ``get``, or with Azure RBAC a role
holding ``Microsoft.KeyVault/vaults/keys/read`` such as "Key Vault Crypto User" or "Key Vault Reader") and is used
locally. EC keys sign with ES256/ES384/ES512 by curve, RSA keys with RS256/RS384/RS512 by modulus size
(2048/3072/4096), as sigstore's Azure signer does. Without a version the vault's current version is used.

Credentials are ``azure.identity.DefaultAzureCredential``: environment service principal, AKS workload identity
(``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE``; ``AZURE_AUTHORITY_HOST`` for other clouds),
managed identity, then developer tools. Key Vault's bearer challenge decides the token's tenant and scope; the SDK's
check that the challenge's resource belongs to the vault's domain stays on. TLS trust is the SDK's (requests
honours ``REQUESTS_CA_BUNDLE``). There is no sigward-specific test hook: tests run workload identity against a
local token endpoint.

``azure-identity`` and ``azure-keyvault-keys`` are imported on first use, never at module import.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    DeadlineExceededError,
    ExternalServiceError,
    NotFoundError,
    SigwardError,
    VerificationFailure,
)
from sigward.kms.base import KmsPublicKey
from sigward.policy.kms_uri import KmsKeyRef, Scheme
from sigward.verify.keys import KeyLoadError, PublicKeyVerifier, check_key

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.keys import KeyClient, KeyVaultKey

# Transport settings for Key Vault and token requests; every call also gets the caller's remaining time.
CONNECT_TIMEOUT_SECONDS = 5.0
TOKEN_READ_TIMEOUT_SECONDS = 10.0
# Two retries with a short backoff: a transient 5xx/connection reset is retried, an unreachable vault fails fast.
RETRY_TOTAL = 2
RETRY_BACKOFF_FACTOR = 0.2
RETRY_BACKOFF_MAX = 1.0
MAX_DETAIL = 400

READ_PERMISSION = (
    "the key permission 'get' (access policy) or, with Azure RBAC, a role with "
    "Microsoft.KeyVault/vaults/keys/read such as 'Key Vault Crypto User' or 'Key Vault Reader'"
)
SIGN_PERMISSION = (
    "the key permission 'sign' (access policy) or, with Azure RBAC, the role 'Key Vault Crypto User' "
    "(Microsoft.KeyVault/vaults/keys/sign/action)"
)
CREDENTIALS_HINT = (
    "provide Azure credentials: AKS workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE), "
    "a managed identity, or a service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET)"
)

_EC_CURVES: dict[str, tuple[str, str, str, int]] = {
    # JWK crv: (cryptography curve name, hash, Key Vault algorithm, coordinate bytes)
    "P-256": ("secp256r1", "sha256", "ES256", 32),
    "P-384": ("secp384r1", "sha384", "ES384", 48),
    "P-521": ("secp521r1", "sha512", "ES512", 66),
}
_RSA_SIZES: dict[int, tuple[str, str]] = {
    2048: ("sha256", "RS256"),
    3072: ("sha384", "RS384"),
    4096: ("sha512", "RS512"),
}


@dataclass(frozen=True)
class Jwk:
    """The parts of a Key Vault JSON Web Key that verification needs (bytes already base64url-decoded)."""

    kty: str
    key_ops: tuple[str, ...] | None = None
    crv: str = ""
    x: bytes = b""
    y: bytes = b""
    n: bytes = b""
    e: bytes = b""


@dataclass(frozen=True)
class AzureKey:
    public: KmsPublicKey
    algorithm: str  # the Key Vault signature algorithm: ES256 ... RS512


def key_from_jwk(jwk: Jwk, *, version: str) -> AzureKey:
    """The public key, hash and signing algorithm of a JWK; KeyLoadError for keys cosign cannot use."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    kty = jwk.kty.upper()
    if jwk.key_ops is not None and not {"sign", "verify"} & {op.lower() for op in jwk.key_ops}:
        allowed = ", ".join(jwk.key_ops) or "none"
        raise KeyLoadError(
            f"azurekms: {version} is not a signing key: its key_ops ({allowed}) allow neither sign nor verify"
        )
    if kty in {"EC", "EC-HSM"}:
        found = _EC_CURVES.get(jwk.crv)
        if found is None:
            raise KeyLoadError(f"azurekms: {version} uses the unsupported curve {jwk.crv or '(none)'}")
        curve_name, hash_name, algorithm, size = found
        if not jwk.x or not jwk.y or len(jwk.x) > size or len(jwk.y) > size:
            raise KeyLoadError(f"azurekms: {version} has malformed EC coordinates for {jwk.crv}")
        curves: dict[str, ec.EllipticCurve] = {
            "secp256r1": ec.SECP256R1(),
            "secp384r1": ec.SECP384R1(),
            "secp521r1": ec.SECP521R1(),
        }
        curve = curves[curve_name]
        try:
            ec_key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"), curve
            ).public_key()
        except ValueError as exc:
            raise KeyLoadError(f"azurekms: {version} has an invalid EC public key: {exc}") from exc
        return AzureKey(
            public=KmsPublicKey(key=check_key(ec_key), hash_name=hash_name, version=version), algorithm=algorithm
        )
    if kty in {"RSA", "RSA-HSM"}:
        if not jwk.n or not jwk.e:
            raise KeyLoadError(f"azurekms: {version} has no RSA modulus or exponent")
        try:
            rsa_key = rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
        except ValueError as exc:
            raise KeyLoadError(f"azurekms: {version} has an invalid RSA public key: {exc}") from exc
        sizes = _RSA_SIZES.get(rsa_key.key_size)
        if sizes is None:
            raise KeyLoadError(
                f"azurekms: {version} is RSA-{rsa_key.key_size}; Key Vault signing keys must be RSA 2048, 3072 or 4096"
            )
        hash_name, algorithm = sizes
        public = KmsPublicKey(key=check_key(rsa_key), hash_name=hash_name, version=version)
        return AzureKey(public=public, algorithm=algorithm)
    raise KeyLoadError(f"azurekms: {version} has key type {jwk.kty or '(none)'}; only EC and RSA keys can sign")


def raw_to_der(signature: bytes, coordinate_size: int) -> bytes:
    """Key Vault returns ECDSA signatures as raw ``r || s``; cosign stores ASN.1 DER."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if len(signature) != 2 * coordinate_size:
        raise ExternalServiceError(
            f"azurekms: Key Vault returned an ECDSA signature of {len(signature)} bytes, expected {2 * coordinate_size}"
        )
    r = int.from_bytes(signature[:coordinate_size], "big")
    s = int.from_bytes(signature[coordinate_size:], "big")
    return encode_dss_signature(r, s)


def _detail(exc: BaseException) -> str:
    error = getattr(exc, "error", None)  # HttpResponseError: Key Vault's {"error": {"code", "message"}}
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    text = str(getattr(exc, "message", "") or exc)
    if message:
        text = f"{code}: {message}" if code else str(message)
    return " ".join(text.split())[:MAX_DETAIL]


def map_error(exc: BaseException, *, operation: Literal["get", "sign"], what: str) -> SigwardError:
    """Turn an azure-core / azure-identity exception into sigward's error for ``operation`` on key ``what``."""
    from azure.core import exceptions as aexc

    detail = _detail(exc)
    permission = READ_PERMISSION if operation == "get" else SIGN_PERMISSION
    if isinstance(exc, aexc.ResourceNotFoundError):
        return NotFoundError(f"azurekms: key {what} not found ({detail})")
    if isinstance(exc, aexc.ClientAuthenticationError) and exc.response is None:
        return credential_error(exc)
    if isinstance(exc, aexc.HttpResponseError):
        status = exc.status_code or 0
        if not status:
            return ExternalServiceError(
                f"azurekms: the answer of Key Vault for key {what} could not be read: {type(exc).__name__}: {detail}"
            )
        if status == 403 and "disabled" in detail.lower():
            return KeyLoadError(f"azurekms: key {what} is disabled ({detail})")
        if status in (401, 403):
            return AccessDeniedError(
                f"azurekms: Key Vault denied access to key {what} ({detail}); the identity needs {permission}"
            )
        if status == 404:
            return NotFoundError(f"azurekms: key {what} not found ({detail})")
        if status == 400:
            return VerificationFailure(f"azurekms: Key Vault refused the request for key {what}: {detail}")
        return ExternalServiceError(f"azurekms: Key Vault answered {status} for key {what}: {detail}")
    if isinstance(exc, aexc.ServiceRequestError | aexc.ServiceResponseError):
        return ExternalServiceError(f"azurekms: Key Vault unreachable for key {what}: {detail}")
    if isinstance(exc, ValueError) and "challenge" in detail.lower():
        # The SDK refuses a bearer challenge whose resource is not the vault's domain, before any token is sent.
        return VerificationFailure(
            f"azurekms: the server of {what} sent an authentication challenge the Key Vault client refuses: {detail}"
        )
    return ExternalServiceError(f"azurekms: Key Vault call failed for key {what}: {type(exc).__name__}: {detail}")


def credential_error(exc: BaseException) -> SigwardError:
    """A token could not be had. DefaultAzureCredential reports every failure as one ClientAuthenticationError that
    lists each credential it tried; the chain stops at the first credential that was configured but failed, so the
    last attempt tells "nothing configured" (ConfigurationError), "the identity provider could not be reached"
    (ExternalServiceError) and "the identity was refused" (AccessDeniedError) apart."""
    from azure.identity import CredentialUnavailableError

    raw = str(getattr(exc, "message", "") or exc)
    attempts = credential_attempts(raw)
    last = attempts[-1][1] if attempts else raw
    detail = f"{attempts[-1][0]}: {last}"[:MAX_DETAIL] if attempts else _detail(exc)
    if isinstance(exc, CredentialUnavailableError) or _unavailable(last):
        tried = f"DefaultAzureCredential tried {', '.join(n for n, _ in attempts)}" if attempts else detail
        return ConfigurationError(f"azurekms: no Azure credentials available ({tried}); {CREDENTIALS_HINT}")
    if _network_failure(last):
        return ExternalServiceError(f"azurekms: could not reach the identity provider for a token: {detail}")
    return AccessDeniedError(f"azurekms: the Azure credentials were refused: {detail}")


_ATTEMPT = re.compile(r"^\t(\w+): ", re.MULTILINE)
_UNAVAILABLE = ("unavailable", "not installed", "not found on path", "could not be found", "requires the")
_NETWORK = (
    "failed to establish a new connection",
    "connection refused",
    "connection reset",
    "connection aborted",
    "remote end closed",
    "timed out",
    "timeout",
    "name or service not known",
    "temporary failure in name resolution",
    "max retries exceeded",
    "ssl",
)


def credential_attempts(message: str) -> list[tuple[str, str]]:
    """(credential class, what it reported) for each credential in a DefaultAzureCredential failure message."""
    matches = list(_ATTEMPT.finditer(message))
    out = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(message)
        text = message[match.end() : end].split("\nTo mitigate this issue", 1)[0]
        out.append((match.group(1), " ".join(text.split())))
    return out


def _unavailable(report: str) -> bool:
    lowered = report.lower()
    return any(marker in lowered for marker in _UNAVAILABLE)


def _network_failure(report: str) -> bool:
    lowered = report.lower()
    return any(marker in lowered for marker in _NETWORK)


def _sdk_errors() -> tuple[type[BaseException], ...]:
    from azure.core.exceptions import AzureError

    # ValueError: the Key Vault client's own refusals (a challenge for a foreign resource, a malformed key id).
    return (AzureError, ValueError)


def _client_options() -> dict[str, Any]:
    return {
        "retry_total": RETRY_TOTAL,
        "retry_backoff_factor": RETRY_BACKOFF_FACTOR,
        "retry_backoff_max": RETRY_BACKOFF_MAX,
        "connection_timeout": CONNECT_TIMEOUT_SECONDS,
    }


def _call_options(deadline: float, what: str) -> dict[str, Any]:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceededError(f"azurekms: no time left to call Key Vault for {what}")
    return {"timeout": left, "connection_timeout": min(left, CONNECT_TIMEOUT_SECONDS), "read_timeout": left}


def _authority(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    host = (parsed.hostname or "").lower()
    port = parsed.port
    return host if port in (None, 443) else f"{host}:{port}"


class AzureKms:
    """The ``azurekms://`` backend: one credential per process and one KeyClient per vault; thread-safe."""

    scheme: Scheme = "azurekms"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credential: TokenCredential | None = None
        self._clients: dict[str, KeyClient] = {}

    def credential(self) -> TokenCredential:
        with self._lock:
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                # Only the transport timeouts: a black-holed token endpoint must not hang for azure-core's default
                # 300 s; the credentials' own retry settings (IMDS retries 5 times on purpose) stay as they are.
                self._credential = DefaultAzureCredential(
                    connection_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=TOKEN_READ_TIMEOUT_SECONDS
                )
            return self._credential

    def key_client(self, ref: KmsKeyRef) -> KeyClient:
        credential = self.credential()
        vault = ref.endpoint.lower()
        with self._lock:
            client = self._clients.get(vault)
            if client is None:
                from azure.keyvault.keys import KeyClient

                client = KeyClient(ref.vault_url, credential, **_client_options())
                self._clients[vault] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            credential, self._credential = self._credential, None
        for client in clients:
            client.close()
        close = getattr(credential, "close", None)
        if callable(close):
            close()

    # -- KmsBackend ------------------------------------------------------------------------------------------------

    def public_key(self, ref: KmsKeyRef, *, timeout: float) -> KmsPublicKey:
        deadline = time.monotonic() + timeout
        _, found = self._get_key(ref, deadline)
        return found.public

    def sign(self, ref: KmsKeyRef, payload: bytes, *, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        vault_key, found = self._get_key(ref, deadline)
        ops = vault_key.key_operations
        if ops is not None and "sign" not in {_text(op).lower() for op in ops}:
            raise KeyLoadError(f"azurekms: {found.public.version} does not allow the operation 'sign'")
        public = found.public
        digest = hashlib.new(public.hash_name, payload).digest()
        from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

        what = found.public.version
        try:
            with CryptographyClient(vault_key, self.credential(), **_client_options()) as crypto:
                result = crypto.sign(SignatureAlgorithm(found.algorithm), digest, **_call_options(deadline, what))
        except _sdk_errors() as exc:
            raise map_error(exc, operation="sign", what=what) from exc
        signature = bytes(result.signature)
        if found.algorithm.startswith("ES"):
            signature = raw_to_der(signature, _EC_CURVES[_curve_of(found.algorithm)][3])
        verifier = PublicKeyVerifier(key=public.key, hash_name=public.hash_name, source=what)
        try:
            verifier.verify(signature, payload)
        except VerificationFailure as exc:
            raise ExternalServiceError(f"azurekms: the signature Key Vault made with {what} does not verify") from exc
        return signature

    # -- calls -----------------------------------------------------------------------------------------------------

    def _get_key(self, ref: KmsKeyRef, deadline: float) -> tuple[KeyVaultKey, AzureKey]:
        what = f"{ref.key}" + (f"/{ref.version}" if ref.version else "") + f" in {ref.vault_url}"
        client = self.key_client(ref)
        try:
            vault_key = client.get_key(ref.key, ref.version or None, **_call_options(deadline, what))
        except _sdk_errors() as exc:
            raise map_error(exc, operation="get", what=what) from exc
        kid = str(vault_key.id or "")
        name, version = _check_kid(kid, ref)
        label = f"{ref.vault_url}/keys/{name}/{version}"
        if vault_key.properties.enabled is False:
            raise KeyLoadError(f"azurekms: key {label} is disabled")
        jwk = vault_key.key
        ops = vault_key.key_operations
        found = key_from_jwk(
            Jwk(
                # JsonWebKey sets its fields from the JWK dynamically (not visible to type checkers).
                kty=_text(getattr(jwk, "kty", None)),
                key_ops=None if ops is None else tuple(_text(op) for op in ops),
                crv=_text(getattr(jwk, "crv", None)),
                x=_bytes(getattr(jwk, "x", None)),
                y=_bytes(getattr(jwk, "y", None)),
                n=_bytes(getattr(jwk, "n", None)),
                e=_bytes(getattr(jwk, "e", None)),
            ),
            version=label,
        )
        return vault_key, found


def _text(value: object) -> str:
    """An SDK enum member (``KeyType.ec``) or plain string, as its wire value."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _bytes(value: object) -> bytes:
    return bytes(value) if isinstance(value, bytes | bytearray) else b""


def _curve_of(algorithm: str) -> str:
    return next(crv for crv, (_, _, alg, _) in _EC_CURVES.items() if alg == algorithm)


def _check_kid(kid: str, ref: KmsKeyRef) -> tuple[str, str]:
    """The key name and version of the key Key Vault answered with, which must be the one asked for."""
    parts = [p for p in urllib.parse.urlsplit(kid).path.split("/") if p]
    ok = (
        _authority(kid) == _authority(ref.vault_url)
        and len(parts) == 3
        and parts[0] == "keys"
        and parts[1].lower() == ref.key.lower()
        and (not ref.version or parts[2].lower() == ref.version.lower())
    )
    if not ok:
        raise ExternalServiceError(f"azurekms: Key Vault answered {kid!r} for the key {ref.uri}")
    return parts[1], parts[2]

"""AWS KMS keys (``awskms://[ENDPOINT]/KEYID|ALIAS|ARN``), as cosign's AWS signer uses them.

The public key comes from ``GetPublicKey`` (DER SubjectPublicKeyInfo) and the signature scheme from the first of the
key's ``SigningAlgorithms`` (cosign's choice), so a policy needs nothing but the URI. Only ``kms:GetPublicKey`` is
needed to verify (``kms:Sign`` as well to sign).

Credentials and settings are the SDK's own (boto3 default chain), read when the first ``awskms://`` key is used:

- credentials: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` with the
  shared config files, web identity (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` [+ ``AWS_ROLE_SESSION_NAME``]:
  EKS IRSA), container credentials (ECS, EKS Pod Identity), EC2 instance metadata;
- region: the region of a key ARN in the URI, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` or the profile's;
- endpoint: a non-empty URI endpoint means ``https://ENDPOINT`` (as cosign); otherwise the SDK resolves it, honouring
  ``AWS_ENDPOINT_URL_KMS`` / ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_STS`` for web identity); ``AWS_CA_BUNDLE``
  for a private CA.

boto3 is imported on first use, never at module import (cold start).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass
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
from sigward.kms.base import DEFAULT_KMS_TIMEOUT_SECONDS, KmsPublicKey
from sigward.policy.kms_uri import KmsKeyRef, Scheme
from sigward.verify.keys import KeyLoadError, RSAPadding, SupportedKey, load_public_key_der

KeyFamily = Literal["ecdsa", "rsa", "ed25519"]


@dataclass(frozen=True)
class SigningAlgorithm:
    """How signatures of one AWS ``SigningAlgorithmSpec`` verify. ``hash_name`` is unused for pure Ed25519 (it
    carries ``sha256`` only because :class:`~sigward.verify.keys.PublicKeyVerifier` wants a valid name)."""

    family: KeyFamily
    hash_name: str
    rsa_padding: RSAPadding = "pkcs1v15"


SIGNING_ALGORITHMS: dict[str, SigningAlgorithm] = {
    "ECDSA_SHA_256": SigningAlgorithm("ecdsa", "sha256"),
    "ECDSA_SHA_384": SigningAlgorithm("ecdsa", "sha384"),
    "ECDSA_SHA_512": SigningAlgorithm("ecdsa", "sha512"),
    "RSASSA_PKCS1_V1_5_SHA_256": SigningAlgorithm("rsa", "sha256"),
    "RSASSA_PKCS1_V1_5_SHA_384": SigningAlgorithm("rsa", "sha384"),
    "RSASSA_PKCS1_V1_5_SHA_512": SigningAlgorithm("rsa", "sha512"),
    "RSASSA_PSS_SHA_256": SigningAlgorithm("rsa", "sha256", "pss"),
    "RSASSA_PSS_SHA_384": SigningAlgorithm("rsa", "sha384", "pss"),
    "RSASSA_PSS_SHA_512": SigningAlgorithm("rsa", "sha512", "pss"),
    # RFC 8032 PureEdDSA (SHA-512 is internal to Ed25519): cosign's Ed25519 verification.
    "ED25519_SHA_512": SigningAlgorithm("ed25519", "sha256"),
}

# KMS Sign takes at most this many bytes with MessageType=RAW; larger payloads are hashed here and sent as DIGEST.
MAX_RAW_MESSAGE_BYTES = 4096
# Per-call timeouts are rounded up to whole seconds and capped; one client per (endpoint, region, timeout).
MAX_CALL_TIMEOUT_SECONDS = 30
# One retry (standard mode: throttling, 5xx and connection errors), so an outage costs at most two timeouts.
TOTAL_MAX_ATTEMPTS = 2
MAX_AWS_MESSAGE_CHARS = 300

_NOT_FOUND = frozenset({"NotFoundException"})
_DENIED = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "InvalidIdentityToken",
        "IDPRejectedClaim",
        "IDPCommunicationError",
        "InvalidGrantTokenException",
    }
)
_UNAVAILABLE = frozenset(
    {
        "KeyUnavailableException",
        "DependencyTimeoutException",
        "KMSInternalException",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class AwsKms:
    """The ``awskms`` backend: thread-safe; one boto3 session per instance, clients created once and reused."""

    scheme: Scheme = "awskms"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[tuple[str, str, int], Any] = {}

    # -- KmsBackend ----------------------------------------------------------------------------------------------

    def public_key(self, ref: KmsKeyRef, *, timeout: float) -> KmsPublicKey:
        public, _ = self._fetch(ref, timeout=timeout, actions="kms:GetPublicKey")
        return public

    def sign(self, ref: KmsKeyRef, payload: bytes, *, timeout: float) -> bytes:
        actions = "kms:GetPublicKey and kms:Sign"
        _, algorithm = self._fetch(ref, timeout=timeout, actions=actions)
        scheme = SIGNING_ALGORITHMS[algorithm]
        if len(payload) <= MAX_RAW_MESSAGE_BYTES:
            message, message_type = payload, "RAW"
        elif scheme.family == "ed25519":
            raise VerificationFailure(
                f"AWS KMS key {ref}: Ed25519 signs at most {MAX_RAW_MESSAGE_BYTES} bytes, "
                f"the payload has {len(payload)}"
            )
        else:
            message, message_type = hashlib.new(scheme.hash_name, payload).digest(), "DIGEST"
        client = self._client(ref, timeout)
        try:
            response = client.sign(KeyId=ref.key, Message=message, MessageType=message_type, SigningAlgorithm=algorithm)
        except Exception as exc:
            raise map_aws_error(exc, ref, actions) from exc
        signature = response.get("Signature")
        if not isinstance(signature, bytes) or not signature:
            raise ExternalServiceError(f"AWS KMS returned no signature for {ref}")
        return signature

    # -- internals -----------------------------------------------------------------------------------------------

    def _fetch(self, ref: KmsKeyRef, *, timeout: float, actions: str) -> tuple[KmsPublicKey, str]:
        client = self._client(ref, timeout)
        try:
            response = client.get_public_key(KeyId=ref.key)
        except Exception as exc:
            raise map_aws_error(exc, ref, actions) from exc
        return public_key_from_response(ref, response)

    def _client(self, ref: KmsKeyRef, timeout: float) -> Any:
        seconds = max(1, min(MAX_CALL_TIMEOUT_SECONDS, math.ceil(timeout)))
        with self._lock:
            try:
                session = self._boto_session()
                region = resolve_region(ref, session.region_name)
                endpoint = endpoint_url(ref)
                key = (endpoint, region, seconds)
                client = self._clients.get(key)
                if client is None:
                    from botocore.config import Config  # type: ignore[import-untyped]

                    config = Config(
                        connect_timeout=seconds,
                        read_timeout=seconds,
                        retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
                        user_agent_extra="sigward",
                    )
                    client = session.client("kms", region_name=region, endpoint_url=endpoint or None, config=config)
                    self._clients[key] = client
            except SigwardError:
                raise
            except Exception as exc:
                raise map_aws_error(exc, ref, "kms:GetPublicKey") from exc
            return client

    def _boto_session(self) -> Any:
        """Created under ``self._lock``: boto3 sessions are not safe to share while creating clients."""
        if self._session is None:
            import boto3  # type: ignore[import-untyped]
            import botocore.session  # type: ignore[import-untyped]
            from botocore.config import Config

            core = botocore.session.get_session()
            # Clients the SDK makes for itself (STS for web identity) get bounded timeouts too, not botocore's 60 s.
            core.set_default_client_config(
                Config(
                    connect_timeout=DEFAULT_KMS_TIMEOUT_SECONDS,
                    read_timeout=DEFAULT_KMS_TIMEOUT_SECONDS,
                    retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
                )
            )
            # botocore itself reads only AWS_DEFAULT_REGION; AWS_REGION (set by Lambda, EKS, ECS) comes first here,
            # and also reaches the STS client that web identity credentials use.
            # On GCP (Cloud Run) with SIGWARD_AWS_ROLE_ARN: credentials from the function's Google identity token
            # (AssumeRoleWithWebIdentity), no AWS keys; otherwise the SDK's default chain, IRSA included.
            from sigward.aws_federation import aws_session

            self._session = aws_session(os.environ.get("AWS_REGION") or None, botocore_session=core)
            _ = boto3
        return self._session


def resolve_region(ref: KmsKeyRef, ambient: str | None) -> str:
    region = ref.region or ambient or ""
    if not region:
        raise ConfigurationError(
            f"no AWS region for KMS key {ref}: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile region) "
            "or name the key by its ARN"
        )
    return region


def endpoint_url(ref: KmsKeyRef) -> str:
    """``https://ENDPOINT`` for a URI with an endpoint (as cosign); empty = the SDK's endpoint resolution."""
    return f"https://{ref.endpoint}" if ref.endpoint else ""


def public_key_from_response(ref: KmsKeyRef, response: dict[str, Any]) -> tuple[KmsPublicKey, str]:
    """The verification key and the signing algorithm (name) of a ``GetPublicKey`` response."""
    usage = str(response.get("KeyUsage") or "")
    # moto answers with the deprecated CustomerMasterKeySpec only; AWS sends both.
    spec = str(response.get("KeySpec") or response.get("CustomerMasterKeySpec") or "unknown")
    if usage != "SIGN_VERIFY":
        what = f"{'an' if usage[:1] in 'AEIOU' else 'a'} {usage} key" if usage else "a key of unknown usage"
        raise KeyLoadError(
            f"{ref} is {what} ({spec}), not a signing key: cosign signatures need a KeyUsage SIGN_VERIFY key"
        )
    algorithms = response.get("SigningAlgorithms") or []
    if not algorithms:
        raise KeyLoadError(f"AWS KMS key {ref} ({spec}) lists no signing algorithms")
    algorithm = str(algorithms[0])
    scheme = SIGNING_ALGORITHMS.get(algorithm)
    if scheme is None:
        raise KeyLoadError(
            f"AWS KMS key {ref} ({spec}) signs with {algorithm}, which cosign signatures do not use "
            f"(supported: {', '.join(SIGNING_ALGORITHMS)})"
        )
    der = response.get("PublicKey")
    if not isinstance(der, bytes | bytearray) or not der:
        raise ExternalServiceError(f"AWS KMS returned no public key for {ref}")
    try:
        key = load_public_key_der(bytes(der))
    except KeyLoadError as exc:
        raise KeyLoadError(f"AWS KMS key {ref} ({spec}): {exc.message}") from exc
    if _family(key) != scheme.family:
        raise KeyLoadError(f"AWS KMS key {ref}: {algorithm} does not fit its {spec} public key")
    version = str(response.get("KeyId") or "")
    return KmsPublicKey(key=key, hash_name=scheme.hash_name, rsa_padding=scheme.rsa_padding, version=version), algorithm


def _family(key: SupportedKey) -> KeyFamily:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ecdsa"
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    assert isinstance(key, ed25519.Ed25519PublicKey)
    return "ed25519"


def map_aws_error(exc: BaseException, ref: KmsKeyRef, actions: str) -> SigwardError:
    """sigward's error for an exception of a KMS (or credential) call. Messages name the key and the permission, and
    carry AWS's own message (which holds no credentials), shortened."""
    if isinstance(exc, SigwardError):
        return exc
    from botocore import exceptions as boto

    if isinstance(exc, boto.ClientError):
        return _client_error(exc, ref, actions)
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return ConfigurationError(
            f"no AWS credentials for KMS key {ref}: use IRSA (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), "
            "a role of the runtime (container or instance credentials), a profile or AWS_ACCESS_KEY_ID"
        )
    if isinstance(exc, boto.NoRegionError):
        return ConfigurationError(f"no AWS region for KMS key {ref}: set AWS_REGION or name the key by its ARN")
    if isinstance(exc, boto.ProfileNotFound | boto.InvalidConfigError):
        return ConfigurationError(f"AWS configuration unusable for KMS key {ref}: {_short(str(exc))}")
    if isinstance(exc, boto.CredentialRetrievalError | boto.TokenRetrievalError):
        return ExternalServiceError(f"could not obtain AWS credentials for KMS key {ref}: {_short(str(exc))}")
    if isinstance(exc, boto.ConnectionError | boto.HTTPClientError):
        return ExternalServiceError(f"AWS KMS unreachable for key {ref}: {_short(str(exc))}")
    if isinstance(exc, boto.ParamValidationError):
        return VerificationFailure(f"AWS KMS key reference {ref} rejected: {_short(str(exc))}")
    if isinstance(exc, OSError):
        # The web identity token file (IRSA) is read while the request is signed.
        where = f" {exc.filename}" if exc.filename else ""
        return ConfigurationError(f"could not read AWS credentials for KMS key {ref}:{where} {exc.strerror or ''}")
    if isinstance(exc, boto.BotoCoreError):
        return ExternalServiceError(f"AWS KMS request for key {ref} failed: {_short(str(exc))}")
    return ExternalServiceError(f"AWS KMS request for key {ref} failed: {type(exc).__name__}")


def _client_error(exc: Any, ref: KmsKeyRef, actions: str) -> SigwardError:
    error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
    code = str(error.get("Code") or "")
    message = _short(str(error.get("Message") or ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    detail = f" ({code}: {message})" if message else f" ({code})"
    if getattr(exc, "operation_name", "") == "AssumeRoleWithWebIdentity":
        if code in _UNAVAILABLE or status >= 500:
            return ExternalServiceError(f"AWS STS unavailable while assuming a role for KMS key {ref}{detail}")
        return AccessDeniedError(f"could not assume the web identity role (AWS_ROLE_ARN) to use KMS key {ref}{detail}")
    if code in _NOT_FOUND:
        return NotFoundError(f"AWS KMS key {ref} not found{detail}")
    if code in _DENIED:
        return AccessDeniedError(f"access to AWS KMS key {ref} denied: the caller needs {actions}{detail}")
    if code == "DisabledException":
        return KeyLoadError(f"AWS KMS key {ref} is disabled{detail}")
    if code == "KMSInvalidStateException":
        return KeyLoadError(f"AWS KMS key {ref} cannot be used in its state (disabled or pending deletion){detail}")
    if code == "InvalidKeyUsageException":
        return KeyLoadError(f"AWS KMS key {ref} is not a signing key{detail}")
    if code == "UnsupportedOperationException":
        return KeyLoadError(f"AWS KMS key {ref} has no public key: it is not an asymmetric signing key{detail}")
    if code in {"InvalidArnException", "ValidationException", "InvalidKeyId"}:
        return VerificationFailure(f"AWS KMS rejected key reference {ref}{detail}")
    if code in _UNAVAILABLE or status >= 500 or status == 429:
        return ExternalServiceError(f"AWS KMS unavailable for key {ref}{detail}")
    if 400 <= status < 500:
        return VerificationFailure(f"AWS KMS refused the request for key {ref}{detail}")
    return ExternalServiceError(f"AWS KMS request for key {ref} failed{detail}")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_AWS_MESSAGE_CHARS else text[: MAX_AWS_MESSAGE_CHARS - 1] + "…"

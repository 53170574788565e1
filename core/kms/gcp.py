"""Google Cloud KMS keys (``gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]``).

The public key comes from ``GetPublicKey`` (PEM) and is used locally; a URI without a version means the newest
ENABLED version (``ListCryptoKeyVersions``, which needs ``cloudkms.cryptoKeyVersions.list`` on top of
``roles/cloudkms.publicKeyViewer`` — pin the version to need only the latter). Credentials are Application Default
Credentials: GKE Workload Identity or the Cloud Run / GCE service account through the metadata server, or the file
named by ``GOOGLE_APPLICATION_CREDENTIALS``.

Environment:

``SIGWARD_GCPKMS_ENDPOINT``
    ``host:port`` of the KMS API instead of ``cloudkms.googleapis.com:443`` (private endpoints, emulators). With ADC
    and TLS, like the default endpoint.
``SIGWARD_GCPKMS_INSECURE=1``
    TEST AND EMULATOR HOOK ONLY: together with ``SIGWARD_GCPKMS_ENDPOINT``, talk plain-text gRPC to that endpoint and
    send no credentials at all. Never set it in production: nothing authenticates the server then.

``google-cloud-kms`` is imported on first use, never at module import (function cold start).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
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
from sigward.verify.keys import KeyLoadError, PublicKeyVerifier, RSAPadding, SupportedKey, load_public_key_pem

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud.kms_v1 import KeyManagementServiceClient

ENDPOINT_ENV = "SIGWARD_GCPKMS_ENDPOINT"
INSECURE_ENV = "SIGWARD_GCPKMS_INSECURE"

VIEWER_ROLE = "roles/cloudkms.publicKeyViewer"
VIEW_PUBLIC_KEY_PERMISSION = "cloudkms.cryptoKeyVersions.viewPublicKey"
LIST_PERMISSION = "cloudkms.cryptoKeyVersions.list"
LIST_ROLE = "roles/cloudkms.viewer"
SIGNER_ROLE = "roles/cloudkms.signer"

# ListCryptoKeyVersions pages: the API's largest page, and a bound on how many we read (a key with 20 000 enabled
# versions is not a signing key anyone uses).
PAGE_SIZE = 1000
MAX_VERSION_PAGES = 20
# UNAVAILABLE is retried (Google asks clients to) but only for this long, so an unreachable KMS fails fast and the
# admission deadline keeps time for other work.
UNAVAILABLE_RETRY_SECONDS = 1.0
MAX_DETAIL = 300

KeyKind = Literal["ec", "rsa", "ed25519"]


@dataclass(frozen=True)
class SigningAlgorithm:
    """What a Cloud KMS ``CryptoKeyVersionAlgorithm`` means for verification and signing."""

    name: str
    kind: KeyKind
    hash_name: str
    rsa_padding: RSAPadding = "pkcs1v15"
    curve: str = ""  # cryptography's curve name for EC keys
    rsa_bits: int = 0
    # False: the KMS signs the data itself (Ed25519); True: it signs a digest we compute.
    prehashed: bool = True


def _rsa(name: str, bits: int, hash_name: str, pad: RSAPadding) -> tuple[str, SigningAlgorithm]:
    return name, SigningAlgorithm(name=name, kind="rsa", hash_name=hash_name, rsa_padding=pad, rsa_bits=bits)


SIGNING_ALGORITHMS: dict[str, SigningAlgorithm] = dict(
    [
        ("EC_SIGN_P256_SHA256", SigningAlgorithm("EC_SIGN_P256_SHA256", "ec", "sha256", curve="secp256r1")),
        ("EC_SIGN_P384_SHA384", SigningAlgorithm("EC_SIGN_P384_SHA384", "ec", "sha384", curve="secp384r1")),
        # Ed25519 is pure EdDSA: the KMS is given the data, and SHA-512 is what the scheme hashes with internally.
        ("EC_SIGN_ED25519", SigningAlgorithm("EC_SIGN_ED25519", "ed25519", "sha512", prehashed=False)),
        _rsa("RSA_SIGN_PKCS1_2048_SHA256", 2048, "sha256", "pkcs1v15"),
        _rsa("RSA_SIGN_PKCS1_3072_SHA256", 3072, "sha256", "pkcs1v15"),
        _rsa("RSA_SIGN_PKCS1_4096_SHA256", 4096, "sha256", "pkcs1v15"),
        _rsa("RSA_SIGN_PKCS1_4096_SHA512", 4096, "sha512", "pkcs1v15"),
        _rsa("RSA_SIGN_PSS_2048_SHA256", 2048, "sha256", "pss"),
        _rsa("RSA_SIGN_PSS_3072_SHA256", 3072, "sha256", "pss"),
        _rsa("RSA_SIGN_PSS_4096_SHA256", 4096, "sha256", "pss"),
        _rsa("RSA_SIGN_PSS_4096_SHA512", 4096, "sha512", "pss"),
    ]
)


def _purpose(algorithm: str) -> str:
    """The CryptoKey purpose an algorithm belongs to (Cloud KMS ties every algorithm to one purpose)."""
    if algorithm.startswith("RSA_DECRYPT_"):
        return "ASYMMETRIC_DECRYPT"
    if algorithm.startswith("HMAC_"):
        return "MAC"
    if algorithm.startswith(("ML_KEM_", "KEM_")):
        return "KEY_ENCAPSULATION"
    if algorithm in {"GOOGLE_SYMMETRIC_ENCRYPTION", "EXTERNAL_SYMMETRIC_ENCRYPTION"}:
        return "ENCRYPT_DECRYPT"
    if algorithm.startswith("AES_"):
        return "RAW_ENCRYPT_DECRYPT"
    if algorithm.startswith(("RSA_SIGN_", "EC_SIGN_", "PQ_SIGN_")):
        return "ASYMMETRIC_SIGN"
    return ""


def signing_algorithm(algorithm: str, *, version: str) -> SigningAlgorithm:
    """The verification parameters of a key version's algorithm; KeyLoadError for keys cosign cannot sign with."""
    found = SIGNING_ALGORITHMS.get(algorithm)
    if found is not None:
        return found
    purpose = _purpose(algorithm)
    if purpose and purpose != "ASYMMETRIC_SIGN":
        raise KeyLoadError(
            f"gcpkms: {version} is not a signing key: its algorithm {algorithm} has purpose {purpose}, "
            "cosign keys need purpose ASYMMETRIC_SIGN"
        )
    if algorithm == "EC_SIGN_SECP256K1_SHA256":
        raise KeyLoadError(f"gcpkms: {version} uses the secp256k1 curve, which cosign signatures do not support")
    if algorithm.startswith("RSA_SIGN_RAW_"):
        raise KeyLoadError(f"gcpkms: {version} signs raw PKCS#1 input ({algorithm}) without a hash: not supported")
    raise KeyLoadError(f"gcpkms: {version} has the unsupported signing algorithm {algorithm or 'UNSPECIFIED'}")


def public_key_for(pem: str, algorithm: SigningAlgorithm, *, version: str) -> KmsPublicKey:
    """Load the PEM a version returned and check it is the kind of key its algorithm says."""
    key = load_public_key_pem(pem)
    _check_matches(key, algorithm, version)
    return KmsPublicKey(key=key, hash_name=algorithm.hash_name, rsa_padding=algorithm.rsa_padding, version=version)


def _check_matches(key: SupportedKey, algorithm: SigningAlgorithm, version: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    ok = (
        (algorithm.kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == algorithm.curve)
        or (algorithm.kind == "rsa" and isinstance(key, rsa.RSAPublicKey) and key.key_size == algorithm.rsa_bits)
        or (algorithm.kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey))
    )
    if not ok:
        raise KeyLoadError(f"gcpkms: the public key of {version} does not match its algorithm {algorithm.name}")


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Cloud KMS puts on keys and signatures to detect corruption in transit."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_table() -> tuple[int, ...]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        out.append(c)
    return tuple(out)


_CRC32C_TABLE = _crc32c_table()


def version_name(ref: KmsKeyRef, number: str) -> str:
    return f"{ref.key}/cryptoKeyVersions/{number}"


def _detail(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip().replace("\n", " ")
    return text[:MAX_DETAIL]


def map_error(exc: BaseException, *, operation: Literal["get", "list", "sign"], name: str) -> SigwardError:
    """Turn a google-api-core / google-auth exception into sigward's error for ``operation`` on resource ``name``."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, gexc.RetryError):
        cause = exc.cause
        if isinstance(cause, gexc.GoogleAPICallError):
            return map_error(cause, operation=operation, name=name)
        return ExternalServiceError(f"gcpkms: Cloud KMS did not answer for {name}: {_detail(exc)}")
    detail = _detail(exc)
    if isinstance(exc, gexc.NotFound):
        what = "key" if operation == "list" else "key version"
        return NotFoundError(f"gcpkms: {what} {name} not found ({detail})")
    if isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated):
        refused = "refused the credentials" if isinstance(exc, gexc.Unauthenticated) else "denied access"
        if operation == "list":
            return AccessDeniedError(
                f"gcpkms: Cloud KMS {refused} listing the versions of {name} ({detail}). Finding the newest ENABLED "
                f"version needs the permission {LIST_PERMISSION} (in {LIST_ROLE}); or pin the version in the key "
                f"URI (gcpkms://{name}/cryptoKeyVersions/N), which needs only {VIEWER_ROLE}"
            )
        if operation == "sign":
            return AccessDeniedError(
                f"gcpkms: Cloud KMS {refused} signing with {name} ({detail}); the signer needs {SIGNER_ROLE} "
                "(cloudkms.cryptoKeyVersions.useToSign) and, to read the algorithm, "
                f"{VIEWER_ROLE}"
            )
        return AccessDeniedError(
            f"gcpkms: Cloud KMS {refused} reading the public key of {name} ({detail}); grant the verifier's "
            f"service account {VIEWER_ROLE} ({VIEW_PUBLIC_KEY_PERMISSION}) on the key"
        )
    if isinstance(exc, gexc.FailedPrecondition):
        return KeyLoadError(
            f"gcpkms: {name} cannot be used (a disabled or destroyed version, or not an asymmetric key): {detail}"
        )
    if isinstance(exc, gexc.InvalidArgument):
        return VerificationFailure(f"gcpkms: Cloud KMS refused the request for {name}: {detail}")
    if isinstance(exc, gexc.DeadlineExceeded):
        return ExternalServiceError(f"gcpkms: Cloud KMS did not answer in time for {name} ({detail})")
    if isinstance(exc, gexc.ServiceUnavailable) and "metadata from plugin" in detail:
        return ExternalServiceError(
            f"gcpkms: could not get an access token for Cloud KMS ({detail}); check the Application Default "
            "Credentials (metadata server, Workload Identity or GOOGLE_APPLICATION_CREDENTIALS)"
        )
    if isinstance(exc, gexc.ServiceUnavailable):
        return ExternalServiceError(f"gcpkms: Cloud KMS unavailable for {name}: {detail}")
    if isinstance(exc, gexc.GoogleAPICallError):
        return ExternalServiceError(f"gcpkms: Cloud KMS failed for {name}: {detail}")
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return no_credentials(exc)
    if isinstance(exc, auth_exc.RefreshError):
        return AccessDeniedError(f"gcpkms: the Google credentials were refused: {detail}")
    if isinstance(exc, auth_exc.GoogleAuthError):
        return ExternalServiceError(f"gcpkms: could not get Google credentials: {detail}")
    return ExternalServiceError(f"gcpkms: Cloud KMS call failed for {name}: {type(exc).__name__}: {detail}")


def no_credentials(exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"gcpkms: no Google Cloud credentials found ({_detail(exc)}). Provide Application Default Credentials: run "
        "on GKE with Workload Identity or on Cloud Run / GCE with a service account (metadata server), or set "
        "GOOGLE_APPLICATION_CREDENTIALS to a service account or workload identity federation JSON file"
    )


def _sdk_errors() -> tuple[type[BaseException], ...]:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    return (gexc.GoogleAPICallError, gexc.RetryError, auth_exc.GoogleAuthError)


def _new_client() -> KeyManagementServiceClient:
    from google.auth import exceptions as auth_exc
    from google.cloud.kms_v1 import KeyManagementServiceClient

    endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
    insecure = os.environ.get(INSECURE_ENV, "").strip() == "1"
    if insecure:
        if not endpoint:
            raise ConfigurationError(f"{INSECURE_ENV}=1 needs {ENDPOINT_ENV} (host:port of a test KMS server)")
        # Test/emulator hook: plain-text channel, no credentials sent (anonymous).
        import grpc  # type: ignore[import-untyped]
        from google.cloud.kms_v1.services.key_management_service.transports import (
            KeyManagementServiceGrpcTransport,
        )

        channel = grpc.insecure_channel(endpoint)
        return KeyManagementServiceClient(transport=KeyManagementServiceGrpcTransport(channel=channel))
    options = {"api_endpoint": endpoint} if endpoint else None
    try:
        return KeyManagementServiceClient(client_options=options)
    except auth_exc.DefaultCredentialsError as exc:
        raise no_credentials(exc) from exc


def _retry(timeout: float) -> Retry:
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type

    return Retry(
        initial=0.1,
        maximum=0.5,
        multiplier=2.0,
        predicate=if_exception_type(gexc.ServiceUnavailable),
        timeout=min(timeout, UNAVAILABLE_RETRY_SECONDS),
    )


class GcpKms:
    """The ``gcpkms://`` backend: one KMS client per process, created on first use; thread-safe."""

    scheme: Scheme = "gcpkms"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: KeyManagementServiceClient | None = None

    def client(self) -> KeyManagementServiceClient:
        with self._lock:
            if self._client is None:
                self._client = _new_client()
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.transport.close()  # type: ignore[no-untyped-call]

    # -- KmsBackend ------------------------------------------------------------------------------------------------

    def public_key(self, ref: KmsKeyRef, *, timeout: float) -> KmsPublicKey:
        deadline = time.monotonic() + timeout
        client = self.client()
        name = version_name(ref, ref.version) if ref.version else self._newest_enabled(client, ref, deadline)
        public, _ = self._fetch_public_key(client, name, deadline)
        return public

    def sign(self, ref: KmsKeyRef, payload: bytes, *, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        client = self.client()
        name = version_name(ref, ref.version) if ref.version else self._newest_enabled(client, ref, deadline)
        public, algorithm = self._fetch_public_key(client, name, deadline)
        request: dict[str, Any] = {"name": name}
        if algorithm.prehashed:
            digest = hashlib.new(algorithm.hash_name, payload).digest()
            request["digest"] = {algorithm.hash_name: digest}
            request["digest_crc32c"] = crc32c(digest)
        else:
            request["data"] = payload
            request["data_crc32c"] = crc32c(payload)
        left = _left(deadline, name)
        try:
            response = client.asymmetric_sign(request=request, timeout=left, retry=_retry(left))
        except _sdk_errors() as exc:
            raise map_error(exc, operation="sign", name=name) from exc
        verified = response.verified_digest_crc32c if algorithm.prehashed else response.verified_data_crc32c
        if not verified:
            raise ExternalServiceError(f"gcpkms: AsymmetricSign for {name}: the request was corrupted in transit")
        signature = bytes(response.signature)
        if response.signature_crc32c is not None and response.signature_crc32c != crc32c(signature):
            raise ExternalServiceError(f"gcpkms: AsymmetricSign for {name}: the signature was corrupted in transit")
        if response.name and response.name != name:
            raise ExternalServiceError(f"gcpkms: AsymmetricSign for {name} answered for {response.name}")
        verifier = PublicKeyVerifier(
            key=public.key, hash_name=public.hash_name, rsa_padding=public.rsa_padding, source=name
        )
        try:
            verifier.verify(signature, payload)
        except VerificationFailure as exc:
            raise ExternalServiceError(
                f"gcpkms: the signature {name} returned does not verify with its public key"
            ) from exc
        return signature

    # -- calls -----------------------------------------------------------------------------------------------------

    def _newest_enabled(self, client: KeyManagementServiceClient, ref: KmsKeyRef, deadline: float) -> str:
        prefix = ref.key + "/cryptoKeyVersions/"
        best = -1
        token = ""
        for _ in range(MAX_VERSION_PAGES):
            left = _left(deadline, ref.key)
            request = {"parent": ref.key, "filter": "state=ENABLED", "page_size": PAGE_SIZE, "page_token": token}
            try:
                page = client.list_crypto_key_versions(request=request, timeout=left, retry=_retry(left))
                versions = list(page.crypto_key_versions)  # this page only: the pager would page on its own
                token = str(page.next_page_token)
            except _sdk_errors() as exc:
                raise map_error(exc, operation="list", name=ref.key) from exc
            for version in versions:
                number = str(version.name).removeprefix(prefix)
                # The filter asks for ENABLED versions; do not trust that a server applied it.
                if _enum_name(version.state) == "ENABLED" and str(version.name).startswith(prefix) and number.isdigit():
                    best = max(best, int(number))
            if not token:
                break
        else:
            raise ExternalServiceError(f"gcpkms: {ref.key} has more than {MAX_VERSION_PAGES * PAGE_SIZE} versions")
        if best < 0:
            raise KeyLoadError(f"gcpkms: {ref.key} has no ENABLED key version")
        return version_name(ref, str(best))

    def _fetch_public_key(
        self, client: KeyManagementServiceClient, name: str, deadline: float
    ) -> tuple[KmsPublicKey, SigningAlgorithm]:
        left = _left(deadline, name)
        try:
            response = client.get_public_key(request={"name": name}, timeout=left, retry=_retry(left))
        except _sdk_errors() as exc:
            raise map_error(exc, operation="get", name=name) from exc
        if response.name and response.name != name:
            raise ExternalServiceError(f"gcpkms: GetPublicKey for {name} answered for {response.name}")
        pem = str(response.pem)
        if response.pem_crc32c is not None and response.pem_crc32c != crc32c(pem.encode()):
            raise ExternalServiceError(f"gcpkms: the public key of {name} was corrupted in transit (CRC32C mismatch)")
        algorithm = signing_algorithm(_enum_name(response.algorithm), version=name)
        return public_key_for(pem, algorithm, version=name), algorithm


def _left(deadline: float, name: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceededError(f"gcpkms: no time left to call Cloud KMS for {name}")
    return left


def _enum_name(value: object) -> str:
    """A proto enum's name (an unknown number, from a newer server, has none)."""
    return str(getattr(value, "name", "") or value)

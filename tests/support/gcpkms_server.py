"""A local Cloud KMS: a gRPC server on 127.0.0.1 speaking ``google.cloud.kms.v1.KeyManagementService`` with the real
generated request/response messages of ``google-cloud-kms``, so the production client runs unchanged against it.

google-cloud-kms ships no servicer base class (only client stubs), so the methods are registered as generic
handlers with the proto-plus messages' own ``serialize``/``deserialize`` — the exact bytes the real service uses.
Keys are real (``cryptography``), versions have states, and answers follow Cloud KMS: NOT_FOUND for missing keys
and versions, PERMISSION_DENIED naming the missing permission, FAILED_PRECONDITION for a version that is not
ENABLED or a key that is not asymmetric, INVALID_ARGUMENT for a digest of the wrong hash or a bad CRC32C.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from google.cloud.kms_v1 import types as kms

from sigward.kms import backends
from sigward.kms.gcp import ENDPOINT_ENV, INSECURE_ENV, SIGNING_ALGORITHMS, GcpKms, crc32c

SERVICE = "google.cloud.kms.v1.KeyManagementService"
PROJECT_PREFIX = "projects/sigward-test/locations/global/keyRings/ring/cryptoKeys/"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
_RSA_KEYS: dict[tuple[int, int], rsa.RSAPrivateKey] = {}


def _private_key(algorithm: str, seed: int) -> PrivateKey | None:
    """A fresh key for ``algorithm``; None for purposes whose keys have no public half (symmetric)."""
    if algorithm.startswith("EC_SIGN_P256") or algorithm == "EC_SIGN_SECP256K1_SHA256":
        curve: ec.EllipticCurve = ec.SECP256K1() if "SECP256K1" in algorithm else ec.SECP256R1()
        return ec.generate_private_key(curve)
    if algorithm.startswith("EC_SIGN_P384"):
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == "EC_SIGN_ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm.startswith(("RSA_SIGN_", "RSA_DECRYPT_")):
        bits = next(int(part) for part in algorithm.split("_") if part.isdigit() and int(part) >= 2048)
        # RSA generation is slow; versions of different tests may share keys of a (size, seed) slot.
        cached = _RSA_KEYS.get((bits, seed))
        if cached is None:
            cached = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            _RSA_KEYS[(bits, seed)] = cached
        return cached
    return None


@dataclass
class FakeVersion:
    number: int
    algorithm: str
    private: PrivateKey | None
    state: str = "ENABLED"

    @property
    def public_pem(self) -> str:
        assert self.private is not None
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign_digest(self, digest: bytes, hash_name: str) -> bytes:
        key = self.private
        algorithm = _HASHES[hash_name]
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))
        if isinstance(key, rsa.RSAPrivateKey):
            pad: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
                if "_PSS_" in self.algorithm
                else padding.PKCS1v15()
            )
            return key.sign(digest, pad, utils.Prehashed(algorithm))
        raise ValueError("not a digest-signing key")


@dataclass
class FakeKey:
    name: str
    purpose: str
    versions: dict[int, FakeVersion] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    method: str
    name: str
    metadata: dict[str, str]
    request: Any


class _Abort(Exception):
    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _purpose(algorithm: str) -> str:
    if algorithm.startswith("RSA_DECRYPT_"):
        return "ASYMMETRIC_DECRYPT"
    if algorithm.startswith(("RSA_SIGN_", "EC_SIGN_")):
        return "ASYMMETRIC_SIGN"
    return "ENCRYPT_DECRYPT"


class GcpKmsServer:
    """The fake service; ``endpoint`` is ``127.0.0.1:PORT``. Use as a context manager or call ``stop()``."""

    def __init__(self, *, page_size_limit: int = 1000) -> None:
        self.keys: dict[str, FakeKey] = {}
        # Resource names (key or version) answered with PERMISSION_DENIED, per method kind.
        self.deny_get: set[str] = set()
        self.deny_list: set[str] = set()
        self.deny_sign: set[str] = set()
        self.page_size_limit = page_size_limit
        self.delay_seconds = 0.0  # every answer waits this long (a KMS that does not answer in time)
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._seed = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="fake-kms"))
        handlers = {
            "GetPublicKey": self._rpc("GetPublicKey", kms.GetPublicKeyRequest, kms.PublicKey, self._get_public_key),
            "ListCryptoKeyVersions": self._rpc(
                "ListCryptoKeyVersions",
                kms.ListCryptoKeyVersionsRequest,
                kms.ListCryptoKeyVersionsResponse,
                self._list_versions,
            ),
            "AsymmetricSign": self._rpc(
                "AsymmetricSign", kms.AsymmetricSignRequest, kms.AsymmetricSignResponse, self._sign
            ),
        }
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = int(self._server.add_insecure_port("127.0.0.1:0"))
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)

    def __enter__(self) -> GcpKmsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- keys ------------------------------------------------------------------------------------------------------

    def add_key(self, key_id: str, algorithm: str, *, states: tuple[str, ...] = ("ENABLED",)) -> FakeKey:
        """A crypto key with one version per entry of ``states`` (numbered from 1), all of ``algorithm``."""
        key = FakeKey(name=PROJECT_PREFIX + key_id, purpose=_purpose(algorithm))
        with self._lock:
            self.keys[key.name] = key
        for state in states:
            self.add_version(key, algorithm, state=state)
        return key

    def add_version(self, key: FakeKey, algorithm: str, *, state: str = "ENABLED") -> FakeVersion:
        with self._lock:
            number = max(key.versions, default=0) + 1
            self._seed += 1
            seed = self._seed
        version = FakeVersion(number=number, algorithm=algorithm, private=_private_key(algorithm, seed), state=state)
        with self._lock:
            key.versions[number] = version
        return version

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    # -- gRPC plumbing ---------------------------------------------------------------------------------------------

    def _rpc(self, method: str, request_type: Any, response_type: Any, handler: Callable[[Any], Any]) -> Any:

        def unary(request: Any, context: Any) -> Any:
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            name = str(getattr(request, "name", "") or getattr(request, "parent", ""))
            with self._lock:
                self.calls.append(Call(method=method, name=name, metadata=metadata, request=request))
            if self.delay_seconds:
                time.sleep(self.delay_seconds)
            try:
                return handler(request)
            except _Abort as exc:
                context.abort(exc.code, exc.message)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=request_type.deserialize, response_serializer=response_type.serialize
        )

    def _key(self, name: str) -> FakeKey:
        with self._lock:
            key = self.keys.get(name)
        if key is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"CryptoKey {name} not found.")
        return key

    def _version(self, name: str, permission: str, denied: set[str]) -> tuple[FakeKey, FakeVersion]:
        key_name, sep, number = name.partition("/cryptoKeyVersions/")
        if name in denied or key_name in denied:
            raise _Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission '{permission}' denied on resource '{name}' (or it may not exist).",
            )
        if not sep or not number.isdigit():
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid CryptoKeyVersion name: {name}")
        key = self._key(key_name)
        version = key.versions.get(int(number))
        if version is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"CryptoKeyVersion {name} not found.")
        if version.state != "ENABLED":
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The request cannot be fulfilled. Resource {name} has value {version.state} in field "
                "crypto_key_version.state.",
            )
        return key, version

    # -- methods ---------------------------------------------------------------------------------------------------

    def _get_public_key(self, request: Any) -> Any:
        name = str(request.name)
        key, version = self._version(name, "cloudkms.cryptoKeyVersions.viewPublicKey", self.deny_get)
        if version.private is None:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The request cannot be fulfilled. Resource {name} has value {key.purpose} in field "
                "crypto_key.purpose.",
            )
        pem = version.public_pem
        return kms.PublicKey(
            pem=pem,
            algorithm=version.algorithm,
            pem_crc32c=crc32c(pem.encode()),
            name=name,
            protection_level="SOFTWARE",
        )

    def _list_versions(self, request: Any) -> Any:
        parent = str(request.parent)
        if parent in self.deny_list:
            raise _Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission 'cloudkms.cryptoKeyVersions.list' denied on resource '{parent}' (or it may not exist).",
            )
        key = self._key(parent)
        wanted = str(request.filter).replace(" ", "")
        if wanted not in {"", "state=ENABLED"}:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter {request.filter!r}")
        with self._lock:
            versions = [v for _, v in sorted(key.versions.items()) if not wanted or v.state == "ENABLED"]
        size = min(int(request.page_size) or 25, self.page_size_limit)
        start = int(request.page_token or 0)
        page = versions[start : start + size]
        following = str(start + size) if start + size < len(versions) else ""
        return kms.ListCryptoKeyVersionsResponse(
            crypto_key_versions=[
                kms.CryptoKeyVersion(
                    name=f"{parent}/cryptoKeyVersions/{v.number}",
                    state=v.state,
                    algorithm=v.algorithm,
                    protection_level="SOFTWARE",
                )
                for v in page
            ],
            next_page_token=following,
            total_size=len(versions),
        )

    def _sign(self, request: Any) -> Any:
        name = str(request.name)
        _, version = self._version(name, "cloudkms.cryptoKeyVersions.useToSign", self.deny_sign)
        algorithm = SIGNING_ALGORITHMS.get(version.algorithm)
        if algorithm is None:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, f"{name} cannot sign ({version.algorithm})")
        if not algorithm.prehashed:
            data = bytes(request.data)
            if request.data_crc32c is not None and request.data_crc32c != crc32c(data):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "The checksum in field data_crc32c did not match.")
            assert isinstance(version.private, ed25519.Ed25519PrivateKey)
            signature = version.private.sign(data)
            return kms.AsymmetricSignResponse(
                signature=signature,
                signature_crc32c=crc32c(signature),
                verified_data_crc32c=request.data_crc32c is not None,
                name=name,
                protection_level="SOFTWARE",
            )
        which = kms.Digest.pb(request.digest).WhichOneof("digest")
        if which != algorithm.hash_name:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Digest type {which} does not match the algorithm {version.algorithm} of {name}.",
            )
        digest = bytes(getattr(request.digest, which))
        if request.digest_crc32c is not None and request.digest_crc32c != crc32c(digest):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "The checksum in field digest_crc32c did not match.")
        signature = version.sign_digest(digest, algorithm.hash_name)
        return kms.AsymmetricSignResponse(
            signature=signature,
            signature_crc32c=crc32c(signature),
            verified_digest_crc32c=request.digest_crc32c is not None,
            name=name,
            protection_level="SOFTWARE",
        )


def key_uri(key: FakeKey, version: int | None = None) -> str:
    return f"gcpkms://{key.name}" + (f"/cryptoKeyVersions/{version}" if version is not None else "")


@contextmanager
def gcpkms_backend(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[GcpKms]:
    """A :class:`GcpKms` talking to ``endpoint`` through the test hook, installed as the process's gcpkms backend."""
    monkeypatch.setenv(ENDPOINT_ENV, endpoint)
    monkeypatch.setenv(INSECURE_ENV, "1")
    backend = GcpKms()
    backends.set_backend("gcpkms", backend)
    try:
        yield backend
    finally:
        backends.set_backend("gcpkms", None)
        backend.close()

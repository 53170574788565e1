"""A small local HashiCorp Vault speaking the REST shapes sigward's Vault client (hvac) uses — no Vault binary can
be installed here. It keeps real keys and really signs:

- ``GET /v1/<transit>/keys/<name>``: Vault's read-key answer (``type``, ``latest_version``, ``supports_signing``,
  ``keys{"<version>": {"public_key", "creation_time", "name"}}``; PEM public keys, raw base64 for ed25519, creation
  timestamps for symmetric keys);
- ``POST|PUT /v1/<transit>/sign/<name>[/<hash>]``: ``input``, ``hash_algorithm`` (default sha2-256),
  ``signature_algorithm`` (RSA default ``pss``, as Vault), ``marshaling_algorithm`` (``asn1`` default, ``jws``),
  ``prehashed``, ``key_version`` → ``vault:vN:<base64>``;
- ``POST|PUT /v1/auth/<mount>/login`` for Kubernetes and JWT roles (checks role and JWT) → ``auth.client_token``,
  ``lease_duration``;
- ``X-Vault-Token`` checked on every transit call (403 ``{"errors":["permission denied"]}``), per-token
  capabilities (``read`` for keys, ``update`` for sign), server-side token expiry, ``X-Vault-Namespace`` scoping keys,
  404 ``{"errors":[]}``, a ``sealed`` switch answering 503.

Every request is recorded (method, path, lower-cased headers, JSON body, answer status).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

ROOT_TOKEN = "hvs.sigward-test-root-token"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_CURVES: dict[str, tuple[ec.EllipticCurve, str]] = {
    "ecdsa-p256": (ec.SECP256R1(), "P-256"),
    "ecdsa-p384": (ec.SECP384R1(), "P-384"),
    "ecdsa-p521": (ec.SECP521R1(), "P-521"),
}
_RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
_SYMMETRIC = {"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "hmac"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha2-224": hashes.SHA224,
    "sha2-256": hashes.SHA256,
    "sha2-384": hashes.SHA384,
    "sha2-512": hashes.SHA512,
}
_RSA_KEY_CACHE: dict[tuple[int, int], rsa.RSAPrivateKey] = {}


def _rsa_key(bits: int, slot: int) -> rsa.RSAPrivateKey:
    """RSA generation is slow: the same (bits, slot) gives the same key within a test run."""
    key = _RSA_KEY_CACHE.get((bits, slot))
    if key is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        _RSA_KEY_CACHE[(bits, slot)] = key
    return key


@dataclass
class TransitKey:
    name: str
    type: str
    versions: dict[int, PrivateKey | bytes] = field(default_factory=dict)
    created: dict[int, str] = field(default_factory=dict)
    created_unix: dict[int, int] = field(default_factory=dict)

    @property
    def latest_version(self) -> int:
        return max(self.versions)

    @property
    def supports_signing(self) -> bool:
        return self.type not in _SYMMETRIC

    def private(self, version: int | None = None) -> PrivateKey:
        key = self.versions[version or self.latest_version]
        assert not isinstance(key, bytes), f"{self.type} keys are symmetric"
        return key

    def add_version(self) -> int:
        version = (max(self.versions) if self.versions else 0) + 1
        key: PrivateKey | bytes
        if self.type in _CURVES:
            key = ec.generate_private_key(_CURVES[self.type][0])
        elif self.type in _RSA_BITS:
            key = _rsa_key(_RSA_BITS[self.type], version)
        elif self.type == "ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
        elif self.type in _SYMMETRIC:
            key = secrets.token_bytes(32)
        else:
            raise ValueError(f"unsupported key type {self.type}")
        now = dt.datetime.now(dt.UTC)
        self.versions[version] = key
        self.created[version] = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        self.created_unix[version] = int(now.timestamp())
        return version

    def public_entry(self, version: int) -> dict[str, Any] | int:
        key = self.versions[version]
        if isinstance(key, bytes):
            return self.created_unix[version]
        if isinstance(key, ed25519.Ed25519PrivateKey):
            raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            public, name = base64.b64encode(raw).decode(), "ed25519"
        else:
            public = (
                key.public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode()
            )
            name = _CURVES[self.type][1] if self.type in _CURVES else self.type
        return {"certificate_chain": "", "creation_time": self.created[version], "name": name, "public_key": public}

    def read_response(self) -> dict[str, Any]:
        asymmetric = self.supports_signing
        return {
            "allow_plaintext_backup": False,
            "auto_rotate_period": 0,
            "deletion_allowed": False,
            "derived": False,
            "exportable": False,
            "imported_key": False,
            "keys": {str(v): self.public_entry(v) for v in sorted(self.versions)},
            "latest_version": self.latest_version,
            "min_available_version": 0,
            "min_decryption_version": 1,
            "min_encryption_version": 0,
            "name": self.name,
            "supports_decryption": not asymmetric or self.type.startswith("rsa"),
            "supports_derivation": self.type in {"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "ed25519"},
            "supports_encryption": not asymmetric or self.type.startswith("rsa"),
            "supports_signing": asymmetric,
            "type": self.type,
        }


@dataclass(frozen=True)
class VaultRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 0  # the answer's status

    @property
    def token(self) -> str:
        return self.headers.get("x-vault-token", "")

    @property
    def namespace(self) -> str:
        return self.headers.get("x-vault-namespace", "")


@dataclass
class _Token:
    capabilities: frozenset[str]
    expires_at: float  # monotonic; inf = never


@dataclass(frozen=True)
class _Role:
    jwt: str
    capabilities: frozenset[str]


class _VaultError(Exception):
    def __init__(self, status: int, errors: Iterable[str]) -> None:
        super().__init__(status)
        self.status = status
        self.errors = list(errors)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up are part of the tests."""


class VaultServer:
    """A local Vault on ``127.0.0.1:<free port>``; use as a context manager or call ``close()``."""

    def __init__(self, *, root_token: str = ROOT_TOKEN, lease_seconds: int = 3600) -> None:
        self.lease_seconds = lease_seconds
        self.sealed = False
        self.requests: list[VaultRequest] = []
        self.logins: list[tuple[str, str]] = []  # (mount, role) of each successful login
        self._keys: dict[tuple[str, str, str], TransitKey] = {}
        self._mounts: set[tuple[str, str]] = {("", "transit")}
        self._tokens: dict[str, _Token] = {root_token: _Token(frozenset({"read", "update"}), float("inf"))}
        self._roles: dict[tuple[str, str], _Role] = {}
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="vault-server", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> VaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- set-up ------------------------------------------------------------------------------------------------

    def create_key(self, name: str, key_type: str, *, mount: str = "transit", namespace: str = "") -> TransitKey:
        key = TransitKey(name=name, type=key_type)
        key.add_version()
        with self._lock:
            self._mounts.add((namespace, mount))
            self._keys[(namespace, mount, name)] = key
        return key

    def rotate_key(self, name: str, *, mount: str = "transit", namespace: str = "") -> int:
        with self._lock:
            return self._keys[(namespace, mount, name)].add_version()

    def key(self, name: str, *, mount: str = "transit", namespace: str = "") -> TransitKey:
        with self._lock:
            return self._keys[(namespace, mount, name)]

    def add_token(self, token: str, capabilities: Iterable[str] = ("read", "update")) -> None:
        with self._lock:
            self._tokens[token] = _Token(frozenset(capabilities), float("inf"))

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def issued_tokens(self) -> list[str]:
        """Tokens handed out by logins (newest last)."""
        with self._lock:
            return [t for t in self._tokens if t.startswith("hvs.login.")]

    def add_role(self, mount: str, role: str, jwt: str, capabilities: Iterable[str] = ("read", "update")) -> None:
        """A Kubernetes or JWT auth role at ``auth/<mount>``, accepting exactly ``jwt``."""
        with self._lock:
            self._roles[(mount, role)] = _Role(jwt=jwt, capabilities=frozenset(capabilities))

    def seen(self, path_part: str = "") -> list[VaultRequest]:
        with self._lock:
            return [r for r in self.requests if path_part in r.path]

    # -- request handling ----------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        request = VaultRequest(method=method, path=path, headers=headers, body=body)
        status, answer = self._dispatch(request)
        with self._lock:
            self.requests.append(VaultRequest(method=method, path=path, headers=headers, body=body, status=status))
        return status, answer

    def _dispatch(self, request: VaultRequest) -> tuple[int, Any]:
        method, path, body = request.method, request.path, request.body
        try:
            if self.sealed:
                raise _VaultError(503, ["Vault is sealed"])
            if not path.startswith("/v1/"):
                raise _VaultError(404, [])
            route = path[len("/v1/") :].strip("/")
            namespace = request.namespace.strip("/")
            if route.startswith("auth/") and route.endswith("/login") and method in {"POST", "PUT"}:
                return 200, self._login(route[len("auth/") : -len("/login")], body)
            for verb, needed in (("/keys/", "read"), ("/sign/", "update")):
                if verb in route:
                    mount, _, rest = route.partition(verb)
                    self._authorize(request.token, needed)
                    if (namespace, mount) not in self._mounts:
                        raise _VaultError(404, [f'no handler for route "{route}". route entry not found.'])
                    name, _, suffix = rest.partition("/")
                    if verb == "/keys/" and method == "GET" and not suffix:
                        return 200, self._read_key(namespace, mount, name)
                    if verb == "/sign/" and method in {"POST", "PUT"}:
                        return 200, self._sign(namespace, mount, name, suffix, body)
            self._authorize(request.token, "read")
            raise _VaultError(404, [])
        except _VaultError as exc:
            return exc.status, {"errors": exc.errors}

    def _authorize(self, token: str, capability: str) -> None:
        with self._lock:
            found = self._tokens.get(token)
            if found is not None and time.monotonic() >= found.expires_at:
                del self._tokens[token]
                found = None
        if found is None or capability not in found.capabilities:
            raise _VaultError(403, ["permission denied"])

    def _login(self, mount: str, body: dict[str, Any]) -> dict[str, Any]:
        role_name = str(body.get("role") or "")
        with self._lock:
            role = self._roles.get((mount, role_name))
        if role is None:
            if not any(m == mount for m, _ in self._roles):
                raise _VaultError(404, [f'no handler for route "auth/{mount}/login". route entry not found.'])
            raise _VaultError(400, [f'invalid role name "{role_name}"'])
        if not secrets.compare_digest(str(body.get("jwt") or ""), role.jwt):
            raise _VaultError(403, ["permission denied"])
        token = "hvs.login." + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Token(role.capabilities, time.monotonic() + self.lease_seconds)
            self.logins.append((mount, role_name))
        return _envelope(
            None,
            auth={
                "client_token": token,
                "accessor": secrets.token_urlsafe(18),
                "policies": ["default", "sigward"],
                "token_policies": ["default", "sigward"],
                "metadata": {"role": role_name},
                "lease_duration": self.lease_seconds,
                "renewable": True,
                "entity_id": str(uuid.uuid4()),
                "token_type": "service",
                "orphan": True,
                "mfa_requirement": None,
                "num_uses": 0,
            },
        )

    def _find(self, namespace: str, mount: str, name: str) -> TransitKey:
        with self._lock:
            key = self._keys.get((namespace, mount, name))
        if key is None:
            raise _VaultError(404, [])
        return key

    def _read_key(self, namespace: str, mount: str, name: str) -> dict[str, Any]:
        return _envelope(self._find(namespace, mount, name).read_response())

    def _sign(self, namespace: str, mount: str, name: str, suffix: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(namespace, mount, name)
        if not key.supports_signing:
            raise _VaultError(400, [f"key type {key.type} does not support signing"])
        version = int(body.get("key_version") or 0) or key.latest_version
        if version not in key.versions:
            raise _VaultError(400, ["invalid key version"])
        try:
            data = base64.b64decode(str(body.get("input") or ""), validate=True)
        except ValueError:
            raise _VaultError(400, ["unable to decode input as base64"]) from None
        hash_name = suffix or str(body.get("hash_algorithm") or "sha2-256")
        prehashed = bool(body.get("prehashed"))
        private = key.private(version)
        if isinstance(private, ed25519.Ed25519PrivateKey):
            if prehashed:
                raise _VaultError(400, ["prehashed is not supported for ed25519 keys"])
            signature = private.sign(data)
        else:
            if hash_name not in _HASHES:
                raise _VaultError(400, [f"unsupported hash algorithm {hash_name}"])
            algorithm = _HASHES[hash_name]()
            chosen: hashes.HashAlgorithm | utils.Prehashed = utils.Prehashed(algorithm) if prehashed else algorithm
            if isinstance(private, ec.EllipticCurvePrivateKey):
                signature = private.sign(data, ec.ECDSA(chosen))
                marshaling = str(body.get("marshaling_algorithm") or "asn1")
                if marshaling == "jws":
                    r, s = utils.decode_dss_signature(signature)
                    size = (private.curve.key_size + 7) // 8
                    raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
                    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
                    return _envelope({"signature": f"vault:v{version}:{encoded}", "key_version": version})
                if marshaling != "asn1":
                    raise _VaultError(400, [f"unsupported marshaling algorithm {marshaling}"])
            else:
                scheme = str(body.get("signature_algorithm") or "pss")
                pad: padding.AsymmetricPadding
                if scheme == "pss":
                    pad = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.MAX_LENGTH)
                elif scheme == "pkcs1v15":
                    pad = padding.PKCS1v15()
                else:
                    raise _VaultError(400, [f"unsupported rsa signature algorithm {scheme}"])
                signature = private.sign(data, pad, chosen)
        encoded = base64.b64encode(signature).decode()
        return _envelope({"signature": f"vault:v{version}:{encoded}", "key_version": version})


def _envelope(data: dict[str, Any] | None, *, auth: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": auth,
        "mount_type": "transit" if data is not None else "",
    }


def _handler_for(owner: VaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                parsed = json.loads(raw) if raw else {}
            except ValueError:
                parsed = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not isinstance(parsed, dict):
                status, answer = 400, {"errors": ["failed to parse JSON input"]}
            else:
                status, answer = owner.handle(self.command, self.path.split("?", 1)[0], headers, parsed)
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _handle  # noqa: N815 - http.server's method names

    return Handler


# -- pytest fixtures (imported by tests/integration/kms/conftest.py) ---------------------------------------------

VAULT_VARIABLES = (
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_NAMESPACE",
    "TRANSIT_SECRET_ENGINE_PATH",
    "VAULT_CACERT",
    "VAULT_CAPATH",
    "VAULT_SKIP_VERIFY",
    "VAULT_CLIENT_CERT",
    "VAULT_CLIENT_KEY",
    "VAULT_K8S_ROLE",
    "VAULT_K8S_MOUNT",
    "VAULT_K8S_TOKEN_PATH",
    "VAULT_JWT_ROLE",
    "VAULT_JWT_PATH",
    "VAULT_JWT_MOUNT",
)


@pytest.fixture
def vault_server() -> Iterator[VaultServer]:
    with VaultServer() as server:
        yield server


@pytest.fixture
def vault_env(vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[VaultServer]:
    """``VAULT_ADDR`` at ``vault_server`` with its root token, no other Vault variable, ``HOME`` without a
    ``.vault-token``; the hashivault backend forgotten before and after."""
    from sigward.kms import backends

    for name in VAULT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VAULT_ADDR", vault_server.url)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    backends.reset()
    yield vault_server
    backends.reset()

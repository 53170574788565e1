"""A local Azure Key Vault and Microsoft Entra ID token endpoint on one HTTPS port, for running the real
``azure-keyvault-keys`` + ``azure-identity`` clients unchanged.

* TLS: a throw-away CA and a server certificate for 127.0.0.1 are made with ``cryptography`` and written to a temp
  directory; clients trust them through ``REQUESTS_CA_BUNDLE`` (which azure-core's requests transport honours).
* Key Vault REST (api-version as the SDK sends it): ``GET /keys/{name}[/{version}]`` answers a KeyBundle with an EC or
  RSA JWK, ``POST /keys/{name}/{version}/sign`` signs a digest (ECDSA as raw ``r||s``, as Key Vault does). Errors in
  Key Vault's JSON shape: 404 ``KeyNotFound``, 403 ``Forbidden``/``ForbiddenByRbac``, 400 ``BadParameter``.
* The bearer challenge: a request without a valid token gets ``401`` and ``WWW-Authenticate: Bearer
  authorization="https://127.0.0.1:PORT/TENANT", resource="https://0.0.1:PORT"``. The Key Vault SDK accepts a
  challenge only when the vault host ends with ``.`` + the resource's host — ``vault.azure.net`` for
  ``myvault.vault.azure.net`` in Azure. For the vault ``127.0.0.1:PORT`` the resource ``0.0.1:PORT`` is the suffix
  that satisfies that very rule, so the SDK's verification stays switched on.
* Entra ID: ``POST /{tenant}/oauth2/v2.0/token`` answers the client-assertion grant that azure-identity's
  ``WorkloadIdentityCredential`` sends (``AZURE_AUTHORITY_HOST`` points at this server), checking the tenant, client
  id, the federated token (the file's content) and the scope.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

from sigward.kms import backends
from sigward.kms.azure import AzureKms

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0f9c1b9e-5a0e-4a55-9c3c-3c1c4a5b6c7d"
FEDERATED_TOKEN = "eyJhbGciOiJSUzI1NiJ9.sigward-test-service-account-token.signature"
KeyKind = Literal["p256", "p384", "p521", "rsa2048", "rsa3072", "rsa4096"]
_RSA_CACHE: dict[tuple[int, int], rsa.RSAPrivateKey] = {}
_CURVES: dict[str, tuple[ec.EllipticCurve, str, int]] = {
    "p256": (ec.SECP256R1(), "P-256", 32),
    "p384": (ec.SECP384R1(), "P-384", 48),
    "p521": (ec.SECP521R1(), "P-521", 66),
}
_ALGS: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    "ES256": ("ec", hashes.SHA256()),
    "ES384": ("ec", hashes.SHA384()),
    "ES512": ("ec", hashes.SHA512()),
    "RS256": ("rsa", hashes.SHA256()),
    "RS384": ("rsa", hashes.SHA384()),
    "RS512": ("rsa", hashes.SHA512()),
    "PS256": ("rsa", hashes.SHA256()),
    "PS384": ("rsa", hashes.SHA384()),
    "PS512": ("rsa", hashes.SHA512()),
}
_ALG_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


Answer = tuple[int, dict[str, str], Any]  # status, extra headers, JSON body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(value: int, size: int = 0) -> bytes:
    return value.to_bytes(size or (value.bit_length() + 7) // 8, "big")


# -- TLS -------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalCA:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def make_test_ca(directory: Path) -> LocalCA:
    """A CA and a server certificate for 127.0.0.1 / localhost, as PEM files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigward test Key Vault CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server-key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return LocalCA(ca_file=ca_file, cert_file=cert_file, key_file=key_file)


# -- keys ------------------------------------------------------------------------------------------------------------


@dataclass
class KvVersion:
    version: str
    kind: KeyKind
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    enabled: bool = True
    hsm: bool = False
    key_ops: tuple[str, ...] = ("sign", "verify")
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def jwk(self, kid: str) -> dict[str, Any]:
        out: dict[str, Any] = {"kid": kid, "key_ops": list(self.key_ops)}
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            _, crv, size = _CURVES[self.kind]
            numbers = self.private.public_key().public_numbers()
            out.update(
                kty="EC-HSM" if self.hsm else "EC",
                crv=crv,
                x=b64url(_int_bytes(numbers.x, size)),
                y=b64url(_int_bytes(numbers.y, size)),
            )
        else:
            rsa_numbers = self.private.public_key().public_numbers()
            out.update(
                kty="RSA-HSM" if self.hsm else "RSA",
                n=b64url(_int_bytes(rsa_numbers.n)),
                e=b64url(_int_bytes(rsa_numbers.e)),
            )
        return out


def _new_private(kind: KeyKind, seed: int) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind][0])
    bits = int(kind.removeprefix("rsa"))
    cached = _RSA_CACHE.get((bits, seed))
    if cached is None:
        cached = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        _RSA_CACHE[(bits, seed)] = cached
    return cached


@dataclass
class KvKey:
    name: str
    versions: list[KvVersion] = field(default_factory=list)

    @property
    def latest(self) -> KvVersion:
        return self.versions[-1]

    def get(self, version: str) -> KvVersion | None:
        return next((v for v in self.versions if v.version == version), None)


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    authorized: bool
    body: bytes


# -- the server ------------------------------------------------------------------------------------------------------


class KeyVaultServer:
    """Key Vault + token endpoint on ``https://127.0.0.1:PORT``; ``vault_host`` goes into ``azurekms://`` URIs."""

    def __init__(self, workdir: Path) -> None:
        self.ca = make_test_ca(workdir / "tls")
        self.token_file = workdir / "federated-token"
        self.token_file.write_text(FEDERATED_TOKEN)
        self.keys: dict[str, KvKey] = {}
        self.forbidden: set[str] = set()  # key names the caller has no permission on (403)
        self.challenge_resource = ""  # a resource for the bearer challenge other than ``resource``
        self.refuse_tokens = False  # the token endpoint answers invalid_client (credential rejected)
        self.tokens: set[str] = set()
        self.extra_scopes: set[str] = set()  # scopes also granted (e.g. the AKS AAD server app's)
        self.requests: list[SeenRequest] = []
        self.token_requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._seed = 0
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._httpd.socket = self.ca.server_context().wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-keyvault", daemon=True
        )
        self._thread.start()

    @property
    def vault_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.vault_host}"

    @property
    def resource(self) -> str:
        """The challenge resource: a host suffix of ``127.0.0.1:PORT`` (see the module docstring)."""
        return f"https://0.0.1:{self.port}"

    def uri(self, name: str, version: str = "") -> str:
        return f"azurekms://{self.vault_host}/{name}" + (f"/{version}" if version else "")

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> KeyVaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def environment(self) -> dict[str, str]:
        """What a pod with Azure workload identity has, pointed at this server."""
        return {
            "AZURE_CLIENT_ID": CLIENT_ID,
            "AZURE_TENANT_ID": TENANT_ID,
            "AZURE_FEDERATED_TOKEN_FILE": str(self.token_file),
            "AZURE_AUTHORITY_HOST": self.url,
            "REQUESTS_CA_BUNDLE": str(self.ca.ca_file),
        }

    # -- keys ------------------------------------------------------------------------------------------------------

    def add_key(self, name: str, kind: KeyKind, **options: Any) -> KvKey:
        key = KvKey(name=name)
        with self._lock:
            self.keys[name] = key
        self.add_version(key, kind, **options)
        return key

    def add_version(
        self,
        key: KvKey,
        kind: KeyKind,
        *,
        enabled: bool = True,
        hsm: bool = False,
        key_ops: tuple[str, ...] = ("sign", "verify"),
    ) -> KvVersion:
        with self._lock:
            self._seed += 1
            seed = self._seed
        version = KvVersion(
            version=secrets.token_hex(16),
            kind=kind,
            private=_new_private(kind, seed),
            enabled=enabled,
            hsm=hsm,
            key_ops=key_ops,
        )
        with self._lock:
            key.versions.append(version)
        return version

    def kid(self, key: KvKey, version: KvVersion) -> str:
        return f"{self.url}/keys/{key.name}/{version.version}"

    def seen(self, method: str = "", contains: str = "") -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if (not method or r.method == method) and contains in r.path]

    # -- answers ---------------------------------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            return self._token(path, body)
        auth = headers.get("authorization", "")
        with self._lock:
            authorized = auth.startswith("Bearer ") and auth[7:] in self.tokens
            self.requests.append(SeenRequest(method=method, path=target, authorized=authorized, body=body))
        if not authorized:
            resource = self.challenge_resource or self.resource
            challenge = f'Bearer authorization="{self.url}/{TENANT_ID}", resource="{resource}"'
            return (
                401,
                {"WWW-Authenticate": challenge},
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
            )
        if "api-version" not in urllib.parse.parse_qs(parsed.query):
            return 400, {}, _error("BadParameter", "The api-version query parameter is required.")
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "keys":
            name = parts[1]
            if method == "GET" and len(parts) in (2, 3):
                return self._get_key(name, parts[2] if len(parts) == 3 else "")
            if method == "POST" and len(parts) == 4 and parts[3] == "sign":
                return self._sign(name, parts[2], body)
        return 404, {}, _error("NotFound", f"no route for {method} {path}")

    def _token(self, path: str, body: bytes) -> Answer:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        with self._lock:
            self.token_requests.append(form)
        tenant = path.strip("/").split("/", 1)[0]
        problems = []
        if tenant != TENANT_ID:
            problems.append(f"tenant {tenant!r}")
        if form.get("client_id") != CLIENT_ID:
            problems.append("client_id")
        if form.get("client_assertion") != FEDERATED_TOKEN:
            problems.append("client_assertion")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            problems.append("client_assertion_type")
        if form.get("scope") not in {f"{self.resource}/.default", *self.extra_scopes}:
            problems.append(f"scope {form.get('scope')!r}")
        if self.refuse_tokens or problems:
            return (
                401,
                {},
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS700213: No matching federated identity record found for presented "
                    f"assertion subject ({', '.join(problems) or 'refused'}).",
                    "error_codes": [700213],
                },
            )
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens.add(token)
        return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}

    def _lookup(self, name: str, version: str, action: str) -> tuple[KvKey, KvVersion] | Answer:
        if name in self.forbidden:
            return (
                403,
                {},
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Caller is not authorized to perform action on resource.\r\n"
                        "If role assignments, deny assignments or role definitions were changed recently, "
                        "please observe propagation time.\r\n"
                        f"Caller: appid={CLIENT_ID};iss=https://sts.windows.net/{TENANT_ID}/\r\n"
                        f"Action: 'Microsoft.KeyVault/vaults/keys/{action}/action'\r\nResource: '/keys/{name}'",
                        "innererror": {"code": "ForbiddenByRbac"},
                    }
                },
            )
        with self._lock:
            key = self.keys.get(name)
            found = None if key is None else (key.latest if not version else key.get(version))
        if key is None or found is None:
            what = name if not version else f"{name}/{version}"
            return (
                404,
                {},
                _error(
                    "KeyNotFound",
                    f"A key with (name/id) {what} was not found in this key vault. If you recently deleted this "
                    "key you may be able to recover it using the correct recovery command.",
                ),
            )
        return key, found

    def _get_key(self, name: str, version: str) -> Answer:
        found = self._lookup(name, version, "read")
        if len(found) == 3:
            return found
        key, kv = found
        return (
            200,
            {},
            {
                "key": kv.jwk(self.kid(key, kv)),
                "attributes": {
                    "enabled": kv.enabled,
                    "created": kv.created,
                    "updated": kv.created,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                    "exportable": False,
                },
                "tags": {},
            },
        )

    def _sign(self, name: str, version: str, body: bytes) -> Answer:
        found = self._lookup(name, version, "sign")
        if len(found) == 3:
            return found
        key, kv = found
        if not kv.enabled:
            return 403, {}, _error("Forbidden", "Operation sign is not allowed on a disabled key.", inner="KeyDisabled")
        if "sign" not in kv.key_ops:
            return 400, {}, _error("BadParameter", "Operation sign is not permitted on this key.")
        request = json.loads(body)
        alg = str(request.get("alg", ""))
        digest = b64url_decode(str(request.get("value", "")))
        family, algorithm = _ALGS.get(alg, ("", hashes.SHA256()))
        private = kv.private
        if isinstance(private, ec.EllipticCurvePrivateKey):
            if family != "ec" or _ALG_CURVE[alg] != _CURVES[kv.kind][1]:
                return 400, {}, _error("BadParameter", f"Invalid algorithm {alg} for key {name}.")
        elif family != "rsa":
            return 400, {}, _error("BadParameter", f"Invalid algorithm {alg} for key {name}.")
        if len(digest) != algorithm.digest_size:
            return 400, {}, _error("BadParameter", "Invalid digest length.")
        if isinstance(private, ec.EllipticCurvePrivateKey):
            r, s = utils.decode_dss_signature(private.sign(digest, ec.ECDSA(utils.Prehashed(algorithm))))
            size = _CURVES[kv.kind][2]
            signature = _int_bytes(r, size) + _int_bytes(s, size)
        else:
            pad: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
                if alg.startswith("PS")
                else padding.PKCS1v15()
            )
            signature = private.sign(digest, pad, utils.Prehashed(algorithm))
        return 200, {}, {"kid": self.kid(key, kv), "value": b64url(signature)}


def _error(code: str, message: str, *, inner: str = "") -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up are part of the tests."""


def _handler(owner: KeyVaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = owner.answer(self.command, self.path, headers, body)
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("x-ms-request-id", secrets.token_hex(8))
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _handle  # noqa: N815 - http.server's method names

    return Handler


_CLEARED = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_TOKEN_CREDENTIALS",
)


@contextmanager
def azurekms_backend(server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureKms]:
    """A fresh :class:`AzureKms` with workload-identity settings for ``server``, installed as the azurekms backend."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    backend = AzureKms()
    backends.set_backend("azurekms", backend)
    try:
        yield backend
    finally:
        backends.set_backend("azurekms", None)
        backend.close()

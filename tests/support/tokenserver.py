"""A tiny token server speaking the distribution token protocol, trusted by a real ``docker-registry``.

It issues ES256 JWTs whose header carries the signing certificate (``x5c``); the registry's ``rootcertbundle``
holds the same self-signed certificate, which is how distribution 2.8 (``registry/auth/token``) finds and
trusts the key. Claims follow that code: `iss`, a string `aud` (the service), `exp`/`nbf` and `access`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

SERVICE = "sigward-test-registry"
ISSUER = "sigward-test-issuer"
# Lifetime of issued tokens; the registry allows 60 s of clock skew on top.
TOKEN_SECONDS = 300
ALLOWED_ACTIONS = ("pull", "push")
# The accounts the session's token server knows (see tests/conftest.py).
TOKEN_USER = "token-user"
TOKEN_PASSWORD = "token-user-password"
IDENTITY_TOKEN = "identity-refresh-token-for-tests"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class TokenRequest:
    """What the token server saw: method, query/form parameters, and the user that authenticated (or "")."""

    method: str
    params: dict[str, list[str]]
    user: str
    had_authorization: bool

    @property
    def scopes(self) -> list[str]:
        return [s for value in self.params.get("scope", []) for s in value.split()]


@dataclass
class TokenServer:
    """Issues registry tokens. ``users``: name → password; ``refresh_tokens``: identity token → user."""

    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    expires_in: int = TOKEN_SECONDS
    # Grant anonymous callers ``pull`` (a public registry such as ECR Public); by default they get nothing.
    anonymous_pull: bool = False
    host_ip: str = "127.0.0.1"
    requests: list[TokenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigward test token issuer")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = self.workdir / "token-issuer.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        server = ThreadingHTTPServer((self.host_ip, 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="token-server", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return f"{self.host_ip}:{self.port}"

    @property
    def realm(self) -> str:
        return f"http://{self.host}/token"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def seen(self) -> list[TokenRequest]:
        with self._lock:
            return list(self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def authenticate(self, authorization: str) -> str | None:
        """The user a Basic header proves, ``""`` for none, ``None`` for wrong credentials."""
        if not authorization:
            return ""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return user

    def issue(self, user: str, scopes: list[str]) -> str:
        """A signed JWT granting ``user`` the requested actions (anonymous users nothing, or pull if allowed)."""
        access: list[dict[str, Any]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a in ALLOWED_ACTIONS] if user else []
            if not user and self.anonymous_pull and "pull" in actions.split(","):
                granted = ["pull"]
            if kind == "repository" and name and granted:
                access.append({"type": "repository", "name": name, "actions": granted})
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + self.expires_in,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def registry_auth_config(self) -> dict[str, Any]:
        """The ``auth:`` section of a docker-registry config that trusts this server."""
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.cert_path),
            }
        }


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = parse_qs(parts.query)
            authorization = self.headers.get("Authorization", "")
            user = server.authenticate(authorization)
            server.record(TokenRequest("GET", params, user or "", bool(authorization)))
            if parts.path != "/token":
                self._answer(404, {"errors": [{"code": "NOT_FOUND"}]})
                return
            if user is None:
                self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                return
            scopes = [s for value in params.get("scope", []) for s in value.split()]
            token = server.issue(user, scopes)
            self._answer(200, {"token": token, "access_token": token, "expires_in": server.expires_in})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            params = parse_qs(self.rfile.read(length).decode())
            refresh = params.get("refresh_token", [""])[0]
            user = next(
                (u for t, u in server.refresh_tokens.items() if hmac.compare_digest(t.encode(), refresh.encode())),
                None,
            )
            server.record(TokenRequest("POST", params, user or "", bool(self.headers.get("Authorization"))))
            if params.get("grant_type") != ["refresh_token"] or user is None:
                self._answer(401, {"error": "invalid_grant"})
                return
            token = server.issue(user, params.get("scope", [""])[0].split())
            self._answer(200, {"access_token": token, "expires_in": server.expires_in})

    return Handler

"""A stand-in for Google's ID-token issuer: an RSA key with a self-signed certificate served as ``{kid: PEM}`` on
loopback (the shape of https://www.googleapis.com/oauth2/v1/certs), and tokens signed with google-auth's own
``RSASigner`` + ``jwt.encode`` — the claims a Pub/Sub push subscription's ``oidcToken`` carries."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support.httpservers import Reply, ScriptedServer, Seen

AUDIENCE = "https://sigward-push-pubsub.example.run.app"
SERVICE_ACCOUNT = "sigward-pubsub-push@my-project.iam.gserviceaccount.com"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key_pem: bytes = field(repr=False)
    cert_pem: str


def new_signing_key(kid: str) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=14))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey(kid=kid, key_pem=key_pem, cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode())


def claims(**overrides: Any) -> dict[str, Any]:
    """What Pub/Sub puts in a push token (authenticate-push-subscriptions); ``None`` removes a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "aud": AUDIENCE,
        "azp": "113774264463038321964",
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        "iss": "https://accounts.google.com",
        "sub": "113774264463038321964",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, Any], *, kid: str | None = None) -> str:
    from google.auth import crypt, jwt

    signer = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
        key.key_pem, key_id=kid if kid is not None else key.kid
    )
    token: bytes = jwt.encode(signer, payload)  # type: ignore[no-untyped-call]
    return token.decode()


class CertsServer(ScriptedServer):
    """Serves ``{kid: PEM}`` at ``/certs`` with a Cache-Control max-age, counting fetches; ``down`` answers 503."""

    def __init__(self, *keys: SigningKey, max_age: int = 21600) -> None:
        self.keys = list(keys)
        self.max_age = max_age
        self.down = False
        super().__init__(self._answer)

    def __enter__(self) -> CertsServer:
        return self

    @property
    def certs_url(self) -> str:
        return f"{self.url}/certs"

    def fetches(self) -> int:
        return sum(1 for s in self.requests_seen() if s.path == "/certs")

    def _answer(self, seen: Seen) -> Reply:
        if seen.path != "/certs":
            return Reply(status=404)
        if self.down:
            return Reply(status=503, body=b"unavailable")
        body = json.dumps({k.kid: k.cert_pem for k in self.keys}).encode()
        return Reply(
            headers={"Content-Type": "application/json", "Cache-Control": f"public, max-age={self.max_age}"},
            body=body,
        )

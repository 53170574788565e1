"""A stand-in for the GCE metadata server's identity endpoint: Google-style ID tokens (RS256 JWTs minted here) for
the default service account, served only to requests with ``Metadata-Flavor: Google`` — as GCE and Cloud Run do."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.httpservers import Reply, ScriptedServer, Seen

IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
SA_UNIQUE_ID = "112233445566778899001"
SA_EMAIL = "sigward-admission@example-project.iam.gserviceaccount.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_google_id_token(audience: str, key: rsa.RSAPrivateKey, *, unique_id: str = SA_UNIQUE_ID) -> str:
    """An RS256 JWT shaped like the ones the metadata server issues with ``format=full``."""
    now = int(time.time())
    header = {"alg": "RS256", "kid": "sigward-test", "typ": "JWT"}
    claims = {
        "iss": "https://accounts.google.com",
        "aud": audience,
        "azp": unique_id,
        "sub": unique_id,
        "email": SA_EMAIL,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        "google": {"compute_engine": {"project_id": "example-project", "zone": "us-central1-a"}},
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def token_claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


class FakeMetadataServer:
    """403 without ``Metadata-Flavor: Google``, 404 off the identity path, else a fresh ID token for the requested
    audience. ``issued`` lists every token handed out; ``server.requests_seen()`` every request."""

    def __init__(self, *, unique_id: str = SA_UNIQUE_ID) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.unique_id = unique_id
        self.issued: list[str] = []
        self.server = ScriptedServer(self._answer)

    def _answer(self, seen: Seen) -> Reply:
        parts = urlsplit(seen.path)
        if parts.path != IDENTITY_PATH:
            return Reply(status=404)
        if seen.headers.get("metadata-flavor") != "Google":
            return Reply(status=403, body=b"Missing Metadata-Flavor:Google header.")
        audience = parse_qs(parts.query).get("audience", [""])[0]
        if not audience:
            return Reply(status=400, body=b"non-empty audience parameter required")
        token = mint_google_id_token(audience, self.key, unique_id=self.unique_id)
        self.issued.append(token)
        headers = {"Content-Type": "text/html", "Metadata-Flavor": "Google"}
        return Reply(status=200, headers=headers, body=token.encode())

    @property
    def host(self) -> str:
        return self.server.host

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> FakeMetadataServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

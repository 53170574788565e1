"""A stand-in for the GCE metadata server's identity endpoint: Google-style ID tokens (RS256 JWTs minted here) for
the default service account, served only to requests with ``Metadata-Flavor: Google`` — as GCE and Cloud Run do."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
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


class AccessTokenMetadata:
    """A metadata-server stand-in issuing OAuth access tokens (only with ``Metadata-Flavor: Google``)."""

    def __init__(self, expires_in: int = 3599, token: str = "") -> None:
        """``token``: issue this one every time (a registry told in advance which token to accept)."""
        self.issued: list[str] = []
        self.expires_in = expires_in
        self.token = token
        self.server = ScriptedServer(self._answer)

    def _answer(self, seen: Seen) -> Reply:
        flavor = {"Metadata-Flavor": "Google"}
        if seen.headers.get("metadata-flavor") != "Google":
            return Reply(status=403, body=b"Missing Metadata-Flavor:Google header.")
        path = seen.path.split("?", 1)[0]
        if path == "/":
            return Reply(status=200, headers=flavor, body=b"")
        if path == "/computeMetadata/v1/project/project-id":
            return Reply(status=200, headers={**flavor, "Content-Type": "text/plain"}, body=b"sigward-test")
        accounts = "/computeMetadata/v1/instance/service-accounts/"
        if path.startswith(accounts) and path.endswith("/") and path.count("/") == 6:
            info = {"email": "sigward@sigward-test.iam.gserviceaccount.com", "scopes": [], "aliases": ["default"]}
            return Reply(
                status=200, headers={**flavor, "Content-Type": "application/json"}, body=json.dumps(info).encode()
            )
        if not (path.startswith(accounts) and path.endswith("/token")):
            return Reply(status=404, headers=flavor)
        token = self.token or f"ya29.sigward-test-{len(self.issued)}-{'x' * 20}"
        self.issued.append(token)
        body = json.dumps({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}).encode()
        return Reply(status=200, headers={**flavor, "Content-Type": "application/json"}, body=body)

    def close(self) -> None:
        self.server.close()

    def environment(self, home: Path) -> dict[str, str]:
        """What google-auth needs to find this server as the workload's metadata server (set before import), with
        no other Application Default Credentials reachable (``home`` is an empty directory)."""
        return {
            "HOME": str(home),
            "CLOUDSDK_CONFIG": str(home / "gcloud"),
            "GCE_METADATA_HOST": self.server.host,
            "GCE_METADATA_IP": self.server.host,
            "GCE_METADATA_MTLS_MODE": "none",
        }


#: Variables that would hand google-auth other credentials or another metadata server.
AMBIENT_GOOGLE_VARIABLES = ("GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_ROOT", "NO_GCE_CHECK")


def install_access_token_metadata(monkeypatch: pytest.MonkeyPatch, home: Path) -> AccessTokenMetadata:
    """Start an :class:`AccessTokenMetadata` and point this process's google-auth at it (close it when done)."""
    import google.auth.compute_engine._metadata as metadata_module

    md = AccessTokenMetadata()
    for name in AMBIENT_GOOGLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in md.environment(home).items():
        monkeypatch.setenv(name, value)
    # google-auth reads the metadata host at import; the module may already be imported by another test.
    monkeypatch.setattr(metadata_module, "_GCE_METADATA_HOST", md.server.host, raising=False)
    return md

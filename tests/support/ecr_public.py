"""An ECR Public API stand-in (``ecr-public``, AWS JSON 1.1) over HTTPS on loopback, for the one call sigward makes:
``SpencerFrontendService.GetAuthorizationToken``. moto 5 has no ecr-public, so this speaks the protocol itself.

It checks what AWS checks: ``POST /``, ``Content-Type: application/x-amz-json-1.1``, the target header, and a SigV4
``Authorization`` (scope ``DATE/us-east-1/ecr-public/aws4_request``) whose signature it recomputes with the secret
of the access key id. A good request gets ``{"authorizationData": {"authorizationToken", "expiresAt"}}`` (one
object, epoch seconds) and the issued password becomes the ``AWS`` user's at the registry's token server, as the
real registry accepts exactly the current token. Errors are AWS JSON errors (``__type``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.keyvault_server import LocalCA, make_test_ca
from tests.support.tokenserver import TokenServer

TARGET = "SpencerFrontendService.GetAuthorizationToken"
CONTENT_TYPE = "application/x-amz-json-1.1"
REGION = "us-east-1"
SERVICE = "ecr-public"
USER = "AWS"
# ECR Public tokens are valid 12 hours (API reference).
TOKEN_SECONDS = 12 * 3600


@dataclass(frozen=True)
class EcrPublicCall:
    """One request received: target header, access key id, whether the SigV4 signature verified, the answer."""

    target: str
    content_type: str
    authorization: str
    access_key_id: str
    signature_ok: bool
    status: int


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _sigv4_ok(method: str, path: str, headers: dict[str, str], body: bytes, secret_of: dict[str, str]) -> bool:
    """Recompute the SigV4 signature from the received request (AWS's algorithm, header values as received)."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 ") :].split(",") if "=" in part)
    access_key, _, scope = fields.get("Credential", "").partition("/")
    date, _, rest = scope.partition("/")
    if rest != f"{REGION}/{SERVICE}/aws4_request" or access_key not in secret_of:
        return False
    signed = fields.get("SignedHeaders", "").split(";")
    if not {"host", "x-amz-date", "x-amz-target"} <= set(signed):
        return False
    canonical_headers = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed)
    canonical = "\n".join([method, path, "", canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", headers.get("x-amz-date", ""), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret_of[access_key]}".encode(), date)
    for part in (REGION, SERVICE, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("Signature", ""))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up are part of the tests."""


class EcrPublicApi:
    """``https://127.0.0.1:PORT`` (trusted through ``ca.ca_file``). ``keys``: access key id → secret key.

    ``fail_with``: answer every call with this AWS error (``("ServerException", 500)``) instead of a token.
    ``malformed``: answer a verified call with this 200 body instead (a hostile or broken API).
    ``issued``: the passwords handed out, oldest first."""

    def __init__(self, workdir: Path, token_server: TokenServer, keys: dict[str, str]) -> None:
        self.ca: LocalCA = make_test_ca(workdir)
        self.token_server = token_server
        self.keys = dict(keys)
        self.lifetime = float(TOKEN_SECONDS)
        self.fail_with: tuple[str, int] | None = None
        self.malformed: dict[str, Any] | None = None
        self.delay = 0.0
        self.issued: list[str] = []
        self._calls: list[EcrPublicCall] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._httpd.socket = self.ca.server_context().wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def calls(self) -> list[EcrPublicCall]:
        with self._lock:
            return list(self._calls)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        target = headers.get("x-amz-target", "")
        auth = headers.get("authorization", "")
        access_key = auth.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in auth else ""
        signature_ok = _sigv4_ok(method, path, headers, body, self.keys)
        status, reply = self._decide(method, path, headers, target, access_key, signature_ok)
        call = EcrPublicCall(target, headers.get("content-type", ""), auth, access_key, signature_ok, status)
        with self._lock:
            self._calls.append(call)
        return status, reply

    def _decide(
        self, method: str, path: str, headers: dict[str, str], target: str, access_key: str, signature_ok: bool
    ) -> tuple[int, dict[str, Any]]:
        if method != "POST" or path != "/" or headers.get("content-type") != CONTENT_TYPE:
            return 400, {"__type": "SerializationException", "message": "not an AWS JSON 1.1 request"}
        if target != TARGET:
            return 400, {"__type": "UnknownOperationException", "message": "unknown operation"}
        if access_key not in self.keys:
            return 403, {"__type": "UnrecognizedClientException", "message": "The security token is invalid."}
        if not signature_ok:
            return 403, {"__type": "InvalidSignatureException", "message": "The request signature does not match."}
        if self.fail_with is not None:
            return self.fail_with[1], {"__type": self.fail_with[0], "message": "stand-in failure"}
        if self.malformed is not None:
            return 200, self.malformed
        time.sleep(self.delay)  # lets concurrent callers pile up behind one fetch
        password = "ecr-public-" + secrets.token_urlsafe(24)
        self.issued.append(password)
        self.token_server.users[USER] = password  # the registry accepts the newest token only
        token = base64.b64encode(f"{USER}:{password}".encode()).decode()
        return 200, {"authorizationData": {"authorizationToken": token, "expiresAt": time.time() + self.lifetime}}


def _handler(api: EcrPublicApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, reply = api.answer(self.command, self.path, headers, body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST  # noqa: N815 - answered as a protocol error

    return Handler

"""push_pubsub reachable without Cloud Run IAM: every delivery must carry a Google-signed OIDC token for the
configured audience and service account. Real google-auth signs the tokens (RSASigner + jwt.encode) and sigward
verifies them against certificates fetched from a loopback stand-in of Google's certs endpoint. Each refusal is a
401 before any parsing, and the store never hears of the event; the token never appears in a log line."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sigward import logs
from sigward.events.auth import CERTS_REFETCH_INTERVAL_SECONDS, GoogleCerts, OidcFailure
from sigward.push.http import handle_push_pubsub
from sigward.push.service import PushService
from sigward.store.memory import MemoryStore
from sigward.verify.engine import Verifier
from tests.support.google_oidc import (
    AUDIENCE,
    SERVICE_ACCOUNT,
    CertsServer,
    claims,
    new_signing_key,
    sign,
)
from tests.support.memory import MemorySignatureSource

KEY = new_signing_key("kid-current")
STRANGER = new_signing_key("kid-current")  # same kid, different key: a forger guessing Google's key id
OTHER = new_signing_key("kid-not-published")
MESSAGE_ID = "2070443601311540"


def envelope(message_id: str = MESSAGE_ID) -> bytes:
    data = {
        "action": "INSERT",
        "digest": "us-west1-docker.pkg.dev/my-project/my-repo/app@sha256:" + "6c" * 32,
        "tag": "us-west1-docker.pkg.dev/my-project/my-repo/app:1.1",
    }
    message = {
        "data": base64.b64encode(json.dumps(data).encode()).decode(),
        "messageId": message_id,
        "publishTime": "2024-05-01T10:00:00.000Z",
    }
    return json.dumps({"message": message, "subscription": "projects/my-project/subscriptions/sigward"}).encode()


@pytest.fixture(scope="module")
def certs() -> Iterator[CertsServer]:
    with CertsServer(KEY) as server:
        yield server


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.set_stream(stream)
    yield stream
    logs.set_stream(None)


def env_for(server: CertsServer, **extra: str) -> dict[str, str]:
    return {
        "SIGWARD_PUBSUB_AUDIENCE": AUDIENCE,
        "SIGWARD_PUBSUB_SERVICE_ACCOUNTS": f"someone-else@p.iam.gserviceaccount.com, {SERVICE_ACCOUNT.upper()}",
        "SIGWARD_GOOGLE_CERTS_URL": server.certs_url,
        **extra,
    }


@dataclass
class Seen:
    """Whether a delivery reached the push service (events no policy matches are acknowledged without a store
    write, so the service being asked is what shows that authentication let the delivery through)."""

    processed: bool = False


def deliver(
    headers: dict[str, str], env: dict[str, str], message_id: str = MESSAGE_ID
) -> tuple[int, dict[str, Any], Seen]:
    seen = Seen()
    service = PushService(policies=list, verifier=Verifier(source=MemorySignatureSource()), store=MemoryStore())

    def factory() -> PushService:
        seen.processed = True
        return service

    resp = handle_push_pubsub(method="POST", headers=headers, body=envelope(message_id), service=factory, environ=env)
    return resp.status, json.loads(resp.body), seen


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def tampered(token: str) -> str:
    head, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["email"] = SERVICE_ACCOUNT  # unchanged claims re-encoded with another audience below
    body["aud"] = AUDIENCE + "-other"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def unsigned(alg: str) -> str:
    def seg(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': alg, 'kid': KEY.kid, 'typ': 'JWT'})}.{seg(claims())}.{'x' * 40 if alg != 'none' else ''}"


VALID = sign(KEY, claims())


@pytest.mark.parametrize(
    "issuer", ["https://accounts.google.com", "accounts.google.com"], ids=["https-issuer", "bare-issuer"]
)
def test_valid_token_is_processed(certs: CertsServer, log: io.StringIO, issuer: str) -> None:
    token = sign(KEY, claims(iss=issuer))
    status, body, seen = deliver(bearer(token), env_for(certs))
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["ignored"]  # handled: no rule matches this image
    assert seen.processed
    assert token not in log.getvalue()


def _cases() -> list[tuple[str, Callable[[], dict[str, str]], OidcFailure]]:
    now = int(time.time())
    return [
        ("no-header", lambda: {"Content-Type": "application/json"}, OidcFailure.MISSING),
        ("basic-scheme", lambda: {"Authorization": "Basic " + VALID}, OidcFailure.MALFORMED),
        ("garbage", lambda: bearer("not-a-jwt"), OidcFailure.MALFORMED),
        ("garbage-three-parts", lambda: bearer("a.b.c"), OidcFailure.MALFORMED),
        ("alg-none", lambda: bearer(unsigned("none")), OidcFailure.MALFORMED),
        ("alg-hs256", lambda: bearer(unsigned("HS256")), OidcFailure.MALFORMED),
        ("huge", lambda: bearer("a." + "b" * 9000 + ".c"), OidcFailure.MALFORMED),
        ("wrong-audience", lambda: bearer(sign(KEY, claims(aud=AUDIENCE + "/other"))), OidcFailure.WRONG_AUDIENCE),
        ("audience-list", lambda: bearer(sign(KEY, claims(aud=[AUDIENCE]))), OidcFailure.WRONG_AUDIENCE),
        ("no-audience", lambda: bearer(sign(KEY, claims(aud=None))), OidcFailure.WRONG_AUDIENCE),
        ("wrong-issuer", lambda: bearer(sign(KEY, claims(iss="https://evil.example"))), OidcFailure.WRONG_ISSUER),
        (
            "email-not-allowed",
            lambda: bearer(sign(KEY, claims(email="intruder@other.iam.gserviceaccount.com"))),
            OidcFailure.EMAIL_NOT_ALLOWED,
        ),
        ("no-email", lambda: bearer(sign(KEY, claims(email=None))), OidcFailure.EMAIL_NOT_ALLOWED),
        (
            "email-unverified",
            lambda: bearer(sign(KEY, claims(email_verified=False))),
            OidcFailure.EMAIL_UNVERIFIED,
        ),
        (
            "email-verified-string",
            lambda: bearer(sign(KEY, claims(email_verified="true"))),
            OidcFailure.EMAIL_UNVERIFIED,
        ),
        ("expired", lambda: bearer(sign(KEY, claims(iat=now - 7200, exp=now - 3600))), OidcFailure.EXPIRED),
        (
            "not-yet-valid",
            lambda: bearer(sign(KEY, claims(iat=now + 3600, exp=now + 7200))),
            OidcFailure.NOT_YET_VALID,
        ),
        ("no-exp", lambda: bearer(sign(KEY, claims(exp=None))), OidcFailure.MALFORMED),
        ("unknown-kid", lambda: bearer(sign(OTHER, claims())), OidcFailure.UNKNOWN_KEY),
        ("tampered-claims", lambda: bearer(tampered(VALID)), OidcFailure.BAD_SIGNATURE),
        ("forged-with-guessed-kid", lambda: bearer(sign(STRANGER, claims())), OidcFailure.BAD_SIGNATURE),
    ]


@pytest.mark.parametrize(("name", "headers", "reason"), _cases(), ids=[c[0] for c in _cases()])
def test_refused_with_401_and_no_work(
    certs: CertsServer,
    log: io.StringIO,
    name: str,
    headers: Callable[[], dict[str, str]],
    reason: OidcFailure,
) -> None:
    sent = headers()
    status, body, seen = deliver(sent, env_for(certs))
    assert status == 401, body
    assert body == {"error": f"unauthorized: Pub/Sub push: {reason.value}"}
    assert not seen.processed  # the store never heard of it
    records = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(r["message"], r["reason"]) for r in records] == [("Pub/Sub push refused: not authenticated", reason.name)]
    token = sent.get("Authorization", "").partition(" ")[2]
    if token:
        assert token not in log.getvalue() and token not in json.dumps(body)
        for part in token.split("."):
            assert len(part) < 8 or part not in log.getvalue()


def test_push_secret_does_not_replace_the_token(certs: CertsServer) -> None:
    """With OIDC configured, a push secret (which a push subscription could not send anyway) admits nothing."""
    env = env_for(certs, SIGWARD_PUSH_SECRET="s3cret-value-0123456789")
    status, _, seen = deliver({"X-Sigward-Secret": "s3cret-value-0123456789"}, env)
    assert status == 401 and not seen.processed
    status, _, seen = deliver(bearer(VALID), env)
    assert status == 200 and seen.processed


def test_without_configuration_no_token_is_asked_for(certs: CertsServer) -> None:
    status, _, seen = deliver({}, {})
    assert status == 200 and seen.processed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIGWARD_PUBSUB_AUDIENCE": AUDIENCE}, "SIGWARD_PUBSUB_SERVICE_ACCOUNTS lists no account"),
        ({"SIGWARD_PUBSUB_SERVICE_ACCOUNTS": SERVICE_ACCOUNT}, "SIGWARD_PUBSUB_AUDIENCE is not"),
        (
            {"SIGWARD_PUBSUB_AUDIENCE": AUDIENCE, "SIGWARD_PUBSUB_SERVICE_ACCOUNTS": "not-an-email"},
            "is not an e-mail address",
        ),
        (
            {
                "SIGWARD_PUBSUB_AUDIENCE": AUDIENCE,
                "SIGWARD_PUBSUB_SERVICE_ACCOUNTS": SERVICE_ACCOUNT,
                "SIGWARD_GOOGLE_CERTS_URL": "http://certs.example/certs",
            },
            "must be an https URL",
        ),
    ],
    ids=["audience-without-accounts", "accounts-without-audience", "bad-account", "plain-http-certs"],
)
def test_half_configured_refuses_everything(env: dict[str, str], message: str) -> None:
    status, body, seen = deliver(bearer(VALID), env)
    assert status == 500 and message in body["error"]
    assert not seen.processed


def test_certs_unreachable_asks_for_redelivery_and_does_no_work(log: io.StringIO) -> None:
    with CertsServer(KEY) as server:
        server.down = True
        status, body, seen = deliver(bearer(VALID), env_for(server))
    assert status == 503 and "HTTP 503" in body["error"]
    assert not seen.processed
    assert VALID not in log.getvalue()


def test_certs_are_cached_and_an_unknown_kid_refetches_at_most_once_per_interval() -> None:
    clock = [1000.0]
    with CertsServer(KEY, max_age=600) as server:
        cache = GoogleCerts(server.certs_url, clock=lambda: clock[0])
        assert cache.cert(KEY.kid) == KEY.cert_pem
        assert cache.cert(KEY.kid) == KEY.cert_pem
        assert server.fetches() == 1
        assert cache.cert("made-up") is None  # just fetched: no refetch
        assert server.fetches() == 1
        clock[0] += CERTS_REFETCH_INTERVAL_SECONDS
        assert cache.cert("made-up") is None  # one refetch: Google may have just rotated
        assert cache.cert("made-up-2") is None  # within the interval: no new fetch
        assert server.fetches() == 2
        server.keys.append(OTHER)  # Google publishes a new key
        clock[0] += CERTS_REFETCH_INTERVAL_SECONDS
        assert cache.cert(OTHER.kid) == OTHER.cert_pem
        assert server.fetches() == 3
        clock[0] += 601  # max-age elapsed
        server.keys = [OTHER]  # the old key is retired
        assert cache.cert(KEY.kid) is None
        assert server.fetches() == 4


@pytest.mark.parametrize(
    ("max_age", "still_cached_at", "refetched_at"), [(0, 59, 61), (10**9, 3599, 3601)], ids=["floor", "ceiling"]
)
def test_cache_lifetime_is_bounded(max_age: int, still_cached_at: float, refetched_at: float) -> None:
    """max-age=0 cannot force a fetch per request (60 s floor); a huge one cannot pin a key past an hour."""
    clock = [0.0]
    with CertsServer(KEY, max_age=max_age) as server:
        cache = GoogleCerts(server.certs_url, clock=lambda: clock[0])
        cache.cert(KEY.kid)
        clock[0] = still_cached_at
        cache.cert(KEY.kid)
        assert server.fetches() == 1
        clock[0] = refetched_at
        cache.cert(KEY.kid)
        assert server.fetches() == 2


def test_through_the_deployed_function_target(certs: CertsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check through functions-framework's app for functions/main.py (the deployed code path)."""
    import functions_framework

    from tests.support.serve import REPO

    for name, value in env_for(certs).items():
        monkeypatch.setenv(name, value)
    app = functions_framework.create_app("push_pubsub", str(REPO / "functions" / "main.py"))  # type: ignore[no-untyped-call]
    client = app.test_client()
    refused = client.post("/", data=envelope(), headers=bearer(sign(KEY, claims(aud="https://elsewhere"))))
    assert refused.status_code == 401
    assert refused.get_json() == {"error": f"unauthorized: Pub/Sub push: {OidcFailure.WRONG_AUDIENCE.value}"}
    missing = client.post("/", data=envelope(), headers={"Content-Type": "application/json"})
    assert missing.status_code == 401

"""The client against registries that misbehave: scripted local HTTP servers, some proxying the real registry,
for what distribution will not do on demand (redirects to storage, HEAD without digests, lies, throttling,
hostile challenges, silence)."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.deadline import Deadline
from sigward.errors import (
    AccessDeniedError,
    DeadlineExceededError,
    ExternalServiceError,
    VerificationFailure,
)
from sigward.references import Repository, parse_image_reference
from sigward.registry import BlockedAddressError, CredentialStore, RegistryClient, RegistryConfig
from tests.support.httpservers import Reply, ScriptedServer, Seen, SilentServer, forward
from tests.support.registry import (
    HTPASSWD_PASSWORD,
    HTPASSWD_USER,
    OCI_MANIFEST,
    LocalRegistry,
    local_config,
    sha256_digest,
)

pytestmark = pytest.mark.registry

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "c" * 64,
            "size": 2,
        },
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = sha256_digest(MANIFEST)


def deadline(seconds: float = 10) -> Deadline:
    return Deadline.after(seconds)


def client_for(*servers: object, private: tuple[str, ...] = ("127.0.0.1",), **kwargs: object) -> RegistryClient:
    config = local_config(*servers, private=private)
    if kwargs:
        config = RegistryConfig(
            insecure_registries=config.insecure_registries,
            private_registries=config.private_registries,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            **kwargs,  # type: ignore[arg-type]
        )
    return RegistryClient(config, credentials=CredentialStore.empty())


def manifest_reply(body: bytes = MANIFEST, headers: dict[str, str] | None = None) -> Reply:
    return Reply(200, {"Content-Type": OCI_MANIFEST, **(headers or {})}, body)


# -- tag resolution ---------------------------------------------------------------------------------------------


def test_head_refused_falls_back_to_get(registry: LocalRegistry) -> None:
    digest = registry.push_image("regtest/headless", "v1")

    def handler(seen: Seen) -> Reply:
        if seen.method == "HEAD":
            return Reply(405, {"Allow": "GET"})
        return forward(registry.url, seen)

    with ScriptedServer(handler) as proxy, client_for(proxy) as client:
        desc = client.resolve(parse_image_reference(f"{proxy.host}/regtest/headless:v1"), deadline=deadline())
        assert desc.digest == digest
        assert desc.media_type == OCI_MANIFEST
        assert client.stats.snapshot()["by_kind"] == {"manifest.head": 1, "manifest.get": 1}
        assert [s.method for s in proxy.requests_seen()] == ["HEAD", "GET"]


def test_head_without_digest_header_falls_back_to_get(registry: LocalRegistry) -> None:
    digest = registry.push_image("regtest/headless", "v2")

    def handler(seen: Seen) -> Reply:
        reply = forward(registry.url, seen)
        if seen.method == "HEAD":
            reply.headers.pop("Docker-Content-Digest", None)
        return reply

    with ScriptedServer(handler) as proxy, client_for(proxy) as client:
        desc = client.resolve(parse_image_reference(f"{proxy.host}/regtest/headless:v2"), deadline=deadline())
        assert desc.digest == digest
        assert desc.size == registry.pushed[digest].size


def test_tag_fetch_with_lying_digest_header_fails() -> None:
    def handler(seen: Seen) -> Reply:
        return manifest_reply(headers={"Docker-Content-Digest": "sha256:" + "e" * 64})

    with ScriptedServer(handler) as server, client_for(server) as client:
        with pytest.raises(VerificationFailure, match=r"manifest digest mismatch.*registry claims sha256:eeee"):
            client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())
        # HEAD carries no body to check, so resolve reports the claimed digest; it is self-certifying from then
        # on: fetching it (as signature checks and the kubelet do) fails, so the lie cannot admit other content.
        claimed = client.resolve(parse_image_reference(f"{server.host}/app:latest"), deadline=deadline())
        assert claimed.digest == "sha256:" + "e" * 64
        with pytest.raises(VerificationFailure, match="manifest digest mismatch"):
            client.get_manifest(Repository(server.host, "app"), claimed.digest, deadline=deadline())


def test_manifest_by_digest_must_hash_to_that_digest() -> None:
    other = MANIFEST.replace(b'"layers"', b'"layers" ')
    with (
        ScriptedServer(lambda seen: manifest_reply(other, {"Docker-Content-Digest": MANIFEST_DIGEST})) as server,
        client_for(server) as client,
        pytest.raises(VerificationFailure) as err,
    ):
        client.get_manifest(Repository(server.host, "app"), MANIFEST_DIGEST, deadline=deadline())
    assert str(err.value).startswith(f"manifest digest mismatch for {server.host}/app@{MANIFEST_DIGEST}")
    assert sha256_digest(other) in str(err.value)


def test_manifest_by_digest_accepts_matching_bytes() -> None:
    with ScriptedServer(lambda seen: manifest_reply()) as server, client_for(server) as client:
        got = client.get_manifest(Repository(server.host, "app"), MANIFEST_DIGEST, deadline=deadline())
        assert got.digest == MANIFEST_DIGEST and got.raw == MANIFEST
        [seen] = server.requests_seen()
        accept = seen.headers["accept"]
        for media_type in (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ):
            assert media_type in accept
        assert "v1+prettyjws" not in accept
        assert seen.headers["accept-encoding"] == "identity"
        assert seen.path == f"/v2/app/manifests/{MANIFEST_DIGEST}"


def test_schema1_is_refused() -> None:
    body = b'{"schemaVersion":1,"name":"app","tag":"latest","fsLayers":[],"signatures":[]}'
    reply = Reply(200, {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"}, body)
    with (
        ScriptedServer(lambda seen: reply) as server,
        client_for(server) as client,
        pytest.raises(VerificationFailure, match="schema 1 manifests are not supported"),
    ):
        client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())


def test_malformed_manifest_names_where() -> None:
    with (
        ScriptedServer(lambda seen: manifest_reply(b"{not json")) as server,
        client_for(server) as client,
        pytest.raises(VerificationFailure) as err,
    ):
        client.get_manifest(Repository(server.host, "team/app"), "v1", deadline=deadline())
    assert str(err.value) == f"malformed manifest {server.host}/team/app:v1: not valid JSON (JSONDecodeError)"


def test_compressed_answer_is_refused() -> None:
    reply = Reply(200, {"Content-Type": OCI_MANIFEST, "Content-Encoding": "gzip"}, gzip.compress(MANIFEST))
    with (
        ScriptedServer(lambda seen: reply) as server,
        client_for(server) as client,
        pytest.raises(VerificationFailure, match="Content-Encoding 'gzip'"),
    ):
        client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())


def test_oversized_manifest_stops_reading() -> None:
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    # No Content-Length shortcut: announce a small size... the body is counted as it streams.
    with (
        ScriptedServer(lambda seen: manifest_reply(big)) as server,
        client_for(server, max_manifest_bytes=64 * 1024) as client,
        pytest.raises(VerificationFailure, match="larger than the limit of 65536 bytes"),
    ):
        client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())


def test_blob_digest_mismatch() -> None:
    digest = sha256_digest(b"the real payload")
    with (
        ScriptedServer(lambda seen: Reply(200, {}, b"something else")) as server,
        client_for(server) as client,
        pytest.raises(VerificationFailure, match=f"blob digest mismatch for {server.host}/app@{digest}"),
    ):
        client.get_blob(Repository(server.host, "app"), digest, deadline=deadline())


def test_blob_too_large_even_without_content_length_honesty() -> None:
    data = b"x" * 5000
    digest = sha256_digest(data)
    # The server announces 10 bytes but the limit is enforced on what arrives, and on the announcement.
    with (
        ScriptedServer(lambda seen: Reply(200, {}, data)) as server,
        client_for(server) as client,
        pytest.raises(VerificationFailure, match="larger than the limit of 4096 bytes"),
    ):
        client.get_blob(Repository(server.host, "app"), digest, deadline=deadline(), max_bytes=4096)


# -- retries ----------------------------------------------------------------------------------------------------


def test_throttled_request_is_retried_after_retry_after() -> None:
    calls: list[float] = []

    def handler(seen: Seen) -> Reply:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Reply(429, {"Retry-After": "1"}, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}')
        return manifest_reply()

    with ScriptedServer(handler) as server, client_for(server) as client:
        got = client.get_manifest(Repository(server.host, "app"), MANIFEST_DIGEST, deadline=deadline())
        assert got.digest == MANIFEST_DIGEST
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.95


def test_throttling_beyond_the_cap_is_an_infrastructure_error() -> None:
    with (
        ScriptedServer(lambda seen: Reply(429, {"Retry-After": "120"})) as server,
        client_for(server) as client,
    ):
        start = time.monotonic()
        with pytest.raises(ExternalServiceError, match=r"throttling.*retry after 120 s") as err:
            client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())
        assert not isinstance(err.value, VerificationFailure)
        assert time.monotonic() - start < 1
        assert len(server.requests_seen()) == 1


def test_throttling_that_outlasts_the_deadline_is_not_waited_for() -> None:
    with (
        ScriptedServer(lambda seen: Reply(429, {"Retry-After": "3"})) as server,
        client_for(server) as client,
    ):
        start = time.monotonic()
        with pytest.raises(ExternalServiceError, match="throttling"):
            client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline(2))
        assert time.monotonic() - start < 1


def test_server_error_is_retried_once_then_reported() -> None:
    calls: list[str] = []

    def handler(seen: Seen) -> Reply:
        calls.append(seen.method)
        return Reply(
            503,
            {"Content-Type": "application/json"},
            b'{"errors":[{"code":"UNAVAILABLE","message":"<script>"}]}',
        )

    with ScriptedServer(handler) as server, client_for(server) as client, pytest.raises(ExternalServiceError) as err:
        client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())
    assert len(calls) == 2
    assert str(err.value) == f"{server.host} answered HTTP 503 for manifest latest in {server.host}/app (UNAVAILABLE)"


def test_transient_server_error_recovers() -> None:
    calls: list[str] = []

    def handler(seen: Seen) -> Reply:
        calls.append(seen.method)
        return Reply(502) if len(calls) == 1 else manifest_reply()

    with ScriptedServer(handler) as server, client_for(server) as client:
        assert client.get_manifest(Repository(server.host, "app"), MANIFEST_DIGEST, deadline=deadline()).raw == MANIFEST


# -- deadlines --------------------------------------------------------------------------------------------------


def test_silent_server_respects_the_deadline() -> None:
    with SilentServer() as server, client_for(server) as client:
        start = time.monotonic()
        with pytest.raises(DeadlineExceededError, match=server.host):
            client.get_manifest(Repository(server.host, "app"), "latest", deadline=Deadline.after(1))
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 1.6


def test_trickling_body_respects_the_deadline() -> None:
    """A server that sends headers and then trickles: the deadline bounds the whole read, not each recv."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: " + OCI_MANIFEST.encode() + b"\r\nContent-Length: 100000\r\n\r\n"
        )
        while not stop.is_set():
            try:
                conn.sendall(b" ")
            except OSError:
                break
            time.sleep(0.3)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    host = f"127.0.0.1:{port}"
    config = RegistryConfig(insecure_registries=frozenset({host}), private_registries=frozenset({"127.0.0.1"}))
    try:
        with RegistryClient(config, credentials=CredentialStore.empty()) as client:
            start = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                client.get_manifest(Repository(host, "app"), "latest", deadline=Deadline.after(1.5))
            assert time.monotonic() - start < 2.5
    finally:
        stop.set()
        listener.close()


# -- redirects --------------------------------------------------------------------------------------------------


@pytest.fixture
def storage() -> Iterator[ScriptedServer]:
    """A blob "storage" host on another loopback address, as registries redirect blob downloads to S3/GCS."""
    blobs: dict[str, bytes] = {}

    def handler(seen: Seen) -> Reply:
        name = seen.path.rsplit("/", 1)[-1].split("?", 1)[0]
        return Reply(200, {"Content-Type": "application/octet-stream"}, blobs[name]) if name in blobs else Reply(404)

    with ScriptedServer(handler, host="127.0.0.2") as server:
        server.blobs = blobs  # type: ignore[attr-defined]
        yield server


def test_blob_redirect_to_storage_drops_authorization(
    auth_registry: LocalRegistry, storage: ScriptedServer, tmp_path: Path
) -> None:
    """Basic auth to a real registry (through a proxy that redirects blob downloads to 127.0.0.2): the storage host
    never sees the Authorization header, the registry does, and the blob arrives verified."""
    payload = b"signature payload " * 10
    digest = auth_registry.push_blob("regtest/redir", payload)
    storage.blobs[digest] = payload  # type: ignore[attr-defined]

    def handler(seen: Seen) -> Reply:
        if "/blobs/" in seen.path and seen.method == "GET":
            real = forward(auth_registry.url, seen)  # the registry decides access (401 without credentials)
            if real.status != 200:
                return real
            return Reply(307, {"Location": f"http://{storage.host}/bucket/{digest}?X-Amz-Signature=abc"})
        return forward(auth_registry.url, seen)

    config_path = tmp_path / "config.json"
    with ScriptedServer(handler) as proxy:
        pair = f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}"
        import base64

        config_path.write_text(json.dumps({"auths": {proxy.host: {"auth": base64.b64encode(pair.encode()).decode()}}}))
        config = RegistryConfig(
            insecure_registries=frozenset({proxy.host, storage.host}),
            private_registries=frozenset({"127.0.0.1", "127.0.0.2"}),
        )
        with RegistryClient(config, credentials=CredentialStore(config_path)) as client:
            got = client.get_blob(Repository(proxy.host, "regtest/redir"), digest, deadline=deadline())
            assert got == payload
        blob_requests = [s for s in proxy.requests_seen() if "/blobs/" in s.path]
    assert blob_requests[-1].headers.get("authorization", "").startswith("Basic ")
    [storage_request] = storage.requests_seen()
    assert "authorization" not in storage_request.headers
    assert storage_request.path == f"/bucket/{digest}?X-Amz-Signature=abc"


def test_same_host_redirect_keeps_authorization(auth_registry: LocalRegistry, tmp_path: Path) -> None:
    payload = b"same host redirect"
    digest = auth_registry.push_blob("regtest/redir", payload)

    def handler(seen: Seen) -> Reply:
        if seen.path.startswith("/moved/"):
            return forward(auth_registry.url, Seen(seen.method, seen.path[len("/moved") :], seen.headers, 0))
        if "/blobs/" in seen.path:
            return Reply(302, {"Location": f"/moved{seen.path}"})
        return forward(auth_registry.url, seen)

    with ScriptedServer(handler) as proxy:
        import base64

        pair = base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()
        (tmp_path / "config.json").write_text(json.dumps({"auths": {proxy.host: {"auth": pair}}}))
        with RegistryClient(local_config(proxy), credentials=CredentialStore(tmp_path / "config.json")) as client:
            # The first request learns Basic from the 401; the retried blob request is redirected on the same host.
            assert client.get_blob(Repository(proxy.host, "regtest/redir"), digest, deadline=deadline()) == payload
        moved = [s for s in proxy.requests_seen() if s.path.startswith("/moved/")]
    # The anonymous first try is redirected too (and gets the 401); the authenticated one keeps its header.
    assert [s.headers.get("authorization", "")[:6] for s in moved] == ["", "Basic "]


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "plain HTTP"),
        ("https://169.254.169.254/latest/meta-data/", "link-local, metadata"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata service"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "link-local, metadata"),
        ("http://127.0.0.3:1/elsewhere", "plain HTTP"),
        ("file:///etc/passwd", "non-HTTP"),
        ("https://user:pw@storage.example/blob", "embedded credentials"),
    ],
)
def test_hostile_redirects_are_refused(location: str, message: str) -> None:
    data = b"blob"
    with (
        ScriptedServer(lambda seen: Reply(302, {"Location": location})) as server,
        client_for(server) as client,
    ):
        with pytest.raises(BlockedAddressError, match=message):
            client.get_blob(Repository(server.host, "app"), sha256_digest(data), deadline=deadline())
        assert set(client.stats.snapshot()["connections_by_host"]) == {server.host}


def test_redirect_loop_is_cut() -> None:
    with (
        ScriptedServer(lambda seen: Reply(302, {"Location": seen.path})) as server,
        client_for(server) as client,
    ):
        with pytest.raises(ExternalServiceError, match="too many redirects"):
            client.get_blob(Repository(server.host, "app"), "sha256:" + "d" * 64, deadline=deadline())
        assert len(server.requests_seen()) == 6


# -- hostile challenges -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "realm",
    [
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.169.254/latest/meta-data/",
        "https://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
        "https://[fd00:ec2::254]/latest/api/token",
        "https://100.100.100.200/latest/meta-data/",
    ],
)
def test_token_realm_pointing_at_metadata_is_refused_without_connecting(realm: str) -> None:
    challenge = f'Bearer realm="{realm}",service="evil",scope="repository:app:pull"'
    with (
        ScriptedServer(lambda seen: Reply(401, {"WWW-Authenticate": challenge})) as server,
        client_for(server) as client,
    ):
        with pytest.raises(BlockedAddressError) as err:
            client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())
        snapshot = client.stats.snapshot()
    assert isinstance(err.value, VerificationFailure)  # a decided failure: never waved through as an outage
    assert set(snapshot["by_host"]) == {server.host}
    assert set(snapshot["connections_by_host"]) == {server.host}


def test_token_realm_on_unlisted_private_address_is_refused() -> None:
    challenge = 'Bearer realm="https://10.0.0.1/token",service="x"'
    with (
        ScriptedServer(lambda seen: Reply(401, {"WWW-Authenticate": challenge})) as server,
        client_for(server) as client,
        pytest.raises(BlockedAddressError, match="SIGWARD_PRIVATE_REGISTRIES"),
    ):
        client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())


def test_token_request_never_asks_for_push(tmp_path: Path) -> None:
    """A challenge asking for push and delete gets a pull-only token request; the token then works."""
    token_requests: list[Seen] = []

    def token_handler(seen: Seen) -> Reply:
        token_requests.append(seen)
        return Reply(200, {"Content-Type": "application/json"}, b'{"token":"tok-123","expires_in":300}')

    with ScriptedServer(token_handler) as tokens:

        def registry_handler(seen: Seen) -> Reply:
            if seen.headers.get("authorization") == "Bearer tok-123":
                return manifest_reply()
            challenge = (
                f'Bearer realm="http://{tokens.host}/token?x=1",service="reg",scope="repository:app:push,pull,delete *"'
            )
            return Reply(401, {"WWW-Authenticate": challenge})

        with ScriptedServer(registry_handler) as server, client_for(server, tokens) as client:
            got = client.get_manifest(Repository(server.host, "app"), MANIFEST_DIGEST, deadline=deadline())
            assert got.digest == MANIFEST_DIGEST
    [request] = token_requests
    assert request.path == "/token?x=1&service=reg&scope=repository%3Aapp%3Apull"
    assert "authorization" not in request.headers  # no credentials for this registry: anonymous token


@pytest.mark.parametrize(
    ("challenge", "message"),
    [
        ('Bearer realm="unterminated', "malformed"),
        ('Bearer service="no-realm"', "without a realm"),
        ("Negotiate abc==", "unsupported authentication scheme"),
        ('Bearer realm="ftp://tokens.example/x"', "non-HTTP"),
    ],
)
def test_unusable_challenges_are_access_denied(challenge: str, message: str) -> None:
    with (
        ScriptedServer(lambda seen: Reply(401, {"WWW-Authenticate": challenge})) as server,
        client_for(server) as client,
        pytest.raises(VerificationFailure, match=message),
    ):
        client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())


def test_401_without_challenge_is_access_denied() -> None:
    with (
        ScriptedServer(lambda seen: Reply(401)) as server,
        client_for(server) as client,
        pytest.raises(AccessDeniedError, match="without a WWW-Authenticate challenge"),
    ):
        client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())


def test_403_is_access_denied_and_says_no_credentials_were_used() -> None:
    with (
        ScriptedServer(lambda seen: Reply(403)) as server,
        client_for(server) as client,
        pytest.raises(AccessDeniedError) as err,
    ):
        client.get_manifest(Repository(server.host, "app"), "latest", deadline=deadline())
    assert str(err.value) == (
        f"access to manifest latest in {server.host}/app denied (HTTP 403) "
        f"anonymously (no credentials configured for {server.host})"
    )


def test_ping_checks_the_api_version() -> None:
    def handler(seen: Seen) -> Reply:
        return Reply(401, {"Docker-Distribution-API-Version": "registry/2.0", "WWW-Authenticate": 'Basic realm="r"'})

    with ScriptedServer(handler) as server, client_for(server) as client:
        client.ping(server.host, deadline=deadline())
    with (
        ScriptedServer(lambda seen: Reply(404)) as server,
        client_for(server) as client,
        pytest.raises(ExternalServiceError, match="does not serve the registry API v2"),
    ):
        client.ping(server.host, deadline=deadline())


def test_digest_comparison_is_of_the_exact_algorithm() -> None:
    body = MANIFEST
    sha512 = "sha512:" + hashlib.sha512(body).hexdigest()
    with ScriptedServer(lambda seen: manifest_reply(body)) as server, client_for(server) as client:
        got = client.get_manifest(Repository(server.host, "app"), sha512, deadline=deadline())
        assert got.digest == sha512

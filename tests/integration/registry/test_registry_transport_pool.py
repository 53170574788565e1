"""The registry transport's connections and headers (urllib3 pool manager behind the network guard): a cold image's
requests share one warm connection, a connection whose body was not read to the end is never reused, and nothing
a registry sets (cookies) or the environment holds (proxies) rides along on later requests."""

from __future__ import annotations

import hashlib
import json

import pytest

from sigward.deadline import Deadline
from sigward.errors import VerificationFailure
from sigward.netguard import BlockedAddressError
from sigward.references import Repository, parse_image_reference
from sigward.registry import CredentialStore, RegistryClient, RegistryConfig
from sigward.registry.transport import USER_AGENT, RequestStats, Transport
from tests.support.httpservers import Reply, ScriptedServer, Seen, forward
from tests.support.registry import OCI_MANIFEST, LocalRegistry, local_config
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry


def deadline() -> Deadline:
    return Deadline.after(10)


def signed(registry: LocalRegistry, repo: str) -> tuple[str, str]:
    digest = registry.push_image(repo, "v1")
    attach_signatures(registry, repo, digest, [signed_layer(new_key("p256", slot=91), image_digest=digest)])
    return f"{registry.host}/{repo}:v1", digest


def cold_image(client: RegistryClient, ref_text: str) -> bytes:
    """What a cold verification asks: resolve the tag, the ``.sig`` manifest, its layer."""
    ref = parse_image_reference(ref_text)
    found = client.resolve(ref, deadline=deadline())
    sig = client.get_manifest(ref.repo, found.digest.replace(":", "-") + ".sig", deadline=deadline())
    return client.get_blob(ref.repo, sig.layers[0].digest, deadline=deadline())


def test_cold_image_requests_share_one_connection(registry: LocalRegistry) -> None:
    ref, _ = signed(registry, "pool/one")
    with RegistryClient(local_config(registry), credentials=CredentialStore.empty()) as client:
        assert cold_image(client, ref)
        assert cold_image(client, ref)
        assert client.stats.total == 6
        assert client.stats.connections == 1


def test_connection_with_an_unread_body_is_not_reused(registry: LocalRegistry) -> None:
    """A body refused for its size is left unread: that connection cannot carry another request, so it is dropped
    and the next request opens a new one (reusing it would read the old body as the next answer)."""
    ref, _ = signed(registry, "pool/unread")
    parsed = parse_image_reference(ref)
    with RegistryClient(local_config(registry), credentials=CredentialStore.empty()) as client:
        found = client.resolve(parsed, deadline=deadline())
        sig = client.get_manifest(parsed.repo, found.digest.replace(":", "-") + ".sig", deadline=deadline())
        assert client.stats.connections == 1
        with pytest.raises(VerificationFailure, match="larger than the limit"):
            client.get_blob(parsed.repo, sig.layers[0].digest, deadline=deadline(), max_bytes=1)
        assert client.get_blob(parsed.repo, sig.layers[0].digest, deadline=deadline())
        assert client.stats.connections == 2


def test_closed_client_keeps_no_connection(registry: LocalRegistry) -> None:
    ref, _ = signed(registry, "pool/closed")
    client = RegistryClient(local_config(registry), credentials=CredentialStore.empty())
    cold_image(client, ref)
    client.close()
    cold_image(client, ref)
    assert client.stats.connections == 2
    client.close()


def test_requests_carry_our_headers_and_never_a_registry_cookie(registry: LocalRegistry) -> None:
    def handler(seen: Seen) -> Reply:
        reply = forward(registry.url, seen)
        reply.headers["Set-Cookie"] = "session=from-the-registry; Path=/"
        return reply

    ref, _ = signed(registry, "pool/cookies")
    with ScriptedServer(handler) as proxy:
        config = RegistryConfig(
            insecure_registries=frozenset({proxy.host}), private_registries=frozenset({"127.0.0.1"})
        )
        with RegistryClient(config, credentials=CredentialStore.empty()) as client:
            assert cold_image(client, ref.replace(registry.host, proxy.host))
            assert cold_image(client, ref.replace(registry.host, proxy.host))
        seen = proxy.requests_seen()
    assert len(seen) == 6
    for request in seen:
        assert "cookie" not in request.headers
        assert request.headers["user-agent"] == USER_AGENT
        assert request.headers["accept-encoding"] == "identity"
        assert "authorization" not in request.headers
    assert "application/vnd.oci.image.manifest.v1+json" in seen[0].headers["accept"]


def test_environment_proxy_is_not_used(registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would connect on our behalf to an address the guard never saw: HTTP(S)_PROXY is ignored."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    ref, _ = signed(registry, "pool/proxy")
    with RegistryClient(local_config(registry), credentials=CredentialStore.empty()) as client:
        assert cold_image(client, ref)
        assert client.stats.connections == 1


@pytest.mark.parametrize(
    ("passed", "refused"),
    [
        ("https://registry.example/v2/", "http://registry.example/v2/"),  # same host, plain HTTP not listed
        ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5001/v2/"),  # listed port, another port
        ("https://127.0.0.1/v2/", "https://169.254.169.254/latest/"),  # metadata, never
    ],
)
def test_remembered_origins_never_widen_the_url_rules(passed: str, refused: str) -> None:
    """An origin that passed the URL rules is remembered by scheme and host:port only: another scheme, port or host
    is checked afresh and refused, however often asked."""
    transport = Transport(
        RegistryConfig(insecure_registries=frozenset({"127.0.0.1:5000"}), private_registries=frozenset({"127.0.0.1"})),
        RequestStats(),
    )
    for _ in range(2):
        assert transport.check_url(passed).geturl() == passed
        with pytest.raises(BlockedAddressError):
            transport.check_url(refused)
    assert transport.stats.connections == 0


_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 2},
        "layers": [],
    }
).encode()


@pytest.mark.parametrize(
    ("claimed", "ok"),
    [
        ("sha256:" + hashlib.sha256(_MANIFEST).hexdigest(), True),
        ("sha512:" + hashlib.sha512(_MANIFEST).hexdigest(), True),
        ("sha256:" + hashlib.sha256(_MANIFEST + b" ").hexdigest(), False),
        ("sha512:" + hashlib.sha512(_MANIFEST + b" ").hexdigest(), False),
    ],
)
def test_claimed_digest_of_a_tag_is_checked_in_its_own_algorithm(claimed: str, ok: bool) -> None:
    """Regression for hashing a manifest once: the sha256 computed for the manifest's own digest stands in for a
    sha256 claim only; a sha512 claim is hashed with sha512, and a lie in either is refused."""

    def handler(seen: Seen) -> Reply:
        return Reply(200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": claimed}, _MANIFEST)

    with ScriptedServer(handler) as server:
        config = RegistryConfig(
            insecure_registries=frozenset({server.host}), private_registries=frozenset({"127.0.0.1"})
        )
        repo = Repository(server.host, "app")
        with RegistryClient(config, credentials=CredentialStore.empty()) as client:
            if ok:
                got = client.get_manifest(repo, "v1", deadline=deadline())
                assert got.digest == "sha256:" + hashlib.sha256(_MANIFEST).hexdigest()
            else:
                with pytest.raises(VerificationFailure, match=r"manifest digest mismatch.*registry claims"):
                    client.get_manifest(repo, "v1", deadline=deadline())

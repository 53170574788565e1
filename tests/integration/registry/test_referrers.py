"""OCI 1.1 referrers and Sigstore bundles against the real local registry (Debian's distribution 2.8, which has no
referrers API: clients keep the ``sha256-<hex>`` index, as cosign does) and against a scripted server that proxies
it and adds a referrers API."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sigward.deadline import Deadline
from sigward.errors import AccessDeniedError, ExternalServiceError, VerificationFailure
from sigward.references import Repository
from sigward.registry import OCI_INDEX, CredentialStore, RegistryClient, RegistryConfig
from sigward.verify import referrers as referrers_module
from sigward.verify.bundles import BUNDLE_MEDIA_TYPE, BundleLayer, verify_bundle_signatures
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem
from sigward.verify.oci import RegistrySignatureSource
from sigward.verify.trust import parse_trusted_root
from tests.support.bundles import add_to_fallback_index, b64, dsse_bundle, encode, push_bundle_referrer, statement
from tests.support.bundles import trusted_root as trusted_root_json
from tests.support.httpservers import Reply, ScriptedServer, Seen, forward
from tests.support.registry import OCI_MANIFEST, LocalRegistry, local_config
from tests.support.signing import SigningKey, new_key

pytestmark = pytest.mark.registry

EMPTY_ROOT = parse_trusted_root(trusted_root_json(), source="empty")
SLSA = "https://slsa.dev/provenance/v1"


def deadline() -> Deadline:
    return Deadline.after(15)


def client_for(*servers: Any, config: RegistryConfig | None = None) -> RegistryClient:
    return RegistryClient(config or local_config(*servers), credentials=CredentialStore.empty())


@pytest.fixture
def client(registry: LocalRegistry) -> Iterator[RegistryClient]:
    with client_for(registry) as c:
        yield c


def repo_of(registry: LocalRegistry, path: str) -> Repository:
    return Repository(registry.host, path)


def signed(key: SigningKey, digest: str, **kwargs: Any) -> bytes:
    return encode(dsse_bundle(key, statement(digest, **kwargs)))


def verifier(key: SigningKey) -> PublicKeyVerifier:
    return PublicKeyVerifier(key=load_public_key_pem(key.public_pem))


def verify_signatures(layers: tuple[BundleLayer, ...], key: SigningKey, digest: str) -> int:
    results = verify_bundle_signatures(
        layers, image_digest=digest, key=verifier(key), trusted_root=EMPTY_ROOT, ignore_tlog=True
    )
    return len(results)


# -- the tag schema (the registry has no referrers API)


def test_registry_without_referrers_api_falls_back_to_the_tag(registry: LocalRegistry, client: RegistryClient) -> None:
    image = registry.push_image("refs/fallback", "v1")
    referrer = push_bundle_referrer(registry, "refs/fallback", image, signed(new_key(), image))
    repo = repo_of(registry, "refs/fallback")
    found = client.referrers(repo, image, deadline=deadline())
    assert [(d.digest, d.artifact_type, d.media_type) for d in found] == [(referrer, BUNDLE_MEDIA_TYPE, OCI_MANIFEST)]
    # The API answered 404 (distribution 2.8), then the tag schema index was read.
    assert client.stats.snapshot()["by_kind"] == {"referrers": 1, "manifest.get": 1}
    assert client.referrers(repo, image, deadline=deadline(), artifact_type=BUNDLE_MEDIA_TYPE) == found
    assert client.referrers(repo, image, deadline=deadline(), artifact_type="application/spdx+json") == ()


def test_no_fallback_tag_means_no_referrers(registry: LocalRegistry, client: RegistryClient) -> None:
    image = registry.push_image("refs/none", "v1")
    repo = repo_of(registry, "refs/none")
    assert client.referrers(repo, image, deadline=deadline()) == ()
    assert RegistrySignatureSource(client).bundles(repo, image, deadline=deadline()) == ()
    with pytest.raises(VerificationFailure, match=r"^no signatures found$"):
        verify_bundle_signatures((), image_digest=image, key=verifier(new_key()), trusted_root=EMPTY_ROOT)


def test_fallback_tag_that_is_not_an_index_is_refused(registry: LocalRegistry, client: RegistryClient) -> None:
    image = registry.push_image("refs/notindex", "v1")
    registry.push_image("refs/notindex", image.replace(":", "-"))
    with pytest.raises(VerificationFailure, match=r"is a application/vnd\.oci\.image\.manifest\.v1\+json, not an OCI"):
        client.referrers(repo_of(registry, "refs/notindex"), image, deadline=deadline())


def test_bundles_are_fetched_and_verified(registry: LocalRegistry, client: RegistryClient) -> None:
    key, path = new_key(), "refs/verify"
    image = registry.push_image(path, "v1")
    good = signed(key, image)
    push_bundle_referrer(registry, path, image, good, created="2026-01-01T00:00:02Z")
    layers = RegistrySignatureSource(client).bundles(repo_of(registry, path), image, deadline=deadline())
    assert len(layers) == 1
    assert layers[0].raw == good and not layers[0].problem
    assert layers[0].predicate_type == "https://sigstore.dev/cosign/sign/v1"
    assert layers[0].artifact_type == BUNDLE_MEDIA_TYPE
    assert verify_signatures(layers, key, image) == 1


def test_tampered_wrong_key_and_wrong_subject_bundles_fail(registry: LocalRegistry, client: RegistryClient) -> None:
    key, other, path = new_key(), new_key(slot=1), "refs/bad"
    image = registry.push_image(path, "v1")
    tampered = dsse_bundle(key, statement(image))
    tampered["dsseEnvelope"]["payload"] = b64(statement(image, predicate={"evil": 1}))
    push_bundle_referrer(registry, path, image, encode(tampered), created="2026-01-01T00:00:03Z")
    push_bundle_referrer(registry, path, image, signed(other, image), created="2026-01-01T00:00:02Z")
    push_bundle_referrer(registry, path, image, signed(key, "sha256:" + "9" * 64), created="2026-01-01T00:00:01Z")
    layers = RegistrySignatureSource(client).bundles(repo_of(registry, path), image, deadline=deadline())
    assert len(layers) == 3
    with pytest.raises(VerificationFailure) as info:
        verify_signatures(layers, key, image)
    message = info.value.message
    assert message.startswith("no matching signatures: invalid DSSE signature")
    assert f"does not name the image digest {image}" in message
    # Adding a good one makes the image verify; the bad ones do not get in its way.
    push_bundle_referrer(registry, path, image, signed(key, image), created="2026-01-01T00:00:00Z")
    layers = RegistrySignatureSource(client).bundles(repo_of(registry, path), image, deadline=deadline())
    assert verify_signatures(layers, key, image) == 1


def test_attestation_bundles_are_not_signatures(registry: LocalRegistry, client: RegistryClient) -> None:
    key, path = new_key(), "refs/att"
    image = registry.push_image(path, "v1")
    push_bundle_referrer(registry, path, image, signed(key, image, predicate_type=SLSA), predicate_type=SLSA)
    layers = RegistrySignatureSource(client).bundles(repo_of(registry, path), image, deadline=deadline())
    with pytest.raises(VerificationFailure, match=r"an attestation \(https://slsa.dev/provenance/v1\)"):
        verify_signatures(layers, key, image)


def test_another_digests_referrers_are_not_confused(registry: LocalRegistry, client: RegistryClient) -> None:
    key, path = new_key(), "refs/two"
    image_a = registry.push_image(path, "a")
    image_b = registry.push_image(path, "b")
    ref_a = push_bundle_referrer(registry, path, image_a, signed(key, image_a))
    ref_b = push_bundle_referrer(registry, path, image_b, signed(key, image_b))
    repo = repo_of(registry, path)
    assert [d.digest for d in client.referrers(repo, image_a, deadline=deadline())] == [ref_a]
    assert [d.digest for d in client.referrers(repo, image_b, deadline=deadline())] == [ref_b]
    # Anyone who may push can write A's tag-schema index: listing B's referrer there must not make it A's.
    b_raw = registry.pushed[ref_b]
    add_to_fallback_index(
        registry,
        path,
        image_a,
        {"mediaType": OCI_MANIFEST, "digest": ref_b, "size": b_raw.size, "artifactType": BUNDLE_MEDIA_TYPE},
    )
    layers = RegistrySignatureSource(client).bundles(repo, image_a, deadline=deadline())
    by_digest = {layer.manifest_digest: layer for layer in layers}
    assert (
        by_digest[ref_b].problem == f"referrer {ref_b} is not about image {image_a} (its subject is another manifest)"
    )
    assert not by_digest[ref_a].problem
    with pytest.raises(VerificationFailure, match="is not about image"):
        verify_signatures((by_digest[ref_b],), key, image_a)


def test_at_most_the_newest_referrers_are_read(
    registry: LocalRegistry, client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, path = new_key(), "refs/many"
    image = registry.push_image(path, "v1")
    pushed = [
        push_bundle_referrer(
            registry, path, image, signed(key, image, predicate={"n": i}), created=f"2026-01-0{i}T00:00:00Z"
        )
        for i in range(1, 5)
    ]
    monkeypatch.setattr(referrers_module, "MAX_BUNDLE_REFERRERS", 2)
    client.stats.reset()
    layers = RegistrySignatureSource(client).bundles(repo_of(registry, path), image, deadline=deadline())
    assert [layer.manifest_digest for layer in layers] == [pushed[3], pushed[2]]
    assert client.stats.snapshot()["by_kind"] == {"referrers": 1, "manifest.get": 3, "blob": 2}


def test_oversized_bundle_is_not_downloaded(
    registry: LocalRegistry, client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, path = new_key(), "refs/big"
    image = registry.push_image(path, "v1")
    bundle = signed(key, image, predicate={"padding": "x" * 4096})
    push_bundle_referrer(registry, path, image, bundle)
    monkeypatch.setattr(referrers_module, "MAX_BUNDLE_BYTES", 1024)
    client.stats.reset()
    layers = RegistrySignatureSource(client).bundles(repo_of(registry, path), image, deadline=deadline())
    assert layers[0].problem.endswith(f"bundle of {len(bundle)} bytes is larger than the limit of 1024")
    assert "blob" not in client.stats.snapshot()["by_kind"]
    with pytest.raises(VerificationFailure, match="larger than the limit of 1024"):
        verify_signatures(layers, key, image)


def test_referrer_that_is_not_a_bundle_manifest(registry: LocalRegistry, client: RegistryClient) -> None:
    """The index says "bundle", the (digest-checked) manifest says otherwise: the manifest wins."""
    path = "refs/liar"
    image = registry.push_image(path, "v1")
    other = registry.push_image(path, None)
    add_to_fallback_index(
        registry,
        path,
        image,
        {
            "mediaType": OCI_MANIFEST,
            "digest": other,
            "size": registry.pushed[other].size,
            "artifactType": BUNDLE_MEDIA_TYPE,
        },
    )
    layers = RegistrySignatureSource(client).bundles(repo_of(registry, path), image, deadline=deadline())
    assert layers[0].problem == f"referrer {other} is not about image {image} (its subject is another manifest)"


# -- a registry with the referrers API (scripted, in front of the real registry)

REFERRERS_PATH = re.compile(r"^/v2/(?P<repo>.+)/referrers/(?P<digest>sha256:[0-9a-f]{64})(?:\?(?P<query>.*))?$")


def index_of(descriptors: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}).encode()


def api_server(registry: LocalRegistry, answer: Callable[[Seen, re.Match[str]], Reply | None]) -> ScriptedServer:
    """Proxies the real registry; ``answer`` decides referrers requests (None: let the real registry 404)."""

    def handle(seen: Seen) -> Reply:
        match = REFERRERS_PATH.match(seen.path)
        if match is not None:
            reply = answer(seen, match)
            if reply is not None:
                return reply
        return forward(registry.url, seen)

    return ScriptedServer(handle)


def referrer_descriptor(registry: LocalRegistry, digest: str, artifact_type: str = BUNDLE_MEDIA_TYPE) -> dict[str, Any]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": registry.pushed[digest].size,
        "artifactType": artifact_type,
    }


def test_referrers_api_answer_is_used(registry: LocalRegistry) -> None:
    key, path = new_key(), "refs/api"
    image = registry.push_image(path, "v1")
    referrer = push_bundle_referrer(registry, path, image, signed(key, image), fallback=False)
    sbom = push_bundle_referrer(registry, path, image, b"{}", artifact_type="application/spdx+json", fallback=False)
    listing = index_of(
        [referrer_descriptor(registry, referrer), referrer_descriptor(registry, sbom, "application/spdx+json")]
    )

    def answer(seen: Seen, match: re.Match[str]) -> Reply:
        # A registry that ignores the artifactType filter: the client must filter.
        return Reply(200, {"Content-Type": OCI_INDEX}, listing)

    with api_server(registry, answer) as server, client_for(server) as client:
        repo = Repository(server.host, path)
        assert [d.digest for d in client.referrers(repo, image, deadline=deadline())] == [referrer, sbom]
        found = client.referrers(repo, image, deadline=deadline(), artifact_type=BUNDLE_MEDIA_TYPE)
        assert [d.digest for d in found] == [referrer]
        layers = RegistrySignatureSource(client).bundles(repo, image, deadline=deadline())
        assert [layer.manifest_digest for layer in layers] == [referrer]
        assert verify_signatures(layers, key, image) == 1
        paths = [s.path for s in server.requests_seen()]
    assert f"/v2/{path}/referrers/{image}?artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson" in paths
    assert not any("/manifests/sha256-" in p for p in paths), "the tag schema must not be read when the API answers"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, {"Content-Type": "text/plain"}, b"404 page not found"),
        Reply(400, {"Content-Type": "application/json"}, b'{"errors":[{"code":"MANIFEST_INVALID"}]}'),
        Reply(406, {}, b""),
        Reply(200, {"Content-Type": "text/html"}, b"<html>a web page</html>"),
        Reply(200, {"Content-Type": OCI_INDEX}, b"not json"),
    ],
    ids=["404", "400", "406", "200-html", "200-garbage"],
)
def test_registry_without_a_usable_api_falls_back(registry: LocalRegistry, reply: Reply) -> None:
    path = "refs/noapi"
    image = registry.push_image(path, None)
    referrer = push_bundle_referrer(registry, path, image, signed(new_key(), image))
    with api_server(registry, lambda seen, match: reply) as server, client_for(server) as client:
        found = client.referrers(Repository(server.host, path), image, deadline=deadline())
        paths = [s.path for s in server.requests_seen()]
    assert [d.digest for d in found] == [referrer]
    assert any(p.endswith(f"/manifests/{image.replace(':', '-')}") for p in paths)


def test_referrers_api_outage_and_denial(registry: LocalRegistry) -> None:
    path = "refs/outage"
    image = registry.push_image(path, None)
    with (
        api_server(registry, lambda seen, match: Reply(503, {}, b"")) as server,
        client_for(server) as client,
        pytest.raises(ExternalServiceError, match="HTTP 503 for referrers"),
    ):
        client.referrers(Repository(server.host, path), image, deadline=deadline())
    with (
        api_server(registry, lambda seen, match: Reply(403, {}, b"")) as server,
        client_for(server) as client,
        pytest.raises(AccessDeniedError, match="denied"),
    ):
        client.referrers(Repository(server.host, path), image, deadline=deadline())


def test_referrers_api_pages_are_followed(registry: LocalRegistry) -> None:
    key, path = new_key(), "refs/pages"
    image = registry.push_image(path, "v1")
    first = push_bundle_referrer(registry, path, image, signed(key, image, predicate={"p": 1}), fallback=False)
    second = push_bundle_referrer(registry, path, image, signed(key, image, predicate={"p": 2}), fallback=False)

    def answer(seen: Seen, match: re.Match[str]) -> Reply:
        if "last=" in (match.group("query") or ""):
            return Reply(200, {"Content-Type": OCI_INDEX}, index_of([referrer_descriptor(registry, second)]))
        link = f'</v2/{path}/referrers/{image}?n=1&last={first}>; rel="next"'
        return Reply(200, {"Content-Type": OCI_INDEX, "Link": link}, index_of([referrer_descriptor(registry, first)]))

    with api_server(registry, answer) as server, client_for(server) as client:
        found = client.referrers(Repository(server.host, path), image, deadline=deadline())
    assert [d.digest for d in found] == [first, second]


def test_next_page_elsewhere_is_refused(registry: LocalRegistry) -> None:
    path = "refs/badlink"
    image = registry.push_image(path, None)

    def answer(seen: Seen, match: re.Match[str]) -> Reply:
        link = f'<https://evil.example/v2/{path}/referrers/{image}?n=1>; rel="next"'
        return Reply(200, {"Content-Type": OCI_INDEX, "Link": link}, index_of([]))

    with (
        api_server(registry, answer) as server,
        client_for(server) as client,
        pytest.raises(VerificationFailure, match="unusable next-page link"),
    ):
        client.referrers(Repository(server.host, path), image, deadline=deadline())


def test_referrers_answer_is_size_bounded(registry: LocalRegistry) -> None:
    path = "refs/huge"
    image = registry.push_image(path, None)
    filler = [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(), "size": 1}
        for i in range(200)
    ]
    body = index_of(filler)

    with api_server(registry, lambda seen, match: Reply(200, {"Content-Type": OCI_INDEX}, body)) as server:
        base = local_config(server)
        small = RegistryConfig(
            insecure_registries=base.insecure_registries,
            private_registries=base.private_registries,
            max_manifest_bytes=4096,
        )
        with client_for(config=small) as client, pytest.raises(VerificationFailure, match="larger than the limit"):
            client.referrers(Repository(server.host, path), image, deadline=deadline())
        with client_for(server) as client:
            assert len(client.referrers(Repository(server.host, path), image, deadline=deadline())) == 200

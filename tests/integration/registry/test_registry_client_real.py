"""RegistryClient against a real CNCF distribution registry (``docker-registry serve``) without auth."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from sigward.deadline import Deadline
from sigward.errors import DeadlineExceededError, ExternalServiceError, NotFoundError, VerificationFailure
from sigward.references import Repository, parse_image_reference
from sigward.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    CredentialStore,
    RegistryClient,
    RegistryConfig,
)
from tests.support.registry import LocalRegistry, local_config, sha256_digest

pytestmark = pytest.mark.registry


@pytest.fixture
def client(registry_config: RegistryConfig) -> Iterator[RegistryClient]:
    with RegistryClient(registry_config, credentials=CredentialStore.empty()) as c:
        yield c


def deadline() -> Deadline:
    return Deadline.after(10)


def test_resolve_oci_tag(registry: LocalRegistry, client: RegistryClient) -> None:
    digest = registry.push_image("regtest/oci", "v1")
    desc = client.resolve(parse_image_reference(f"{registry.host}/regtest/oci:v1"), deadline=deadline())
    assert desc.digest == digest
    assert desc.media_type == OCI_MANIFEST
    assert desc.size == registry.pushed[digest].size
    # One HEAD, no body fetched.
    assert client.stats.snapshot()["by_kind"] == {"manifest.head": 1}


def test_resolve_docker_schema2_tag(registry: LocalRegistry, client: RegistryClient) -> None:
    digest = registry.push_image("regtest/docker", "v1", docker=True)
    desc = client.resolve(parse_image_reference(f"{registry.host}/regtest/docker:v1"), deadline=deadline())
    assert (desc.digest, desc.media_type) == (digest, DOCKER_MANIFEST)
    manifest = client.get_manifest(Repository(registry.host, "regtest/docker"), "v1", deadline=deadline())
    assert manifest.media_type == DOCKER_MANIFEST and manifest.digest == digest
    assert manifest.config is not None and manifest.config.media_type.startswith("application/vnd.docker")


@pytest.mark.parametrize(("docker", "media_type"), [(False, OCI_INDEX), (True, DOCKER_MANIFEST_LIST)])
def test_resolve_index_gives_the_index_digest(
    registry: LocalRegistry, client: RegistryClient, docker: bool, media_type: str
) -> None:
    repo = "regtest/multi-docker" if docker else "regtest/multi-oci"
    index_digest = registry.push_index(repo, "multi", docker=docker)
    desc = client.resolve(parse_image_reference(f"{registry.host}/{repo}:multi"), deadline=deadline())
    assert desc.digest == index_digest
    assert desc.media_type == media_type
    index = client.get_manifest(Repository(registry.host, repo), index_digest, deadline=deadline())
    assert index.is_index
    children = [d.digest for d in index.manifests]
    assert len(children) == 2 and index_digest not in children
    child = client.get_manifest(Repository(registry.host, repo), children[0], deadline=deadline())
    assert not child.is_index and child.digest == children[0]


def test_resolve_digest_reference_sends_nothing(registry: LocalRegistry, client: RegistryClient) -> None:
    digest = "sha256:" + "1" * 64
    desc = client.resolve(parse_image_reference(f"{registry.host}/regtest/none@{digest}"), deadline=deadline())
    assert desc.digest == digest
    assert client.stats.total == 0


def test_get_manifest_by_digest_and_tag(registry: LocalRegistry, client: RegistryClient) -> None:
    digest = registry.push_image("regtest/app", "v2", annotations={"org.example": "yes"})
    repo = Repository(registry.host, "regtest/app")
    by_digest = client.get_manifest(repo, digest, deadline=deadline())
    by_tag = client.get_manifest(repo, "v2", deadline=deadline())
    assert by_digest.digest == by_tag.digest == digest == sha256_digest(by_digest.raw)
    assert by_digest.raw == registry.pushed[digest].raw  # the exact bytes, not a re-serialization
    assert dict(by_tag.annotations) == {"org.example": "yes"}
    assert len(by_tag.layers) == 1


def test_blob_fetch_verifies_and_bounds(registry: LocalRegistry, client: RegistryClient) -> None:
    payload = os.urandom(2048)
    digest = registry.push_blob("regtest/blobs", payload)
    repo = Repository(registry.host, "regtest/blobs")
    assert client.get_blob(repo, digest, deadline=deadline()) == payload
    assert client.get_blob(repo, digest, deadline=deadline(), max_bytes=2048) == payload
    with pytest.raises(VerificationFailure, match="larger than the limit of 2047 bytes"):
        client.get_blob(repo, digest, deadline=deadline(), max_bytes=2047)


def test_gzip_layer_is_returned_compressed(registry: LocalRegistry, client: RegistryClient) -> None:
    import gzip

    compressed = gzip.compress(b"x" * 10_000)
    digest = registry.push_blob("regtest/blobs", compressed)
    got = client.get_blob(Repository(registry.host, "regtest/blobs"), digest, deadline=deadline())
    assert got == compressed


def test_manifest_larger_than_the_limit_is_refused(registry: LocalRegistry) -> None:
    digest = registry.push_image("regtest/big", "v1", annotations={"pad": "p" * 4000})
    config = RegistryConfig(
        insecure_registries=frozenset({registry.host}),
        private_registries=frozenset({"127.0.0.1"}),
        max_manifest_bytes=1024,
    )
    with (
        RegistryClient(config, credentials=CredentialStore.empty()) as c,
        pytest.raises(VerificationFailure, match="larger than the limit of 1024 bytes"),
    ):
        c.get_manifest(Repository(registry.host, "regtest/big"), digest, deadline=deadline())


def test_not_found_names_what_is_missing(registry: LocalRegistry, client: RegistryClient) -> None:
    digest = registry.push_image("regtest/app", "v3")
    tag = f"{digest.replace(':', '-')}.sig"
    with pytest.raises(NotFoundError) as err:
        client.get_manifest(Repository(registry.host, "regtest/app"), tag, deadline=deadline())
    assert str(err.value) == f"manifest {tag} not found in {registry.host}/regtest/app"
    with pytest.raises(NotFoundError, match="manifest nope not found"):
        client.resolve(parse_image_reference(f"{registry.host}/regtest/app:nope"), deadline=deadline())
    missing_blob = "sha256:" + "0" * 64
    with pytest.raises(NotFoundError, match=f"blob {missing_blob} not found in {registry.host}/regtest/app"):
        client.get_blob(Repository(registry.host, "regtest/app"), missing_blob, deadline=deadline())
    with pytest.raises(NotFoundError):
        client.get_manifest(Repository(registry.host, "regtest/never-pushed"), "latest", deadline=deadline())


def test_one_connection_for_many_requests(registry: LocalRegistry, client: RegistryClient) -> None:
    digest = registry.push_image("regtest/reuse", "v1", layers=[b"a" * 10, b"b" * 10, b"c" * 10])
    repo = Repository(registry.host, "regtest/reuse")
    client.resolve(parse_image_reference(f"{registry.host}/regtest/reuse:v1"), deadline=deadline())
    manifest = client.get_manifest(repo, digest, deadline=deadline())
    for layer in manifest.layers:
        client.get_blob(repo, layer.digest, deadline=deadline())
    with pytest.raises(NotFoundError):
        client.get_manifest(repo, "missing", deadline=deadline())
    snapshot = client.stats.snapshot()
    assert snapshot["total"] == 6
    assert snapshot["connections"] == 1, snapshot


def test_concurrent_use_of_one_client(registry: LocalRegistry, client: RegistryClient) -> None:
    digests = [registry.push_image("regtest/par", f"t{i}") for i in range(8)]

    def work(i: int) -> str:
        ref = parse_image_reference(f"{registry.host}/regtest/par:t{i % 8}")
        desc = client.resolve(ref, deadline=deadline())
        return client.get_manifest(ref.repo, desc.digest, deadline=deadline()).digest

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(32)))
    assert results == [digests[i % 8] for i in range(32)]
    snapshot = client.stats.snapshot()
    assert snapshot["total"] == 64
    assert snapshot["connections"] <= 8


def test_ping(registry: LocalRegistry, client: RegistryClient) -> None:
    client.ping(registry.host, deadline=deadline())
    assert client.stats.count(kind="ping") == 1


def test_registry_down_is_an_infrastructure_error_quickly(fresh_registry: LocalRegistry) -> None:
    digest = fresh_registry.push_image("regtest/down", "v1")
    with RegistryClient(local_config(fresh_registry), credentials=CredentialStore.empty()) as c:
        repo = Repository(fresh_registry.host, "regtest/down")
        assert c.get_manifest(repo, digest, deadline=deadline()).digest == digest
        fresh_registry.stop()
        start = time.monotonic()
        with pytest.raises(ExternalServiceError) as err:
            c.get_manifest(repo, digest, deadline=deadline())
        elapsed = time.monotonic() - start
        assert not isinstance(err.value, (DeadlineExceededError, VerificationFailure))
        assert "connection refused" in str(err.value)
        assert fresh_registry.host in str(err.value)
        assert elapsed < 2.0
        # It comes back: the client recovers on the same pool.
        fresh_registry.start()
        assert c.get_manifest(repo, digest, deadline=deadline()).digest == digest


def test_exhausted_deadline_sends_nothing(registry: LocalRegistry, client: RegistryClient) -> None:
    with pytest.raises(DeadlineExceededError):
        client.get_manifest(Repository(registry.host, "regtest/app"), "v1", deadline=Deadline.after(0))
    assert client.stats.total == 0


def test_unlisted_plain_http_registry_is_not_reached_over_http(registry: LocalRegistry) -> None:
    """Without SIGWARD_INSECURE_REGISTRIES the client speaks TLS, which a plain-HTTP registry cannot answer."""
    config = RegistryConfig(private_registries=frozenset({"127.0.0.1"}), connect_timeout=2, read_timeout=2)
    with (
        RegistryClient(config, credentials=CredentialStore.empty()) as c,
        pytest.raises(ExternalServiceError),
    ):
        c.get_manifest(Repository(registry.host, "regtest/app"), "v1", deadline=deadline())


def test_loopback_registry_needs_the_private_allowlist(registry: LocalRegistry) -> None:
    config = RegistryConfig(insecure_registries=frozenset({registry.host}))
    with (
        RegistryClient(config, credentials=CredentialStore.empty()) as c,
        pytest.raises(VerificationFailure, match="SIGWARD_PRIVATE_REGISTRIES"),
    ):
        c.get_manifest(Repository(registry.host, "regtest/app"), "v1", deadline=deadline())


def test_pushed_signature_manifest_round_trip(registry: LocalRegistry, client: RegistryClient) -> None:
    """A cosign-style ``.sig`` manifest: simple-signing layer with annotations, read back exactly."""
    image = registry.push_image("regtest/signed", "v1")
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": image}}}).encode()
    sig_digest = registry.push_image(
        "regtest/signed",
        f"{image.replace(':', '-')}.sig",
        layers=[payload],
        layer_media_type="application/vnd.dev.cosign.simplesigning.v1+json",
        layer_annotations=[{"dev.cosignproject.cosign/signature": "MEUCIQ=="}],
    )
    repo = Repository(registry.host, "regtest/signed")
    manifest = client.get_manifest(repo, f"{image.replace(':', '-')}.sig", deadline=deadline())
    assert manifest.digest == sig_digest
    [layer] = manifest.layers
    assert layer.annotations["dev.cosignproject.cosign/signature"] == "MEUCIQ=="
    assert client.get_blob(repo, layer.digest, deadline=deadline(), max_bytes=len(payload)) == payload

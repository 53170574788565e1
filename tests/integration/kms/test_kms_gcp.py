"""``gcpkms://`` keys end to end: the real google-cloud-kms client (gRPC, retries, routing headers, proto messages)
against a local Cloud KMS server holding real keys, and signatures verified through the KeyResolver and the
Verifier exactly as admission does."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest

from sigward.deadline import Deadline
from sigward.errors import AccessDeniedError, ConfigurationError, ExternalServiceError, NotFoundError
from sigward.kms import backends, resolver
from sigward.kms.base import KmsBackend
from sigward.kms.gcp import ENDPOINT_ENV, INSECURE_ENV, GcpKms
from sigward.kms.resolver import KeyResolver
from sigward.policy.kms_uri import parse_kms_uri
from sigward.policy.loader import load_policy_text
from sigward.verify.cosign import ANNOTATION_SIGNATURE, SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.keys import KeyLoadError, spki_pem
from sigward.verify.results import RuleVerdict, Verdict
from sigward.verify.simplesigning import SIMPLESIGNING_MEDIA_TYPE, make_payload
from tests.support.gcpkms_server import FakeKey, GcpKmsServer, gcpkms_backend, key_uri
from tests.support.memory import MemorySignatureSource
from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry

REPO = "registry.test/app"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def server() -> Iterator[GcpKmsServer]:
    with GcpKmsServer(page_size_limit=3) as srv:
        srv.add_key("ec-p256", "EC_SIGN_P256_SHA256", states=("ENABLED", "ENABLED", "DISABLED"))
        srv.add_key("ec-p384", "EC_SIGN_P384_SHA384")
        srv.add_key("rsa-2048", "RSA_SIGN_PKCS1_2048_SHA256")
        srv.add_key("rsa-pss", "RSA_SIGN_PSS_2048_SHA256")
        srv.add_key("ed25519", "EC_SIGN_ED25519")
        # Versions 1..12, only 9..12 of them listed over several pages: "9" > "12" as text, 12 > 9 as numbers.
        srv.add_key("ec-many", "EC_SIGN_P256_SHA256", states=("DISABLED",) * 8 + ("ENABLED",) * 4)
        srv.add_key("decrypt", "RSA_DECRYPT_OAEP_2048_SHA256")
        srv.add_key("secp256k1", "EC_SIGN_SECP256K1_SHA256")
        srv.add_key("all-disabled", "EC_SIGN_P256_SHA256", states=("DISABLED", "DESTROYED"))
        srv.deny_get.add(srv.add_key("secret", "EC_SIGN_P256_SHA256").name)
        srv.deny_list.add(srv.add_key("no-list", "EC_SIGN_P256_SHA256").name)
        yield srv


@pytest.fixture
def gcp(server: GcpKmsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[GcpKms]:
    with gcpkms_backend(server.endpoint, monkeypatch) as backend:
        yield backend


def _key(server: GcpKmsServer, key_id: str) -> FakeKey:
    return server.keys[server_key_name(key_id)]


def server_key_name(key_id: str) -> str:
    return "projects/sigward-test/locations/global/keyRings/ring/cryptoKeys/" + key_id


def cosign_layer(backend: KmsBackend, uri: str, digest: str) -> SignatureLayer:
    """A cosign ``.sig`` layer whose signature the KMS made over the simple-signing payload for ``digest``."""
    payload = make_payload(docker_reference=REPO, manifest_digest=digest)
    signature = backend.sign(parse_kms_uri(uri), payload, timeout=5)
    return SignatureLayer(
        media_type=SIMPLESIGNING_MEDIA_TYPE,
        payload=payload,
        annotations={ANNOTATION_SIGNATURE: base64.b64encode(signature).decode()},
    )


def verify(
    uri: str, layers: dict[str, tuple[SignatureLayer, ...]], digest: str, *, keys: KeyResolver | None = None
) -> RuleVerdict:
    source = MemorySignatureSource()
    image = f"{REPO}@{digest}"
    for d, signed in layers.items():
        source.add_signatures(REPO, d, signed)
    doc = cluster_policy("kms", [key_verification(["registry.test/*"], [keys_entry(uri)])])
    policies = load_policy_text(dump(doc), "kms.yaml").policies
    verifier = Verifier(source=source, keys=keys or KeyResolver(timeout=3))
    (result,) = verifier.verify_images([image], policies, deadline=Deadline.after(10))
    return result


# -- versions --------------------------------------------------------------------------------------------------------


def test_versionless_uri_uses_newest_enabled_version_not_a_newer_disabled_one(
    gcp: GcpKms, server: GcpKmsServer
) -> None:
    key = _key(server, "ec-p256")
    before = len(server.calls_of("ListCryptoKeyVersions"))
    public = gcp.public_key(parse_kms_uri(key_uri(key)), timeout=5)
    assert public.version == f"{key.name}/cryptoKeyVersions/2"
    assert spki_pem(public.key) == key.versions[2].public_pem
    assert spki_pem(public.key) != key.versions[3].public_pem
    listing = server.calls_of("ListCryptoKeyVersions")[before:]
    assert [c.request.filter for c in listing] == ["state=ENABLED"]
    # The real client sent the routing header Cloud KMS requires.
    assert listing[0].metadata["x-goog-request-params"] == f"parent={key.name}"


def test_newest_version_is_the_highest_number_across_pages(gcp: GcpKms, server: GcpKmsServer) -> None:
    key = _key(server, "ec-many")
    before = len(server.calls_of("ListCryptoKeyVersions"))
    public = gcp.public_key(parse_kms_uri(key_uri(key)), timeout=5)
    assert public.version.endswith("/cryptoKeyVersions/12")
    assert spki_pem(public.key) == key.versions[12].public_pem
    pages = server.calls_of("ListCryptoKeyVersions")[before:]
    assert len(pages) == 2  # 4 enabled versions, 3 per page
    assert pages[1].request.page_token == "3"


def test_pinned_version_is_fetched_without_listing(gcp: GcpKms, server: GcpKmsServer) -> None:
    key = _key(server, "ec-p256")
    before = len(server.calls_of("ListCryptoKeyVersions"))
    public = gcp.public_key(parse_kms_uri(key_uri(key, 1)), timeout=5)
    assert spki_pem(public.key) == key.versions[1].public_pem
    assert public.version == f"{key.name}/cryptoKeyVersions/1"
    assert len(server.calls_of("ListCryptoKeyVersions")) == before
    # cosign's "versions" spelling names the same version.
    alias = gcp.public_key(parse_kms_uri(f"gcpkms://{key.name}/versions/1"), timeout=5)
    assert spki_pem(alias.key) == spki_pem(public.key)


def test_pinned_disabled_version_is_a_decided_failure(gcp: GcpKms, server: GcpKmsServer) -> None:
    key = _key(server, "ec-p256")
    with pytest.raises(KeyLoadError, match="DISABLED"):
        gcp.public_key(parse_kms_uri(key_uri(key, 3)), timeout=5)


def test_key_without_enabled_versions_is_a_decided_failure(gcp: GcpKms, server: GcpKmsServer) -> None:
    with pytest.raises(KeyLoadError, match="no ENABLED key version"):
        gcp.public_key(parse_kms_uri(key_uri(_key(server, "all-disabled"))), timeout=5)


# -- algorithms: sign with the KMS, verify as admission does --------------------------------------------------------


@pytest.mark.parametrize(
    ("key_id", "hash_name", "padding", "kind"),
    [
        ("ec-p256", "sha256", "pkcs1v15", "ECDSA secp256r1"),
        ("ec-p384", "sha384", "pkcs1v15", "ECDSA secp384r1"),
        ("rsa-2048", "sha256", "pkcs1v15", "RSA-2048"),
        ("rsa-pss", "sha256", "pss", "RSA-2048"),
        ("ed25519", "sha512", "pkcs1v15", "Ed25519"),
    ],
)
def test_kms_signature_verifies_through_resolver_and_verifier(
    gcp: GcpKms, server: GcpKmsServer, key_id: str, hash_name: str, padding: str, kind: str
) -> None:
    from sigward.verify.keys import describe_key

    uri = key_uri(_key(server, key_id))
    public = gcp.public_key(parse_kms_uri(uri), timeout=5)
    assert (public.hash_name, public.rsa_padding, describe_key(public.key)) == (hash_name, padding, kind)
    signs_before = len(server.calls_of("AsymmetricSign"))
    layer = cosign_layer(gcp, uri, DIGEST_A)
    (sign_call,) = server.calls_of("AsymmetricSign")[signs_before:]
    if kind == "Ed25519":
        assert sign_call.request.data == layer.payload and sign_call.request.data_crc32c is not None
    else:
        # The digest of the version's own hash, with its CRC32C, as Cloud KMS requires.
        assert hash_name in sign_call.request.digest and sign_call.request.digest_crc32c is not None

    result = verify(uri, {DIGEST_A: (layer,)}, DIGEST_A)
    assert result.verdict == Verdict.PASS, result.message
    assert result.digest == DIGEST_A

    # The same signature does not carry over to another image digest.
    replay = verify(uri, {DIGEST_B: (layer,)}, DIGEST_B)
    assert replay.verdict == Verdict.FAIL


def test_signature_of_another_key_fails(gcp: GcpKms, server: GcpKmsServer) -> None:
    layer = cosign_layer(gcp, key_uri(_key(server, "ec-p384")), DIGEST_A)
    result = verify(key_uri(_key(server, "ec-p256")), {DIGEST_A: (layer,)}, DIGEST_A)
    assert result.verdict == Verdict.FAIL
    assert ".attestors[0].entries[0].keys" in result.message


# -- refusals --------------------------------------------------------------------------------------------------------


def test_missing_key_is_not_found(gcp: GcpKms, server: GcpKmsServer) -> None:
    uri = f"gcpkms://{server_key_name('nope')}"
    with pytest.raises(NotFoundError, match=r"nope not found"):
        gcp.public_key(parse_kms_uri(uri), timeout=5)
    with pytest.raises(NotFoundError, match=r"cryptoKeyVersions/7 not found"):
        gcp.public_key(parse_kms_uri(key_uri(_key(server, "ec-p256"), 7)), timeout=5)
    result = verify(uri, {}, DIGEST_A)
    assert result.verdict == Verdict.FAIL
    assert "not found" in result.message


def test_permission_denied_names_the_role(gcp: GcpKms, server: GcpKmsServer) -> None:
    uri = key_uri(_key(server, "secret"), 1)
    with pytest.raises(AccessDeniedError) as caught:
        gcp.public_key(parse_kms_uri(uri), timeout=5)
    assert "roles/cloudkms.publicKeyViewer" in str(caught.value)
    assert "cloudkms.cryptoKeyVersions.viewPublicKey" in str(caught.value)
    # Access denied is a decided failure, not an outage.
    result = verify(uri, {}, DIGEST_A)
    assert result.verdict == Verdict.FAIL
    assert "publicKeyViewer" in result.message


def test_listing_denied_suggests_pinning_the_version(gcp: GcpKms, server: GcpKmsServer) -> None:
    key = _key(server, "no-list")
    with pytest.raises(AccessDeniedError) as caught:
        gcp.public_key(parse_kms_uri(key_uri(key)), timeout=5)
    message = str(caught.value)
    assert "cloudkms.cryptoKeyVersions.list" in message
    assert f"gcpkms://{key.name}/cryptoKeyVersions/N" in message
    assert "roles/cloudkms.publicKeyViewer" in message
    # Pinned, the same key needs no listing.
    pinned = gcp.public_key(parse_kms_uri(key_uri(key, 1)), timeout=5)
    assert spki_pem(pinned.key) == key.versions[1].public_pem


@pytest.mark.parametrize(("key_id", "reason"), [("decrypt", "ASYMMETRIC_DECRYPT"), ("secp256k1", "secp256k1")])
def test_keys_cosign_cannot_use_are_refused(gcp: GcpKms, server: GcpKmsServer, key_id: str, reason: str) -> None:
    uri = key_uri(_key(server, key_id))
    with pytest.raises(KeyLoadError, match=reason):
        gcp.public_key(parse_kms_uri(uri), timeout=5)
    assert verify(uri, {}, DIGEST_A).verdict == Verdict.FAIL


def test_unreachable_kms_is_an_infrastructure_error_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    with gcpkms_backend(f"127.0.0.1:{free_port()}", monkeypatch) as backend:
        uri = f"gcpkms://{server_key_name('ec-p256')}"
        started = time.monotonic()
        with pytest.raises(ExternalServiceError, match="unavailable"):
            backend.public_key(parse_kms_uri(uri), timeout=5)
        assert time.monotonic() - started < 3
        result = verify(uri, {}, DIGEST_A)
        assert result.verdict == Verdict.ERROR
        assert "gcpkms" in result.message


def test_slow_kms_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with GcpKmsServer() as slow, gcpkms_backend(slow.endpoint, monkeypatch) as backend:
        key = slow.add_key("ec", "EC_SIGN_P256_SHA256")
        slow.delay_seconds = 2.0
        started = time.monotonic()
        with pytest.raises(ExternalServiceError, match="in time"):
            backend.public_key(parse_kms_uri(key_uri(key, 1)), timeout=0.5)
        assert time.monotonic() - started < 1.8


def test_missing_application_default_credentials_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    monkeypatch.delenv(INSECURE_ENV, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sigward-adc.json")
    backend = GcpKms()
    with pytest.raises(ConfigurationError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        backend.public_key(parse_kms_uri(f"gcpkms://{server_key_name('k')}"), timeout=5)


def test_insecure_hook_needs_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    monkeypatch.setenv(INSECURE_ENV, "1")
    with pytest.raises(ConfigurationError, match=ENDPOINT_ENV):
        GcpKms().public_key(parse_kms_uri(f"gcpkms://{server_key_name('k')}"), timeout=5)


# -- rotation --------------------------------------------------------------------------------------------------------


def test_rotation_new_version_is_picked_up_by_refetch(
    gcp: GcpKms, server: GcpKmsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolver, "MIN_REFRESH_INTERVAL_SECONDS", 0.0)
    key = server.add_key("rotating", "EC_SIGN_P256_SHA256")
    uri = key_uri(key)
    keys = KeyResolver(timeout=3)  # one resolver, its key cache shared by both verifications
    old = cosign_layer(gcp, uri, DIGEST_A)
    assert verify(uri, {DIGEST_A: (old,)}, DIGEST_A, keys=keys).verdict == Verdict.PASS

    server.add_version(key, "EC_SIGN_P256_SHA256")  # version 2 is now the newest ENABLED
    new = cosign_layer(gcp, uri, DIGEST_B)
    listed = len(server.calls_of("ListCryptoKeyVersions"))
    result = verify(uri, {DIGEST_B: (new,)}, DIGEST_B, keys=keys)
    assert result.verdict == Verdict.PASS, result.message
    assert len(server.calls_of("ListCryptoKeyVersions")) == listed + 1  # the cached version 1 failed: re-fetched

    # Signatures of the old version still verify when the policy pins it.
    assert verify(key_uri(key, 1), {DIGEST_A: (old,)}, DIGEST_A).verdict == Verdict.PASS


def test_backend_registry_creates_gcp_backend_lazily() -> None:
    backends.set_backend("gcpkms", None)
    try:
        assert isinstance(backends.backend("gcpkms"), GcpKms)
    finally:
        backends.set_backend("gcpkms", None)

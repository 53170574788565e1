"""``azurekms://`` keys end to end: the real azure-keyvault-keys client (bearer challenge, api-version, retries)
and azure-identity's DefaultAzureCredential doing AKS workload identity against a local HTTPS Key Vault + Entra ID
token endpoint, with signatures verified through the KeyResolver and the Verifier as admission does."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sigward.deadline import Deadline
from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExternalServiceError,
    NotFoundError,
    VerificationFailure,
)
from sigward.kms import backends, resolver
from sigward.kms.azure import AzureKms
from sigward.kms.base import KmsBackend
from sigward.kms.resolver import KeyResolver
from sigward.policy.kms_uri import parse_kms_uri
from sigward.policy.loader import load_policy_text
from sigward.verify.cosign import ANNOTATION_SIGNATURE, SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.keys import KeyLoadError, describe_key, spki_pem
from sigward.verify.results import RuleVerdict, Verdict
from sigward.verify.simplesigning import SIMPLESIGNING_MEDIA_TYPE, make_payload
from tests.support.httpservers import SilentServer
from tests.support.keyvault_server import CLIENT_ID, FEDERATED_TOKEN, KeyVaultServer, azurekms_backend
from tests.support.memory import MemorySignatureSource
from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry

REPO = "registry.test/app"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyVaultServer]:
    with KeyVaultServer(tmp_path_factory.mktemp("keyvault")) as srv:
        versions = srv.add_key("ec-p256", "p256")
        srv.add_version(versions, "p256")  # two versions: the second is current
        srv.add_key("ec-p384", "p384", hsm=True)
        srv.add_key("rsa-2048", "rsa2048")
        srv.add_key("rsa-3072", "rsa3072", hsm=True)
        srv.add_key("disabled", "p256", enabled=False)
        srv.add_key("encrypt-only", "rsa2048", key_ops=("encrypt", "decrypt", "wrapKey", "unwrapKey"))
        srv.add_key("verify-only", "p256", key_ops=("verify",))
        srv.add_key("forbidden", "p256")
        srv.forbidden.add("forbidden")
        yield srv


@pytest.fixture
def azure(server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureKms]:
    server.refuse_tokens = False
    server.challenge_resource = ""
    with azurekms_backend(server, monkeypatch) as backend:
        yield backend


def cosign_layer(backend: KmsBackend, uri: str, digest: str) -> SignatureLayer:
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
    for d, signed in layers.items():
        source.add_signatures(REPO, d, signed)
    doc = cluster_policy("kms", [key_verification(["registry.test/*"], [keys_entry(uri)])])
    policies = load_policy_text(dump(doc), "kms.yaml").policies
    verifier = Verifier(source=source, keys=keys or KeyResolver(timeout=3))
    (result,) = verifier.verify_images([f"{REPO}@{digest}"], policies, deadline=Deadline.after(10))
    return result


# -- authentication --------------------------------------------------------------------------------------------------


def test_workload_identity_token_and_bearer_challenge(azure: AzureKms, server: KeyVaultServer) -> None:
    tokens_before = len(server.token_requests)
    requests_before = len(server.seen())
    azure.public_key(parse_kms_uri(server.uri("ec-p384")), timeout=5)
    (token_request,) = server.token_requests[tokens_before:]
    # azure-identity's WorkloadIdentityCredential exchanged the projected token for the challenge's scope.
    assert token_request["client_id"] == CLIENT_ID
    assert token_request["client_assertion"] == FEDERATED_TOKEN
    assert token_request["scope"] == f"{server.resource}/.default"
    first, second = server.seen()[requests_before:]
    assert (first.method, first.authorized) == ("GET", False)  # the challenge round trip
    assert second.authorized
    assert second.path.startswith("/keys/ec-p384/?api-version=")
    # The token is reused for the next call; no new challenge, no new token.
    azure.public_key(parse_kms_uri(server.uri("rsa-2048")), timeout=5)
    assert len(server.token_requests) == tokens_before + 1
    assert all(r.authorized for r in server.seen()[requests_before + 2 :])


def test_challenge_for_a_foreign_resource_is_refused_before_any_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A vault of its own: the SDK caches challenges per vault host for the whole process.
    with KeyVaultServer(tmp_path) as other:
        other.add_key("ec", "p256")
        other.challenge_resource = "https://vault.azure.net"
        with azurekms_backend(other, monkeypatch) as backend, pytest.raises(VerificationFailure, match="challenge"):
            backend.public_key(parse_kms_uri(other.uri("ec")), timeout=5)
        assert other.token_requests == []
        assert [r.authorized for r in other.seen()] == [False]


def test_refused_credentials_are_access_denied(azure: AzureKms, server: KeyVaultServer) -> None:
    server.refuse_tokens = True
    with pytest.raises(AccessDeniedError, match="AADSTS700213"):
        azure.public_key(parse_kms_uri(server.uri("ec-p256")), timeout=5)


def test_unreachable_identity_provider_is_an_infrastructure_error(
    server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with azurekms_backend(server, monkeypatch) as backend:
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", f"https://127.0.0.1:{free_port()}")
        with pytest.raises(ExternalServiceError, match="identity provider"):
            backend.public_key(parse_kms_uri(server.uri("ec-p256")), timeout=5)


def test_no_credentials_is_a_configuration_error(server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with azurekms_backend(server, monkeypatch) as backend:
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
            monkeypatch.delenv(name)
        # Keep DefaultAzureCredential to the credentials a server has (no developer tools, no IMDS wait).
        monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "WorkloadIdentityCredential")
        with pytest.raises(ConfigurationError, match="AZURE_FEDERATED_TOKEN_FILE"):
            backend.public_key(parse_kms_uri(server.uri("ec-p256")), timeout=5)


# -- keys and algorithms ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hash_name", "kind"),
    [
        ("ec-p256", "sha256", "ECDSA secp256r1"),
        ("ec-p384", "sha384", "ECDSA secp384r1"),  # EC-HSM
        ("rsa-2048", "sha256", "RSA-2048"),
        ("rsa-3072", "sha384", "RSA-3072"),  # RSA-HSM
    ],
)
def test_key_vault_signature_verifies_through_resolver_and_verifier(
    azure: AzureKms, server: KeyVaultServer, name: str, hash_name: str, kind: str
) -> None:
    uri = server.uri(name)
    public = azure.public_key(parse_kms_uri(uri), timeout=5)
    assert (public.hash_name, describe_key(public.key)) == (hash_name, kind)
    assert spki_pem(public.key) == server.keys[name].latest.public_pem

    layer = cosign_layer(azure, uri, DIGEST_A)
    signature = base64.b64decode(layer.annotations[ANNOTATION_SIGNATURE])
    if kind.startswith("ECDSA"):
        decode_dss_signature(signature)  # stored as ASN.1 DER, converted from Key Vault's raw r||s
    (sign_request,) = [r for r in server.seen("POST") if r.body and f"/keys/{name}/" in r.path][-1:]
    assert sign_request.path.startswith(f"/keys/{name}/{server.keys[name].latest.version}/sign?api-version=")

    result = verify(uri, {DIGEST_A: (layer,)}, DIGEST_A)
    assert result.verdict == Verdict.PASS, result.message
    assert verify(uri, {DIGEST_B: (layer,)}, DIGEST_B).verdict == Verdict.FAIL


def test_version_pinning(azure: AzureKms, server: KeyVaultServer) -> None:
    key = server.keys["ec-p256"]
    first, current = key.versions
    latest = azure.public_key(parse_kms_uri(server.uri("ec-p256")), timeout=5)
    pinned = azure.public_key(parse_kms_uri(server.uri("ec-p256", first.version)), timeout=5)
    assert spki_pem(latest.key) == current.public_pem
    assert spki_pem(pinned.key) == first.public_pem
    assert pinned.version.endswith(f"/keys/ec-p256/{first.version}")
    # A signature made with the pinned version verifies only against it.
    layer = cosign_layer(azure, server.uri("ec-p256", first.version), DIGEST_A)
    assert verify(server.uri("ec-p256", first.version), {DIGEST_A: (layer,)}, DIGEST_A).verdict == Verdict.PASS
    assert verify(server.uri("ec-p256"), {DIGEST_A: (layer,)}, DIGEST_A).verdict == Verdict.FAIL


def test_signature_of_another_key_fails(azure: AzureKms, server: KeyVaultServer) -> None:
    layer = cosign_layer(azure, server.uri("ec-p384"), DIGEST_A)
    result = verify(server.uri("ec-p256"), {DIGEST_A: (layer,)}, DIGEST_A)
    assert result.verdict == Verdict.FAIL
    assert ".attestors[0].entries[0].keys" in result.message


def test_rotation_new_version_is_picked_up_by_refetch(
    azure: AzureKms, server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolver, "MIN_REFRESH_INTERVAL_SECONDS", 0.0)
    key = server.add_key("rotating", "p256")
    uri = server.uri("rotating")
    keys = KeyResolver(timeout=3)
    old = cosign_layer(azure, uri, DIGEST_A)
    assert verify(uri, {DIGEST_A: (old,)}, DIGEST_A, keys=keys).verdict == Verdict.PASS
    server.add_version(key, "p384")  # rotated, to another curve even
    new = cosign_layer(azure, uri, DIGEST_B)
    gets = len(server.seen("GET", "/keys/rotating/"))
    result = verify(uri, {DIGEST_B: (new,)}, DIGEST_B, keys=keys)
    assert result.verdict == Verdict.PASS, result.message
    assert len(server.seen("GET", "/keys/rotating/")) == gets + 1


# -- refusals --------------------------------------------------------------------------------------------------------


def test_missing_key_is_not_found(azure: AzureKms, server: KeyVaultServer) -> None:
    with pytest.raises(NotFoundError, match="KeyNotFound"):
        azure.public_key(parse_kms_uri(server.uri("nope")), timeout=5)
    with pytest.raises(NotFoundError):
        azure.public_key(parse_kms_uri(server.uri("ec-p256", "0" * 32)), timeout=5)
    result = verify(server.uri("nope"), {}, DIGEST_A)
    assert result.verdict == Verdict.FAIL
    assert "not found" in result.message


def test_forbidden_names_the_permission(azure: AzureKms, server: KeyVaultServer) -> None:
    with pytest.raises(AccessDeniedError) as caught:
        azure.public_key(parse_kms_uri(server.uri("forbidden")), timeout=5)
    assert "'get'" in str(caught.value)
    assert "Key Vault Crypto User" in str(caught.value)
    result = verify(server.uri("forbidden"), {}, DIGEST_A)
    assert result.verdict == Verdict.FAIL  # decided, not an outage
    assert "Forbidden" in result.message


def test_disabled_key_is_a_decided_failure(azure: AzureKms, server: KeyVaultServer) -> None:
    with pytest.raises(KeyLoadError, match="disabled"):
        azure.public_key(parse_kms_uri(server.uri("disabled")), timeout=5)
    signs = len(server.seen("POST"))
    with pytest.raises(KeyLoadError, match="disabled"):
        azure.sign(parse_kms_uri(server.uri("disabled")), b"payload", timeout=5)
    assert len(server.seen("POST")) == signs
    assert verify(server.uri("disabled"), {}, DIGEST_A).verdict == Verdict.FAIL


def test_key_not_for_signing_is_refused(azure: AzureKms, server: KeyVaultServer) -> None:
    with pytest.raises(KeyLoadError, match="neither sign nor verify"):
        azure.public_key(parse_kms_uri(server.uri("encrypt-only")), timeout=5)
    # A verify-only key verifies but cannot sign.
    azure.public_key(parse_kms_uri(server.uri("verify-only")), timeout=5)
    with pytest.raises(KeyLoadError, match="'sign'"):
        azure.sign(parse_kms_uri(server.uri("verify-only")), b"payload", timeout=5)


def test_unreachable_vault_is_an_infrastructure_error_fast(azure: AzureKms) -> None:
    uri = f"azurekms://127.0.0.1:{free_port()}/ec-p256"
    started = time.monotonic()
    with pytest.raises(ExternalServiceError, match="unreachable"):
        azure.public_key(parse_kms_uri(uri), timeout=5)
    assert time.monotonic() - started < 3
    result = verify(uri, {}, DIGEST_A)
    assert result.verdict == Verdict.ERROR
    assert "azurekms" in result.message


def test_silent_vault_times_out(azure: AzureKms) -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(ExternalServiceError):
            azure.public_key(parse_kms_uri(f"azurekms://{silent.host}/ec-p256"), timeout=1.0)
        assert time.monotonic() - started < 4


def test_backend_registry_creates_azure_backend_lazily() -> None:
    backends.set_backend("azurekms", None)
    try:
        assert isinstance(backends.backend("azurekms"), AzureKms)
    finally:
        backends.set_backend("azurekms", None)

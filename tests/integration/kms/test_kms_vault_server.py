"""The hashivault backend with the real hvac client against :mod:`tests.support.vaultserver` (Vault's REST shapes,
real keys, real signatures): ecdsa-p256, rsa-2048 and ed25519 transit keys fetched and verified locally, signatures
made by transit ``sign`` in cosign's format, the resolver + engine with a ``hashivault://`` policy, the transit
mount path, namespaces, Kubernetes and JWT logins with token caching and re-login, rotation, and the failures."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sigward.deadline import Deadline
from sigward.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExternalServiceError,
    NotFoundError,
    VerificationFailure,
)
from sigward.kms import backends, resolver
from sigward.kms.resolver import KeyResolver
from sigward.kms.vault import VaultKms
from sigward.policy.kms_uri import parse_kms_uri
from sigward.policy.loader import load_policy_text
from sigward.verify.cosign import ANNOTATION_SIGNATURE, SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.keys import KeyLoadError, PublicKeyVerifier, spki_der
from sigward.verify.results import Verdict
from sigward.verify.simplesigning import SIMPLESIGNING_MEDIA_TYPE, make_payload
from tests.support.memory import MemorySignatureSource
from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.vaultserver import ROOT_TOKEN, VAULT_VARIABLES, VaultServer

REPO = "registry.test/team/app"
DIGEST = "sha256:" + "e" * 64
OTHER_DIGEST = "sha256:" + "f" * 64
SA_JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2lnd2FyZCJ9.c2ln"


def payload_for(digest: str = DIGEST) -> bytes:
    return make_payload(docker_reference=REPO, manifest_digest=digest)


def vault_signed_layer(name: str, digest: str = DIGEST) -> SignatureLayer:
    payload = payload_for(digest)
    signature = VaultKms().sign(parse_kms_uri(f"hashivault://{name}"), payload, timeout=5)
    return SignatureLayer(
        media_type=SIMPLESIGNING_MEDIA_TYPE,
        payload=payload,
        annotations={ANNOTATION_SIGNATURE: base64.b64encode(signature).decode()},
    )


def verify_with_policy(
    uri: str, layers: list[SignatureLayer], *, keys: KeyResolver | None = None, digest: str = DIGEST
) -> tuple[Verdict, str]:
    source = MemorySignatureSource()
    source.add_image(f"{REPO}:v1", digest)
    source.add_signatures(REPO, digest, tuple(layers))
    doc = cluster_policy("vault", [key_verification(["registry.test/*"], [keys_entry(uri)])])
    policies = load_policy_text(dump(doc), "vault.yaml").policies
    verifier = Verifier(source=source, keys=keys or KeyResolver())
    (result,) = verifier.verify_images([f"{REPO}:v1"], policies, deadline=Deadline.after(10))
    return result.verdict, result.message


def k8s_login_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jwt: str = SA_JWT, role: str = "sigward") -> Path:
    token_file = tmp_path / "serviceaccount" / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(jwt + "\n")
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("VAULT_K8S_ROLE", role)
    monkeypatch.setenv("VAULT_K8S_TOKEN_PATH", str(token_file))
    return token_file


# -- key types ---------------------------------------------------------------------------------------------------

KEY_TYPES = {
    "ecdsa-p256": (ec.EllipticCurvePublicKey, {"hash_algorithm": "sha2-256", "marshaling_algorithm": "asn1"}),
    "rsa-2048": (rsa.RSAPublicKey, {"hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"}),
    "ed25519": (ed25519.Ed25519PublicKey, {}),
}


@pytest.mark.parametrize("key_type", sorted(KEY_TYPES))
def test_public_key_and_transit_signature_verify(vault_env: VaultServer, key_type: str) -> None:
    transit_key = vault_env.create_key("cosign", key_type)
    ref = parse_kms_uri("hashivault://cosign")
    backend = VaultKms()

    fetched = backend.public_key(ref, timeout=5)

    cls, sign_params = KEY_TYPES[key_type]
    assert isinstance(fetched.key, cls)
    assert spki_der(fetched.key) == spki_der(transit_key.private().public_key())
    assert (fetched.hash_name, fetched.rsa_padding, fetched.version) == ("sha256", "pkcs1v15", "1")

    payload = payload_for()
    signature = backend.sign(ref, payload, timeout=5)
    verifier = PublicKeyVerifier(key=fetched.key, hash_name=fetched.hash_name, rsa_padding=fetched.rsa_padding)
    verifier.verify(signature, payload)
    with pytest.raises(VerificationFailure):
        verifier.verify(signature, payload_for(OTHER_DIGEST))

    (read, _, sign) = vault_env.seen("/v1/transit/")
    assert (read.method, read.path, read.token) == ("GET", "/v1/transit/keys/cosign", ROOT_TOKEN)
    assert (sign.method, sign.path) == ("POST", "/v1/transit/sign/cosign")
    assert base64.b64decode(sign.body["input"]) == payload
    assert {k: v for k, v in sign.body.items() if k != "input"} == sign_params


def test_ecdsa_p384_signature_uses_cosigns_sha256_and_verifies(vault_env: VaultServer) -> None:
    vault_env.create_key("p384", "ecdsa-p384")
    ref = parse_kms_uri("hashivault://p384")
    fetched = VaultKms().public_key(ref, timeout=5)
    payload = payload_for()
    signature = VaultKms().sign(ref, payload, timeout=5)
    PublicKeyVerifier(key=fetched.key, hash_name=fetched.hash_name).verify(signature, payload)
    # A P-384 signature over SHA-384 (newer signers) verifies with the same fetched key.
    private = vault_env.key("p384").private()
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    from cryptography.hazmat.primitives import hashes

    PublicKeyVerifier(key=fetched.key, hash_name=fetched.hash_name).verify(
        private.sign(payload, ec.ECDSA(hashes.SHA384())), payload
    )


def test_engine_with_hashivault_policy(vault_env: VaultServer) -> None:
    vault_env.create_key("cosign", "ecdsa-p256")
    vault_env.create_key("other", "ecdsa-p256")

    assert verify_with_policy("hashivault://cosign", [vault_signed_layer("cosign")]) == (
        Verdict.PASS,
        f"verified image signatures for {REPO}:v1",
    )
    verdict, message = verify_with_policy("hashivault://cosign", [vault_signed_layer("other")])
    assert verdict == Verdict.FAIL
    assert ".attestors[0].entries[0].keys" in message


# -- settings: mount path, namespace -----------------------------------------------------------------------------


def test_transit_secret_engine_path(vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vault_env.create_key("cosign", "ecdsa-p256", mount="platform/transit")
    monkeypatch.setenv("TRANSIT_SECRET_ENGINE_PATH", "/platform/transit/")
    ref = parse_kms_uri("hashivault://cosign")
    payload = payload_for()
    fetched = VaultKms().public_key(ref, timeout=5)
    PublicKeyVerifier(key=fetched.key).verify(VaultKms().sign(ref, payload, timeout=5), payload)
    assert [r.path for r in vault_env.seen("/v1/")][-1] == "/v1/platform/transit/sign/cosign"

    # The default mount has no such key (and here no transit engine at all under that path).
    monkeypatch.delenv("TRANSIT_SECRET_ENGINE_PATH")
    with pytest.raises(NotFoundError) as err:
        VaultKms().public_key(ref, timeout=5)
    assert "transit/keys/cosign" in str(err.value)


def test_namespace_header_is_sent_and_scopes_keys(vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vault_env.create_key("cosign", "ed25519", namespace="team-a")
    ref = parse_kms_uri("hashivault://cosign")
    with pytest.raises(NotFoundError):
        VaultKms().public_key(ref, timeout=5)

    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
    backend = VaultKms()
    payload = payload_for()
    fetched = backend.public_key(ref, timeout=5)
    PublicKeyVerifier(key=fetched.key).verify(backend.sign(ref, payload, timeout=5), payload)
    assert [r.namespace for r in vault_env.seen("/v1/")[-3:]] == ["team-a", "team-a", "team-a"]


# -- logins ------------------------------------------------------------------------------------------------------


def test_kubernetes_login_with_service_account_token(
    vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    vault_env.create_key("cosign", "ecdsa-p256")
    vault_env.add_role("kubernetes", "sigward", SA_JWT, capabilities=("read",))
    k8s_login_env(monkeypatch, tmp_path)
    ref = parse_kms_uri("hashivault://cosign")
    backend = VaultKms()

    first = backend.public_key(ref, timeout=5)
    second = backend.public_key(ref, timeout=5)

    assert first == second
    (login,) = vault_env.seen("/login")
    assert (login.method, login.path) == ("POST", "/v1/auth/kubernetes/login")
    assert login.body == {"role": "sigward", "jwt": SA_JWT}
    (issued,) = vault_env.issued_tokens()
    reads = vault_env.seen("/keys/")
    assert [r.token for r in reads] == [issued, issued]  # one login, token cached, never the JWT or root token

    # The role grants read only: signing is refused, and the message names the capability, not the token.
    with pytest.raises(AccessDeniedError) as err:
        backend.sign(ref, b"payload", timeout=5)
    assert "needs `update` on transit/sign/cosign" in str(err.value)
    assert issued not in str(err.value) and SA_JWT not in str(err.value)


def test_kubernetes_login_mount_path(vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    vault_env.create_key("cosign", "rsa-2048")
    vault_env.add_role("k8s-prod", "verifier", SA_JWT)
    k8s_login_env(monkeypatch, tmp_path, role="verifier")
    monkeypatch.setenv("VAULT_K8S_MOUNT", "k8s-prod")
    fetched = VaultKms().public_key(parse_kms_uri("hashivault://cosign"), timeout=5)
    assert isinstance(fetched.key, rsa.RSAPublicKey)
    assert vault_env.logins == [("k8s-prod", "verifier")]


@pytest.mark.parametrize(("jwt", "role"), [("eyJ.wrong.jwt", "sigward"), (SA_JWT, "no-such-role")])
def test_kubernetes_login_refused_is_access_denied(
    vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jwt: str, role: str
) -> None:
    vault_env.create_key("cosign", "ecdsa-p256")
    vault_env.add_role("kubernetes", "sigward", SA_JWT)
    k8s_login_env(monkeypatch, tmp_path, jwt=jwt, role=role)
    with pytest.raises(AccessDeniedError) as err:
        VaultKms().public_key(parse_kms_uri("hashivault://cosign"), timeout=5)
    assert f"Vault login as role {role!r} at auth/kubernetes/login failed" in str(err.value)
    assert jwt not in str(err.value)
    assert vault_env.seen("/keys/") == []


def test_jwt_login(vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    vault_env.create_key("cosign", "ed25519")
    workload_jwt = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL3Rva2VuLmFjdGlvbnMifQ.c2ln"
    vault_env.add_role("jwt", "ci", workload_jwt)
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(workload_jwt)
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("VAULT_JWT_ROLE", "ci")
    monkeypatch.setenv("VAULT_JWT_PATH", str(jwt_file))
    ref = parse_kms_uri("hashivault://cosign")
    payload = payload_for()
    backend = VaultKms()
    fetched = backend.public_key(ref, timeout=5)
    PublicKeyVerifier(key=fetched.key).verify(backend.sign(ref, payload, timeout=5), payload)
    (login,) = vault_env.seen("/login")
    assert login.path == "/v1/auth/jwt/login" and login.body == {"role": "ci", "jwt": workload_jwt}


def test_revoked_login_token_triggers_one_new_login(
    vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    vault_env.create_key("cosign", "ecdsa-p256")
    vault_env.add_role("kubernetes", "sigward", SA_JWT)
    token_file = k8s_login_env(monkeypatch, tmp_path)
    ref = parse_kms_uri("hashivault://cosign")
    backend = VaultKms()
    backend.public_key(ref, timeout=5)
    (first,) = vault_env.issued_tokens()

    vault_env.revoke(first)
    token_file.write_text(SA_JWT)  # the kubelet rewrote the projected token: it is read again at login
    backend.public_key(ref, timeout=5)

    assert len(vault_env.logins) == 2
    (second,) = vault_env.issued_tokens()
    assert [r.token for r in vault_env.seen("/keys/")] == [first, first, second]

    # A second denial right after a fresh login is a decided failure, not a login loop.
    vault_env.add_role("kubernetes", "sigward", SA_JWT, capabilities=())
    vault_env.revoke(second)
    with pytest.raises(AccessDeniedError):
        backend.public_key(ref, timeout=5)
    assert len(vault_env.logins) == 3


def test_login_token_is_renewed_when_its_lease_ends(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VAULT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with VaultServer(lease_seconds=1) as server:
        server.create_key("cosign", "ecdsa-p256")
        server.add_role("kubernetes", "sigward", SA_JWT)
        monkeypatch.setenv("VAULT_ADDR", server.url)
        monkeypatch.setenv("HOME", str(tmp_path))
        k8s_login_env(monkeypatch, tmp_path)
        backend = VaultKms()
        ref = parse_kms_uri("hashivault://cosign")
        backend.public_key(ref, timeout=5)
        backend.public_key(ref, timeout=5)
        assert len(server.logins) == 1
        time.sleep(0.95)  # past 90% of the one-second lease
        backend.public_key(ref, timeout=5)
        assert len(server.logins) == 2
        first, again, renewed = (r.token for r in server.seen("/keys/"))
        assert first == again != renewed
        assert all(r.status == 200 for r in server.seen("/keys/"))


# -- failures ----------------------------------------------------------------------------------------------------


def test_wrong_token_is_access_denied(vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vault_env.create_key("cosign", "ecdsa-p256")
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-a-valid-token")
    with pytest.raises(AccessDeniedError) as err:
        VaultKms().public_key(parse_kms_uri("hashivault://cosign"), timeout=5)
    message = str(err.value)
    assert message.startswith("Vault denied access to hashivault://cosign: the token needs `read` on transit/keys/")
    assert "permission denied" in message and "hvs.not-a-valid-token" not in message
    verdict, _ = verify_with_policy("hashivault://cosign", [])
    assert verdict == Verdict.FAIL


def test_missing_key_is_not_found(vault_env: VaultServer) -> None:
    with pytest.raises(NotFoundError) as err:
        VaultKms().public_key(parse_kms_uri("hashivault://nope"), timeout=5)
    assert f"Vault transit key hashivault://nope not found at transit/keys/nope on {vault_env.url}" == str(err.value)


def test_encryption_key_is_refused(vault_env: VaultServer) -> None:
    vault_env.create_key("data", "aes256-gcm96")
    with pytest.raises(KeyLoadError) as err:
        VaultKms().public_key(parse_kms_uri("hashivault://data"), timeout=5)
    assert "type aes256-gcm96, which cannot sign" in str(err.value)
    with pytest.raises(KeyLoadError):
        VaultKms().sign(parse_kms_uri("hashivault://data"), b"payload", timeout=5)
    assert vault_env.seen("/sign/") == []


def test_server_down_and_sealed_are_external_service_errors(
    vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault_env.create_key("cosign", "ecdsa-p256")
    vault_env.sealed = True
    with pytest.raises(ExternalServiceError) as err:
        VaultKms().public_key(parse_kms_uri("hashivault://cosign"), timeout=5)
    assert "Vault is sealed" in str(err.value)

    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(ExternalServiceError) as err:
        VaultKms().public_key(parse_kms_uri("hashivault://cosign"), timeout=5)
    assert time.monotonic() - started < 3
    assert "unreachable" in str(err.value)
    backends.reset()
    assert verify_with_policy("hashivault://cosign", [])[0] == Verdict.ERROR


def test_configuration_errors(vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ref = parse_kms_uri("hashivault://cosign")
    monkeypatch.delenv("VAULT_ADDR")
    with pytest.raises(ConfigurationError) as err:
        VaultKms().public_key(ref, timeout=5)
    assert "VAULT_ADDR is not set" in str(err.value)

    monkeypatch.setenv("VAULT_ADDR", vault_env.url)
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(ConfigurationError) as err:
        VaultKms().public_key(ref, timeout=5)
    assert "set VAULT_TOKEN" in str(err.value)

    monkeypatch.setenv("VAULT_K8S_ROLE", "sigward")
    monkeypatch.setenv("VAULT_K8S_TOKEN_PATH", str(tmp_path / "missing-token"))
    with pytest.raises(ConfigurationError) as err:
        VaultKms().public_key(ref, timeout=5)
    assert "missing-token" in str(err.value)


def test_vault_token_file_in_home(vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    vault_env.create_key("cosign", "ecdsa-p256")
    monkeypatch.delenv("VAULT_TOKEN")
    (tmp_path / ".vault-token").write_text(ROOT_TOKEN + "\n")
    VaultKms().public_key(parse_kms_uri("hashivault://cosign"), timeout=5)
    assert vault_env.seen("/keys/")[0].token == ROOT_TOKEN


# -- rotation ----------------------------------------------------------------------------------------------------


def test_rotation_latest_version_is_fetched_and_resolver_refetches(
    vault_env: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault_env.create_key("cosign", "ecdsa-p256")
    uri = "hashivault://cosign"
    old_layer = vault_signed_layer("cosign")
    keys = KeyResolver()
    assert verify_with_policy(uri, [old_layer], keys=keys)[0] == Verdict.PASS

    assert vault_env.rotate_key("cosign") == 2
    fetched = VaultKms().public_key(parse_kms_uri(uri), timeout=5)
    assert fetched.version == "2"
    assert spki_der(fetched.key) == spki_der(vault_env.key("cosign").private(2).public_key())
    new_layer = vault_signed_layer("cosign")
    assert vault_env.seen("/sign/")[-1].body.get("key_version") is None  # Vault signs with the latest version

    monkeypatch.setattr(resolver, "MIN_REFRESH_INTERVAL_SECONDS", 0.0)
    assert verify_with_policy(uri, [new_layer], keys=keys)[0] == Verdict.PASS
    assert verify_with_policy(uri, [old_layer], keys=keys)[0] == Verdict.FAIL

"""The awskms backend against a real ``moto_server`` through boto3's own endpoint resolution
(``AWS_ENDPOINT_URL_KMS``): keys created in moto, fetched by id, alias and ARN, signatures made by KMS ``Sign``
verified locally and through the resolver + engine, IRSA web-identity credentials from moto's STS, a TLS endpoint
named in the URI, rotation behind an alias, and the failures (wrong key, missing key, encryption key, no region,
no credentials, endpoint down or gone)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sigward.deadline import Deadline
from sigward.errors import ConfigurationError, ExternalServiceError, NotFoundError, VerificationFailure
from sigward.kms import resolver
from sigward.kms.aws import AwsKms
from sigward.kms.resolver import KeyResolver
from sigward.policy.kms_uri import parse_kms_uri
from sigward.policy.loader import load_policy_text
from sigward.verify.cosign import ANNOTATION_SIGNATURE, SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.keys import KeyLoadError, PublicKeyVerifier
from sigward.verify.results import Verdict
from sigward.verify.simplesigning import SIMPLESIGNING_MEDIA_TYPE, make_payload
from tests.support.httpservers import SilentServer
from tests.support.memory import MemorySignatureSource
from tests.support.moto import (
    REGION,
    ROLE_ARN,
    MotoServer,
    clear_ambient_aws,
    create_signing_key,
    kms_admin,
    point_at_moto,
    self_signed_tls,
)
from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry

REPO = "registry.test/team/app"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64

# spec → (key class, size/curve, hash, padding) that the first of moto's SigningAlgorithms implies
EXPECTED = {
    "ECC_NIST_P256": (ec.EllipticCurvePublicKey, "secp256r1", "sha256", "pkcs1v15"),
    "RSA_2048": (rsa.RSAPublicKey, 2048, "sha256", "pkcs1v15"),
    "RSA_3072": (rsa.RSAPublicKey, 3072, "sha256", "pkcs1v15"),
}


def payload_for(digest: str = DIGEST) -> bytes:
    return make_payload(docker_reference=REPO, manifest_digest=digest)


def kms_signed_layer(uri: str, digest: str = DIGEST) -> SignatureLayer:
    """A cosign ``.sig`` layer whose signature KMS made (through AwsKms.sign)."""
    payload = payload_for(digest)
    signature = AwsKms().sign(parse_kms_uri(uri), payload, timeout=5)
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
    doc = cluster_policy("kms", [key_verification(["registry.test/*"], [keys_entry(uri)])])
    policies = load_policy_text(dump(doc), "kms.yaml").policies
    verifier = Verifier(source=source, keys=keys or KeyResolver())
    (result,) = verifier.verify_images([f"{REPO}:v1"], policies, deadline=Deadline.after(15))
    return result.verdict, result.message


def uri_for(key: dict[str, str], form: str) -> str:
    return f"awskms:///{key[form]}"


# -- fetch and sign by id, alias, ARN ----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["id", "alias", "arn"])
@pytest.mark.parametrize("spec", sorted(EXPECTED))
def test_public_key_and_kms_signature_verify_by_every_reference_form(
    aws_kms_env: MotoServer, aws_moto_keys: dict[str, dict[str, str]], aws_moto_admin: Any, spec: str, form: str
) -> None:
    key = aws_moto_keys[spec]
    ref = parse_kms_uri(uri_for(key, form))
    backend = AwsKms()

    fetched = backend.public_key(ref, timeout=5)

    cls, size, hash_name, pad = EXPECTED[spec]
    assert isinstance(fetched.key, cls)
    if isinstance(fetched.key, ec.EllipticCurvePublicKey):
        assert fetched.key.curve.name == size
    else:
        assert isinstance(fetched.key, rsa.RSAPublicKey) and fetched.key.key_size == size
    assert (fetched.hash_name, fetched.rsa_padding) == (hash_name, pad)
    assert key["id"] in fetched.version
    moto_der = aws_moto_admin.get_public_key(KeyId=key["id"])["PublicKey"]
    assert fetched.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == bytes(moto_der)

    payload = payload_for()
    signature = backend.sign(ref, payload, timeout=5)
    verifier = PublicKeyVerifier(
        key=fetched.key, hash_name=fetched.hash_name, rsa_padding=fetched.rsa_padding, source=ref.uri
    )
    verifier.verify(signature, payload)
    with pytest.raises(VerificationFailure):
        verifier.verify(signature, payload_for(OTHER_DIGEST))


def test_client_reused_across_calls_and_keys(aws_kms_env: MotoServer, aws_moto_keys: dict[str, dict[str, str]]) -> None:
    backend = AwsKms()
    for spec in EXPECTED:
        backend.public_key(parse_kms_uri(uri_for(aws_moto_keys[spec], "alias")), timeout=5)
    assert len(backend._clients) == 1
    ((endpoint, region, seconds),) = backend._clients
    assert (endpoint, region, seconds) == ("", REGION, 5)


def test_engine_passes_kms_signature_and_fails_signature_of_another_kms_key(
    aws_kms_env: MotoServer, aws_moto_keys: dict[str, dict[str, str]]
) -> None:
    p256 = uri_for(aws_moto_keys["ECC_NIST_P256"], "alias")
    rsa3072 = uri_for(aws_moto_keys["RSA_3072"], "arn")

    assert verify_with_policy(p256, [kms_signed_layer(p256)]) == (
        Verdict.PASS,
        f"verified image signatures for {REPO}:v1",
    )
    assert verify_with_policy(rsa3072, [kms_signed_layer(rsa3072)])[0] == Verdict.PASS

    # Signed by the RSA-2048 KMS key, policy names the P-256 one.
    other = kms_signed_layer(uri_for(aws_moto_keys["RSA_2048"], "alias"))
    verdict, message = verify_with_policy(p256, [other])
    assert verdict == Verdict.FAIL
    assert ".attestors[0].entries[0].keys" in message
    # The signature of image A does not verify image B (the payload names A's digest).
    verdict, message = verify_with_policy(p256, [kms_signed_layer(p256, DIGEST)], digest=OTHER_DIGEST)
    assert verdict == Verdict.FAIL


# -- decided failures --------------------------------------------------------------------------------------------


def test_missing_key_alias_and_id_are_not_found(aws_kms_env: MotoServer) -> None:
    backend = AwsKms()
    for uri in ("awskms:///alias/sigward-no-such-key", "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab"):
        with pytest.raises(NotFoundError) as err:
            backend.public_key(parse_kms_uri(uri), timeout=5)
        assert f"AWS KMS key {uri} not found" in str(err.value)
    verdict, message = verify_with_policy("awskms:///alias/sigward-no-such-key", [])
    assert verdict == Verdict.FAIL
    assert "not found" in message


@pytest.mark.parametrize("spec", ["SYMMETRIC_DEFAULT", "RSA_2048"])
def test_encrypt_decrypt_key_is_refused(aws_kms_env: MotoServer, aws_moto_admin: Any, spec: str) -> None:
    key = create_signing_key(aws_moto_admin, spec, usage="ENCRYPT_DECRYPT", alias=f"alias/sigward-enc-{spec.lower()}")
    uri = f"awskms:///{key['alias']}"
    with pytest.raises(KeyLoadError) as err:
        AwsKms().public_key(parse_kms_uri(uri), timeout=5)
    assert str(err.value).startswith(f"{uri} is an ENCRYPT_DECRYPT key ({spec}), not a signing key")
    with pytest.raises(KeyLoadError):
        AwsKms().sign(parse_kms_uri(uri), payload_for(), timeout=5)
    verdict, message = verify_with_policy(uri, [])
    assert verdict == Verdict.FAIL
    assert "not a signing key" in message


def test_no_region_is_a_configuration_error_but_an_arn_carries_its_region(
    aws_kms_env: MotoServer, aws_moto_keys: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    key = aws_moto_keys["ECC_NIST_P256"]
    with pytest.raises(ConfigurationError) as err:
        AwsKms().public_key(parse_kms_uri(uri_for(key, "alias")), timeout=5)
    assert "set AWS_REGION" in str(err.value) and "ARN" in str(err.value)

    fetched = AwsKms().public_key(parse_kms_uri(uri_for(key, "arn")), timeout=5)
    assert isinstance(fetched.key, ec.EllipticCurvePublicKey)


def test_no_credentials_anywhere_is_a_configuration_error(
    aws_moto_server: MotoServer,
    aws_moto_keys: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    point_at_moto(monkeypatch, tmp_path, aws_moto_server, static_keys=False)
    with pytest.raises(ConfigurationError) as err:
        AwsKms().public_key(parse_kms_uri(uri_for(aws_moto_keys["ECC_NIST_P256"], "alias")), timeout=5)
    assert "no AWS credentials" in str(err.value) and "AWS_WEB_IDENTITY_TOKEN_FILE" in str(err.value)


# -- IRSA: web identity credentials from STS ---------------------------------------------------------------------


def test_irsa_web_identity_credentials_without_static_keys(
    aws_moto_server: MotoServer,
    aws_moto_keys: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    point_at_moto(monkeypatch, tmp_path, aws_moto_server, static_keys=False)
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2lnd2FyZDpzaWd3YXJkIn0.c2lnbmF0dXJl"
    token_file = tmp_path / "eks.amazonaws.com" / "serviceaccount" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(token)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "sigward-irsa-test")
    aws_moto_server.reset_recording()

    fetched = AwsKms().public_key(parse_kms_uri(uri_for(aws_moto_keys["ECC_NIST_P256"], "alias")), timeout=5)

    assert isinstance(fetched.key, ec.EllipticCurvePublicKey)
    recorded = aws_moto_server.recorded()
    targets = [r.target for r in recorded]
    assert targets == ["AssumeRoleWithWebIdentity", "TrentService.GetPublicKey"]
    assume, get_key = recorded
    assert assume.form["WebIdentityToken"] == token
    assert assume.form["RoleArn"] == ROLE_ARN
    assert assume.form["RoleSessionName"] == "sigward-irsa-test"
    assert assume.access_key_id == ""  # AssumeRoleWithWebIdentity is unsigned
    # KMS was called with the temporary credentials STS issued (moto's ASIA… keys), not with static ones.
    assert get_key.access_key_id.startswith("ASIA")


def test_irsa_token_file_missing_is_a_configuration_error(
    aws_moto_server: MotoServer,
    aws_moto_keys: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    point_at_moto(monkeypatch, tmp_path, aws_moto_server, static_keys=False)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "no-token"))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    with pytest.raises(ConfigurationError) as err:
        AwsKms().public_key(parse_kms_uri(uri_for(aws_moto_keys["ECC_NIST_P256"], "alias")), timeout=5)
    assert "no-token" in str(err.value)


# -- endpoint named in the URI: https://ENDPOINT -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, Path]]:
    workdir = tmp_path_factory.mktemp("moto-tls")
    cert, key = self_signed_tls(workdir / "tls")
    with MotoServer(workdir, tls=(cert, key)) as server:
        yield server, cert


def test_endpoint_in_uri_is_reached_over_https(
    tls_moto: tuple[MotoServer, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server, cert = tls_moto
    key = create_signing_key(kms_admin(server), "ECC_NIST_P256", alias="alias/sigward-tls")
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASIGWARDTESTKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sigward-test-secret-not-a-credential")
    # The URI's endpoint wins over the ambient endpoint variable (which points nowhere).
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{free_port()}")
    uri = f"awskms://{server.host}/alias/sigward-tls"

    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    backend = AwsKms()
    fetched = backend.public_key(parse_kms_uri(uri), timeout=5)
    payload = payload_for()
    PublicKeyVerifier(key=fetched.key).verify(backend.sign(parse_kms_uri(uri), payload, timeout=5), payload)
    assert key["id"] in fetched.version
    assert {endpoint for endpoint, _, _ in backend._clients} == {f"https://{server.host}"}

    # Without trusting the self-signed certificate the TLS handshake fails: an outage, not a verdict.
    monkeypatch.delenv("AWS_CA_BUNDLE")
    with pytest.raises(ExternalServiceError) as err:
        AwsKms().public_key(parse_kms_uri(uri), timeout=5)
    assert "unreachable" in str(err.value)


# -- outages -----------------------------------------------------------------------------------------------------


def test_closed_port_is_an_external_service_error_quickly(
    aws_kms_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(ExternalServiceError) as err:
        AwsKms().public_key(parse_kms_uri("awskms:///alias/sigward-anything"), timeout=5)
    assert time.monotonic() - started < 5
    assert "AWS KMS unreachable for key awskms:///alias/sigward-anything" in str(err.value)
    verdict, _ = verify_with_policy("awskms:///alias/sigward-anything", [])
    assert verdict == Verdict.ERROR


def test_moto_stopped_after_a_fetch_is_an_external_service_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = MotoServer(tmp_path / "moto")
    server.start()
    try:
        point_at_moto(monkeypatch, tmp_path, server)
        create_signing_key(kms_admin(server), "ECC_NIST_P256", alias="alias/sigward-gone")
        backend = AwsKms()
        ref = parse_kms_uri("awskms:///alias/sigward-gone")
        backend.public_key(ref, timeout=5)
    finally:
        server.close()
    assert not server.running
    started = time.monotonic()
    with pytest.raises(ExternalServiceError):
        backend.public_key(ref, timeout=5)
    assert time.monotonic() - started < 5


def test_endpoint_that_never_answers_times_out_within_the_call_timeout(
    aws_kms_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SilentServer() as silent:
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://{silent.host}")
        started = time.monotonic()
        with pytest.raises(ExternalServiceError):
            AwsKms().public_key(parse_kms_uri("awskms:///alias/sigward-hang"), timeout=1)
        # two attempts of one second each, plus the retry's backoff
        assert time.monotonic() - started < 4.5


# -- rotation behind an alias ------------------------------------------------------------------------------------


def test_rotated_alias_is_refetched_once_by_the_resolver(
    aws_kms_env: MotoServer, aws_moto_admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = "alias/sigward-rotating"
    uri = f"awskms:///{alias}"
    old = create_signing_key(aws_moto_admin, "ECC_NIST_P256", alias=alias)
    old_layer = kms_signed_layer(uri)

    # A resolver that fetched (and cached) the old key a moment ago ...
    cached_old = KeyResolver()
    assert verify_with_policy(uri, [old_layer], keys=cached_old)[0] == Verdict.PASS
    suppressed = KeyResolver()
    assert verify_with_policy(uri, [old_layer], keys=suppressed)[0] == Verdict.PASS

    # ... then the alias moves to a new key, which signs the next image.
    new = create_signing_key(aws_moto_admin, "ECC_NIST_P256")
    aws_moto_admin.update_alias(AliasName=alias, TargetKeyId=new["id"])
    new_layer = kms_signed_layer(uri)
    assert new["id"] != old["id"]

    # Re-fetches are rate-limited: within MIN_REFRESH_INTERVAL_SECONDS of the last fetch the cached key decides.
    verdict, _ = verify_with_policy(uri, [new_layer], keys=suppressed)
    assert verdict == Verdict.FAIL

    monkeypatch.setattr(resolver, "MIN_REFRESH_INTERVAL_SECONDS", 0.0)
    assert verify_with_policy(uri, [new_layer], keys=cached_old) == (
        Verdict.PASS,
        f"verified image signatures for {REPO}:v1",
    )
    # The resolver now holds the new key: the new image verifies without a fetch, the old image no longer does.
    assert verify_with_policy(uri, [new_layer], keys=cached_old)[0] == Verdict.PASS
    assert verify_with_policy(uri, [old_layer], keys=cached_old)[0] == Verdict.FAIL

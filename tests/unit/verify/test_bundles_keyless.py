"""Certificate (keyless) Sigstore bundles: the Kyverno identity policy, a real cosign attestation bundle, trust
root overrides from a policy."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sigward.errors import VerificationFailure
from sigward.policy.models import CertificateAttestor, CTLog, KeylessAttestor, Rekor
from sigward.verify.bundles import (
    BundleLayer,
    IdentityMismatch,
    KyvernoIdentityPolicy,
    certificate_identities,
    certificate_issuer,
    trusted_root_with_overrides,
    verify_bundle,
    verify_bundle_attestations,
    verify_bundle_signatures,
)
from sigward.verify.trust import TrustedRoot, load_trusted_root, parse_trusted_root
from tests.support.bundles import TestLog, dsse_bundle, encode, statement
from tests.support.signing import new_key
from tests.support.vectors import require_vectors

pytestmark = pytest.mark.vectors

SUBJECT_DIGEST = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
GITHUB_OAUTH = "https://github.com/login/oauth"
COSIGN_CUSTOM = "https://cosign.sigstore.dev/attestation/v1"


# -- identity policy on certificates made here


def der_utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def fulcio_like_cert(
    *, emails: tuple[str, ...] = (), uris: tuple[str, ...] = (), extensions: Mapping[str, bytes] | None = None
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = [x509.RFC822Name(e) for e in emails]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
    )
    for oid, value in (extensions or {}).items():
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return builder.sign(key, hashes.SHA256())


WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
CERT = fulcio_like_cert(
    emails=("dev@acme.example",),
    uris=(WORKFLOW,),
    extensions={
        "1.3.6.1.4.1.57264.1.1": b"https://token.actions.githubusercontent.com",
        "1.3.6.1.4.1.57264.1.8": der_utf8("https://token.actions.githubusercontent.com"),
        "1.3.6.1.4.1.57264.1.2": b"push",
        "1.3.6.1.4.1.57264.1.5": b"acme/app",
    },
)


def test_identities_and_issuer_are_read_from_the_certificate() -> None:
    assert certificate_identities(CERT) == ("dev@acme.example", WORKFLOW)
    assert certificate_issuer(CERT) == "https://token.actions.githubusercontent.com"
    v1_only = fulcio_like_cert(emails=("a@b.c",), extensions={"1.3.6.1.4.1.57264.1.1": b"https://accounts.google.com"})
    assert certificate_issuer(v1_only) == "https://accounts.google.com"
    v2_only = fulcio_like_cert(emails=("a@b.c",), extensions={"1.3.6.1.4.1.57264.1.8": der_utf8("https://new")})
    assert certificate_issuer(v2_only) == "https://new"


def test_regression_bundle_identity_accepted_conflicting_oidc_issuers() -> None:
    """Bundles read the v2 issuer and ignored a different v1 issuer; legacy layers refused the certificate. One
    rule now: conflicting issuers are refused for both formats."""
    conflicting = fulcio_like_cert(
        emails=("a@b.c",),
        extensions={"1.3.6.1.4.1.57264.1.1": b"https://old", "1.3.6.1.4.1.57264.1.8": der_utf8("https://new")},
    )
    with pytest.raises(IdentityMismatch, match="conflicting OIDC issuers"):
        KyvernoIdentityPolicy(issuer="https://new").verify(conflicting)


@pytest.mark.parametrize(
    "policy",
    [
        KyvernoIdentityPolicy(subject="dev@acme.example"),
        KyvernoIdentityPolicy(subject="https://github.com/acme/*"),  # globs match any SAN, '*' crosses '/' and '@'
        KyvernoIdentityPolicy(subject="https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v?.?.?"),
        KyvernoIdentityPolicy(subject_regexp=r"refs/tags/v\d+\.\d+"),  # unanchored
        KyvernoIdentityPolicy(issuer="https://token.actions.githubusercontent.com"),
        KyvernoIdentityPolicy(issuer="https://token.actions.*"),
        KyvernoIdentityPolicy(issuer_regexp=r"githubusercontent\.com$"),
        KyvernoIdentityPolicy(extensions={"githubWorkflowTrigger": "push", "githubWorkflowRepository": "acme/*"}),
        KyvernoIdentityPolicy(extensions={"1.3.6.1.4.1.57264.1.2": "push", "oidcIssuer": "https://token.*"}),
    ],
)
def test_matching_identities(policy: KyvernoIdentityPolicy) -> None:
    policy.verify(CERT)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            KyvernoIdentityPolicy(subject="https://github.com/acme/app"),
            f"subject mismatch: expected https://github.com/acme/app, received dev@acme.example, {WORKFLOW}",
        ),
        (
            KyvernoIdentityPolicy(subject_regexp="^refs/tags"),
            f"subject mismatch: expected ^refs/tags, received dev@acme.example, {WORKFLOW}",
        ),
        (
            KyvernoIdentityPolicy(subject="dev@acme.example", issuer="https://accounts.google.com"),
            "issuer mismatch: expected https://accounts.google.com, received https://token.actions.githubusercontent.com",
        ),
        (
            KyvernoIdentityPolicy(extensions={"githubWorkflowTrigger": "release"}),
            "extension mismatch: expected release for key githubWorkflowTrigger, received push",
        ),
        (
            KyvernoIdentityPolicy(extensions={"githubWorkflowRef": "refs/heads/main"}),
            "extension mismatch: expected refs/heads/main for key githubWorkflowRef, received nothing "
            "(extension not present)",
        ),
        (
            # Fulcio's v2 names are accepted as legacy layers accept them (bundles refused them before)
            KyvernoIdentityPolicy(extensions={"buildSignerURI": "x"}),
            "extension mismatch: expected x for key buildSignerURI, received nothing (extension not present)",
        ),
        (KyvernoIdentityPolicy(extensions={"noSuchName": "x"}), "invalid certificate extension noSuchName"),
    ],
)
def test_mismatches_use_kyvernos_words(policy: KyvernoIdentityPolicy, message: str) -> None:
    with pytest.raises(IdentityMismatch) as info:
        policy.verify(CERT)
    assert info.value.message == message


def test_invalid_regexp_is_a_verification_failure() -> None:
    with pytest.raises(VerificationFailure, match="invalid regexp for subject: \\("):
        KyvernoIdentityPolicy(subject_regexp="(").verify(CERT)


def test_policy_from_attestor() -> None:
    attestor = KeylessAttestor(subject="*@acme.example", issuer_reg_exp="actions", additional_extensions={"x": "y"})
    policy = KyvernoIdentityPolicy.from_attestor(attestor)
    assert (policy.subject, policy.issuer_regexp, policy.extensions) == ("*@acme.example", "actions", {"x": "y"})


# -- a real cosign v3 attestation bundle (cosign testdata)


def vector_file(name: str) -> Path:
    return require_vectors("cosign-testdata", name)


@pytest.fixture(scope="module")
def pgi_root() -> TrustedRoot:
    path = vector_file("trusted_root_pgi.json")
    return parse_trusted_root(path.read_bytes(), source=str(path))


@pytest.fixture(scope="module")
def attestation() -> bytes:
    return vector_file("oci-attestation.sigstore.json").read_bytes()


def keyless_verify(raw: bytes, root: TrustedRoot, attestor: KeylessAttestor, digest: str = SUBJECT_DIGEST) -> Any:
    return verify_bundle(raw, image_digest=digest, key=None, keyless=attestor, certificates=None, trusted_root=root)


def test_cosign_attestation_bundle_verifies(attestation: bytes, pgi_root: TrustedRoot) -> None:
    result = keyless_verify(attestation, pgi_root, KeylessAttestor(subject="cody@soyland.com", issuer=GITHUB_OAUTH))
    assert (result.signer, result.issuer) == ("cody@soyland.com", GITHUB_OAUTH)
    assert result.statement is not None and result.statement.predicate_type == COSIGN_CUSTOM
    assert result.statement.predicate["Data"] == {"foo": "bar"}
    assert not result.is_image_signature  # an attestation, not cosign's sign/v1
    assert result.integrated_time == 1740770291
    # The public-good production root holds the same Fulcio CA and Rekor key.
    assert keyless_verify(attestation, load_trusted_root(), KeylessAttestor(subject="cody@soyland.com")).signer


def test_cosign_attestation_bundle_wrong_identity(attestation: bytes, pgi_root: TrustedRoot) -> None:
    with pytest.raises(VerificationFailure) as info:
        keyless_verify(attestation, pgi_root, KeylessAttestor(subject="mallory@example.com", issuer=GITHUB_OAUTH))
    assert info.value.message == "subject mismatch: expected mallory@example.com, received cody@soyland.com"
    with pytest.raises(VerificationFailure, match=r"issuer mismatch: expected https://accounts\.google\.com, received"):
        keyless_verify(attestation, pgi_root, KeylessAttestor(subject="cody@*", issuer="https://accounts.google.com"))


def test_cosign_attestation_bundle_wrong_digest(attestation: bytes, pgi_root: TrustedRoot) -> None:
    other = "sha256:" + "0" * 64
    with pytest.raises(VerificationFailure, match=f"does not name the image digest {other}"):
        keyless_verify(attestation, pgi_root, KeylessAttestor(subject="cody@soyland.com"), digest=other)


def test_cosign_attestation_bundle_tampered(attestation: bytes, pgi_root: TrustedRoot) -> None:
    doc = json.loads(attestation)
    payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload["predicate"]["Data"] = '{"foo": "evil"}'
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(VerificationFailure, match="invalid DSSE signature"):
        keyless_verify(json.dumps(doc).encode(), pgi_root, KeylessAttestor(subject="cody@soyland.com"))


def test_cosign_attestation_plural_helpers(attestation: bytes, pgi_root: TrustedRoot) -> None:
    layer = BundleLayer(raw=attestation, manifest_digest="sha256:" + "12" * 32, predicate_type=COSIGN_CUSTOM)
    keyless = KeylessAttestor(subject="cody@soyland.com", issuer=GITHUB_OAUTH)
    statements = verify_bundle_attestations(
        [layer], image_digest=SUBJECT_DIGEST, predicate_type=COSIGN_CUSTOM, keyless=keyless, trusted_root=pgi_root
    )
    assert len(statements) == 1
    with pytest.raises(
        VerificationFailure,
        match=r"^no matching signatures: an attestation \(https://cosign\.sigstore\.dev/attestation/v1\)",
    ):
        verify_bundle_signatures([layer], image_digest=SUBJECT_DIGEST, keyless=keyless, trusted_root=pgi_root)


def test_managed_key_bundle_is_refused_by_a_keyless_policy() -> None:
    key = new_key()
    with pytest.raises(VerificationFailure, match="signed with a managed key"):
        verify_bundle(
            encode(dsse_bundle(key, statement(SUBJECT_DIGEST))),
            image_digest=SUBJECT_DIGEST,
            key=None,
            keyless=KeylessAttestor(subject="*"),
            certificates=None,
            trusted_root=load_trusted_root(),
        )


def test_certificates_attestor_pins_the_leaf(attestation: bytes, pgi_root: TrustedRoot) -> None:
    doc = json.loads(attestation)
    leaf = x509.load_der_x509_certificate(base64.b64decode(doc["verificationMaterial"]["certificate"]["rawBytes"]))
    pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    result = verify_bundle(
        attestation,
        image_digest=SUBJECT_DIGEST,
        key=None,
        keyless=None,
        certificates=CertificateAttestor(cert=pem),
        trusted_root=pgi_root,
    )
    assert result.signer == "cody@soyland.com"
    other = CERT.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(VerificationFailure, match="both public key and certificate were provided but did not match"):
        verify_bundle(
            attestation,
            image_digest=SUBJECT_DIGEST,
            key=None,
            keyless=None,
            certificates=CertificateAttestor(cert=other),
            trusted_root=pgi_root,
        )


def test_policy_rekor_key_replaces_the_trusted_roots_logs(attestation: bytes, pgi_root: TrustedRoot) -> None:
    """``rekor.pubkey`` in the policy: the public Rekor's entries are no longer trusted, the given log's are."""
    log = TestLog()
    keyless = KeylessAttestor(subject="cody@soyland.com", rekor=Rekor(pub_key=log.key.public_pem))
    with pytest.raises(VerificationFailure, match="which the trusted root does not list"):
        keyless_verify(attestation, pgi_root, keyless)
    replaced = trusted_root_with_overrides(pgi_root, rekor_pubkey_pem=log.key.public_pem)
    assert [t.log_id for t in replaced.tlogs] == [log.log_id.hex()]
    assert replaced.certificate_authorities == pgi_root.certificate_authorities


def test_policy_roots_replace_fulcio(attestation: bytes, pgi_root: TrustedRoot) -> None:
    other_ca = CERT.public_bytes(serialization.Encoding.PEM).decode()
    keyless = KeylessAttestor(subject="cody@soyland.com", roots=other_ca)
    with pytest.raises(VerificationFailure, match="certificate signed by unknown authority"):
        keyless_verify(attestation, pgi_root, keyless)
    with pytest.raises(VerificationFailure, match=r"keyless\.roots: no PEM certificate found"):
        keyless_verify(attestation, pgi_root, KeylessAttestor(subject="x", roots="garbage"))
    same = trusted_root_with_overrides(pgi_root, tsa_chain_pem="")
    assert same is pgi_root
    with_tsa = trusted_root_with_overrides(pgi_root, tsa_chain_pem=other_ca)
    assert len(with_tsa.timestamp_authorities) == 1 and with_tsa.tlogs == pgi_root.tlogs


def test_policy_trust_material_equivalent_to_the_root_verifies(attestation: bytes, pgi_root: TrustedRoot) -> None:
    """Overrides rebuilt from the very keys and CAs of the trusted root (as PEM, the way policies carry them)
    verify the bundle, as the trusted root itself does."""
    fulcio = "".join(
        c.public_bytes(serialization.Encoding.PEM).decode()
        for ca in pgi_root.certificate_authorities[1:]
        for c in ca.certificates
    )
    rekor = (
        pgi_root.tlogs[0]
        .key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    ctlog = (
        pgi_root.ctlogs[-1]
        .key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keyless = KeylessAttestor(
        subject="cody@soyland.com", roots=fulcio, rekor=Rekor(pub_key=rekor), ctlog=CTLog(pub_key=ctlog)
    )
    result = keyless_verify(attestation, pgi_root, keyless)
    assert result.signer == "cody@soyland.com"
    wrong_ct = KeylessAttestor(subject="cody@soyland.com", ctlog=CTLog(pub_key=rekor))
    with pytest.raises(VerificationFailure, match="ctfe public key not found for embedded SCT"):
        keyless_verify(attestation, pgi_root, wrong_ct)

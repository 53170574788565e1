"""Keyless and certificate-based checks of cosign ``.sig`` and ``.att`` layers (``sigward.verify.keyless``) against a
test
Fulcio, CT log and Rekor: each scenario a row with the expected outcome, negative cases included."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from sigward.errors import VerificationFailure
from sigward.patterns import compile_re2
from sigward.policy.models import CertificateAttestor, KeylessAttestor
from sigward.verify.cosign import ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, SignatureLayer
from sigward.verify.dsse import Statement
from sigward.verify.identity import CertificateIdentity, certificate_identity, match_identity
from sigward.verify.keyless import (
    VerifiedCertificateSignature,
    verify_attestation_certificate,
    verify_attestation_keyless,
    verify_attestations_keyless,
    verify_layer_certificate,
    verify_layer_keyless,
    verify_signatures_certificate,
    verify_signatures_keyless,
)
from sigward.verify.simplesigning import make_payload
from sigward.verify.trust import TrustedRoot
from tests.support.fulcio import (
    GITHUB_WORKFLOW,
    INTEGRATED_TIME,
    OID_ISSUER_V1,
    OID_ISSUER_V2,
    SIGNING_TIME,
    TEST_EMAIL,
    TEST_ISSUER,
    FulcioCA,
    cert_attestation_layer,
    cert_layer,
    issue_leaf,
    make_fulcio,
    pem,
    pems,
    trusted_root,
)
from tests.support.signing import in_toto_statement, new_key, rekor_bundle, signed_layer

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
SIGNER_SLOT = 60


def ca() -> FulcioCA:
    return make_fulcio()


def other_ca() -> FulcioCA:
    return make_fulcio(1)


def root_of(which: FulcioCA) -> TrustedRoot:
    return trusted_root(which)


def layer_for(
    *,
    digest: str = DIGEST_A,
    leaf_kwargs: Mapping[str, Any] | None = None,
    layer_kwargs: Mapping[str, Any] | None = None,
    fulcio: FulcioCA | None = None,
) -> SignatureLayer:
    """A keyless ``.sig`` layer: Fulcio leaf for the signer, chain annotation, Rekor bundle by the CA's Rekor key."""
    which = fulcio or ca()
    signer = new_key("p256", slot=SIGNER_SLOT)
    leaf = issue_leaf(which, signer, **(leaf_kwargs or {}))
    options: dict[str, Any] = {"chain": which.chain, "rekor": which.rekor}
    options.update(layer_kwargs or {})
    return cert_layer(signer, leaf, image_digest=digest, **options)


def keyless(**fields: Any) -> KeylessAttestor:
    """A keyless attestor as a policy writes it (camelCase YAML keys)."""
    return KeylessAttestor.model_validate(fields)


def certificates(**fields: Any) -> CertificateAttestor:
    return CertificateAttestor.model_validate(fields)


@dataclass(frozen=True)
class Case:
    name: str
    layer: Callable[[], SignatureLayer]
    attestor: Callable[[], KeylessAttestor]
    expect_error: str | None  # substring of the failure; None = verified
    root: Callable[[], TrustedRoot] = lambda: root_of(ca())
    annotations: Mapping[str, str] = field(default_factory=dict)
    now: datetime | None = None
    digest: str = DIGEST_A


def with_annotation(layer: SignatureLayer, key: str, value: str | None) -> SignatureLayer:
    ann = dict(layer.annotations)
    if value is None:
        ann.pop(key, None)
    else:
        ann[key] = value
    return SignatureLayer(media_type=layer.media_type, payload=layer.payload, annotations=ann)


def tampered_payload() -> SignatureLayer:
    good = layer_for()
    other = make_payload(docker_reference="example.test/evil", manifest_digest=DIGEST_A)
    return SignatureLayer(media_type=good.media_type, payload=other, annotations=dict(good.annotations))


def entry_for_another_certificate() -> SignatureLayer:
    which = ca()
    signer = new_key("p256", slot=SIGNER_SLOT)
    leaf = issue_leaf(which, signer)
    stranger = issue_leaf(which, new_key("p256", slot=SIGNER_SLOT + 1), emails=("mallory@example.test",))
    return cert_layer(
        signer, leaf, image_digest=DIGEST_A, chain=which.chain, rekor=which.rekor, entry_certificate=stranger
    )


def overlong_chain_annotation() -> SignatureLayer:
    good = layer_for()
    return with_annotation(good, ANNOTATION_CHAIN, pems([ca().intermediate] * 11 + [ca().root]))


SUBJECT = {"subject": TEST_EMAIL, "issuer": TEST_ISSUER}
CASES = [
    Case("valid", layer_for, lambda: keyless(**SUBJECT), None),
    Case("valid-policy-roots", layer_for, lambda: keyless(roots=ca().root_pem, **SUBJECT), None),
    Case(
        "valid-intermediate-from-trusted-root-only",
        lambda: layer_for(layer_kwargs={"chain": ()}),
        lambda: keyless(**SUBJECT),
        None,
    ),
    Case("valid-subject-glob", layer_for, lambda: keyless(subject="*@example.test", issuer="https://oauth.*"), None),
    Case("valid-subject-regexp", layer_for, lambda: keyless(subjectRegExp=r"^alice@example\.test\z"), None),
    Case("valid-issuer-regexp", layer_for, lambda: keyless(issuerRegExp=r"oauth\.example"), None),
    Case(
        "valid-uri-san-and-extensions",
        lambda: layer_for(
            leaf_kwargs={
                "emails": (),
                "uris": (GITHUB_WORKFLOW["1.3.6.1.4.1.57264.1.9"],),
                "extensions": GITHUB_WORKFLOW,
            }
        ),
        lambda: keyless(
            subject="https://github.com/example/app/.github/workflows/*",
            additionalExtensions={
                "githubWorkflowTrigger": "push",
                "1.3.6.1.4.1.57264.1.5": "example/app",
                "buildSignerURI": "https://github.com/example/*",
                "runnerEnvironment": "github-hosted",
            },
        ),
        None,
    ),
    Case("valid-issuer-v2-only", lambda: layer_for(leaf_kwargs={"issuer_v1": False}), lambda: keyless(**SUBJECT), None),
    Case("valid-issuer-v1-only", lambda: layer_for(leaf_kwargs={"issuer_v2": False}), lambda: keyless(**SUBJECT), None),
    Case(
        "valid-othername-san",
        lambda: layer_for(leaf_kwargs={"emails": (), "other_name": "alice!example.test"}),
        lambda: keyless(subject="alice!example.test", issuer=TEST_ISSUER),
        None,
    ),
    Case(
        "valid-annotations",
        lambda: layer_for(layer_kwargs={"annotations": {"env": "prod"}}),
        lambda: keyless(**SUBJECT),
        None,
        annotations={"env": "prod"},
    ),
    Case(
        "expired-leaf-at-integrated-time",
        lambda: layer_for(layer_kwargs={"integrated_time": INTEGRATED_TIME + 11 * 60}),
        lambda: keyless(**SUBJECT),
        "certificate expired before observed time",
    ),
    Case(
        "leaf-issued-after-integrated-time",
        lambda: layer_for(layer_kwargs={"integrated_time": INTEGRATED_TIME - 3600}),
        lambda: keyless(**SUBJECT),
        "certificate was issued after observed time",
    ),
    Case(
        "chain-to-unknown-root",
        lambda: layer_for(fulcio=other_ca(), layer_kwargs={"rekor": ca().rekor}),
        lambda: keyless(**SUBJECT),
        "certificate signed by unknown authority",
    ),
    Case(
        "policy-roots-exclude-the-issuer",
        layer_for,
        lambda: keyless(roots=other_ca().root_pem, **SUBJECT),
        "certificate signed by unknown authority",
    ),
    Case(
        "eku-without-code-signing",
        lambda: layer_for(leaf_kwargs={"eku": (ExtendedKeyUsageOID.SERVER_AUTH,)}),
        lambda: keyless(**SUBJECT),
        "extendedKeyUsage without codeSigning",
    ),
    Case(
        "wrong-subject-glob",
        layer_for,
        lambda: keyless(subject="bob@*", issuer=TEST_ISSUER),
        f"subject mismatch: expected bob@*, received {TEST_EMAIL}",
    ),
    Case(
        "wrong-subject-regexp",
        lambda: layer_for(leaf_kwargs={"dns": ("build.example.test",)}),
        lambda: keyless(subjectRegExp="^bob@"),
        f"subject mismatch: expected ^bob@, received build.example.test, {TEST_EMAIL}",
    ),
    Case(
        "wrong-issuer",
        layer_for,
        lambda: keyless(subject=TEST_EMAIL, issuer="https://accounts.google.com"),
        f"issuer mismatch: expected https://accounts.google.com, received {TEST_ISSUER}",
    ),
    Case(
        "wrong-issuer-regexp",
        layer_for,
        lambda: keyless(issuerRegExp="^https://token\\.actions"),
        f"issuer mismatch: expected ^https://token\\.actions, received {TEST_ISSUER}",
    ),
    Case(
        "conflicting-issuer-extensions",
        lambda: layer_for(
            leaf_kwargs={"extensions": {OID_ISSUER_V1: "https://a.test", OID_ISSUER_V2: "https://b.test"}}
        ),
        lambda: keyless(**SUBJECT),
        "conflicting OIDC issuers",
    ),
    Case(
        "missing-extension",
        layer_for,
        lambda: keyless(additionalExtensions={"githubWorkflowTrigger": "push"}),
        "extension mismatch: expected push for key githubWorkflowTrigger, received nothing",
    ),
    Case(
        "extension-value-mismatch",
        lambda: layer_for(leaf_kwargs={"extensions": GITHUB_WORKFLOW}),
        lambda: keyless(additionalExtensions={"githubWorkflowTrigger": "pull_request"}),
        "extension mismatch: expected pull_request for key githubWorkflowTrigger, received push",
    ),
    Case(
        "unknown-extension-name",
        layer_for,
        lambda: keyless(additionalExtensions={"favouriteColour": "blue"}),
        "invalid certificate extension favouriteColour",
    ),
    Case(
        "sct-by-unknown-log",
        lambda: layer_for(leaf_kwargs={"sct_log": new_key("p256", slot=SIGNER_SLOT + 5)}),
        lambda: keyless(**SUBJECT),
        "ctfe public key not found for embedded SCT",
    ),
    Case(
        "sct-by-unknown-log-ignored",
        lambda: layer_for(leaf_kwargs={"sct_log": new_key("p256", slot=SIGNER_SLOT + 5)}),
        lambda: keyless(ctlog={"ignoreSCT": True}, **SUBJECT),
        None,
    ),
    Case(
        "no-sct",
        lambda: layer_for(leaf_kwargs={"with_sct": False}),
        lambda: keyless(**SUBJECT),
        "certificate does not include required embedded SCT",
    ),
    Case(
        "no-sct-ignored",
        lambda: layer_for(leaf_kwargs={"with_sct": False}),
        lambda: keyless(ctlog={"ignoreSCT": True}, **SUBJECT),
        None,
    ),
    Case(
        "sct-with-policy-ctlog-key",
        layer_for,
        lambda: keyless(ctlog={"pubkey": ca().ct_log.public_pem}, **SUBJECT),
        None,
    ),
    Case(
        "sct-with-wrong-policy-ctlog-key",
        layer_for,
        lambda: keyless(ctlog={"pubkey": other_ca().ct_log.public_pem}, **SUBJECT),
        "ctfe public key not found for embedded SCT",
    ),
    Case(
        "tampered-payload",
        tampered_payload,
        lambda: keyless(**SUBJECT),
        "invalid signature when validating ASN.1 encoded signature",
    ),
    Case(
        "replayed-from-another-digest",
        lambda: layer_for(digest=DIGEST_B),
        lambda: keyless(**SUBJECT),
        f"invalid or missing digest in claim: {DIGEST_B}",
    ),
    Case(
        "rekor-entry-for-another-certificate",
        entry_for_another_certificate,
        lambda: keyless(**SUBJECT),
        "transparency log entry key or certificate does not match",
    ),
    Case(
        "wrong-rekor-key",
        layer_for,
        lambda: keyless(rekor={"pubkey": other_ca().rekor.public_pem}, **SUBJECT),
        "unable to verify SET",
    ),
    Case(
        "policy-rekor-key",
        layer_for,
        lambda: keyless(rekor={"pubkey": ca().rekor.public_pem}, **SUBJECT),
        None,
    ),
    Case(
        "no-bundle-tlog-required",
        lambda: layer_for(layer_kwargs={"rekor": None}),
        lambda: keyless(**SUBJECT),
        "signature has no Rekor bundle",
    ),
    Case(
        "ignore-tlog-valid-now",
        lambda: layer_for(layer_kwargs={"rekor": None}),
        lambda: keyless(rekor={"ignoreTlog": True}, **SUBJECT),
        None,
        now=SIGNING_TIME + timedelta(minutes=5),
    ),
    Case(
        "ignore-tlog-expired-now",
        lambda: layer_for(layer_kwargs={"rekor": None}),
        lambda: keyless(rekor={"ignoreTlog": True}, **SUBJECT),
        "expected a signed timestamp to verify an expired certificate",
        now=SIGNING_TIME + timedelta(hours=1),
    ),
    Case(
        "chain-annotation-longer-than-11",
        overlong_chain_annotation,
        lambda: keyless(**SUBJECT),
        "certificate chain too long (12), maximum allowed is 11",
    ),
    Case(
        "no-certificate-annotation",
        lambda: with_annotation(layer_for(), ANNOTATION_CERTIFICATE, None),
        lambda: keyless(**SUBJECT),
        "no certificate found on signature",
    ),
    Case(
        "wrong-annotations",
        lambda: layer_for(layer_kwargs={"annotations": {"env": "dev"}}),
        lambda: keyless(**SUBJECT),
        "missing or incorrect annotation",
        annotations={"env": "prod"},
    ),
    Case(
        "invalid-regexp-lookaround",
        layer_for,
        lambda: keyless(subjectRegExp="(?<=alice)@"),
        "invalid regexp for subject: (?<=alice)@ :",
    ),
    Case(
        "invalid-regexp-python",
        layer_for,
        lambda: keyless(subjectRegExp="alice(["),
        "invalid regexp for subject: alice([ :",
    ),
    Case(
        # ctlog.tsaCertChain is honoured now (sigward.verify.timestamps); without a token it proves no time.
        "tsa-cert-chain-without-timestamp-expired-now",
        lambda: layer_for(layer_kwargs={"rekor": None}),
        lambda: keyless(ctlog={"tsaCertChain": ca().root_pem}, rekor={"ignoreTlog": True}, **SUBJECT),
        "expected a signed timestamp to verify an expired certificate",
        now=SIGNING_TIME + timedelta(hours=1),
    ),
    Case(
        "wrong-media-type",
        lambda: SignatureLayer(media_type="text/plain", payload=b"x", annotations={}),
        lambda: keyless(**SUBJECT),
        "is not a cosign simple signing payload",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_keyless_signature(case: Case) -> None:
    layer = case.layer()

    def run() -> VerifiedCertificateSignature:
        return verify_layer_keyless(
            layer,
            image_digest=case.digest,
            keyless=case.attestor(),
            annotations=case.annotations,
            trusted_root=case.root(),
            now=case.now,
        )

    if case.expect_error is None:
        verified = run()
        assert verified.payload.manifest_digest == case.digest
        assert verified.certificate is not None and verified.identity is not None
        assert len(verified.chain) == 3
        if layer.annotations.get(ANNOTATION_BUNDLE):
            assert verified.integrated_time == INTEGRATED_TIME
        else:
            assert verified.integrated_time is None
    else:
        with pytest.raises(VerificationFailure) as err:
            run()
        assert case.expect_error in err.value.message


def test_verified_identity_exposes_sans_issuer_and_extensions() -> None:
    layer = layer_for(leaf_kwargs={"uris": ("https://example.test/wf",), "extensions": GITHUB_WORKFLOW})
    verified = verify_layer_keyless(
        layer, image_digest=DIGEST_A, keyless=keyless(), annotations={}, trusted_root=root_of(ca())
    )
    identity = verified.identity
    assert identity is not None
    assert identity.sans == (TEST_EMAIL, "https://example.test/wf")
    assert identity.issuer == TEST_ISSUER
    named = identity.named_extensions
    assert named["githubWorkflowTrigger"] == "push"
    assert named["buildSignerURI"].endswith("release.yml@refs/tags/v1.0.0")
    assert identity.extension("1.3.6.1.4.1.57264.1.12") == "https://github.com/example/app"
    assert identity.extension("GITHUBWORKFLOWSHA") == GITHUB_WORKFLOW["1.3.6.1.4.1.57264.1.3"]
    assert identity.extension("oidcIssuer") == TEST_ISSUER


def test_match_identity_rules() -> None:
    identity = CertificateIdentity(sans=("a@x.test", "https://x.test/w"), issuer="https://iss.test")
    match_identity(identity, subject="nobody", subject_regexp="^https://x")  # either form may match
    match_identity(identity, issuer="https://iss.*", issuer_regexp="iss")
    with pytest.raises(
        VerificationFailure, match=re.escape("issuer mismatch: expected ^nope, received https://iss.test")
    ):
        match_identity(identity, issuer="https://iss.*", issuer_regexp="^nope")  # both must match
    with pytest.raises(VerificationFailure, match="received no subject alternative names"):
        match_identity(CertificateIdentity(sans=(), issuer=""), subject="*")
    assert compile_re2(r"a\z", path="keyless.subjectRegExp").search("a")
    assert not compile_re2(r"a\z", path="keyless.subjectRegExp").search("a\n")


# --- the certificates attestor


def pinned_layer(*, with_cert: bool = True) -> tuple[SignatureLayer, str]:
    """A layer signed by the signer; its leaf PEM (the pinned cert). Without the certificate annotation the Rekor
    entry names the bare public key, as cosign logs a key-signed signature."""
    which = ca()
    signer = new_key("p256", slot=SIGNER_SLOT)
    leaf = issue_leaf(which, signer)
    if with_cert:
        return cert_layer(signer, leaf, image_digest=DIGEST_A, chain=which.chain, rekor=which.rekor), pem(leaf)
    signed = signed_layer(signer, image_digest=DIGEST_A)
    bundle = rekor_bundle(
        which.rekor,
        payload=signed.payload,
        signature_b64=signed.annotations["dev.cosignproject.cosign/signature"],
        signer_public_pem=signer.public_pem,
        integrated_time=INTEGRATED_TIME,
    )
    layer = SignatureLayer(
        media_type=signed.media_type,
        payload=signed.payload,
        annotations={**signed.annotations, ANNOTATION_BUNDLE: bundle},
    )
    return layer, pem(leaf)


CERT_CASES: list[tuple[str, Callable[[], tuple[SignatureLayer, CertificateAttestor]], str | None]] = [
    ("cert-chain-as-root-pool", lambda: (layer_for(), certificates(certChain=ca().root_pem)), None),
    ("cert-chain-intermediate-and-root", lambda: (layer_for(), certificates(certChain=ca().chain_pem)), None),
    ("pinned-cert", lambda: (pinned_layer()[0], certificates(cert=pinned_layer()[1])), None),
    (
        "pinned-cert-without-certificate-annotation",
        lambda: (pinned_layer(with_cert=False)[0], certificates(cert=pinned_layer()[1])),
        None,
    ),
    (
        "pinned-cert-with-chain",
        lambda: (layer_for(), certificates(cert=pinned_layer()[1], certChain=ca().chain_pem)),
        None,
    ),
    (
        "pinned-cert-with-wrong-chain",
        lambda: (layer_for(), certificates(cert=pinned_layer()[1], certChain=other_ca().chain_pem)),
        "certificate signed by unknown authority",
    ),
    (
        "pinned-cert-of-another-key",
        lambda: (
            layer_for(),
            certificates(cert=pem(issue_leaf(ca(), new_key("p256", slot=SIGNER_SLOT + 2)))),
        ),
        "both public key and certificate were provided but did not match",
    ),
    (
        "pinned-cert-of-another-key-no-annotation",
        lambda: (
            pinned_layer(with_cert=False)[0],
            certificates(cert=pem(issue_leaf(ca(), new_key("p256", slot=SIGNER_SLOT + 2)))),
        ),
        "invalid signature when validating ASN.1 encoded signature",
    ),
    (
        "cert-chain-wrong-root",
        lambda: (layer_for(), certificates(certChain=other_ca().root_pem)),
        "certificate signed by unknown authority",
    ),
    (
        "neither-cert-nor-chain",
        lambda: (layer_for(), certificates(rekor={"ignoreTlog": True})),
        "cert or certChain required",
    ),
    (
        "cert-chain-too-long",
        lambda: (layer_for(), certificates(certChain=pems([ca().intermediate] * 11 + [ca().root]))),
        "certificate chain too long (12), maximum allowed is 11",
    ),
    (
        "cert-chain-sct-required",
        lambda: (layer_for(leaf_kwargs={"with_sct": False}), certificates(certChain=ca().root_pem)),
        "certificate does not include required embedded SCT",
    ),
    (
        "cert-chain-sct-ignored",
        lambda: (
            layer_for(leaf_kwargs={"with_sct": False}),
            certificates(certChain=ca().root_pem, ctlog={"ignoreSCT": True}),
        ),
        None,
    ),
    (
        "cert-chain-no-layer-certificate",
        lambda: (with_annotation(layer_for(), ANNOTATION_CERTIFICATE, None), certificates(certChain=ca().root_pem)),
        "no certificate found on signature",
    ),
]


@pytest.mark.parametrize(("name", "build", "expect_error"), CERT_CASES, ids=[c[0] for c in CERT_CASES])
def test_certificates_attestor(
    name: str, build: Callable[[], tuple[SignatureLayer, CertificateAttestor]], expect_error: str | None
) -> None:
    layer, attestor = build()

    def run() -> VerifiedCertificateSignature:
        return verify_layer_certificate(
            layer, image_digest=DIGEST_A, certificates=attestor, annotations={}, trusted_root=root_of(ca())
        )

    if expect_error is None:
        verified = run()
        assert verified.integrated_time == INTEGRATED_TIME
        assert verified.certificate is not None
        assert verified.identity is not None and verified.identity.sans == (TEST_EMAIL,)
    else:
        with pytest.raises(VerificationFailure) as err:
            run()
        assert expect_error in err.value.message


# --- plural forms


def test_one_good_signature_among_bad_ones_suffices() -> None:
    good = layer_for()
    bad = layer_for(digest=DIGEST_B)
    results = verify_signatures_keyless(
        [bad, good], image_digest=DIGEST_A, keyless=keyless(**SUBJECT), annotations={}, trusted_root=root_of(ca())
    )
    assert [r.layer for r in results] == [good]


def test_no_matching_signatures_joins_distinct_reasons() -> None:
    layers = [layer_for(digest=DIGEST_B), tampered_payload(), layer_for(digest=DIGEST_B)]
    with pytest.raises(VerificationFailure) as err:
        verify_signatures_keyless(
            layers, image_digest=DIGEST_A, keyless=keyless(**SUBJECT), annotations={}, trusted_root=root_of(ca())
        )
    assert err.value.message == (
        f"no matching signatures: invalid or missing digest in claim: {DIGEST_B} (image digest is {DIGEST_A}); "
        "invalid signature when validating ASN.1 encoded signature"
    )
    with pytest.raises(VerificationFailure, match=r"^no signatures found$"):
        verify_signatures_certificate(
            [],
            image_digest=DIGEST_A,
            certificates=certificates(certChain=ca().root_pem),
            annotations={},
            trusted_root=root_of(ca()),
        )


# --- attestations (.att)


PREDICATE = "https://slsa.dev/provenance/v1"


def att_layer(
    *,
    digest: str = DIGEST_A,
    fulcio: FulcioCA | None = None,
    leaf_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> SignatureLayer:
    which = fulcio or ca()
    signer = new_key("p256", slot=SIGNER_SLOT)
    leaf = issue_leaf(which, signer, **(leaf_kwargs or {}))
    statement = in_toto_statement(digest, PREDICATE, {"buildType": "test"})
    options: dict[str, Any] = {"chain": which.chain, "rekor": which.rekor}
    options.update(kwargs)
    return cert_attestation_layer(signer, leaf, statement, **options)


ATT_CASES: list[tuple[str, Callable[[], SignatureLayer], Callable[[], KeylessAttestor], str | None]] = [
    ("valid", att_layer, lambda: keyless(**SUBJECT), None),
    (
        "valid-ignore-sct",
        lambda: att_layer(leaf_kwargs={"with_sct": False}),
        lambda: keyless(ctlog={"ignoreSCT": True}),
        None,
    ),
    (
        "subject-digest-mismatch",
        lambda: att_layer(digest=DIGEST_B),
        lambda: keyless(**SUBJECT),
        "does not name the image digest",
    ),
    (
        "entry-payload-hash-mismatch",
        lambda: att_layer(entry_payload=b"{}"),
        lambda: keyless(**SUBJECT),
        "transparency log entry payload hash does not match the signed payload",
    ),
    (
        "entry-for-another-certificate",
        lambda: att_layer(entry_certificate=issue_leaf(ca(), new_key("p256", slot=SIGNER_SLOT + 3))),
        lambda: keyless(**SUBJECT),
        "transparency log entry key or certificate does not match",
    ),
    (
        "wrong-subject",
        att_layer,
        lambda: keyless(subject="bob@example.test"),
        f"subject mismatch: expected bob@example.test, received {TEST_EMAIL}",
    ),
    (
        "expired-at-integrated-time",
        lambda: att_layer(integrated_time=INTEGRATED_TIME + 3600),
        lambda: keyless(**SUBJECT),
        "certificate expired before observed time",
    ),
    (
        "unknown-root",
        lambda: att_layer(fulcio=other_ca(), rekor=ca().rekor),
        lambda: keyless(**SUBJECT),
        "certificate signed by unknown authority",
    ),
    ("no-bundle", lambda: att_layer(rekor=None), lambda: keyless(**SUBJECT), "attestation has no Rekor bundle"),
]


@pytest.mark.parametrize(("name", "layer", "attestor", "expect_error"), ATT_CASES, ids=[c[0] for c in ATT_CASES])
def test_keyless_attestation(
    name: str, layer: Callable[[], SignatureLayer], attestor: Callable[[], KeylessAttestor], expect_error: str | None
) -> None:
    built = layer()

    def run() -> Statement:
        return verify_attestation_keyless(built, image_digest=DIGEST_A, keyless=attestor(), trusted_root=root_of(ca()))

    if expect_error is None:
        statement = run()
        assert statement.predicate_type == PREDICATE
        assert statement.names_digest(DIGEST_A)
        assert statement.predicate == {"buildType": "test"}
    else:
        with pytest.raises(VerificationFailure) as err:
            run()
        assert expect_error in err.value.message


def test_attestation_with_certificates_attestor() -> None:
    statement = verify_attestation_certificate(
        att_layer(),
        image_digest=DIGEST_A,
        certificates=certificates(certChain=ca().root_pem),
        trusted_root=root_of(ca()),
    )
    assert statement.predicate_type == PREDICATE
    with pytest.raises(VerificationFailure, match="certificate signed by unknown authority"):
        verify_attestation_certificate(
            att_layer(),
            image_digest=DIGEST_A,
            certificates=certificates(certChain=other_ca().root_pem),
            trusted_root=root_of(ca()),
        )
    with pytest.raises(VerificationFailure, match="is not a DSSE envelope"):
        verify_attestation_certificate(
            layer_for(),
            image_digest=DIGEST_A,
            certificates=certificates(certChain=ca().root_pem),
            trusted_root=root_of(ca()),
        )


def test_attestations_plural() -> None:
    good = att_layer()
    statements = verify_attestations_keyless(
        [att_layer(digest=DIGEST_B), good],
        image_digest=DIGEST_A,
        keyless=keyless(**SUBJECT),
        trusted_root=root_of(ca()),
    )
    assert len(statements) == 1
    with pytest.raises(VerificationFailure) as err:
        verify_attestations_keyless(
            [att_layer(entry_payload=b"{}")],
            image_digest=DIGEST_A,
            keyless=keyless(**SUBJECT),
            trusted_root=root_of(ca()),
        )
    assert err.value.message == (
        "no matching attestations: transparency log entry payload hash does not match the signed payload"
    )
    with pytest.raises(VerificationFailure, match=r"^no matching attestations: no attestations found$"):
        verify_attestations_keyless([], image_digest=DIGEST_A, keyless=keyless(), trusted_root=root_of(ca()))


def test_identity_of_leaf_without_extensions() -> None:
    leaf = issue_leaf(ca(), new_key("p256", slot=SIGNER_SLOT), issuer=None, emails=("x@example.test",))
    identity = certificate_identity(leaf)
    assert identity.issuer == "" and identity.sans == ("x@example.test",)
    assert json.dumps(dict(identity.extensions)) == "{}"

"""One identity rule (``sigward.verify.identity``): every case runs through a legacy cosign ``.sig`` layer *and* a
Sigstore
bundle carrying the same Fulcio certificate, and must get the same verdict with the same words. The rows that the
two matchers used to decide differently are named ``regression-…`` after the disagreement."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from sigward.errors import VerificationFailure
from sigward.policy.models import KeylessAttestor
from sigward.verify.bundles import BUNDLE_MEDIA_TYPE, verify_bundle
from sigward.verify.keyless import verify_layer_keyless
from sigward.verify.trust import parse_trusted_root
from tests.support.bundles import TestLog, encode, log_entry
from tests.support.fulcio import (
    FULCIO as ARC,
)
from tests.support.fulcio import (
    GITHUB_WORKFLOW,
    INTEGRATED_TIME,
    TEST_EMAIL,
    TEST_ISSUER,
    cert_layer,
    issue_leaf,
    make_fulcio,
    pem,
    trusted_root_json,
)
from tests.support.signing import new_key

DIGEST = "sha256:" + hashlib.sha256(b"image").hexdigest()
WORKFLOW_URI = "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.0.0"
CA = make_fulcio(3)
LOG = TestLog(slot=73)
ROOT = parse_trusted_root(trusted_root_json(CA, tlogs=[LOG.key]), source="identity test root")
SIGNER = new_key("p256", slot=74)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def leaf(**kwargs: Any) -> x509.Certificate:
    options: dict[str, Any] = {"emails": (TEST_EMAIL,), "uris": (WORKFLOW_URI,), "extensions": GITHUB_WORKFLOW}
    options.update(kwargs)
    return issue_leaf(CA, SIGNER, **options)


def legacy(cert: x509.Certificate, attestor: KeylessAttestor) -> None:
    layer = cert_layer(SIGNER, cert, image_digest=DIGEST, chain=CA.chain, rekor=LOG.key)
    verify_layer_keyless(layer, image_digest=DIGEST, keyless=attestor, annotations={}, trusted_root=ROOT)


def bundle(cert: x509.Certificate, attestor: KeylessAttestor) -> None:
    """A cosign v3 message-signature bundle over the image digest, with the same certificate, logged in ``LOG``."""
    digest = bytes.fromhex(DIGEST.partition(":")[2])
    private = SIGNER.private
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    signature = private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    body = rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {"content": b64(signature), "publicKey": {"content": b64(pem(cert).encode())}},
            },
        }
    )
    doc = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [log_entry(LOG, body, kind="hashedrekord/0.0.1", integrated_time=INTEGRATED_TIME)],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
            "signature": b64(signature),
        },
    }
    verify_bundle(encode(doc), image_digest=DIGEST, key=None, keyless=attestor, certificates=None, trusted_root=ROOT)


CASES: list[tuple[str, Mapping[str, Any], Mapping[str, Any], str | None]] = [
    # (name, attestor fields, leaf options, expected failure (substring; None = verified))
    ("subject-exact", {"subject": TEST_EMAIL}, {}, None),
    ("subject-glob-uri", {"subject": "https://github.com/example/*"}, {}, None),
    ("subject-other", {"subject": "bob@example.test"}, {}, "subject mismatch: expected bob@example.test"),
    ("subject-regexp", {"subjectRegExp": r"release\.yml@refs/tags/v\d"}, {}, None),
    ("subject-regexp-miss", {"subjectRegExp": "^refs/"}, {}, "subject mismatch: expected ^refs/"),
    ("issuer-exact", {"issuer": TEST_ISSUER}, {}, None),
    ("issuer-other", {"issuer": "https://accounts.google.com"}, {}, "issuer mismatch"),
    ("issuer-regexp", {"issuerRegExp": r"oauth\.example"}, {}, None),
    ("issuer-regexp-miss", {"issuerRegExp": r"^https://accounts"}, {}, "issuer mismatch"),
    ("issuer-glob-and-regexp-both-apply", {"issuer": "https://*", "issuerRegExp": "^nope"}, {}, "issuer mismatch"),
    ("extension-v1-name", {"additionalExtensions": {"githubWorkflowTrigger": "push"}}, {}, None),
    ("extension-v1-wrong", {"additionalExtensions": {"githubWorkflowRef": "refs/heads/*"}}, {}, "extension mismatch"),
    ("extension-unknown-name", {"additionalExtensions": {"noSuchExtension": "x"}}, {}, "invalid certificate extension"),
    ("extension-issuer-key", {"additionalExtensions": {"oidcIssuer": TEST_ISSUER}}, {}, None),
    ("dns-san-only", {"subject": "*@example.test"}, {"emails": (), "uris": (), "dns": ("x.test",)}, "subject mismatch"),
    # Where the bundle matcher disagreed with the legacy one (the bug, fixed by using one rule):
    ("regression-subject-or-subjectregexp", {"subject": "nobody", "subjectRegExp": "^alice@"}, {}, None),
    ("regression-regexp-lookaround-refused", {"subjectRegExp": "(?<=alice)@"}, {}, "invalid regexp for subject"),
    ("regression-regexp-backreference-refused", {"issuerRegExp": r"(a)\1"}, {}, "invalid regexp for issuer"),
    ("regression-regexp-re2-end-of-text", {"subjectRegExp": r"v1\.0\.0\z"}, {}, None),
    ("regression-extension-v2-name", {"additionalExtensions": {"buildSignerURI": WORKFLOW_URI}}, {}, None),
    ("regression-extension-v2-oid", {"additionalExtensions": {ARC + "12": "https://github.com/example/*"}}, {}, None),
    (
        "regression-extension-v2-wrong",
        {"additionalExtensions": {"runnerEnvironment": "self-hosted"}},
        {},
        "extension mismatch: expected self-hosted for key runnerEnvironment, received github-hosted",
    ),
    (
        "regression-missing-extension-vs-star",
        {"additionalExtensions": {"sourceRepositoryRef": "*"}},
        {},
        "received nothing (extension not present)",
    ),
    ("regression-extension-name-case", {"additionalExtensions": {"GithubWorkflowTrigger": "push"}}, {}, None),
    (
        "regression-conflicting-issuers",
        {"issuer": "*"},
        {"issuer_v1": False, "extensions": {**GITHUB_WORKFLOW, ARC + "1": "https://other.example.test"}},
        "conflicting OIDC issuers",
    ),
]


@pytest.mark.parametrize(("name", "fields", "leaf_options", "error"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("fmt", ["legacy", "bundle"])
def test_same_verdict_in_both_formats(
    fmt: str, name: str, fields: Mapping[str, Any], leaf_options: Mapping[str, Any], error: str | None
) -> None:
    attestor = KeylessAttestor.model_validate(fields)
    cert = leaf(**leaf_options)
    run = legacy if fmt == "legacy" else bundle
    if error is None:
        run(cert, attestor)
        return
    with pytest.raises(VerificationFailure) as info:
        run(cert, attestor)
    assert error in info.value.message


@pytest.mark.parametrize(("name", "fields", "leaf_options", "error"), CASES, ids=[c[0] for c in CASES])
def test_both_formats_give_the_same_words(
    name: str, fields: Mapping[str, Any], leaf_options: Mapping[str, Any], error: str | None
) -> None:
    attestor = KeylessAttestor.model_validate(fields)
    cert = leaf(**leaf_options)
    outcomes = []
    for run in (legacy, bundle):
        try:
            run(cert, attestor)
            outcomes.append("verified")
        except VerificationFailure as exc:
            outcomes.append(exc.message)
    assert outcomes[0] == outcomes[1]

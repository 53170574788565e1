"""One verdict per attestor case, whatever the format (issue 12 item 8, issue 13): the same signer, certificate,
statement and policy, carried once as a legacy cosign ``.att`` layer and once as a Sigstore v0.3 bundle, must give
the same outcome. Both formats go through sigward.verify.certificates (chain, SCT, identity, signing times) and
sigward.verify.timestamps; the table covers identity, roots, SCT/tlog/TSA options, certificates attestors, and the
usual negatives (wrong key, expired certificate, tampered payload, replayed signature, missing signature). Both
formats are logged by the same log, so the ``rekor.url`` / ``rekor.pubkey`` rows pin the one choice of log keys
(``sigward.verify.rekor.tlog_options``) for both."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization

from sigward.errors import SigwardError
from sigward.policy.models import CertificateAttestor, CTLog, KeylessAttestor, Rekor
from sigward.verify.bundles import BUNDLE_MEDIA_TYPE, BundleLayer, verify_bundle_attestations
from sigward.verify.cosign import ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, SignatureLayer
from sigward.verify.dsse import DSSE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE, pae
from sigward.verify.keyless import verify_attestations_certificate, verify_attestations_keyless
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.support.bundles import TestLog, entry_body, log_entry, statement
from tests.support.fulcio import (
    GITHUB_WORKFLOW,
    INTEGRATED_TIME,
    SIGNING_TIME,
    TEST_EMAIL,
    TEST_ISSUER,
    FulcioCA,
    intoto_bundle,
    issue_leaf,
    make_fulcio,
    pem,
    pems,
    trusted_root,
    trusted_root_json,
)
from tests.support.signing import SigningKey, new_key

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
PREDICATE = "https://slsa.dev/provenance/v1"
SIGNER_SLOT = 61
UNKNOWN_AUTHORITY = "certificate chain verification failed: certificate signed by unknown authority"


@dataclass(frozen=True)
class Material:
    """What a signer produced: one statement, signed once, carried in both formats."""

    fulcio: FulcioCA
    signer: SigningKey
    leaf: Any
    payload: bytes
    signature: bytes
    tlog: bool = True


def fulcio() -> FulcioCA:
    return make_fulcio(slot=6)


def other_fulcio() -> FulcioCA:
    return make_fulcio(slot=7)


LOG = TestLog(style="v1", slot=66)
OTHER_LOG = new_key("p256", slot=67)
LOG_URL = "https://log-a.example.test"
OTHER_LOG_URL = "https://log-b.example.test"


def root() -> TrustedRoot:
    ca = fulcio()
    return trusted_root(ca, tlogs=[ca.rekor, LOG.key])


def root_two_logs() -> TrustedRoot:
    """The signer's log at LOG_URL and another trusted log at OTHER_LOG_URL."""
    doc = json.loads(trusted_root_json(fulcio(), tlogs=[LOG.key, OTHER_LOG]))
    doc["tlogs"][0]["baseUrl"], doc["tlogs"][1]["baseUrl"] = LOG_URL, OTHER_LOG_URL
    return parse_trusted_root(json.dumps(doc).encode(), source="two logs")


def material(
    *,
    digest: str = DIGEST,
    sign_with: SigningKey | None = None,
    not_before: datetime = SIGNING_TIME - timedelta(seconds=30),
    lifetime: timedelta = timedelta(minutes=10),
    with_sct: bool = True,
    tlog: bool = True,
    tamper: bool = False,
) -> Material:
    ca = fulcio()
    signer = new_key("p256", slot=SIGNER_SLOT)
    leaf = issue_leaf(
        ca, signer, not_before=not_before, lifetime=lifetime, with_sct=with_sct, extensions=GITHUB_WORKFLOW
    )
    payload = statement(digest, predicate_type=PREDICATE)
    signature = (sign_with or signer).sign(pae(INTOTO_PAYLOAD_TYPE, payload))
    if tamper:
        payload = payload.replace(b"slsa.dev", b"evil.dev")
    return Material(ca, signer, leaf, payload, signature, tlog)


def as_layer(m: Material) -> SignatureLayer:
    """cosign's ``.att`` layer: the DSSE envelope blob, certificate and chain annotations, an ``intoto`` SET bundle."""
    envelope = json.dumps(
        {
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "payload": base64.b64encode(m.payload).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(m.signature).decode()}],
        }
    ).encode()
    annotations = {
        "dev.cosignproject.cosign/signature": "",
        "predicateType": PREDICATE,
        ANNOTATION_CERTIFICATE: pem(m.leaf),
        ANNOTATION_CHAIN: pems(m.fulcio.chain),
    }
    if m.tlog:
        annotations[ANNOTATION_BUNDLE] = intoto_bundle(
            LOG.key, envelope=envelope, payload=m.payload, certificate=m.leaf, integrated_time=INTEGRATED_TIME
        )
    return SignatureLayer(media_type=DSSE_MEDIA_TYPE, payload=envelope, annotations=annotations)


def as_bundle(m: Material) -> BundleLayer:
    der = m.leaf.public_bytes(serialization.Encoding.DER)
    material_doc: dict[str, Any] = {"certificate": {"rawBytes": base64.b64encode(der).decode()}, "tlogEntries": []}
    if m.tlog:
        as_cert = cast(SigningKey, SimpleNamespace(public_pem=pem(m.leaf)))
        body = entry_body("dsse/0.0.1", as_cert, payload=m.payload, signature=m.signature)
        material_doc["tlogEntries"].append(log_entry(LOG, body, kind="dsse/0.0.1", integrated_time=INTEGRATED_TIME))
    doc = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material_doc,
        "dsseEnvelope": {
            "payload": base64.b64encode(m.payload).decode(),
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(m.signature).decode(), "keyid": ""}],
        },
    }
    return BundleLayer(raw=json.dumps(doc).encode(), predicate_type=PREDICATE)


Attestor = KeylessAttestor | CertificateAttestor


def keyless(**kwargs: Any) -> KeylessAttestor:
    return KeylessAttestor(**{"subject": TEST_EMAIL, "issuer": TEST_ISSUER, **kwargs})


@dataclass(frozen=True)
class Case:
    name: str
    attestor: Callable[[], Attestor]
    verifies: bool
    material: Callable[[], Material] = material
    digest: str = DIGEST
    present: bool = True  # False: the image has no signature at all
    same_message: bool = field(default=False)  # the failure text is the same rule's, word for word
    reason: str = ""  # a text both failures contain
    root: Callable[[], TrustedRoot] = root


def _now_leaf() -> Material:
    # Valid now: without time evidence (ignoreTlog), the current time is the signing time for both formats.
    return material(not_before=datetime.now(UTC) - timedelta(minutes=1), tlog=False)


CASES = [
    Case("subject", keyless, True),
    Case("subject-mismatch", lambda: keyless(subject="mallory@example.test"), False, same_message=True),
    Case("subject-regexp", lambda: keyless(subject=None, subjectRegExp=r"^alice@example\.test$"), True),
    Case("subject-regexp-mismatch", lambda: keyless(subject=None, subjectRegExp="^bob@"), False, same_message=True),
    Case("issuer-mismatch", lambda: keyless(issuer="https://accounts.google.com"), False, same_message=True),
    Case("issuer-regexp", lambda: keyless(issuer=None, issuerRegExp=r"oauth\.example\.test$"), True),
    Case("issuer-regexp-mismatch", lambda: keyless(issuer=None, issuerRegExp="google"), False, same_message=True),
    Case("extensions", lambda: keyless(additionalExtensions={"githubWorkflowTrigger": "push"}), True),
    Case(
        "extensions-mismatch",
        lambda: keyless(additionalExtensions={"githubWorkflowRepository": "other/repo"}),
        False,
        same_message=True,
    ),
    Case("roots", lambda: keyless(roots=pems(fulcio().chain)), True),
    # The legacy layer carries the chain annotation, a v0.3 bundle only the leaf: same rule, the path stops one
    # certificate earlier in the bundle, so the texts differ after "certificate signed by unknown authority".
    Case("roots-other-ca", lambda: keyless(roots=pems(other_fulcio().chain)), False, reason=UNKNOWN_AUTHORITY),
    Case("sct-missing", keyless, False, material=lambda: material(with_sct=False), same_message=True),
    Case("ignore-sct", lambda: keyless(ctlog=CTLog(ignore_sct=True)), True, material=lambda: material(with_sct=False)),
    Case("wrong-ct-key", lambda: keyless(ctlog=CTLog(pub_key=other_fulcio().ct_log.public_pem)), False),
    Case("tlog-missing", keyless, False, material=lambda: material(tlog=False)),
    Case("ignore-tlog-valid-now", lambda: keyless(rekor=Rekor(ignore_tlog=True)), True, material=_now_leaf),
    Case(
        "ignore-tlog-expired-now",
        lambda: keyless(rekor=Rekor(ignore_tlog=True)),
        False,
        material=lambda: material(tlog=False),
        same_message=True,
    ),
    Case(
        "tsa-chain-without-token-expired-now",
        lambda: keyless(ctlog=CTLog(tsa_cert_chain=pems(other_fulcio().chain)), rekor=Rekor(ignore_tlog=True)),
        False,
        material=lambda: material(tlog=False),
        same_message=True,
    ),
    Case("cert-chain", lambda: CertificateAttestor(cert_chain=pems(fulcio().chain)), True),
    Case(
        "cert-chain-other",
        lambda: CertificateAttestor(cert_chain=pems(other_fulcio().chain)),
        False,
        reason=UNKNOWN_AUTHORITY,
    ),
    Case("cert-pinned", lambda: CertificateAttestor(cert=pem(material().leaf)), True),
    Case(
        "cert-pinned-other",
        lambda: CertificateAttestor(cert=pem(issue_leaf(fulcio(), new_key("p256", slot=SIGNER_SLOT + 1)))),
        False,
        same_message=True,
    ),
    # One choice of transparency-log keys (regression: bundles ignored rekor.url, legacy layers narrowed by it).
    Case("rekor-url-names-the-log", lambda: keyless(rekor=Rekor(url=LOG_URL)), True, root=root_two_logs),
    Case("rekor-url-names-another-log", lambda: keyless(rekor=Rekor(url=OTHER_LOG_URL)), False, root=root_two_logs),
    Case(
        "rekor-url-unknown-keeps-all-logs", lambda: keyless(rekor=Rekor(url="https://x.test")), True, root=root_two_logs
    ),
    Case("rekor-url-default-keeps-all-logs", lambda: keyless(rekor=Rekor()), True, root=root_two_logs),
    Case("rekor-pubkey-of-the-log", lambda: keyless(rekor=Rekor(pub_key=LOG.key.public_pem)), True),
    Case("rekor-pubkey-of-another-log", lambda: keyless(rekor=Rekor(pub_key=OTHER_LOG.public_pem)), False),
    Case(
        "rekor-pubkey-replaces-root-logs",
        lambda: keyless(rekor=Rekor(pub_key=OTHER_LOG.public_pem, url=LOG_URL)),
        False,
        root=root_two_logs,
    ),
    Case("ctlog-pubkey-of-the-ct-log", lambda: keyless(ctlog=CTLog(pub_key=fulcio().ct_log.public_pem)), True),
    Case("wrong-key", keyless, False, material=lambda: material(sign_with=new_key("p256", slot=SIGNER_SLOT + 2))),
    Case(
        "expired-cert",
        keyless,
        False,
        material=lambda: material(lifetime=timedelta(seconds=10)),
        same_message=True,
    ),
    Case("tampered-payload", keyless, False, material=lambda: material(tamper=True)),
    Case("replayed-for-another-image", keyless, False, digest=OTHER_DIGEST, same_message=True),
    Case("missing-signature", keyless, False, present=False, same_message=True),
]


def _legacy(case: Case) -> None:
    layers = [as_layer(case.material())] if case.present else []
    attestor = case.attestor()
    if isinstance(attestor, KeylessAttestor):
        verify_attestations_keyless(layers, image_digest=case.digest, keyless=attestor, trusted_root=case.root())
    else:
        verify_attestations_certificate(
            layers, image_digest=case.digest, certificates=attestor, trusted_root=case.root()
        )


def _bundle(case: Case) -> None:
    bundles = [as_bundle(case.material())] if case.present else []
    attestor = case.attestor()
    verify_bundle_attestations(
        bundles,
        image_digest=case.digest,
        predicate_type=PREDICATE,
        keyless=attestor if isinstance(attestor, KeylessAttestor) else None,
        certificates=attestor if isinstance(attestor, CertificateAttestor) else None,
        trusted_root=case.root(),
    )


def _verdict(run: Callable[[Case], None], case: Case) -> str | None:
    try:
        run(case)
    except SigwardError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_verdict_for_both_formats(case: Case) -> None:
    legacy, bundle = _verdict(_legacy, case), _verdict(_bundle, case)
    assert (legacy is None, bundle is None) == (case.verifies, case.verifies), (legacy, bundle)
    if case.same_message:
        assert legacy == bundle
    if case.reason:
        assert legacy is not None and bundle is not None
        assert case.reason in legacy and case.reason in bundle

"""Managed-key Sigstore bundles (cosign v3 ``--key``): signatures, transparency log entries, structure."""

from __future__ import annotations

import base64
import copy
import hashlib
import subprocess
import sys
from typing import Any

import pytest

from sigward.errors import ConfigurationError, VerificationFailure
from sigward.verify.bundles import (
    BundleLayer,
    BundleResult,
    merkle_root_from_proof,
    parse_bundle,
    parse_checkpoint,
    verify_bundle,
    verify_bundle_attestations,
    verify_bundle_signatures,
)
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.support.bundles import (
    TestLog,
    b64,
    dsse_bundle,
    encode,
    entry_body,
    log_entry,
    message_bundle,
    statement,
    trusted_root,
)
from tests.support.signing import SigningKey, new_key
from tests.support.vectors import REPO_ROOT, require_vectors

IMAGE = "sha256:" + hashlib.sha256(b"image manifest").hexdigest()
OTHER_IMAGE = "sha256:" + hashlib.sha256(b"another image").hexdigest()
SLSA = "https://slsa.dev/provenance/v1"


def verifier(key: SigningKey) -> PublicKeyVerifier:
    return PublicKeyVerifier(key=load_public_key_pem(key.public_pem))


def root_of(*logs: TestLog) -> TrustedRoot:
    return parse_trusted_root(trusted_root(*logs), source="test")


EMPTY_ROOT = parse_trusted_root(trusted_root(), source="empty")


def verify(
    bundle: dict[str, Any] | bytes,
    key: SigningKey,
    *,
    root: TrustedRoot = EMPTY_ROOT,
    image: str | None = IMAGE,
    ignore_tlog: bool = False,
) -> BundleResult:
    raw = bundle if isinstance(bundle, bytes) else encode(bundle)
    return verify_bundle(
        raw,
        image_digest=image,
        key=verifier(key),
        keyless=None,
        certificates=None,
        trusted_root=root,
        ignore_tlog=ignore_tlog,
    )


# -- signatures (tlog ignored)


def test_cosign_v3_signature_bundle_verifies_with_the_key() -> None:
    key = new_key()
    result = verify(dsse_bundle(key, statement(IMAGE)), key, ignore_tlog=True)
    assert result.is_image_signature
    assert result.statement is not None and result.statement.names_digest(IMAGE)
    assert result.signer == hashlib.sha256(key.public_der).hexdigest()
    assert result.integrated_time is None and result.timestamps == ()


@pytest.mark.parametrize("kind", ["p384", "rsa2048", "ed25519"])
def test_other_key_types_verify(kind: Any) -> None:
    key = new_key(kind)
    assert verify(dsse_bundle(key, statement(IMAGE)), key, ignore_tlog=True).is_image_signature


def test_tampered_payload_fails() -> None:
    key = new_key()
    bundle = dsse_bundle(key, statement(IMAGE))
    bundle["dsseEnvelope"]["payload"] = b64(statement(IMAGE, predicate={"evil": True}))
    with pytest.raises(VerificationFailure, match="invalid DSSE signature"):
        verify(bundle, key, ignore_tlog=True)


def test_wrong_key_fails() -> None:
    key, other = new_key(), new_key(slot=1)
    with pytest.raises(VerificationFailure, match="invalid DSSE signature"):
        verify(dsse_bundle(key, statement(IMAGE)), other, ignore_tlog=True)


def test_statement_about_another_image_fails() -> None:
    key = new_key()
    with pytest.raises(VerificationFailure, match=f"does not name the image digest {IMAGE}"):
        verify(dsse_bundle(key, statement(OTHER_IMAGE)), key, ignore_tlog=True)


def test_non_intoto_payload_fails() -> None:
    key = new_key()
    bundle = dsse_bundle(key, b"hello", payload_type="text/plain")
    with pytest.raises(VerificationFailure, match="is not an in-toto statement"):
        verify(bundle, key, ignore_tlog=True)


def test_attestation_is_not_a_signature() -> None:
    key = new_key()
    raw = encode(dsse_bundle(key, statement(IMAGE, SLSA, {"buildType": "x"})))
    result = verify(raw, key, ignore_tlog=True)
    assert not result.is_image_signature
    layer = BundleLayer(raw=raw, manifest_digest="sha256:" + "ab" * 32)
    with pytest.raises(VerificationFailure, match=r"no matching signatures: .*an attestation \(https://slsa"):
        verify_bundle_signatures(
            [layer], image_digest=IMAGE, key=verifier(key), trusted_root=EMPTY_ROOT, ignore_tlog=True
        )
    statements = verify_bundle_attestations(
        [layer], image_digest=IMAGE, predicate_type=SLSA, key=verifier(key), trusted_root=EMPTY_ROOT, ignore_tlog=True
    )
    assert [s.predicate for s in statements] == [{"buildType": "x"}]


def test_plural_helpers_collect_each_bundles_error() -> None:
    key, other = new_key(), new_key(slot=1)
    good = BundleLayer(raw=encode(dsse_bundle(key, statement(IMAGE))))
    wrong_key = BundleLayer(raw=encode(dsse_bundle(other, statement(IMAGE))))
    wrong_subject = BundleLayer(raw=encode(dsse_bundle(key, statement(OTHER_IMAGE))))
    unusable = BundleLayer(raw=b"", problem="referrer x is not about image y")
    kwargs: dict[str, Any] = {"image_digest": IMAGE, "key": verifier(key), "trusted_root": EMPTY_ROOT}
    results = verify_bundle_signatures([wrong_key, good, unusable], ignore_tlog=True, **kwargs)
    assert len(results) == 1
    with pytest.raises(VerificationFailure) as info:
        verify_bundle_signatures([wrong_key, wrong_subject, unusable], ignore_tlog=True, **kwargs)
    message = info.value.message
    assert message.startswith("no matching signatures: invalid DSSE signature")
    assert "does not name the image digest" in message and "referrer x is not about image y" in message
    with pytest.raises(VerificationFailure, match=r"^no signatures found$"):
        verify_bundle_signatures([], **kwargs)
    with pytest.raises(VerificationFailure, match=r"^no matching attestations: no attestations of type"):
        verify_bundle_attestations([good], predicate_type=SLSA, ignore_tlog=True, **kwargs)


def test_the_referrer_annotation_only_skips_work() -> None:
    """A bundle whose (unsigned) annotation claims sign/v1 but holds an attestation is still not a signature."""
    key = new_key()
    layer = BundleLayer(raw=encode(dsse_bundle(key, statement(IMAGE, SLSA))), predicate_type="x")
    with pytest.raises(VerificationFailure, match=r"an attestation \(x\)"):
        verify_bundle_signatures([layer], image_digest=IMAGE, key=verifier(key), trusted_root=EMPTY_ROOT)
    lying = BundleLayer(
        raw=encode(dsse_bundle(key, statement(IMAGE, SLSA))), predicate_type="https://sigstore.dev/cosign/sign/v1"
    )
    with pytest.raises(VerificationFailure, match=r"an attestation \(https://slsa.dev/provenance/v1\)"):
        verify_bundle_signatures(
            [lying], image_digest=IMAGE, key=verifier(key), trusted_root=EMPTY_ROOT, ignore_tlog=True
        )


def test_message_signature_over_the_image_digest() -> None:
    key = new_key()
    log = TestLog()
    bundle = message_bundle(key, bytes.fromhex(IMAGE[7:]), log=log)
    result = verify(bundle, key, root=root_of(log))
    assert result.is_image_signature and result.statement is None
    assert result.integrated_time == 1_760_000_000
    with pytest.raises(VerificationFailure, match="message digest does not match"):
        verify(bundle, key, root=root_of(log), image=OTHER_IMAGE)


@pytest.mark.vectors
def test_key_policy_refuses_a_certificate_bundle() -> None:
    path = require_vectors("sigstore-conformance", "happy-path-v0.3", "bundle.sigstore.json")
    with pytest.raises(VerificationFailure, match="signed with a certificate, but the policy verifies with a key"):
        verify(path.read_bytes(), new_key(), image=None)


# -- transparency log


@pytest.mark.parametrize("kind", ["dsse/0.0.1", "dsse/0.0.2", "intoto/0.0.2"])
def test_logged_in_a_rekor_v1_style_log(kind: Any) -> None:
    key, log = new_key(), TestLog()
    log.filler(5)
    bundle = dsse_bundle(key, statement(IMAGE), log=log, kind=kind)
    result = verify(bundle, key, root=root_of(log))
    assert result.integrated_time == 1_760_000_000
    assert [t.timestamp() for t in result.timestamps] == [1_760_000_000]


def test_tlog_required_unless_ignored() -> None:
    key = new_key()
    with pytest.raises(VerificationFailure, match=r"no transparency log entry \(set rekor.ignoreTlog: true"):
        verify(dsse_bundle(key, statement(IMAGE)), key)


def test_rekor_v2_entry_checks_pass_but_a_timestamp_is_needed() -> None:
    """Rekor v2 entries have no integrated time: without an RFC 3161 timestamp there is no signing time. Every
    log check before that (proof, Ed25519 checkpoint, hashedrekord-over-DSSE body) passed to reach this error."""
    key, log = new_key(), TestLog(style="v2", origin="log2026.rekor.test")
    log.filler(9)
    bundle = dsse_bundle(key, statement(IMAGE), log=log, kind="hashedrekord/0.0.2")
    with pytest.raises(VerificationFailure, match=r"^no verified signing time"):
        verify(bundle, key, root=root_of(log))
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = b64(key.sign(b"other"))
    with pytest.raises(VerificationFailure, match="invalid DSSE signature"):
        verify(bundle, key, root=root_of(log))


def logged(**kwargs: Any) -> tuple[SigningKey, TestLog, dict[str, Any]]:
    key, log = new_key(), TestLog()
    log.filler(6)
    return key, log, dsse_bundle(key, statement(IMAGE), log=log, **kwargs)


def entry(bundle: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return found


def test_corrupted_proof_hash_fails() -> None:
    key, log, bundle = logged()
    hashes = entry(bundle)["inclusionProof"]["hashes"]
    hashes[1] = b64(bytes(a ^ b for a, b in zip(base64.b64decode(hashes[1]), b"\x01" + b"\x00" * 31, strict=True)))
    with pytest.raises(VerificationFailure, match="inclusion proof does not lead to its root hash"):
        verify(bundle, key, root=root_of(log))


def test_checkpoint_by_another_key_fails() -> None:
    key, log, bundle = logged()
    proof = entry(bundle)["inclusionProof"]
    proof["checkpoint"]["envelope"] = log.checkpoint(int(proof["treeSize"]), signer=new_key(slot=3))
    with pytest.raises(VerificationFailure, match="invalid checkpoint signature"):
        verify(bundle, key, root=root_of(log))


def test_checkpoint_of_another_tree_fails() -> None:
    key, log, bundle = logged()
    log.filler(2)
    entry(bundle)["inclusionProof"]["checkpoint"]["envelope"] = log.checkpoint()
    with pytest.raises(VerificationFailure, match=r"checkpoint tree size \d+ differs"):
        verify(bundle, key, root=root_of(log))


def test_cosigned_checkpoint_verifies() -> None:
    key, log, bundle = logged()
    proof = entry(bundle)["inclusionProof"]
    witness = new_key("ed25519", slot=9)
    text = proof["checkpoint"]["envelope"]
    note = text[: text.index("\n\n") + 1]
    proof["checkpoint"]["envelope"] = text + f"\u2014 witness.example {b64(b'wxyz' + witness.sign(note.encode()))}\n"
    assert verify(bundle, key, root=root_of(log)).integrated_time == 1_760_000_000


def test_invalid_set_fails() -> None:
    key, log, bundle = logged()
    entry(bundle)["integratedTime"] = "1760000001"
    with pytest.raises(VerificationFailure, match="unable to verify SET"):
        verify(bundle, key, root=root_of(log))


def test_log_not_in_trusted_root_fails() -> None:
    key, _log, bundle = logged()
    with pytest.raises(VerificationFailure, match="which the trusted root does not list"):
        verify(bundle, key, root=root_of(TestLog(slot=8)))


def test_log_key_expired_before_the_entry_fails() -> None:
    key, log, bundle = logged()
    root = parse_trusted_root(trusted_root(entries=[log.trust_entry(end="2025-01-01T00:00:00Z")]), source="expired log")
    with pytest.raises(VerificationFailure, match="not valid at the entry's integrated time"):
        verify(bundle, key, root=root)


def test_trusted_root_log_without_start_is_refused() -> None:
    key, log, bundle = logged()
    trust = log.trust_entry()
    del trust["publicKey"]["validFor"]
    root = parse_trusted_root(trusted_root(entries=[trust]), source="no start")
    with pytest.raises(ConfigurationError, match=r"tlogs\[0\].publicKey.validFor.start is missing"):
        verify(bundle, key, root=root)


def test_entry_about_another_envelope_fails() -> None:
    """A genuine, correctly proven log entry — of another signature — must not vouch for this bundle."""
    key, log = new_key(), TestLog()
    log.filler(4)
    bundle = dsse_bundle(key, statement(IMAGE), log=log)
    other = dsse_bundle(key, statement(IMAGE, predicate={"n": 2}), log=log)
    bundle["verificationMaterial"]["tlogEntries"] = other["verificationMaterial"]["tlogEntries"]
    with pytest.raises(VerificationFailure, match="transparency log entry payload hash does not match"):
        verify(bundle, key, root=root_of(log))


def test_entry_naming_another_key_fails() -> None:
    key, other, log = new_key(), new_key(slot=1), TestLog()
    payload = statement(IMAGE)
    bundle = dsse_bundle(key, payload)
    signature = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    body = entry_body("dsse/0.0.1", other, payload=payload, signature=signature)
    bundle["verificationMaterial"]["tlogEntries"] = [log_entry(log, body, kind="dsse/0.0.1")]
    with pytest.raises(VerificationFailure, match="transparency log entry key or certificate does not match"):
        verify(bundle, key, root=root_of(log))


def test_kind_version_must_match_the_body() -> None:
    key, log, bundle = logged()
    entry(bundle)["kindVersion"] = {"kind": "hashedrekord", "version": "0.0.1"}
    with pytest.raises(VerificationFailure, match=r"entry body is 'dsse'/'0\.0\.1' but the bundle says hashedrekord"):
        verify(bundle, key, root=root_of(log))


# -- structure


def base_bundle() -> dict[str, Any]:
    return dsse_bundle(new_key(), statement(IMAGE))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.9"), "unsupported bundle"),
        (lambda b: b.update(messageSignature={"signature": "AAAA"}), "exactly one of messageSignature and dsse"),
        (lambda b: b.pop("dsseEnvelope"), "exactly one of messageSignature and dsseEnvelope"),
        (lambda b: b["verificationMaterial"].pop("publicKey"), "exactly one of publicKey, certificate"),
        (
            lambda b: b["verificationMaterial"].update(x509CertificateChain={"certificates": []}),
            "exactly one of publicKey",
        ),
        (lambda b: b["dsseEnvelope"].update(payload="not base64!"), "DSSE payload is not base64"),
        (
            lambda b: b["verificationMaterial"].update(tlogEntries=[{"logIndex": "-1"}]),
            "kindVersion must be an object",
        ),
        (
            lambda b: b["verificationMaterial"].update(timestampVerificationData={"rfc3161Timestamps": [{}]}),
            r"rfc3161Timestamps\[0\] must be a base64 string",
        ),
    ],
)
def test_malformed_bundles_are_refused(mutate: Any, message: str) -> None:
    bundle = base_bundle()
    mutate(bundle)
    with pytest.raises(VerificationFailure, match=message):
        parse_bundle(encode(bundle))


def test_v02_bundle_needs_a_checkpoint() -> None:
    key, log = new_key(), TestLog()
    bundle = dsse_bundle(
        key, statement(IMAGE), log=log, media_type="application/vnd.dev.sigstore.bundle+json;version=0.2"
    )
    del entry(bundle)["inclusionProof"]["checkpoint"]
    with pytest.raises(VerificationFailure, match="needs an inclusion proof with a checkpoint"):
        parse_bundle(encode(bundle))


def test_oversized_and_non_json_bundles() -> None:
    with pytest.raises(VerificationFailure, match="not valid JSON"):
        parse_bundle(b"{")
    with pytest.raises(VerificationFailure, match="larger than"):
        parse_bundle(b" " * (17 * 1024 * 1024))


def test_base64_with_line_breaks_is_accepted() -> None:
    """protojson (cosign, sigstore-go) ignores line breaks in base64, and real bundles carry them."""
    key = new_key()
    bundle = dsse_bundle(key, statement(IMAGE))
    sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": "MIIB\nAAAA\n"}]
    }
    parsed = parse_bundle(encode(bundle))
    assert parsed.timestamps == (base64.b64decode("MIIBAAAA"),)
    assert parsed.signature == base64.b64decode(sig)


# -- Merkle proofs and checkpoints


def leads_to(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    try:
        return merkle_root_from_proof(leaf, index, size, path) == root
    except VerificationFailure:
        return False


def test_merkle_proofs_for_every_leaf_of_small_trees() -> None:
    log = TestLog()
    for size in range(1, 34):
        log.leaves = [bytes([i]) * 3 for i in range(size)]
        root = log.root()
        for index in range(size):
            leaf = hashlib.sha256(b"\x00" + log.leaves[index]).digest()
            path = log.proof(index)
            assert leads_to(leaf, index, size, path, root)
            if size > 1:
                # A hash short, a hash too many, or another position is never a proof (the tree size is bound
                # by the signed checkpoint, not by the path).
                assert not leads_to(leaf, index, size, path[:-1], root)
                assert not leads_to(leaf, index, size, [*path, path[0]], root)
                assert not leads_to(leaf, (index + 1) % size, size, path, root)
    with pytest.raises(VerificationFailure, match="outside a tree"):
        merkle_root_from_proof(b"\x00" * 32, 5, 5, [])


def test_checkpoint_parsing() -> None:
    log = TestLog(style="v2", origin="log.example")
    log.filler(3)
    cp = parse_checkpoint(log.checkpoint(extra_lines=["Timestamp: 1"]))
    assert (cp.origin, cp.size, cp.root_hash) == ("log.example", 3, log.root())
    assert cp.text.endswith(b"Timestamp: 1\n") and len(cp.signatures) == 1
    good = log.checkpoint()
    for broken, message in [
        (good.replace("\n\n", "\n"), "no blank line"),
        (good.split("\n\n")[0] + "\n\n", "no signature lines"),
        (good.replace("\n3\n", "\n03\n"), "tree size is not a decimal"),
        (good.replace("\u2014 ", "- "), "signature line is not"),
    ]:
        with pytest.raises(VerificationFailure, match=message):
            parse_checkpoint(broken)


def test_bundles_module_does_not_import_sigstore() -> None:
    code = "import sigward.verify.bundles, sigward.verify.referrers, sys; assert 'sigstore' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_results_are_frozen() -> None:
    key = new_key()
    result = verify(dsse_bundle(key, statement(IMAGE)), key, ignore_tlog=True)
    with pytest.raises(AttributeError):
        result.signer = "x"  # type: ignore[misc]
    assert copy.copy(result) == result

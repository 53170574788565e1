"""Every sigstore-conformance verification case through :func:`sigward.verify.bundles.verify_bundle`.

Each case folder (../shared/vectors/sigstore-conformance) is pinned in :data:`CASES` with its outcome and, for the
failures, a fragment of the message saying which check refused it — so a case that starts failing for another
reason (a parse error hiding a signature check, say) shows up. Folder names ending ``_fail`` must be refused.
Defaults come from the suite's README: artifact ``a.txt``, the GitHub Actions beacon identity and issuer, and the
public-good production trusted root (the copy sigstore-python ships) when the case has none. Cases with
``key.pub`` verify with that key (the managed-key path, which sigstore-python alone refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sigward.errors import SigwardError
from sigward.policy.models import KeylessAttestor
from sigward.verify.bundles import BundleResult, verify_bundle
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem
from sigward.verify.trust import load_trusted_root, parse_trusted_root
from tests.support.signing import new_key
from tests.support.vectors import require_vectors, vectors_dir

pytestmark = pytest.mark.vectors

DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"

PASS = (True, "")

# case → (verifies?, fragment of the refusal). Fragments name the check that decided: ours ("transparency log
# entry …", "checkpoint …", "RFC 3161 …", "invalid Sigstore bundle …") or sigstore-python's ("bundle verification
# failed: …", for the certificate chain and SCT it checks). Offline, every case decides: none is skipped.
CASES: dict[str, tuple[bool, str]] = {
    "bundle-empty-certificate-chain_fail": (False, "the certificate chain is empty"),
    "bundle-from-wrong-instance_fail": (False, "which the trusted root does not list"),
    "bundle-invalid-base64-signature_fail": (False, "messageSignature.signature is not valid base64"),
    "bundle-malformed-json_fail": (False, "not valid JSON"),
    "bundle-negative-log-index_fail": (False, "logIndex must be a non-negative 63-bit integer (got -1)"),
    "bundle-unknown-version_fail": (False, "unsupported bundle media type"),
    "bundle-with-root-cert_fail": (False, "the certificate chain contains a root certificate"),
    "bundle-with-sct-with-extensions": PASS,
    "checkpoint-bad-keyhint_fail": (False, "checkpoint carries no signature by the log"),
    "checkpoint-wrong-roothash_fail": (False, "checkpoint tree size 75610772 differs"),
    "dsse-invalid-sig_fail": (False, "invalid DSSE signature"),
    "dsse-mismatch-envelope_fail": (False, "transparency log entry payload hash does not match"),
    "dsse-mismatch-sig_fail": (False, "transparency log entry signatures do not match the envelope's signatures"),
    "happy-path-intoto-in-dsse-v3": PASS,
    "happy-path-v0.1": PASS,
    "happy-path-v0.2": PASS,
    "happy-path-v0.3": PASS,
    "happy-path-v0.3-new-mediaType": PASS,
    "inclusion-proof-corrupted-hash_fail": (False, "inclusion proof does not lead to its root hash"),
    "incorrect-public-key_fail": (False, "inclusion proof does not lead to its root hash"),
    "integrated-time-in-future_fail": (False, "certificate expired before observed time"),
    "intoto-expired-certificate_fail": (False, "certificate was issued after observed time"),
    "intoto-log-entry-mismatch_fail": (False, "transparency log entry signatures do not match"),
    "intoto-missing-inclusion-proof_fail": (False, "needs an inclusion proof with a checkpoint"),
    "intoto-set-outside-signing-cert-validity_fail": (False, "certificate expired before observed time"),
    "intoto-tsa-timestamp-outside-cert-validity_fail": (False, "certificate expired before observed time"),
    "intoto-with-custom-trust-root": PASS,  # sigstore-python 4.5 alone refuses intoto entries
    "invalid-checkpoint-signature_fail": (False, "invalid checkpoint signature"),
    "invalid-ct-key_fail": (False, "ctfe public key not found for embedded SCT"),
    "invalid-inclusion-proof_fail": (False, "needs an inclusion proof with a checkpoint"),
    "managed-key-and-trusted-root": PASS,  # sigstore-python alone refuses managed keys
    "managed-key-happy-path": PASS,  # likewise
    "managed-key-no-key_fail": (False, "signed with a managed key (verification material publicKey)"),
    # The case's key.pub is deliberately not a loadable key; see test_managed_key_with_another_real_key below.
    "managed-key-wrong-key_fail": (False, "failed to load public key from PEM"),
    "message-digest-mismatch_fail": (False, "the bundle's message digest does not match the artifact"),
    "rekor2-checkpoint-cosigned": PASS,
    "rekor2-checkpoint-missing-log-signature_fail": (False, "malformed checkpoint: no signature lines"),
    "rekor2-checkpoint-missing-origin_fail": (False, "malformed checkpoint: needs origin, tree size and root hash"),
    "rekor2-checkpoint-missing-root-hash_fail": (False, "malformed checkpoint: needs origin, tree size and root"),
    "rekor2-checkpoint-missing-size_fail": (False, "malformed checkpoint: needs origin, tree size and root hash"),
    "rekor2-checkpoint-multiple-cosigs": PASS,
    "rekor2-checkpoint-no-matching-signature_fail": (False, "invalid checkpoint signature"),
    "rekor2-checkpoint-origin-not-first": PASS,
    "rekor2-checkpoint-two-sigs-cosigned": PASS,
    "rekor2-checkpoint-two-sigs-from-origin": PASS,
    "rekor2-dsse-happy-path": PASS,
    "rekor2-dsse-invalid-sig_fail": (False, "invalid DSSE signature"),
    "rekor2-dsse-mismatch-envelope_fail": (False, "transparency log entry digest does not match the signed content"),
    "rekor2-dsse-mismatch-sig_fail": (False, "transparency log entry signature does not match the bundle's signature"),
    "rekor2-happy-path": PASS,
    "rekor2-no-inclusion-proof_fail": (False, "needs an inclusion proof with a checkpoint"),
    "rekor2-no-timestamp_fail": (False, "no verified signing time"),
    "rekor2-timestamp-outside-trust-root-tsa-validity_fail": (False, "outside the authority's validity period"),
    "rekor2-timestamp-outside-tsa-cert-validity_fail": (False, "not verified by a trusted timestamp authority"),
    "rekor2-timestamp-payload-mismatch_fail": (False, "Mismatch between messages"),
    "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail": (False, "is not a timestamp response"),
    "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail": (False, "not verified by a trusted timestamp"),
    "rekor2-timestamp-with-embedded-cert": PASS,
    "rekor2-timestamp-with-expired-cert-chain": PASS,
    "rekor2-timestamp-with-incorrect-time_fail": (False, "certificate expired before observed time"),
    "rekor2-timestamp-without-embedded-cert": PASS,
    "set-invalid-signature_fail": (False, "unable to verify SET"),
    "signature-mismatch_fail": (False, "message signature does not verify with the key"),
    "trust-root-tlog-missing-validity-start_fail": (False, "tlogs[1].publicKey.validFor.start is missing"),
    "trust-root-tlog-validity-end-inclusive": PASS,
    "trust-root-tsa-validity-end-inclusive": PASS,  # sigstore-python 4.5 alone treats the end as exclusive
    "wrong-hashedrekord-artifact_fail": (False, "transparency log entry hash does not match the signed artifact"),
    "wrong-hashedrekord-cert-and-sig_fail": (False, "transparency log entry signature does not match"),
    "wrong-hashedrekord-entry_fail": (False, "transparency log entry hash does not match the signed artifact"),
    "wrong-material_fail": (False, "the bundle's message digest does not match the artifact"),
}


def suite() -> Path:
    return require_vectors("sigstore-conformance")


@dataclass(frozen=True)
class Case:
    folder: Path

    def text(self, name: str, default: str) -> str:
        path = self.folder / name
        return path.read_text().strip() if path.exists() else default

    @property
    def artifact(self) -> bytes:
        path = self.folder / "artifact"
        return (path if path.exists() else self.folder.parent / "a.txt").read_bytes()

    def run(self, key: PublicKeyVerifier | None = None) -> BundleResult:
        root_path = self.folder / "trusted_root.json"
        root = (
            parse_trusted_root(root_path.read_bytes(), source=str(root_path))
            if root_path.exists()
            else load_trusted_root()
        )
        key_path = self.folder / "key.pub"
        if key is None and key_path.exists():
            key = PublicKeyVerifier(key=load_public_key_pem(key_path.read_bytes()), source=str(key_path))
        keyless = None
        if key is None:
            keyless = KeylessAttestor(
                subject=self.text("identity", DEFAULT_IDENTITY), issuer=self.text("issuer", DEFAULT_ISSUER)
            )
        return verify_bundle(
            (self.folder / "bundle.sigstore.json").read_bytes(),
            image_digest=None,
            artifact=self.artifact,
            key=key,
            keyless=keyless,
            certificates=None,
            trusted_root=root,
        )


def test_every_case_folder_is_pinned() -> None:
    folders = sorted(p.name for p in suite().iterdir() if p.is_dir())
    assert folders == sorted(CASES), "a case folder was added or removed: pin its outcome in CASES"
    for name, (passes, _) in CASES.items():
        assert passes != name.endswith("_fail"), f"{name}: the table contradicts the suite's naming"


@pytest.mark.parametrize("name", sorted(CASES))
def test_conformance_case(name: str) -> None:
    folder = vectors_dir() / "sigstore-conformance" / name
    if not folder.is_dir():
        suite()  # skips visibly when the vectors are absent
        pytest.fail(f"case folder {folder} is missing")
    passes, fragment = CASES[name]
    case = Case(folder)
    if passes:
        result = case.run()
        assert result.signer
        assert result.timestamps, "a verified bundle has a verified signing time"
        if result.statement is not None:
            assert result.statement.predicate_type
    else:
        with pytest.raises(SigwardError) as info:
            case.run()
        assert fragment in str(info.value)


def test_managed_key_with_another_real_key() -> None:
    """The suite's wrong-key case has an unloadable key; a well-formed wrong key must fail on the signature."""
    case = Case(suite() / "managed-key-happy-path")
    other = new_key(slot=5)
    with pytest.raises(SigwardError, match="message signature does not verify with the key"):
        case.run(PublicKeyVerifier(key=load_public_key_pem(other.public_pem)))


def test_managed_key_results() -> None:
    result = Case(suite() / "managed-key-happy-path").run()
    assert result.statement is None and not result.is_image_signature  # an artifact, not an image
    assert result.integrated_time is not None and len(result.timestamps) == 2  # Rekor time and a TSA time
    assert (
        result.signer
        == PublicKeyVerifier(
            key=load_public_key_pem((suite() / "managed-key-happy-path" / "key.pub").read_bytes())
        ).key_id
    )


def test_sigstore_python_alone_refuses_managed_key_bundles() -> None:
    """Why the managed-key path exists: sigstore-python insists on a certificate."""
    from sigstore.models import Bundle, InvalidBundle

    raw = (suite() / "managed-key-happy-path" / "bundle.sigstore.json").read_bytes()
    with pytest.raises(InvalidBundle, match="expected certificate in bundle"):
        Bundle.from_json(raw)

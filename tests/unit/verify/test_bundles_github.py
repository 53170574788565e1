"""GitHub artifact attestations through the bundle path, in-process: real TSA-only bundles of GitHub's own Sigstore
instance (no tlog entry, no SCT; time from an RFC 3161 token without embedded certificates) and a public-good bundle
of the same prober, with the trusted roots of the same day (../shared/vectors/github-attestations, README table).
Every valid case and its derived negatives."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from sigward.errors import SigwardError
from sigward.policy.models import CTLog, KeylessAttestor, Rekor
from sigward.verify.bundles import BundleResult, verify_bundle
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.support.vectors import vectors_dir

SAN = "https://github.com/actions/attest-build-provenance/.github/workflows/prober.yml@refs/heads/main"
ACTIONS = "https://token.actions.githubusercontent.com"
RELEASE_SAN = "https://dotcom.releases.github.com"
GH_1 = (
    "github-instance/actions-attest-build-provenance-attestation-13531551.sigstore.json",
    "sha256:b03d18ed0a16864ef2d2e559c660159a2170b9d086a1f42f570b1679326b90e6",
)
GH_2 = (
    "github-instance/actions-attest-build-provenance-attestation-13581567.sigstore.json",
    "sha256:658913cfebe8a49165264e2b5e54ad99b3bdbfbc8cd281b3cfaa949a21588f18",
)
PG = (
    "public-good/actions-attest-build-provenance-attestation-13532655.sigstore.json",
    "sha256:bb030cb9e028ff6d4051f2103b3b08f7e3928aa80a7d3626cef6e2553dc714b8",
)
RELEASE = (
    "release/github_release_bundle.json",
    "sha256:e15b593c6ab8d7725a3cc82226ef816cac6bf9c70eed383bd459295cc65f5ec3",
)


def folder() -> Path:
    path = vectors_dir() / "github-attestations"
    if not path.is_dir():
        pytest.skip(f"GitHub attestation vectors not present at {path} (SIGWARD_VECTORS)")
    return path


def root_doc(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((folder() / "trusted-roots" / name).read_bytes())
    return doc


def root(doc: dict[str, Any], source: str = "test root") -> TrustedRoot:
    return parse_trusted_root(json.dumps(doc).encode(), source=source)


def bundle(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((folder() / name).read_bytes())
    return doc


def actions(**kwargs: Any) -> KeylessAttestor:
    return KeylessAttestor(**{"subject": SAN, "issuer": ACTIONS, **kwargs})


def run(doc: dict[str, Any], digest: str, attestor: KeylessAttestor, trusted: TrustedRoot) -> BundleResult:
    raw = json.dumps(doc).encode()
    return verify_bundle(raw, image_digest=digest, key=None, keyless=attestor, certificates=None, trusted_root=trusted)


# -- mutations


def no_timestamps(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["verificationMaterial"].pop("timestampVerificationData")
    return out


def altered_token(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    stamp = out["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
    raw = bytearray(base64.b64decode(stamp["signedTimestamp"]))
    raw[-40] ^= 0x01  # inside the CMS signature
    stamp["signedTimestamp"] = base64.b64encode(bytes(raw)).decode()
    return out


def altered_payload(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    statement = json.loads(base64.b64decode(out["dsseEnvelope"]["payload"]))
    statement["predicate"]["buildDefinition"]["buildType"] = "https://evil.example/build"
    out["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return out


def without_tsas(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "timestampAuthorities": []}


def ca_generations_1_to_4(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "certificateAuthorities": doc["certificateAuthorities"][:4]}


@dataclass(frozen=True)
class Case:
    name: str
    vector: tuple[str, str]
    root: str
    attestor: Callable[[], KeylessAttestor] = actions
    mutate_bundle: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d
    mutate_root: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d
    digest: str = ""
    error: str | None = None  # None: verifies


CASES = [
    Case("github-instance-1", GH_1, "github.json"),
    Case("github-instance-2", GH_2, "github.json"),
    Case("public-good", PG, "public-good.json"),
    Case("release-under-release-policy", RELEASE, "github.json", lambda: KeylessAttestor(subject=RELEASE_SAN)),
    # negatives
    Case("release-under-actions-policy", RELEASE, "github.json", error="subject"),
    Case(
        "release-issuer-required",
        RELEASE,
        "github.json",
        lambda: KeylessAttestor(subject=RELEASE_SAN, issuer=ACTIONS),
        error="issuer",
    ),
    Case("github-bundle-public-good-root", GH_1, "public-good.json", error="the bundle has no transparency log entry"),
    # GitHub's root lists no tlog: the Rekor entry cannot count, and there is no token.
    Case("public-good-bundle-github-root", PG, "github.json", error="no verified signing time"),
    Case("token-removed", GH_1, "github.json", mutate_bundle=no_timestamps, error="no verified signing time"),
    Case("token-altered", GH_1, "github.json", mutate_bundle=altered_token, error="no verified signing time"),
    Case("root-without-tsas", GH_1, "github.json", mutate_root=without_tsas, error="no timestamp authority is trusted"),
    Case(
        "ca-generation-expired-at-gentime",
        GH_1,
        "github.json",
        mutate_root=ca_generations_1_to_4,
        error="certificate chain verification failed",
    ),
    Case(
        "wrong-san",
        GH_1,
        "github.json",
        lambda: actions(subject=SAN.replace("refs/heads/main", "refs/heads/other")),
        error="subject",
    ),
    Case("wrong-issuer", GH_1, "github.json", lambda: actions(issuer="https://accounts.google.com"), error="issuer"),
    Case(
        "wrong-extension",
        GH_1,
        "github.json",
        lambda: actions(additionalExtensions={"githubWorkflowRepository": "other/repo"}),
        error="githubWorkflowRepository",
    ),
    Case("wrong-digest", GH_1, "github.json", digest="sha256:" + "0" * 64, error="does not name the image digest"),
    Case("altered-payload", GH_1, "github.json", mutate_bundle=altered_payload, error="invalid DSSE signature"),
    Case(
        "public-good-token-only-policy-ignores-tlog",
        PG,
        "public-good.json",
        lambda: actions(rekor=Rekor(ignore_tlog=True)),
        error="certificate expired before observed time",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_github_attestation_bundles(case: Case) -> None:
    doc = case.mutate_bundle(bundle(case.vector[0]))
    trusted = root(case.mutate_root(root_doc(case.root)), source=case.root)
    digest = case.digest or case.vector[1]
    if case.error is None:
        result = run(doc, digest, case.attestor(), trusted)
        assert result.statement is not None
        assert result.timestamps, "a verified signing time"
        if case.vector[0].startswith("public-good"):
            assert result.integrated_time == 1763454699
        else:
            assert result.integrated_time is None  # TSA-only: the RFC 3161 genTime is the evidence
        return
    with pytest.raises(SigwardError) as info:
        run(doc, digest, case.attestor(), trusted)
    assert case.error in str(info.value)


def test_github_instance_time_is_the_tokens_gentime() -> None:
    result = run(bundle(GH_1[0]), GH_1[1], actions(), root(root_doc("github.json")))
    assert [t.isoformat() for t in result.timestamps] == ["2025-11-18T07:58:34+00:00"]
    assert (result.signer, result.issuer) == (SAN, ACTIONS)


def _pem_chain(doc: dict[str, Any], section: str, index: int) -> str:
    from cryptography import x509

    certs = doc[section][index]["certChain"]["certificates"]
    return "".join(
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
        .public_bytes(serialization.Encoding.PEM)
        .decode()
        for c in certs
    )


def test_cluster_policy_form_tsa_chain_and_roots_on_the_public_good_root() -> None:
    """A ClusterPolicy can carry GitHub's trust itself (keyless.roots + ctlog.tsaCertChain + rekor.ignoreTlog +
    ctlog.ignoreSCT) while the selected root is public-good: the TSA-only bundle verifies, at the token's time."""
    gh = root_doc("github.json")
    attestor = actions(
        roots=_pem_chain(gh, "certificateAuthorities", 4),
        ctlog=CTLog(tsa_cert_chain=_pem_chain(gh, "timestampAuthorities", 4), ignore_sct=True),
        rekor=Rekor(ignore_tlog=True),
    )
    result = run(bundle(GH_1[0]), GH_1[1], attestor, root(root_doc("public-good.json")))
    assert [t.isoformat() for t in result.timestamps] == ["2025-11-18T07:58:34+00:00"]
    # The same policy without the TSA chain: the public-good TSA does not vouch for GitHub's token.
    no_tsa = actions(roots=attestor.roots, ctlog=CTLog(ignore_sct=True), rekor=Rekor(ignore_tlog=True))
    with pytest.raises(SigwardError, match="expected a signed timestamp"):
        run(bundle(GH_1[0]), GH_1[1], no_tsa, root(root_doc("public-good.json")))
    # An older TSA generation does not verify the token either.
    old_tsa = actions(
        roots=attestor.roots,
        ctlog=CTLog(tsa_cert_chain=_pem_chain(gh, "timestampAuthorities", 0), ignore_sct=True),
        rekor=Rekor(ignore_tlog=True),
    )
    with pytest.raises(SigwardError, match="expected a signed timestamp"):
        run(bundle(GH_1[0]), GH_1[1], old_tsa, root(root_doc("public-good.json")))

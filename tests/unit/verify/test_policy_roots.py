"""Roots a policy allows (``sigward.dev/trusted-roots``, inline roots for IVPol): a bundle verifies against the allowed
root whose CA issued its leaf and never against any other; verdict keys carry every allowed root's fingerprint."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from sigward.deadline import Deadline
from sigward.errors import ConfigurationError, ExternalServiceError, SigwardError
from sigward.policy.loader import load_policy_text
from sigward.policy.models import KeylessAttestor
from sigward.policy.trustroots import MAX_TRUSTED_ROOT_BYTES, RootName, parse_root_names, trusted_roots_problems
from sigward.verify.bundles import BundleLayer, verify_bundle
from sigward.verify.engine import Verifier
from sigward.verify.trust import TrustedRoot, parse_trusted_root, roots_from_inline
from tests.support.github_attestations import ACTIONS, GH_1, PG, SAN, Vector, bundle_doc, bundle_entry, root_path
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump

ANNOTATION = "sigward.dev/trusted-roots"
HOST = "registry.example"


def root(name: str) -> TrustedRoot:
    return parse_trusted_root(root_path(name).read_bytes(), source=name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("public-good,github", (RootName.PUBLIC_GOOD, RootName.GITHUB)),
        (" github ", (RootName.GITHUB,)),
        ("github,public-good,github", (RootName.GITHUB, RootName.PUBLIC_GOOD)),
        ("", "empty root name"),
        ("public-good,,github", "empty root name"),
        ("gitlab", "unknown trusted root 'gitlab'"),
        ("GitHub", "unknown trusted root 'GitHub'"),  # names are exact: no case folding into another root
    ],
)
def test_parse_root_names(value: str, expected: Any) -> None:
    if isinstance(expected, tuple):
        assert parse_root_names(value) == expected
        assert trusted_roots_problems({ANNOTATION: value}) == []
        return
    with pytest.raises(ValueError, match=expected):
        parse_root_names(value)
    ((where, message),) = trusted_roots_problems({ANNOTATION: value})
    assert where == f'metadata.annotations["{ANNOTATION}"]' and expected in message


def run(vector: Vector, primary: TrustedRoot, *others: TrustedRoot) -> None:
    verify_bundle(
        json.dumps(bundle_doc(vector)).encode(),
        image_digest=vector.digest,
        key=None,
        keyless=KeylessAttestor(subject=SAN, issuer=ACTIONS),
        certificates=None,
        trusted_root=primary,
        also_trusted=others,
    )


@pytest.mark.parametrize(
    ("vector", "roots", "error"),
    [
        (GH_1, ("public-good.json", "github.json"), None),
        (GH_1, ("github.json", "public-good.json"), None),
        (PG, ("public-good.json", "github.json"), None),
        (PG, ("github.json", "public-good.json"), None),
        # negatives: the root that would verify is not among the allowed ones
        (GH_1, ("public-good.json",), "no transparency log entry"),
        (GH_1, ("public-good.json", "public-good.json"), "no transparency log entry"),
        (PG, ("github.json",), "no verified signing time"),
    ],
)
def test_bundle_root_chosen_among_allowed_only(vector: Vector, roots: tuple[str, ...], error: str | None) -> None:
    loaded = [root(name) for name in roots]
    if error is None:
        run(vector, *loaded)
        return
    with pytest.raises(SigwardError, match=error):
        run(vector, *loaded)


def policy(annotation: str | None) -> Any:
    doc = cluster_policy("p", [bundle_entry("registry.example/*")])
    if annotation is not None:
        doc["metadata"]["annotations"] = {ANNOTATION: annotation}
    return load_policy_text(dump(doc), "p.yaml").policies[0]


def test_verdict_key_carries_every_allowed_root() -> None:
    pg, gh = root("public-good.json"), root("github.json")
    current = {"github": gh}
    verifier = Verifier(source=MemorySignatureSource(), trusted_root=lambda: pg, github_root=lambda: current["github"])
    assert verifier.trust_fingerprint(policy(None), pg) == pg.fingerprint  # the key earlier versions stored
    assert verifier.trust_fingerprint(policy("public-good"), pg) == pg.fingerprint
    both = verifier.trust_fingerprint(policy("public-good,github"), pg)
    assert both == f"{pg.fingerprint},{gh.fingerprint}"
    assert verifier.trust_fingerprint(policy("github"), pg) == gh.fingerprint
    # GitHub rotates its root: a verdict made under the old one is never found again
    current["github"] = replace(gh, raw=gh.raw + b"\n")
    assert verifier.trust_fingerprint(policy("public-good,github"), pg) != both
    assert verifier.policy_roots(policy("github,public-good"), pg)[1] is pg


def test_unknown_root_name_is_a_load_problem() -> None:
    doc = cluster_policy("p", [bundle_entry("registry.example/*")])
    doc["metadata"]["annotations"] = {ANNOTATION: "github,sigstore-staging"}
    with pytest.raises(SigwardError, match="unknown trusted root 'sigstore-staging'"):
        load_policy_text(dump(doc), "p.yaml")


# -- inline roots (ImageValidatingPolicy cosign.trustedRoot.value)


def test_inline_roots_json_and_jsonl() -> None:
    jsonl = root_path("gh-attestation-trusted-root-2025-11.jsonl").read_text()
    roots = roots_from_inline(jsonl, where="spec.attestors[0].cosign.trustedRoot.value")
    assert len(roots) == 2 and not roots[1].tlogs
    run(GH_1, *roots)
    run(PG, *roots)
    (single,) = roots_from_inline(root_path("github.json").read_bytes(), where="x")
    run(GH_1, single)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", "empty"),
        ("{", "not JSON"),
        (json.dumps({"mediaType": "application/json"}), "is not a Sigstore trusted root"),
        (json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}), "lists no CA"),
        ("x" * (MAX_TRUSTED_ROOT_BYTES + 1), "larger than"),
    ],
)
def test_inline_roots_refused(value: str, error: str) -> None:
    where = "spec.attestors[0].cosign.trustedRoot.value"
    with pytest.raises(ConfigurationError, match=error) as info:
        roots_from_inline(value, where=where)
    assert where in info.value.message


def test_github_root_unavailable_is_an_error_verdict_never_a_pass() -> None:
    pg = root("public-good.json")

    def unreachable() -> TrustedRoot:
        raise ExternalServiceError("no trusted root yet from TUF repository https://tuf-repo.github.com: timed out")

    source = MemorySignatureSource()
    source.add_bundles(f"{HOST}/app", GH_1.digest, (BundleLayer(raw=json.dumps(bundle_doc(GH_1)).encode()),))
    verifier = Verifier(source=source, trusted_root=lambda: pg, github_root=unreachable)
    both = policy("public-good,github")
    assert verifier.trust_fingerprint(both, pg) == f"{pg.fingerprint},unavailable"
    (verdict,) = verifier.verify_images([f"{HOST}/app@{GH_1.digest}"], [both], deadline=Deadline.after(10))
    assert verdict.verdict.value == "error" and "tuf-repo.github.com" in verdict.message, verdict

"""An ImageValidatingPolicy attestor's ``cosign.trustedRoot`` at the engine, through the real registry: its checks
verify under that root only (the process-wide root is never read: here reading it fails the test), the reuse key
carries the inline root's fingerprint (a different root never serves the verdict), and each failure says why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sigward.admission.ivpol_cache import CachedChecks
from sigward.deadline import Deadline
from sigward.errors import ConfigurationError
from sigward.policy.loader import load_policy_text
from sigward.references import parse_image_reference
from sigward.registry import RegistryClient
from sigward.verify.ivpol import evaluate_image
from sigward.verify.plan import image_policy_key
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.integration.admission.test_ivpol_trusted_root import SAN_RE, TLOG, TSA, ivpol, root_text
from tests.support.github_attestations import ACTIONS, GH_1, PG, SLSA_V1, Vector, bundle_doc, no_timestamps, serve
from tests.support.ivpol_checks import checks_for
from tests.support.policies import dump
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.registry
CHECK = f"attestation:{SLSA_V1}:gh"


def no_default_root() -> TrustedRoot:
    raise ConfigurationError("the process-wide trusted root was read for an attestor with its own root")


def run(
    registry: LocalRegistry,
    client: RegistryClient,
    name: str,
    vector: Vector,
    root: str,
    doc: dict[str, Any],
    **kw: Any,
) -> tuple[Any, CachedChecks, Any]:
    image = serve(registry, f"ivroot/{name}", vector.digest, json.dumps(doc).encode())
    loaded = load_policy_text(dump(ivpol(registry.host, root_text(root), **kw)), "inline-root.yaml")
    (policy,) = loaded.image_policies
    checks = checks_for(client, trusted_root=no_default_root, github_root=no_default_root)
    (verdict,) = evaluate_image([policy], image, checks=checks, deadline=Deadline.after(20))
    return verdict, checks, policy


def key_for(policy: Any, vector: Vector, registry: LocalRegistry, name: str, root: str) -> Any:
    ref = parse_image_reference(f"{registry.host}/ivroot/{name}@{vector.digest}")
    fingerprint = parse_trusted_root(root_text(root).encode(), source=root).fingerprint
    return image_policy_key(policy.content_hash, CHECK, ref, vector.digest, trust_fingerprint=fingerprint)


def test_inline_root_keys_the_verdict_and_is_the_only_root(registry: LocalRegistry, client: RegistryClient) -> None:
    verdict, checks, policy = run(registry, client, "keyed", GH_1, "github.json", bundle_doc(GH_1))
    assert verdict.verdict.value == "pass", verdict
    assert checks.cache.get(key_for(policy, GH_1, registry, "keyed", "github.json")) is not None
    # the same check under another root's fingerprint was never made
    assert checks.cache.get(key_for(policy, GH_1, registry, "keyed", "public-good.json")) is None


@pytest.mark.parametrize(
    ("name", "vector", "root", "mutate", "kw", "reason", "kyverno"),
    [
        (
            "gh-on-public-good",
            GH_1,
            "public-good.json",
            None,
            {"ignore_tlog": False},
            "no transparency log entry",
            TLOG,
        ),
        ("gh-on-public-good-tlog-off", GH_1, "public-good.json", None, {}, "certificate", TSA),
        ("pg-on-github", PG, "github.json", None, {"ignore_tlog": False}, "no verified signing time", ""),
        ("gh-token-removed", GH_1, "github.json", no_timestamps, {}, "expected a signed timestamp", TSA),
        (
            "gh-wrong-subject",
            GH_1,
            "github.json",
            None,
            {"identity": {"issuer": ACTIONS, "subjectRegExp": "^https://github\\.com/other/.*$"}},
            "subject mismatch",
            "",
        ),
        (
            "gh-wrong-issuer",
            GH_1,
            "github.json",
            None,
            {"identity": {"issuer": "https://accounts.google.com", "subjectRegExp": SAN_RE}},
            "issuer mismatch",
            "",
        ),
    ],
)
def test_inline_root_failure_reasons(
    registry: LocalRegistry,
    client: RegistryClient,
    name: str,
    vector: Vector,
    root: str,
    mutate: Any,
    kw: Any,
    reason: str,
    kyverno: str,
) -> None:
    doc = bundle_doc(vector)
    verdict, checks, policy = run(registry, client, name, vector, root, mutate(doc) if mutate else doc, **kw)
    assert verdict.verdict.value == "fail", verdict
    # the denial names the missed evidence threshold in Kyverno's (sigstore-go's) words, and only that
    assert verdict.message == "attestation not verified" + (f": {kyverno}" if kyverno else ""), verdict.message
    check = checks.cache.get(key_for(policy, vector, registry, name, root))
    assert check is not None and check.verdict.value == "fail", check
    assert reason in check.message, check.message

"""One trusted root per image verification: the engine snapshots the root once per image context and every check
(static-key tlog keys, keyless and certificate chains, SCTs, bundles, attestations, entries with their own
credentials) uses that snapshot, and admission's verdict key carries the same snapshot's fingerprint. The root
source here is a double whose ``current()`` returns another root on every call, as if a background TUF refresh
swapped it between any two steps (regression: the engine asked for the root once per step)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sigward.admission.review import parse_review
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.deadline import Deadline
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.references import parse_image_reference
from sigward.verify import bundles, keyless, rekor
from sigward.verify.engine import Verifier
from sigward.verify.plan import plan_rule
from sigward.verify.results import Verdict
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.support.admission import pod, pod_request, review
from tests.support.fulcio import make_fulcio, trusted_root_json
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump
from tests.support.signing import new_key

HOST = "registry.test"
DIGEST = "sha256:" + "5" * 64
OTHER_DIGEST = "sha256:" + "6" * 64
IMAGE = f"{HOST}/team/app@{DIGEST}"
OTHER_IMAGE = f"{HOST}/team/other@{OTHER_DIGEST}"
ROOTS = tuple(parse_trusted_root(trusted_root_json(make_fulcio(i)), source=f"root-{i}") for i in range(3))
KEY = new_key("p256", slot=81)
KEYLESS = {
    "keyless": {
        "subject": "dev@example.com",
        "issuer": "https://issuer.example",
        "rekor": {"url": "https://rekor.sigstore.dev"},
    }
}


@dataclass
class SwappingRoots:
    """A root source that rotates on every call."""

    calls: int = 0

    def __call__(self) -> TrustedRoot:
        root = ROOTS[self.calls % len(ROOTS)]
        self.calls += 1
        return root


@dataclass
class Seen:
    """The root each check received, in order."""

    roots: list[tuple[str, str]] = field(default_factory=list)

    def fingerprints(self) -> set[str]:
        return {fp for _, fp in self.roots}


def _spy(seen: Seen, name: str, real: Callable[..., Any], position: int | None = None) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        root = args[position] if position is not None else kwargs["trusted_root"]
        seen.roots.append((name, root.fingerprint))
        return real(*args, **kwargs)

    return wrapper


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    """Record the root handed to every check the engine calls (the engine looks these up at call time)."""
    record = Seen()
    for module, name in (
        (keyless, "verify_signatures_by_certificate"),
        (keyless, "verify_attestations_by_certificate"),
        (bundles, "verify_bundle_signatures"),
        (bundles, "verify_bundle_attestations"),
        (bundles, "verify_bundle"),
    ):
        monkeypatch.setattr(module, name, _spy(record, name, getattr(module, name)))
    monkeypatch.setattr(rekor, "tlog_options", _spy(record, "tlog_options", rekor.tlog_options, position=1))
    yield record


def policies() -> list[Policy]:
    """Checks of every kind that read the root, in two rules of two policies, one entry with its own credentials."""
    keys_with_tlog = {"keys": {"publicKeys": KEY.public_pem}}
    first = cluster_policy(
        "first",
        [
            {
                "imageReferences": [f"{HOST}/*"],
                "attestors": [{"count": 1, "entries": [keys_with_tlog, KEYLESS]}],
            },
            {
                "imageReferences": [f"{HOST}/*"],
                "attestations": [{"type": "https://example.com/p/v1", "attestors": [{"entries": [KEYLESS]}]}],
            },
            {
                "imageReferences": [f"{HOST}/*"],
                "type": "SigstoreBundle",
                "imageRegistryCredentials": {"providers": ["default"]},
                "attestors": [{"entries": [KEYLESS]}],
            },
        ],
    )
    second = cluster_policy("second", [{"imageReferences": [f"{HOST}/*"], "attestors": [{"entries": [KEYLESS]}]}])
    return list(load_policy_text(dump(first, second), "p.yaml").policies)


def verifier(roots: SwappingRoots) -> Verifier:
    source = MemorySignatureSource()  # unsigned images: every check still receives its root before it fails
    return Verifier(source=source, trusted_root=roots, source_for_providers=lambda providers: source)


def test_every_check_of_one_image_sees_one_root(seen: Seen) -> None:
    roots = SwappingRoots()
    results = verifier(roots).verify_images([IMAGE], policies(), deadline=Deadline.after(5))
    assert [r.verdict for r in results] == [Verdict.FAIL, Verdict.FAIL]
    names = {name for name, _ in seen.roots}
    assert {"tlog_options", "verify_signatures_by_certificate", "verify_attestations_by_certificate"} <= names
    assert {"verify_bundle_signatures", "verify_bundle_attestations"} <= names
    assert len(seen.roots) > 5
    assert seen.fingerprints() == {ROOTS[0].fingerprint}  # the snapshot, through every step
    assert roots.calls == 1  # one snapshot for the image


def test_each_image_takes_its_own_snapshot(seen: Seen) -> None:
    """The twin: the double really swaps between snapshots, so a second image sees the next root (and only it)."""
    roots = SwappingRoots()
    verifier(roots).verify_images([IMAGE], policies(), deadline=Deadline.after(5))
    verifier(roots).verify_images([OTHER_IMAGE], policies(), deadline=Deadline.after(5))
    assert roots.calls == 2
    assert seen.fingerprints() == {ROOTS[0].fingerprint, ROOTS[1].fingerprint}


def test_admission_key_uses_the_snapshot_the_checks_used(seen: Seen) -> None:
    roots = SwappingRoots()
    loaded = policies()[1:]  # one rule: one unit, one snapshot
    service = AdmissionService(
        policies=lambda: loaded, verifier=verifier(roots), settings=AdmissionSettings(deadline_seconds=5)
    )
    try:
        decision = service.decide(parse_review(review(pod_request(pod(IMAGE)))), mode="mutate")
    finally:
        service.close()
    assert not decision.allowed
    # one snapshot for the checks; the in-memory look-up before them (cache hits answered without verifying) may take
    # the root current at that moment — what matters is the key the result is stored under, asserted below
    assert roots.calls <= 2
    (fingerprint,) = seen.fingerprints()
    policy = loaded[0]
    plan = plan_rule(policy, policy.spec.rules[0], parse_image_reference(IMAGE))
    assert plan is not None
    # the (briefly cached) failure sits under the key of the root the checks used, and under no other root's key
    assert service.cache.get(plan.key(DIGEST, trust_fingerprint=fingerprint)) is not None
    for other in ROOTS:
        if other.fingerprint != fingerprint:
            assert service.cache.get(plan.key(DIGEST, trust_fingerprint=other.fingerprint)) is None


def _keyless_key(extra: dict[str, Any]) -> object:
    entry = {"keyless": {**KEYLESS["keyless"], **extra}}
    doc = cluster_policy("p", [{"imageReferences": [f"{HOST}/*"], "attestors": [{"entries": [entry]}]}])
    (policy,) = load_policy_text(dump(doc), "p.yaml").policies
    plan = plan_rule(policy, policy.spec.rules[0], parse_image_reference(IMAGE))
    assert plan is not None
    return plan.key(DIGEST, trust_fingerprint=ROOTS[0].fingerprint)


OTHER_PEM = new_key("p256", slot=82).public_pem


@pytest.mark.parametrize(
    "override",
    [
        {"roots": OTHER_PEM},
        {"rekor": {"url": "https://rekor.sigstore.dev", "pubkey": OTHER_PEM}},
        {"ctlog": {"pubkey": OTHER_PEM}},
    ],
    ids=["roots", "rekor.pubkey", "ctlog.pubkey"],
)
def test_policy_trust_overrides_are_in_the_key(override: dict[str, Any]) -> None:
    """Trust material a policy carries itself is part of its content hash, so of every verdict key."""
    assert _keyless_key({}) == _keyless_key({})
    assert _keyless_key(override) != _keyless_key({})
    assert _keyless_key(override) != _keyless_key({**override, "subject": "other@example.com"})

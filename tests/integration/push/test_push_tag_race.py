"""Regression: a pushed signature must verify its image at once, although CNCF distribution notifies before it links
the tag (``PutManifest``: ``manifests.Put`` fires the event, ``Tags().Tag()`` comes after).

Deterministic on the real docker-registry: the signature manifest is pushed *by digest only*, so its
``sha256-<hex>.sig`` tag really answers 404 — the registry's exact state while the notification races the tag link
— and the push event names the tag and the manifest's digest. sigward reads it through a FaultProxy (which records
what was asked). Negative twins: the hinted manifest is no valid signature for the subject (another image's,
another key's, missing), a hint for a tag sigward never reads, a hint for another repository, a linked tag that wins
over the event, and nothing hinted outliving its evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sigward.deadline import Deadline
from sigward.events import PushEvent
from sigward.policy.loader import load_policy_text
from sigward.push.service import PushService, PushSettings
from sigward.references import Repository, parse_image_reference
from sigward.registry import CredentialStore, RegistryClient
from sigward.registry.hints import TagHint, TagHints
from sigward.store import StoredStatus
from sigward.store.memory import MemoryStore
from sigward.verify.caching import CachingSignatureSource
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource, signature_tag
from sigward.verify.plan import plan_image
from sigward.verify.results import Verdict
from tests.support.faults import FaultProxy
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry, local_config, sha256_digest
from tests.support.signing import SignedLayer, attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
KEY = new_key("p256", slot=75)
OTHER_KEY = new_key("p256", slot=76)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ABSENT = "sha256:" + "0" * 64


class Unlinked:
    """Pushes manifests by digest only: the tag it was asked for stays unlinked, as in distribution between
    ``manifests.Put`` and ``Tags().Tag()``."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry

    def push_blob(self, repo: str, data: bytes) -> str:
        return self.registry.push_blob(repo, data)

    def push_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        return self.registry.push_manifest(repo, sha256_digest(raw), raw, media_type)


@dataclass
class Stack:
    registry: LocalRegistry
    proxy: FaultProxy
    client: RegistryClient

    def service(self, store: MemoryStore) -> PushService:
        policies = load_policy_text(dump(policy(self.proxy.host)), "p.yaml").policies
        return PushService(
            policies=lambda: policies,
            verifier=Verifier(source=RegistrySignatureSource(self.client)),
            store=store,
            settings=PushSettings(grace_seconds=0),  # a failure is recorded at once, not retried
        )

    def event(self, repo: str, *, tag: str, digest: str, event_id: str = "e1") -> PushEvent:
        return PushEvent(
            source="distribution",
            event_id=event_id,
            action="push",
            registry=self.proxy.host,
            repository=repo,
            digest=digest,
            tag=tag,
            media_type=OCI_MANIFEST,
        )


def policy(host: str) -> dict[str, Any]:
    return cluster_policy("require-signed", [key_verification([f"{host}/race/*"], [keys_entry(KEY.public_pem)])])


@pytest.fixture
def stack(registry: LocalRegistry) -> Iterator[Stack]:
    with (
        FaultProxy(registry.url) as proxy,
        RegistryClient(local_config(proxy), credentials=CredentialStore.empty()) as client,
    ):
        yield Stack(registry, proxy, client)


def unlinked_signature(registry: LocalRegistry, repo: str, subject: str, layers: list[SignedLayer]) -> str:
    return attach_signatures(Unlinked(registry), repo, subject, layers)


def manifest_gets(proxy: FaultProxy, reference: str) -> int:
    return sum(1 for s in proxy.seen() if s.method == "GET" and s.path.endswith(f"/manifests/{reference}"))


# case, how the hinted manifest is made (registry, repo, subject) -> digest, event tag suffix, stored verdict
def _good(r: LocalRegistry, repo: str, subject: str) -> str:
    return unlinked_signature(r, repo, subject, [signed_layer(KEY, image_digest=subject)])


def _other_image(r: LocalRegistry, repo: str, subject: str) -> str:
    other = r.push_image(repo, tag="other")
    return unlinked_signature(r, repo, subject, [signed_layer(KEY, image_digest=other)])


def _other_key(r: LocalRegistry, repo: str, subject: str) -> str:
    return unlinked_signature(r, repo, subject, [signed_layer(OTHER_KEY, image_digest=subject)])


def _absent(r: LocalRegistry, repo: str, subject: str) -> str:
    return ABSENT


CASES = [
    ("race", _good, "sig", StoredStatus.PASS),
    ("signs-another-image", _other_image, "sig", StoredStatus.FAIL),
    ("another-key", _other_key, "sig", StoredStatus.FAIL),
    ("digest-not-in-registry", _absent, "sig", StoredStatus.UNSIGNED),
    ("tag-never-read", _good, "sbom", StoredStatus.UNSIGNED),
]


@pytest.mark.parametrize(("case", "make", "suffix", "want"), CASES, ids=[c[0] for c in CASES])
def test_signature_push_verifies_its_image_although_distribution_has_not_linked_the_tag(
    stack: Stack, case: str, make: Callable[[LocalRegistry, str, str], str], suffix: str, want: StoredStatus
) -> None:
    repo = f"race/{case}"
    subject = stack.registry.push_image(repo, tag="v1")
    hinted = make(stack.registry, repo, subject)
    tag = signature_tag(subject, suffix)
    assert manifest_gets(stack.proxy, tag) == 0
    store = MemoryStore()
    outcome = stack.service(store).handle(stack.event(repo, tag=tag, digest=hinted), deadline=Deadline.after(10))
    assert outcome.status == "recorded", outcome
    assert outcome.digest == subject
    assert [v.verdict for v in store.for_digest(subject)] == [want], outcome
    # the tag really answered 404 (the race), and only a hint for a tag sigward reads sends it to the digest
    assert manifest_gets(stack.proxy, signature_tag(subject)) >= 1
    assert manifest_gets(stack.proxy, hinted) == (1 if suffix == "sig" else 0)


def test_a_linked_tag_wins_over_the_event(stack: Stack) -> None:
    repo = "race/linked"
    subject = stack.registry.push_image(repo, tag="v1")
    attach_signatures(stack.registry, repo, subject, [signed_layer(KEY, image_digest=subject)])
    bogus = unlinked_signature(stack.registry, repo, subject, [signed_layer(OTHER_KEY, image_digest=subject)])
    store = MemoryStore()
    event = stack.event(repo, tag=signature_tag(subject), digest=bogus)
    outcome = stack.service(store).handle(event, deadline=Deadline.after(10))
    assert [v.verdict for v in store.for_digest(subject)] == [StoredStatus.PASS], outcome
    assert manifest_gets(stack.proxy, bogus) == 0


def _evaluate(verifier: Verifier, host: str, repo: str, subject: str, hints: TagHints) -> Verdict:
    policies = load_policy_text(dump(policy(host)), "p.yaml").policies
    (plan,) = plan_image(policies, parse_image_reference(f"{host}/{repo}@{subject}"))
    return verifier.evaluate(plan, deadline=Deadline.after(10), digest=subject, tag_hints=hints).verdict


@pytest.mark.parametrize(
    ("hinted_repo", "want"), [("race/scoped", Verdict.PASS), ("race/elsewhere", Verdict.FAIL)], ids=["same", "other"]
)
def test_a_hint_for_another_repository_is_ignored(stack: Stack, hinted_repo: str, want: Verdict) -> None:
    repo = "race/scoped"
    subject = stack.registry.push_image(repo, tag="v1")
    sig = unlinked_signature(stack.registry, repo, subject, [signed_layer(KEY, image_digest=subject)])
    hint = TagHint(Repository(stack.proxy.host, hinted_repo), signature_tag(subject), sig)
    verifier = Verifier(source=RegistrySignatureSource(stack.client))
    assert _evaluate(verifier, stack.proxy.host, repo, subject, TagHints((hint,))) == want


def test_a_hinted_result_never_outlives_its_evaluation(stack: Stack) -> None:
    """Even through the caching source admission uses: the hinted pass is not remembered, and an earlier cached
    "no signature" does not hide the hinted manifest."""
    repo = "race/cached"
    subject = stack.registry.push_image(repo, tag="v1")
    sig = unlinked_signature(stack.registry, repo, subject, [signed_layer(KEY, image_digest=subject)])
    hints = TagHints((TagHint(Repository(stack.proxy.host, repo), signature_tag(subject), sig),))
    verifier = Verifier(source=CachingSignatureSource(RegistrySignatureSource(stack.client)))
    host = stack.proxy.host
    assert _evaluate(verifier, host, repo, subject, TagHints()) == Verdict.FAIL
    assert _evaluate(verifier, host, repo, subject, hints) == Verdict.PASS
    assert _evaluate(verifier, host, repo, subject, TagHints()) == Verdict.FAIL


def image_policy(host: str) -> Any:
    """An ImageValidatingPolicy requiring KEY's signature (checks build their own contexts: the hinted verifier)."""
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "signed-at-push"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                ]
            },
            "matchImageReferences": [{"glob": f"{host}/race/*"}],
            "attestors": [
                {"name": "k", "cosign": {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}}
            ],
            "validations": [
                {
                    "expression": "images.containers.map(i, verifyImageSignatures(i, [attestors.k])).all(n, n > 0)",
                    "message": "not signed by the team key",
                }
            ],
        },
    }
    (loaded,) = load_policy_text(dump(doc), "ivpol.yaml").image_policies
    return loaded


@pytest.mark.parametrize(
    ("case", "make", "want"),
    [("ivpol-race", _good, "pass"), ("ivpol-another-key", _other_key, "fail")],
    ids=["race", "another-key"],
)
def test_image_validating_policies_see_the_unlinked_signature_too(
    stack: Stack, case: str, make: Callable[[LocalRegistry, str, str], str], want: str
) -> None:
    repo = f"race/{case}"
    subject = stack.registry.push_image(repo, tag="v1")
    hinted = make(stack.registry, repo, subject)
    loaded = image_policy(stack.proxy.host)
    service = PushService(
        policies=lambda: (),
        image_policies=lambda: (loaded,),
        verifier=Verifier(source=RegistrySignatureSource(stack.client)),
        store=MemoryStore(),
        settings=PushSettings(grace_seconds=0),
    )
    outcome = service.handle(stack.event(repo, tag=signature_tag(subject), digest=hinted), deadline=Deadline.after(10))
    assert outcome.status == "recorded", outcome
    assert [r.verdict for r in outcome.rules] == [want], outcome
    assert manifest_gets(stack.proxy, hinted) >= 1

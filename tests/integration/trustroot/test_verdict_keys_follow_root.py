"""Verdict keys carry the fingerprint of the trusted root the verification used (issue 11/12 follow-up): a verdict
cached or stored under root A is reused while A is in use (not one registry request) and never after a TUF refresh
to root B (admission verifies again, the push-time record is not found). Real parts: the local registry, a TUF
repository on 127.0.0.1, python-tuf's client behind :class:`TrustRootHolder`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.admission.review import parse_review
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.events import PushEvent
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.push.service import PushService, PushSettings
from sigward.registry import RegistryClient
from sigward.store.memory import MemoryStore
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource
from sigward.verify.tuf import TrustRootHolder, TrustRootSource
from tests.support.admission import pod, pod_request, review
from tests.support.fulcio import make_fulcio, trusted_root_json
from tests.support.memory import stored_verdict
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer
from tests.support.tuf_repo import TufRepository

ROOT_A = trusted_root_json(make_fulcio(0))
ROOT_B = trusted_root_json(make_fulcio(1))
KEY = new_key("p256", slot=71)


@pytest.fixture
def repo() -> Iterator[TufRepository]:
    with TufRepository({"trusted_root.json": ROOT_A}) as served:
        yield served


@pytest.fixture
def holder(repo: TufRepository, tmp_path: Path) -> TrustRootHolder:
    """Starts with root A (the bundled fallback); ``rotate`` publishes B and refreshes over TUF."""
    source = TrustRootSource(
        url=repo.url, bootstrap_root=repo.bootstrap_root, cache_dir=tmp_path / "tuf", fallback=ROOT_A
    )
    return TrustRootHolder(source)


def rotate(repo: TufRepository, holder: TrustRootHolder) -> None:
    repo.publish({"trusted_root.json": ROOT_B})
    assert holder.refresh()
    assert holder.current().raw == ROOT_B


@pytest.fixture
def image(registry: LocalRegistry) -> str:
    digest = registry.push_image("trust/app", tag="v1")
    attach_signatures(registry, "trust/app", digest, [signed_layer(KEY, image_digest=digest)])
    return f"{registry.host}/trust/app@{digest}"


def policy(registry: LocalRegistry) -> Policy:
    doc = cluster_policy("signed", [key_verification([f"{registry.host}/trust/*"], [keys_entry(KEY.public_pem)])])
    (loaded,) = load_policy_text(dump(doc), "p.yaml").policies
    return loaded


def admission(verifier: Verifier, policies: list[Policy], store: MemoryStore | None = None) -> AdmissionService:
    return AdmissionService(
        policies=lambda: policies, verifier=verifier, settings=AdmissionSettings(deadline_seconds=10), store=store
    )


def admit(service: AdmissionService, image: str) -> tuple[bool, bool]:
    """(allowed, answered from a reused verdict)."""
    decision = service.decide(parse_review(review(pod_request(pod(image)))), mode="mutate")
    (check,) = decision.checks
    return decision.allowed, check.cached


def test_admission_cache_reused_under_the_same_root_and_not_after_a_refresh(
    registry: LocalRegistry, image: str, client: RegistryClient, repo: TufRepository, holder: TrustRootHolder
) -> None:
    verifier = Verifier(source=RegistrySignatureSource(client), trusted_root=holder.current)
    service = admission(verifier, [policy(registry)])
    try:
        assert admit(service, image) == (True, False)
        verified_once = client.stats.total
        assert verified_once > 0

        assert admit(service, image) == (True, True)  # root unchanged: reused
        assert client.stats.total == verified_once  # not one registry request

        rotate(repo, holder)
        assert admit(service, image) == (True, False)  # root B: verified again, not answered from A's verdict
        assert client.stats.total > verified_once
        after_b = client.stats.total
        assert admit(service, image) == (True, True)  # and B's verdict is reused in turn
        assert client.stats.total == after_b
    finally:
        service.close()


def test_push_record_found_under_the_same_root_and_missed_after_a_refresh(
    registry: LocalRegistry, image: str, client: RegistryClient, repo: TufRepository, holder: TrustRootHolder
) -> None:
    verifier = Verifier(source=RegistrySignatureSource(client), trusted_root=holder.current)
    policies = [policy(registry)]
    store = MemoryStore()
    digest = image.rpartition("@")[2]
    push = PushService(policies=lambda: policies, verifier=verifier, store=store, settings=PushSettings())
    event = PushEvent(
        source="distribution",
        event_id="e1",
        action="push",
        registry=registry.host,
        repository="trust/app",
        digest=digest,
        tag="v1",
        media_type="application/vnd.oci.image.manifest.v1+json",
    )
    assert push.handle(event).status == "recorded"
    root_a = holder.current()
    assert stored_verdict(store, policies[0], image, digest, now=time.time(), root=root_a) == "pass"

    # Admission under root A: the push-time record answers, not one registry request.
    service = admission(verifier, policies, store)
    try:
        before = client.stats.total
        assert admit(service, image) == (True, True)
        assert client.stats.total == before
    finally:
        service.close()

    rotate(repo, holder)
    assert (
        stored_verdict(store, policies[0], image, digest, now=time.time(), root=holder.current()) is None
    )  # lookup misses
    fresh = admission(verifier, policies, store)  # a new instance: nothing cached in memory
    try:
        before = client.stats.total
        assert admit(fresh, image) == (True, False)  # verified again under B
        assert client.stats.total > before
    finally:
        fresh.close()
    assert stored_verdict(store, policies[0], image, digest, now=time.time(), root=holder.current()) == "pass"  # B's

"""AdmissionService decisions over an in-memory signature source: caching (positive, negative, none for errors),
single flight, policy-hash invalidation, Enforce/Audit/failurePolicy as a table."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from sigward.admission.review import AdmissionRequest, parse_review
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.references import ImageReference, Repository
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from tests.support.admission import pod, pod_request, review
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import SignedLayer, new_key, signed_layer

HOST = "registry.test"
SIGNED = f"{HOST}/app/signed:v1"
UNSIGNED = f"{HOST}/app/unsigned:v1"
DOWN = f"{HOST}/app/down:v1"
D_SIGNED = "sha256:" + "1" * 64
D_UNSIGNED = "sha256:" + "2" * 64


def layer(s: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))


class Source(MemorySignatureSource):
    """Counts requests, can be slowed down, and fails for the `down` repository."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.lock = threading.Lock()

    def resolve_digest(self, ref: ImageReference, *, deadline: Deadline) -> str:
        time.sleep(self.delay)
        with self.lock:
            if ref.path == "app/down":
                self.requests += 1
                raise ExternalServiceError("registry.test unreachable")
            return super().resolve_digest(ref, deadline=deadline)

    def signature_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        time.sleep(self.delay)
        with self.lock:
            return super().signature_layers(repo, image_digest, deadline=deadline, tag_prefix=tag_prefix)


def make_source(delay: float = 0.0) -> Source:
    source = Source(delay)
    source.add_image(SIGNED, D_SIGNED)
    source.add_image(UNSIGNED, D_UNSIGNED)
    source.add_signatures(f"{HOST}/app/signed", D_SIGNED, (layer(signed_layer(new_key(), image_digest=D_SIGNED)),))
    return source


def policies(*, action: str = "Enforce", failure_policy: str = "Fail", slot: int = 0) -> list[Policy]:
    doc = cluster_policy(
        "p",
        [
            key_verification(
                [f"{HOST}/*"], [keys_entry(new_key(slot=slot).public_pem)], mutate_digest=action == "Enforce"
            )
        ],
        action=action,
        failure_policy=failure_policy,
    )
    return list(load_policy_text(dump(doc), "p.yaml").policies)


def service(source: Source, current: Sequence[Policy] | None = None) -> tuple[AdmissionService, list[Sequence[Policy]]]:
    holder: list[Sequence[Policy]] = [current if current is not None else policies()]
    svc = AdmissionService(
        policies=lambda: holder[0], verifier=Verifier(source=source), settings=AdmissionSettings(deadline_seconds=5)
    )
    return svc, holder


def request(*images: str) -> AdmissionRequest:
    return parse_review(review(pod_request(pod(*images))))


@dataclass(frozen=True)
class Row:
    name: str
    images: tuple[str, ...]
    action: str
    failure_policy: str
    allowed: bool
    warnings: int
    patched: int


ROWS = [
    Row("signed-enforce", (SIGNED,), "Enforce", "Fail", True, 0, 1),
    Row("unsigned-enforce", (UNSIGNED,), "Enforce", "Fail", False, 0, 0),
    Row("unsigned-audit", (UNSIGNED,), "Audit", "Fail", True, 1, 0),
    Row("down-fail", (DOWN,), "Enforce", "Fail", False, 0, 0),
    Row("down-ignore", (DOWN,), "Enforce", "Ignore", True, 1, 0),
    Row("down-fail-even-in-audit", (DOWN,), "Audit", "Fail", False, 0, 0),
    Row("mixed-enforce", (SIGNED, UNSIGNED), "Enforce", "Fail", False, 0, 0),
    Row("mixed-audit", (SIGNED, UNSIGNED), "Audit", "Ignore", True, 1, 0),
    Row("unmatched", ("docker.io/library/nginx:1",), "Enforce", "Fail", True, 0, 0),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decision_table(row: Row) -> None:
    svc, _ = service(make_source(), policies(action=row.action, failure_policy=row.failure_policy))
    try:
        decision = svc.decide(request(*row.images), mode="mutate")
    finally:
        svc.close()
    assert decision.allowed is row.allowed, decision.message
    assert len(decision.warnings) == row.warnings, decision.warnings
    assert len(decision.patch) == row.patched


def test_pass_is_cached_failure_briefly_error_never() -> None:
    source = make_source()
    svc, _ = service(source)
    try:
        for image, expect_allowed in ((SIGNED, True), (UNSIGNED, False)):
            svc.decide(request(image), mode="mutate")
            before = source.requests
            again = svc.decide(request(image), mode="mutate")
            assert again.allowed is expect_allowed
            assert again.checks[0].cached
            # the digest resolution of a tag is not part of the verdict cache
            assert source.requests - before <= 1
        svc.decide(request(DOWN), mode="mutate")
        before = source.requests
        svc.decide(request(DOWN), mode="mutate")
        assert source.requests == before + 1, "an infrastructure error must not be cached"
    finally:
        svc.close()


def test_policy_change_invalidates_by_construction() -> None:
    source = make_source()
    svc, holder = service(source)
    try:
        assert svc.decide(request(SIGNED), mode="mutate").allowed
        holder[0] = policies(slot=3)  # same names, another key: another content hash
        decision = svc.decide(request(SIGNED), mode="mutate")
        assert decision.allowed is False
        assert not decision.checks[0].cached
    finally:
        svc.close()


def test_concurrent_identical_admissions_share_one_verification() -> None:
    source = make_source(delay=0.2)
    svc, _ = service(source)
    pinned = f"{HOST}/app/signed@{D_SIGNED}"
    results: list[bool] = []
    try:
        threads = [
            threading.Thread(target=lambda: results.append(svc.decide(request(pinned), mode="mutate").allowed))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        svc.close()
    assert results == [True] * 8
    assert source.requests == 1, "eight concurrent admissions fetched the signatures once"


def test_images_are_verified_concurrently() -> None:
    source = make_source(delay=0.3)
    svc, _ = service(source)
    started = time.monotonic()
    try:
        decision = svc.decide(request(SIGNED, UNSIGNED), mode="mutate")
    finally:
        svc.close()
    elapsed = time.monotonic() - started
    assert decision.allowed is False
    # two images, each resolve (0.3 s) + signatures (0.3 s): in parallel ≈ 0.6 s, in sequence ≈ 1.2 s
    assert elapsed < 1.0, elapsed


def test_skipped_images_warn_without_network() -> None:
    source = make_source()
    doc = cluster_policy("p", [key_verification([f"{HOST}/*"], [keys_entry(new_key().public_pem)])], action="Enforce")
    doc["spec"]["rules"][0]["verifyImages"][0]["skipImageReferences"] = [f"{HOST}/app/unsigned:*"]
    skipping = list(load_policy_text(dump(doc), "p.yaml").policies)
    svc, _ = service(source, skipping)
    try:
        decision = svc.decide(request(UNSIGNED), mode="mutate")
        assert decision.allowed
        (warning,) = decision.warnings
        assert "skipping image reference" in warning
        assert source.requests == 0
    finally:
        svc.close()


def test_stored_pass_is_reused_and_stored_failure_never_allows() -> None:
    from sigward.references import parse_image_reference
    from sigward.store import StoredStatus, StoredVerdict, entries_key
    from sigward.store.memory import MemoryStore
    from sigward.verify.plan import plan_rule
    from sigward.verify.trust import load_trusted_root

    source = make_source()
    current = policies()
    store = MemoryStore()
    svc = AdmissionService(
        policies=lambda: current, verifier=Verifier(source=source), settings=AdmissionSettings(), store=store
    )
    policy = current[0]
    pinned_unsigned = f"{HOST}/app/unsigned@{D_UNSIGNED}"
    now = time.time()
    plan = plan_rule(policy, policy.spec.rules[0], parse_image_reference(pinned_unsigned))
    assert plan is not None
    key = plan.key(D_UNSIGNED, trust_fingerprint=load_trusted_root().fingerprint)  # the root admission verifies with

    def stored(verdict: str) -> StoredVerdict:
        return StoredVerdict(
            digest=D_UNSIGNED,
            repository=f"{HOST}/app/unsigned",
            policy="p",
            policy_hash=policy.content_hash,
            rule="verify-signature",
            entries=entries_key([0]),
            inputs=key.inputs,
            verdict=StoredStatus(verdict),
            message="m",
            verified_at=now,
            expires_at=now + 60,
            source="push",
        )

    try:
        store.record(stored("pass"))
        decision = svc.decide(request(pinned_unsigned), mode="mutate")
        assert decision.allowed and source.requests == 0  # the push verdict answered, no registry request
        assert "verdict recorded at push" in decision.checks[0].verdict.message
        svc.cache.clear()
        store.record(stored("fail"))
        decision = svc.decide(request(pinned_unsigned), mode="mutate")
        assert decision.allowed is False and source.requests > 0  # a recorded failure only makes it verify again
        # a fresh pass found by verifying is recorded for other instances, but not for dry runs
        svc.cache.clear()
        store2 = MemoryStore()
        svc2 = AdmissionService(
            policies=lambda: current, verifier=Verifier(source=source), settings=AdmissionSettings(), store=store2
        )
        svc2.decide(parse_review(review(pod_request(pod(SIGNED), dry_run=True))), mode="mutate")
        assert store2.for_digest(D_SIGNED) == []
        svc2.cache.clear()
        svc2.decide(request(SIGNED), mode="mutate")
        (recorded,) = store2.for_digest(D_SIGNED)
        assert recorded.verdict == "pass" and recorded.source == "admission"
        svc2.close()
    finally:
        svc.close()

"""Re-verification against in-memory signatures and the memory and SQLite stores: every way a recorded pass stops
holding (key removed from the policy, signature deleted, attestation aged past ``time_since``, policy changed) flips
it with exactly one finding; an unchanged world writes nothing; pending pushes settle; dry runs write nothing;
concurrent runs never report twice; a run cut by its deadline resumes from the persisted cursor."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sigward.deadline import Deadline
from sigward.errors import FailureKind
from sigward.events import PushEvent
from sigward.events.models import Source
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.push.findings import Finding
from sigward.push.service import PushService, PushSettings
from sigward.references import parse_image_reference
from sigward.reverify.service import CURSOR_STATE, LEASE_STATE, ReverifyService, ReverifySettings
from sigward.store import StoredStatus, StoredVerdict, VerdictStore
from sigward.store.memory import MemoryStore
from sigward.store.sqlite import SqliteStore
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.plan import plan_image
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import SignedLayer, attestation_layer, in_toto_statement, new_key, signed_layer

HOST = "registry.test"
REPO = "team/app"
IMAGE = f"{HOST}/{REPO}"
DIGEST = "sha256:" + "1" * 64
KEY = new_key("p256", slot=70)
OTHER_KEY = new_key("p256", slot=71)
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: float = START.timestamp()

    def __call__(self) -> float:
        return self.now

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, tz=UTC)


@dataclass
class Recorder:
    findings: list[Finding] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def notify(self, finding: Finding, *, deadline: Deadline) -> bool:
        with self.lock:
            self.findings.append(finding)
        return True


def load(doc: dict[str, Any]) -> list[Policy]:
    return list(load_policy_text(dump(doc), "p.yaml").policies)


def signed_policy(*pems: str) -> list[Policy]:
    entries = [keys_entry(pem) for pem in pems]
    return load(cluster_policy("require-signed", [key_verification([f"{HOST}/*"], entries, count=1)]))


def scan_policy() -> list[Policy]:
    """A scan at most 24 h old; time_since written without a nested {{ }} so the rule is decidable at push."""
    iv = {
        "imageReferences": [f"{HOST}/*"],
        "attestations": [
            {
                "type": VULN,
                "attestors": [{"entries": [keys_entry(KEY.public_pem)]}],
                "conditions": [
                    {
                        "all": [
                            {
                                "key": "{{ time_since('', metadata.scanFinishedOn, '') }}",
                                "operator": "LessThanOrEquals",
                                "value": "24h",
                            }
                        ]
                    }
                ],
            }
        ],
    }
    return load(cluster_policy("fresh-scan", [iv], rule="scan"))


def layer(s: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))


def sign(source: MemorySignatureSource, key: Any = KEY) -> None:
    source.add_signatures(IMAGE, DIGEST, (layer(signed_layer(key, image_digest=DIGEST)),))


def unsign(source: MemorySignatureSource) -> None:
    source.add_signatures(IMAGE, DIGEST, ())


def scan_attestation(finished: datetime) -> SignedLayer:
    predicate = {"scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50"}, "metadata": {
        "scanStartedOn": (finished - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scanFinishedOn": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }}  # fmt: skip
    return attestation_layer(KEY, in_toto_statement(DIGEST, VULN, predicate))


def event(event_id: str = "e1", source: Source = "distribution") -> PushEvent:
    return PushEvent(
        source=source,
        event_id=event_id,
        action="push",
        registry=HOST,
        repository=REPO,
        digest=DIGEST,
        tag="v1",
        media_type="application/vnd.oci.image.manifest.v1+json",
    )


@dataclass
class World:
    store: VerdictStore
    source: MemorySignatureSource
    clock: Clock
    recorder: Recorder
    policies: list[Policy]
    writes: list[StoredVerdict] = field(default_factory=list)

    def verifier(self) -> Verifier:
        return Verifier(source=self.source, clock=self.clock.dt)

    def push(self, *, grace: float = 0.0, pending: frozenset[str] = frozenset()) -> str:
        service = PushService(
            policies=lambda: self.policies,
            verifier=self.verifier(),
            store=self.store,
            settings=PushSettings(grace_seconds=grace, pending_sources=pending),
            clock=self.clock,
        )
        return service.handle(event()).status

    def reverify(self, **settings: Any) -> ReverifyService:
        return ReverifyService(
            policies=lambda: self.policies,
            verifier=self.verifier(),
            store=self.store,
            settings=ReverifySettings(**settings),
            notifier=self.recorder,
            clock=self.clock,
        )

    def verdicts(self) -> list[str]:
        return [v.verdict for v in self.store.for_digest(DIGEST)]


class CountingStore:
    """Counts verdict writes of any store (record and successful replace)."""

    def __init__(self, inner: VerdictStore) -> None:
        self.inner = inner
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def record(self, verdict: StoredVerdict) -> None:
        self.writes += 1
        self.inner.record(verdict)

    def replace(self, current: StoredVerdict, new: StoredVerdict) -> bool:
        won = self.inner.replace(current, new)
        self.writes += int(won)
        return won


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    inner: VerdictStore = MemoryStore() if request.param == "memory" else SqliteStore(str(tmp_path / "v.db"))
    source = MemorySignatureSource()
    source.add_image(f"{IMAGE}:v1", DIGEST)
    yield World(CountingStore(inner), source, Clock(), Recorder(), signed_policy(KEY.public_pem))
    inner.close()


def writes(world: World) -> int:
    return world.store.writes  # type: ignore[attr-defined,no-any-return]


def test_unchanged_world_writes_nothing_and_reports_nothing(world: World) -> None:
    sign(world.source)
    assert world.push() == "recorded" and world.verdicts() == ["pass"]
    before = writes(world)
    world.clock.now += 3600
    report = world.reverify().run()
    assert report.examined == 1 and report.verified == 1 and report.updated == 0 and not report.flips
    assert report.cycle_complete and writes(world) == before and world.recorder.findings == []


def test_signature_deleted_flips_to_unsigned_with_one_finding(world: World) -> None:
    sign(world.source)
    world.push()
    unsign(world.source)
    report = world.reverify().run()
    (flip,) = report.flips
    assert (flip.before, flip.after, flip.reason) == ("pass", "unsigned", FailureKind.NO_SIGNATURES)
    assert world.verdicts() == ["unsigned"]
    (finding,) = world.recorder.findings
    assert finding.verdict == "unsigned" and finding.reason == "NO_SIGNATURES" and finding.source == "reverify"
    # the flip is reported once: the next run sees a failure, which it does not re-verify
    assert world.reverify().run().flips == () and len(world.recorder.findings) == 1


def test_key_removed_from_policy_flips_old_policy_record_first(world: World) -> None:
    sign(world.source)
    world.push()
    world.policies = signed_policy(OTHER_KEY.public_pem)  # the signing key was rotated out of the policy
    report = world.reverify().run()
    (flip,) = report.flips
    assert flip.reason is FailureKind.NOT_SATISFIED and flip.after == "fail"
    by_hash = {v.policy_hash: v.verdict for v in world.store.for_digest(DIGEST)}
    assert by_hash == {signed_policy(KEY.public_pem)[0].content_hash: "superseded",
                       world.policies[0].content_hash: "fail"}  # fmt: skip
    assert len(world.recorder.findings) == 1


def test_policy_change_that_still_passes_rekeys_without_a_finding(world: World) -> None:
    sign(world.source)
    world.push()
    world.policies = signed_policy(KEY.public_pem, OTHER_KEY.public_pem)  # a key added: still satisfied
    report = world.reverify().run()
    assert report.flips == () and report.updated == 1
    assert sorted(world.verdicts()) == ["pass", "superseded"] and world.recorder.findings == []


def test_attestation_aging_past_time_since_flips(world: World) -> None:
    world.policies = scan_policy()
    sign(world.source)
    world.source.add_attestations(IMAGE, DIGEST, (layer(scan_attestation(world.clock.dt() - timedelta(hours=1))),))
    assert world.push() == "recorded" and world.verdicts() == ["pass"]
    world.clock.now += 22 * 3600  # 23 h old: still fresh
    assert world.reverify().run().flips == ()
    world.clock.now += 2 * 3600  # 25 h old
    (flip,) = world.reverify().run().flips
    assert flip.after == "fail" and flip.reason is FailureKind.NOT_SATISFIED and world.verdicts() == ["fail"]


def test_pending_push_becomes_pass_when_its_signature_arrives(world: World) -> None:
    assert world.push(grace=300, pending=frozenset({"distribution"})) == "recorded"  # acknowledged, not retried
    assert world.verdicts() == ["pending"] and world.recorder.findings == []
    world.clock.now += 60
    assert world.reverify(pending_grace_seconds=600).run().updated == 0  # still waiting, nothing written
    sign(world.source)
    report = world.reverify(pending_grace_seconds=600).run()
    assert report.updated == 1 and report.flips == () and world.verdicts() == ["pass"]


def test_pending_push_becomes_unsigned_after_the_grace_period(world: World) -> None:
    world.push(grace=300, pending=frozenset({"distribution"}))
    world.clock.now += 601
    (flip,) = world.reverify(pending_grace_seconds=600).run().flips
    assert (flip.before, flip.after, flip.reason) == ("pending", "unsigned", FailureKind.NO_SIGNATURES)
    assert world.verdicts() == ["unsigned"] and len(world.recorder.findings) == 1


def test_sources_that_redeliver_still_ask_for_redelivery(world: World) -> None:
    assert world.push(grace=300, pending=frozenset({"distribution"})) == "recorded"
    service = PushService(
        policies=lambda: world.policies,
        verifier=world.verifier(),
        store=world.store,
        settings=PushSettings(grace_seconds=300, pending_sources=frozenset({"distribution"})),
        clock=world.clock,
    )
    assert service.handle(event("e2", source="ecr")).status == "retry"


def test_dry_run_reports_would_flip_and_writes_nothing(world: World) -> None:
    sign(world.source)
    world.push()
    before = writes(world)
    world.policies = signed_policy(OTHER_KEY.public_pem)
    report = world.reverify(dry_run=True).run()
    assert report.dry_run and [f.digest for f in report.flips] == [DIGEST]
    assert writes(world) == before and world.verdicts() == ["pass"] and world.recorder.findings == []
    assert world.store.get_state(CURSOR_STATE) == "" and world.store.get_state(LEASE_STATE) == ""


def test_since_limits_the_walk_to_recent_verdicts(world: World) -> None:
    sign(world.source)
    world.push()
    unsign(world.source)
    world.clock.now += 7200
    assert world.reverify(since_seconds=3600).run().examined == 0
    assert len(world.reverify(since_seconds=3 * 3600).run().flips) == 1


def test_registry_down_decides_nothing_and_writes_nothing(world: World) -> None:
    from sigward.errors import ExternalServiceError

    sign(world.source)
    world.push()
    before = writes(world)

    def down(*_a: Any, **_k: Any) -> Any:
        raise ExternalServiceError("registry unreachable")

    world.source.signature_layers = down  # type: ignore[method-assign]
    report = world.reverify().run()
    assert report.errors == 1 and report.flips == () and writes(world) == before and world.verdicts() == ["pass"]


def test_a_held_lease_makes_a_second_run_busy(world: World) -> None:
    sign(world.source)
    world.push()
    assert world.store.set_state(LEASE_STATE, f"other|{world.clock.now + 60}", expected="")
    assert world.reverify().run().busy
    world.clock.now += 61  # the holder died: its lease expires
    assert not world.reverify().run().busy


class LeaselessStore(CountingStore):
    """Every run believes it holds the lease: only the verdict compare-and-set stands between them."""

    def get_state(self, name: str) -> str:
        return "" if name == LEASE_STATE else self.inner.get_state(name)

    def set_state(self, name: str, value: str, *, expected: str) -> bool:
        return True if name == LEASE_STATE else self.inner.set_state(name, value, expected=expected)


def test_concurrent_runs_without_the_lease_report_a_flip_once(world: World) -> None:
    sign(world.source)
    world.push()
    unsign(world.source)
    world.store = LeaselessStore(world.store.inner)  # type: ignore[attr-defined]
    barrier = threading.Barrier(4)
    services = [world.reverify() for _ in range(4)]
    reports: list[Any] = []

    def run(service: ReverifyService) -> None:
        barrier.wait()
        reports.append(service.run())

    threads = [threading.Thread(target=run, args=(s,)) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.flips) for r in reports) == 1 and len(world.recorder.findings) == 1


def test_cas_loser_leaves_a_fresher_verdict_alone(world: World) -> None:
    """A record that admission rewrote after the run read it is not overwritten (the fresher verdict stands)."""
    sign(world.source)
    world.push()
    (read,) = world.store.for_digest(DIGEST)
    world.clock.now += 10
    fresher = replace(read, verified_at=world.clock.now, source="admission")
    world.store.record(fresher)
    lost = world.store.replace(read, replace(read, verdict=StoredStatus.FAIL))
    assert lost is False and world.store.for_digest(DIGEST)[0].source == "admission"


class SlowSource(MemorySignatureSource):
    def signature_layers(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.4)
        return super().signature_layers(*args, **kwargs)


def test_a_run_cut_by_its_deadline_resumes_from_the_persisted_cursor(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "v.db"))
    source = SlowSource()
    digests = [f"sha256:{i:064x}" for i in range(1, 7)]
    world = World(store, source, Clock(), Recorder(), signed_policy(KEY.public_pem))
    for d in digests:
        source.add_signatures(IMAGE, d, (layer(signed_layer(KEY, image_digest=d)),))
    _record_passes(store, world, digests, source="admission")
    first = world.reverify(run_seconds=1.9, batch_size=2).run()
    assert 0 < first.verified < len(digests) and not first.cycle_complete
    seen = first.verified
    while True:
        report = world.reverify(run_seconds=1.9, batch_size=2).run()
        seen += report.verified
        if report.cycle_complete:
            break
    assert seen == len(digests)  # every record once across the runs, none twice
    store.close()


def context_policy() -> list[Policy]:
    """The signing key through a rule ``context`` variable: prepared per admission request (sigward.policy.dynamic)."""
    doc = cluster_policy("require-signed", [key_verification([f"{HOST}/*"], [keys_entry("{{ signing_key }}")])])
    doc["spec"]["rules"][0]["context"] = [{"name": "signing_key", "variable": {"value": KEY.public_pem}}]
    return load(doc)


def test_admission_recorded_pass_of_a_context_rule_is_left_to_admission(world: World) -> None:
    """Regression (merge of d-context with h-reverify): a pass admission recorded for a rule with context,
    preconditions, variables or cluster keys is keyed by the prepared rule; re-verifying the unprepared rule (keys
    still ``{{ signing_key }}``) flipped it to fail with a false finding."""
    world.policies = context_policy()
    sign(world.source)
    (plan,) = plan_image(world.policies, parse_image_reference(f"{IMAGE}@{DIGEST}"))
    key = replace(plan, resolved="prepared-rule-hash").key(DIGEST)
    world.store.record(
        StoredVerdict.of(
            key, policy=plan.policy.name, verdict=StoredStatus.PASS, message="verified at admission",
            verified_at=world.clock.now, ttl=3600, source="admission", event_id="", image=f"{IMAGE}@{DIGEST}",
        )
    )  # fmt: skip
    before = writes(world)
    report = world.reverify().run()
    assert report.flips == () and report.verified == 0 and report.updated == 0
    assert writes(world) == before and world.verdicts() == ["pass"] and world.recorder.findings == []
    assert world.push() == "ignored"  # push leaves the rule to admission as well
    # the twin: the same pass of a rule without context is re-verified (test_unchanged_world_writes_nothing_...)


class OrderSource(MemorySignatureSource):
    """Remembers the digest of every signature fetch, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []

    def signature_layers(self, repo: Any, image_digest: str, **kwargs: Any) -> Any:
        self.fetched.append(image_digest)
        return super().signature_layers(repo, image_digest, **kwargs)


def _record_passes(store: VerdictStore, world: World, digests: list[str], *, source: str = "distribution") -> None:
    """A stored PASS (from ``source``) for every plan of every policy of ``world`` on each of ``digests``."""
    for d in digests:
        for plan in plan_image(world.policies, parse_image_reference(f"{IMAGE}@{d}")):
            key = plan.key(d, trust_fingerprint=world.verifier().trusted_root().fingerprint)
            store.record(
                StoredVerdict.of(
                    key,
                    policy=plan.policy.name,
                    verdict=StoredStatus.PASS,
                    message="ok",
                    verified_at=world.clock.now,
                    ttl=3600,
                    source=source,
                    image=f"{IMAGE}@{d}",
                )
            )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_reverify_at_scale_walks_one_digests_records_together(kind: str, tmp_path: Path) -> None:
    """Regression (reverify at scale: 1.88 registry requests per verdict at 10,000 records because the walk went in
    hashed-key order): the two policies' records of one digest are verified back to back, in small batches too."""
    store: VerdictStore = MemoryStore() if kind == "memory" else SqliteStore(str(tmp_path / "v.db"))
    source = OrderSource()
    digests = [f"sha256:{i:064x}" for i in range(1, 9)]
    for d in digests:
        source.add_signatures(IMAGE, d, (layer(signed_layer(KEY, image_digest=d)),))
    docs = [cluster_policy(n, [key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)])]) for n in ("a", "b")]
    two = list(load_policy_text(dump(*docs), "p.yaml").policies)
    world = World(store, source, Clock(), Recorder(), two)
    _record_passes(store, world, digests)
    report = world.reverify(batch_size=3).run()
    assert report.cycle_complete and report.verified == 2 * len(digests) and report.updated == 0
    assert source.fetched == sorted(source.fetched) and len(source.fetched) == 2 * len(digests)
    store.close()


def test_a_cursor_from_the_key_ordered_walk_starts_its_phase_over(world: World) -> None:
    """A cursor persisted before scans were digest-ordered holds a bare store key: the walk restarts that phase
    (every record still re-verified) instead of failing or skipping records."""
    sign(world.source)
    assert world.push() == "recorded"
    (record,) = world.store.for_digest(DIGEST)
    from sigward.reverify.service import policies_fingerprint

    legacy = json.dumps({"after": record.key, "phase": "all", "policies": policies_fingerprint(world.policies)})
    assert world.store.set_state(CURSOR_STATE, legacy, expected="")
    report = world.reverify().run()
    assert report.cycle_complete and report.verified == 1 and report.phase == "all"
    unsign(world.source)
    assert world.store.set_state(CURSOR_STATE, legacy, expected=world.store.get_state(CURSOR_STATE))
    flipped = world.reverify().run()
    assert [f.after for f in flipped.flips] == ["unsigned"]

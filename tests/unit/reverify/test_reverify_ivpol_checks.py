"""Re-verification of ImageValidatingPolicy check records against in-memory signatures: a pass recorded by
admission is reproduced (nothing written), flips when its signature goes; negative twins: the policy no longer
loaded (left alone), the registry down (an error, nothing written, no finding), another policy of the same name
(re-keyed under the new content hash), and a changed IVPOL makes the walk start with the records of the old one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from sigward.admission.ivpol_cache import CachedChecks
from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.push.findings import Finding
from sigward.references import Repository
from sigward.reverify.service import ReverifyService, policies_fingerprint
from sigward.store import StoredStatus, StoredVerdict
from sigward.store.memory import MemoryStore
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import evaluate_image
from tests.support.memory import MemorySignatureSource
from tests.support.policies import dump
from tests.support.signing import new_key, signed_layer

HOST = "registry.test"
IMAGE = f"{HOST}/team/app"
DIGEST = "sha256:" + "2" * 64
PINNED = f"{IMAGE}@{DIGEST}"
KEY = new_key("p256", slot=83)
OTHER = new_key("p256", slot=84)


class FlakySource(MemorySignatureSource):
    down = False

    def signature_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        if self.down:
            raise ExternalServiceError("registry.test: connection refused")
        return super().signature_layers(repo, image_digest, deadline=deadline, tag_prefix=tag_prefix)


def ivpol(pem: str, name: str = "signed") -> ImagePolicy:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": name},
        "spec": {
            "matchImageReferences": [{"glob": f"{HOST}/*"}],
            "attestors": [{"name": "a", "cosign": {"key": {"data": pem}, "ctlog": {"insecureIgnoreTlog": True}}}],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.a]) > 0)"}],
        },
    }
    (found,) = load_policy_text(dump(doc), "p.yaml").image_policies
    return found


def sign(source: MemorySignatureSource, key: Any = KEY) -> None:
    s = signed_layer(key, image_digest=DIGEST)
    source.add_signatures(IMAGE, DIGEST, (SignatureLayer(s.media_type, s.payload, dict(s.annotations)),))


@dataclass
class World:
    source: FlakySource = field(default_factory=FlakySource)
    store: MemoryStore = field(default_factory=MemoryStore)
    findings: list[Finding] = field(default_factory=list)
    policies: list[ImagePolicy] = field(default_factory=lambda: [ivpol(KEY.public_pem)])

    @property
    def verifier(self) -> Verifier:
        return Verifier(source=self.source)

    def notify(self, finding: Finding, *, deadline: Deadline) -> bool:
        self.findings.append(finding)
        return True

    def admit(self) -> None:
        checks = CachedChecks(
            verifier=self.verifier, cache=TTLCache(max_entries=4, ttl=60), store=self.store, pass_ttl=600
        )
        (found,) = evaluate_image(self.policies, PINNED, checks=checks, deadline=Deadline.after(10))
        assert found.verdict.value == "pass", found

    def reverify(self) -> Any:
        return ReverifyService(
            policies=lambda: (),
            image_policies=lambda: self.policies,
            verifier=self.verifier,
            store=self.store,
            notifier=self,
        ).run()

    def records(self) -> list[StoredVerdict]:
        return list(self.store.for_digest(DIGEST))


@pytest.fixture
def world() -> World:
    w = World()
    sign(w.source)
    w.admit()
    return w


def test_unchanged_then_signature_gone(world: World) -> None:
    before = world.records()
    report = world.reverify()
    assert (report.examined, report.verified, report.updated, report.flips) == (1, 1, 0, ())
    assert world.records() == before
    sign(world.source, OTHER)
    report = world.reverify()
    assert (report.verified, report.updated, len(report.flips)) == (1, 1, 1)
    assert [v.verdict for v in world.records()] == [StoredStatus.FAIL]
    assert [f.policy for f in world.findings] == ["signed"]


def test_policy_no_longer_loaded_is_left_alone(world: World) -> None:
    before = world.records()
    world.policies = [ivpol(KEY.public_pem, name="another")]
    report = world.reverify()
    assert (report.verified, report.updated, report.flips) == (0, 0, ())
    assert world.records() == before and world.findings == []


def test_registry_down_is_an_error_never_a_flip(world: World) -> None:
    before = world.records()
    world.source.down = True
    report = world.reverify()
    assert (report.verified, report.errors, report.updated, report.flips) == (1, 1, 0, ())
    assert world.records() == before and world.findings == []


def test_changed_policy_re_keys_the_check(world: World) -> None:
    """Same name, another key: the old pass is superseded and the check made under the new content hash fails."""
    old = world.records()
    world.policies = [ivpol(OTHER.public_pem)]
    report = world.reverify()
    assert report.updated == 1 and len(report.flips) == 1, report
    statuses = {v.policy_hash: v.verdict for v in world.records()}
    assert statuses == {old[0].policy_hash: StoredStatus.SUPERSEDED, world.policies[0].content_hash: StoredStatus.FAIL}


def test_image_policies_are_part_of_the_policies_fingerprint() -> None:
    assert policies_fingerprint([], [ivpol(KEY.public_pem)]) != policies_fingerprint([], [ivpol(OTHER.public_pem)])
    assert policies_fingerprint([], []) == ""

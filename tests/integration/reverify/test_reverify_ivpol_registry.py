"""Re-verification of ImageValidatingPolicy check verdicts whose policy material is resolved per evaluation, through
the real docker-registry: a ``cosign.source.tagPrefix``, a ``cosign.tuf`` repository (a real python-tuf repository
on 127.0.0.1) and a ``cosign.key.expression`` reading a ConfigMap. A recorded pass is re-verified under the same key
(an unchanged world writes nothing); a changed world flips it with one finding — the prefixed signature replaced by
another key's while a good unprefixed one stays (the prefix must be read), the TUF repository's trusted root
rotated to another CA (the verdict re-keyed to the new root), the signature replaced while the ConfigMap still names
the old key. Regression (before: every IVPOL record was skipped by re-verification, kept passing until its TTL)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.admission.ivpol_cache import CachedChecks
from sigward.cache import TTLCache
from sigward.cluster.data import ClusterData
from sigward.cluster.sources import manifest_objects
from sigward.deadline import Deadline
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.push.findings import Finding
from sigward.registry import RegistryClient
from sigward.reverify.service import ReverifyReport, ReverifyService
from sigward.store import StoredStatus
from sigward.store.memory import MemoryStore
from sigward.verify import policy_tuf
from sigward.verify import tuf as tufmod
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import evaluate_image
from sigward.verify.oci import RegistrySignatureSource
from tests.support.fulcio import TEST_EMAIL, TEST_ISSUER, cert_layer, issue_leaf, make_fulcio, trusted_root_json
from tests.support.policies import dump
from tests.support.registry import LocalRegistry
from tests.support.signing import SignedLayer, attach_signatures, new_key, signed_layer
from tests.support.tuf_repo import TufRepository

pytestmark = pytest.mark.registry
KEY = new_key("p256", slot=80)
OTHER = new_key("p256", slot=81)
SIGNED = "images.containers.all(i, verifyImageSignatures(i, [attestors.a]) > 0)"
FROM_CONFIGMAP = "resource.Get('v1', 'configmaps', 'kyverno', 'keys').data['cosign.pub']"


@dataclass
class Findings:
    seen: list[Finding] = field(default_factory=list)

    def notify(self, finding: Finding, *, deadline: Deadline) -> bool:
        self.seen.append(finding)
        return True


def ivpol(name: str, host: str, repo: str, cosign: dict[str, Any]) -> ImagePolicy:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": name},
        "spec": {
            "matchImageReferences": [{"glob": f"{host}/{repo}/*"}],
            "attestors": [{"name": "a", "cosign": cosign}],
            "validations": [{"expression": SIGNED}],
        },
    }
    (found,) = load_policy_text(dump(doc), f"{name}.yaml").image_policies
    return found


@dataclass
class World:
    """One IVPOL, a store holding the pass admission recorded for ``image``, and the verifier both use."""

    policy: ImagePolicy
    image: str
    verifier: Verifier
    store: MemoryStore = field(default_factory=MemoryStore)
    findings: Findings = field(default_factory=Findings)

    def admit(self) -> None:
        checks = CachedChecks(
            verifier=self.verifier, cache=TTLCache(max_entries=10, ttl=60), store=self.store, pass_ttl=3600
        )
        (found,) = evaluate_image([self.policy], self.image, checks=checks, deadline=Deadline.after(20))
        assert found.verdict.value == "pass", found
        assert [v.verdict for v in self.records()] == [StoredStatus.PASS]

    def reverify(self) -> ReverifyReport:
        service = ReverifyService(
            policies=lambda: (),
            image_policies=lambda: (self.policy,),
            verifier=self.verifier,
            store=self.store,
            notifier=self.findings,
        )
        return service.run()

    def records(self) -> list[Any]:
        return [v for v in self.store.for_digest(self.image.rpartition("@")[2]) if v.rule.startswith("ivpol/")]


def assert_unchanged(world: World) -> None:
    before = world.records()
    report = world.reverify()
    assert (report.examined, report.verified, report.updated, report.flips) == (1, 1, 0, ()), report
    assert world.records() == before


def assert_flipped(world: World, after: StoredStatus) -> None:
    report = world.reverify()
    assert (report.verified, report.updated, len(report.flips)) == (1, 1, 1), report
    assert [f.policy for f in world.findings.seen] == [world.policy.name]
    assert after in [v.verdict for v in world.records()]
    assert StoredStatus.PASS not in [v.verdict for v in world.records()]


# -- cosign.source.tagPrefix ---------------------------------------------------------------------------------------


def test_prefixed_signature_is_reverified_under_its_prefix(registry: LocalRegistry, client: RegistryClient) -> None:
    repo = "reverify-prefix/app"
    digest = registry.push_image(repo, tag="v1")
    attach_signatures(registry, repo, digest, [signed_layer(KEY, image_digest=digest)])  # unprefixed: not read
    attach_signatures(registry, repo, digest, [signed_layer(KEY, image_digest=digest)], tag_prefix="team-")
    cosign = {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}, "source": {"tagPrefix": "team-"}}
    world = World(
        ivpol("prefixed", registry.host, "reverify-prefix", cosign),
        f"{registry.host}/{repo}@{digest}",
        Verifier(source=RegistrySignatureSource(client)),
    )
    world.admit()
    assert_unchanged(world)
    # the prefixed signature replaced by another key's; the good unprefixed one must not rescue it
    attach_signatures(registry, repo, digest, [signed_layer(OTHER, image_digest=digest)], tag_prefix="team-")
    assert_flipped(world, StoredStatus.FAIL)


# -- cosign.tuf ----------------------------------------------------------------------------------------------------


@pytest.fixture
def tuf_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TufRepository]:
    monkeypatch.setenv("SIGWARD_TUF_CACHE", str(tmp_path / "tuf-cache"))
    monkeypatch.delenv("SIGWARD_TUF_OFFLINE", raising=False)
    tufmod.reset()
    with TufRepository({"trusted_root.json": trusted_root_json(make_fulcio(0))}) as served:
        yield served
    tufmod.reset()


def test_tuf_rooted_verdict_is_reverified_under_the_repository_root(
    registry: LocalRegistry, client: RegistryClient, tuf_repo: TufRepository
) -> None:
    import os

    repo = "reverify-tuf/app"
    digest = registry.push_image(repo, tag="v1")
    ca = make_fulcio(0)
    signer = new_key("p256", slot=82)
    layer = cert_layer(signer, issue_leaf(ca, signer), image_digest=digest, chain=ca.chain, rekor=ca.rekor)
    signed = SignedLayer(payload=layer.payload, annotations=dict(layer.annotations), media_type=layer.media_type)
    attach_signatures(registry, repo, digest, [signed])
    cosign = {
        "keyless": {"identities": [{"issuer": TEST_ISSUER, "subject": TEST_EMAIL}]},
        "tuf": {"mirror": tuf_repo.url, "root": {"data": base64.b64encode(tuf_repo.bootstrap_root).decode()}},
    }
    world = World(
        ivpol("tuf-rooted", registry.host, "reverify-tuf", cosign),
        f"{registry.host}/{repo}@{digest}",
        Verifier(source=RegistrySignatureSource(client)),
    )
    world.admit()
    assert_unchanged(world)  # the same repository root: the same trust fingerprint in the key
    # the repository now trusts another CA only: the pass is re-keyed to the new root and fails there
    tuf_repo.publish({"trusted_root.json": trusted_root_json(make_fulcio(1))})
    assert policy_tuf._policies.get(tuf_repo.url, tuf_repo.bootstrap_root, os.environ).refresh()
    old_keys = {v.key for v in world.records()}
    assert_flipped(world, StoredStatus.FAIL)
    superseded = [v for v in world.records() if v.verdict is StoredStatus.SUPERSEDED]
    assert {v.key for v in superseded} == old_keys
    assert all(v.key not in old_keys for v in world.records() if v.verdict is StoredStatus.FAIL)


# -- cosign.key.expression -----------------------------------------------------------------------------------------


def cluster_with_key(tmp_path: Path, pem: str, file: str = "cluster.yaml") -> ClusterData:
    path = tmp_path / file
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "keys", "namespace": "kyverno"},
                "data": {"cosign.pub": pem},
            }
        )
    )
    return ClusterData(manifests=manifest_objects([str(path)]))


def expression_world(registry: LocalRegistry, client: RegistryClient, tmp_path: Path, repo: str) -> World:
    digest = registry.push_image(repo, tag="v1")
    attach_signatures(registry, repo, digest, [signed_layer(KEY, image_digest=digest)])
    cosign = {"key": {"expression": FROM_CONFIGMAP}, "ctlog": {"insecureIgnoreTlog": True}}
    world = World(
        ivpol("key-expression", registry.host, repo.partition("/")[0], cosign),
        f"{registry.host}/{repo}@{digest}",
        Verifier(source=RegistrySignatureSource(client), cluster=cluster_with_key(tmp_path, KEY.public_pem)),
    )
    world.admit()
    assert "#" in world.records()[0].rule  # the material's fingerprint is part of the check's key
    return world


def test_expression_keyed_verdict_is_reverified_with_the_same_material(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path
) -> None:
    world = expression_world(registry, client, tmp_path, "reverify-expr/app")
    assert_unchanged(world)  # the expression evaluated again gives the same key: reproduced, nothing written
    digest = world.image.rpartition("@")[2]
    attach_signatures(registry, "reverify-expr/app", digest, [signed_layer(OTHER, image_digest=digest)])
    assert_flipped(world, StoredStatus.FAIL)


def test_expression_keyed_verdict_under_old_material_is_left_alone(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path
) -> None:
    """The ConfigMap now names another key: the recorded check (keyed by the old key's fingerprint) is no longer
    one this policy makes, so admission never looks it up again; re-verification cannot reproduce it and leaves it
    (no write, no finding) rather than judging it under material it was not made with."""
    world = expression_world(registry, client, tmp_path, "reverify-expr-old/app")
    world.verifier = Verifier(
        source=RegistrySignatureSource(client), cluster=cluster_with_key(tmp_path, OTHER.public_pem, "rotated.yaml")
    )
    before = world.records()
    report = world.reverify()
    assert (report.examined, report.verified, report.updated, report.flips) == (1, 0, 0, ()), report
    assert world.records() == before and world.findings.seen == []

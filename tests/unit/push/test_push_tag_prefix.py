"""Which pushed tags are signature pushes with ``cosign.source.tagPrefix``: ``<prefix>sha256-<hex>.sig``/``.att``
only with a prefix that an IVPOL selecting the pushed repository reads. Negative twins: a prefix no policy reads, a
prefix of a policy selecting another repository, ``.sbom`` under a prefix, no IVPOL loaded — each an ordinary image
push, verified as itself."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sigward.events import PushEvent
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.push import ivpol as push_ivpol
from sigward.push.service import PushService, PushSettings
from sigward.references import parse_image_reference
from sigward.store.memory import MemoryStore
from sigward.verify.engine import Verifier
from tests.support.memory import MemorySignatureSource
from tests.unit.push.test_push_service import HOST, KEY, Clock

SUBJECT = "sha256:" + "5" * 64
PUSHED = "sha256:" + "6" * 64
HEX = SUBJECT.partition(":")[2]


def ivpol(name: str, repo_glob: str, prefix: str) -> ImagePolicy:
    cosign: dict[str, Any] = {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}
    if prefix:
        cosign["source"] = {"tagPrefix": prefix}
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": name},
        "spec": {
            "matchImageReferences": [{"glob": f"{HOST}/{repo_glob}"}],
            "attestors": [{"name": "k", "cosign": cosign}],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"}],
        },
    }
    (policy,) = load_policy_text(yaml.safe_dump(doc), f"{name}.yaml").image_policies
    return policy


POLICIES = (ivpol("team-a", "a/*", "team-"), ivpol("plain-b", "b/*", ""))


def handled_digest(repository: str, tag: str, policies: tuple[ImagePolicy, ...] = POLICIES) -> str:
    service = PushService(
        policies=lambda: (),
        image_policies=lambda: policies,
        verifier=Verifier(source=MemorySignatureSource()),
        store=MemoryStore(),
        settings=PushSettings(grace_seconds=0),
        clock=Clock(),
    )
    pushed = PushEvent(
        source="distribution",
        event_id="e1",
        action="push",
        registry=HOST,
        repository=repository,
        digest=PUSHED,
        tag=tag,
    )
    return service.handle(pushed).digest


@pytest.mark.parametrize(
    ("repository", "tag", "about"),
    [
        ("a/app", f"team-sha256-{HEX}.sig", SUBJECT),
        ("a/app", f"team-sha256-{HEX}.att", SUBJECT),
        ("a/app", f"sha256-{HEX}.sig", SUBJECT),  # unprefixed cosign tags always count
        ("a/app", f"other-sha256-{HEX}.sig", PUSHED),  # a prefix no policy reads
        ("a/app", f"team-sha256-{HEX}.sbom", PUSHED),  # never read under a prefix
        ("b/app", f"team-sha256-{HEX}.sig", PUSHED),  # the prefix of a policy for another repository
        ("b/app", f"sha256-{HEX}.sig", SUBJECT),
        ("a/app", "v1", PUSHED),
    ],
)
def test_which_tags_are_about_another_image(repository: str, tag: str, about: str) -> None:
    assert handled_digest(repository, tag) == about


def test_no_image_policy_no_prefix() -> None:
    only_b = (POLICIES[1],)
    assert handled_digest("b/app", f"team-sha256-{HEX}.sig", only_b) == PUSHED


def test_tag_prefixes_of_selecting_policies_only() -> None:
    forms = [parse_image_reference(f"{HOST}/a/app@{PUSHED}")]
    assert push_ivpol.tag_prefixes(POLICIES, forms) == {"team-"}
    assert push_ivpol.tag_prefixes(POLICIES, [parse_image_reference(f"{HOST}/b/app@{PUSHED}")]) == frozenset()

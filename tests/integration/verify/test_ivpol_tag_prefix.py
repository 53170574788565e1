"""IVPOL ``cosign.source.tagPrefix`` through the real docker-registry: signatures and attestations pushed under
``foo-sha256-<hex>.sig``/``.att`` verify with ``tagPrefix: foo-``; without the prefix, with another prefix, or with
the signature pushed unprefixed, the image is unsigned. A verdict under one prefix is never reused for another."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.registry import RegistryClient
from sigward.verify.ivpol import evaluate_image
from sigward.verify.results import RuleVerdict
from tests.support.ivpol_checks import checks_for
from tests.support.policies import dump
from tests.support.registry import LocalRegistry
from tests.support.signing import (
    attach_attestations,
    attach_signatures,
    attestation_layer,
    in_toto_statement,
    new_key,
    signed_layer,
)

pytestmark = pytest.mark.registry
KEY = new_key("p256", slot=0)
OTHER = new_key("p256", slot=1)
PREDICATE = "https://slsa.dev/provenance/v1"
SIGNATURES = "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"
ATTESTATIONS = "images.containers.all(i, verifyAttestationSignatures(i, attestations.prov, [attestors.k]) > 0)"


@pytest.fixture(scope="module")
def images(registry: LocalRegistry) -> dict[str, str]:
    """Image name -> pinned reference: signed (and attested) under ``foo-``, unprefixed, or under ``foo-`` with
    another key."""
    out: dict[str, str] = {}
    for name, prefix, key in (("prefixed", "foo-", KEY), ("plain", "", KEY), ("prefixed-other-key", "foo-", OTHER)):
        repo = f"prefix/{name}"
        digest = registry.push_image(repo, tag="v1")
        attach_signatures(registry, repo, digest, [signed_layer(key, image_digest=digest)], tag_prefix=prefix)
        statement = in_toto_statement(digest, PREDICATE, {"builder": {"id": "ci"}})
        attach_attestations(registry, repo, digest, [attestation_layer(key, statement)], tag_prefix=prefix)
        out[name] = f"{registry.host}/{repo}@{digest}"
    return out


def policy(host: str, prefix: str | None, check: str = SIGNATURES) -> ImagePolicy:
    cosign: dict[str, Any] = {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}
    if prefix is not None:
        cosign["source"] = {"tagPrefix": prefix}
    spec: dict[str, Any] = {
        "matchImageReferences": [{"glob": f"{host}/prefix/*"}],
        "attestors": [{"name": "k", "cosign": cosign}],
        "validations": [{"expression": check}],
    }
    if check == ATTESTATIONS:
        spec["attestations"] = [{"name": "prov", "intoto": {"type": PREDICATE}}]
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "prefixed"},
        "spec": spec,
    }
    (found,) = load_policy_text(dump(doc), "prefix.yaml").image_policies
    return found


@pytest.mark.parametrize("check", [SIGNATURES, ATTESTATIONS], ids=["signature", "attestation"])
@pytest.mark.parametrize(
    ("image", "prefix", "verdict"),
    [
        ("prefixed", "foo-", "pass"),
        ("prefixed", None, "fail"),  # no prefix: sha256-<hex>.sig does not exist
        ("prefixed", "bar-", "fail"),  # wrong prefix
        ("prefixed", "foo", "fail"),  # a prefix is taken literally: "foo" + "sha256-..." is another tag
        ("plain", "foo-", "fail"),  # signed without a prefix, policy wants one
        ("plain", None, "pass"),
        ("prefixed-other-key", "foo-", "fail"),  # the right tag, the wrong key
    ],
)
def test_tag_prefix(
    registry: LocalRegistry,
    client: RegistryClient,
    images: dict[str, str],
    check: str,
    image: str,
    prefix: str | None,
    verdict: str,
) -> None:
    (found,) = evaluate_image(
        [policy(registry.host, prefix, check)], images[image], checks=checks_for(client), deadline=Deadline.after(20)
    )
    assert found.verdict.value == verdict, (image, prefix, found)


def test_verdict_under_one_prefix_is_never_reused_for_another(
    registry: LocalRegistry, client: RegistryClient, images: dict[str, str]
) -> None:
    """Regression: one shared admission cache, two policies differing only in tagPrefix. The pass under ``foo-``
    must not answer for ``bar-`` (nothing under that tag), and the fail under ``bar-`` must not answer for ``foo-``."""
    shared: TTLCache[Any, RuleVerdict] = TTLCache(max_entries=10, ttl=60)
    good, bad = policy(registry.host, "foo-"), policy(registry.host, "bar-")
    assert good.content_hash != bad.content_hash
    for p, verdict in ((good, "pass"), (bad, "fail"), (good, "pass")):
        checks = checks_for(client, shared)
        (found,) = evaluate_image([p], images["prefixed"], checks=checks, deadline=Deadline.after(20))
        assert found.verdict.value == verdict, (p.attestors["k"], found)

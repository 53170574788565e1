"""cosign's signature tag prefix (``ociremote.WithPrefix``; IVPOL ``cosign.source.tagPrefix``): one function names
the tags, the prefix goes before the algorithm for ``.sig``/``.att``/``.sbom`` and never on the referrers tag, the
loader accepts only tag-safe prefixes (naming the YAML path), and the prefix reaches the engine's attestor entry."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sigward.errors import PolicyError
from sigward.policy.ivpol.models import PrefixedAttestor
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Attestor
from sigward.references import MAX_TAG_LENGTH, MAX_TAG_PREFIX_LENGTH, tag_prefix_problem
from sigward.registry.hints import cosign_tag, referrers_tag
from sigward.verify.oci import signature_tag
from tests.support.signing import new_key

HEX = "ab" * 32
DIGEST = f"sha256:{HEX}"
PEM = new_key("p256", slot=0).public_pem
PATH = "spec.attestors[0].cosign.source.tagPrefix"


@pytest.mark.parametrize(
    ("suffix", "prefix", "tag"),
    [
        ("sig", "", f"sha256-{HEX}.sig"),
        ("att", "", f"sha256-{HEX}.att"),
        ("sbom", "", f"sha256-{HEX}.sbom"),
        ("sig", "foo-", f"foo-sha256-{HEX}.sig"),
        ("att", "foo-", f"foo-sha256-{HEX}.att"),
        ("sbom", "foo-", f"foo-sha256-{HEX}.sbom"),
        ("sig", "team.a_", f"team.a_sha256-{HEX}.sig"),
    ],
)
def test_tag_names(suffix: str, prefix: str, tag: str) -> None:
    assert signature_tag(DIGEST, suffix, prefix) == tag == cosign_tag(DIGEST, suffix, prefix)


def test_referrers_tag_never_carries_the_prefix() -> None:
    assert referrers_tag(DIGEST) == f"sha256-{HEX}"


def test_longest_allowed_prefix_still_names_valid_tags() -> None:
    prefix = "p" * MAX_TAG_PREFIX_LENGTH
    assert tag_prefix_problem(prefix) is None
    assert len(signature_tag(DIGEST, "sbom", prefix)) == MAX_TAG_LENGTH


@pytest.mark.parametrize(
    ("prefix", "text"),
    [
        ("p" * (MAX_TAG_PREFIX_LENGTH + 1), "at most"),
        ("-foo", "tag-name prefix"),
        (".foo", "tag-name prefix"),
        ("foo/", "tag-name prefix"),
        ("foo:", "tag-name prefix"),
        ("fo o", "tag-name prefix"),
        ("föo-", "tag-name prefix"),
        ("foo\n", "tag-name prefix"),
    ],
)
def test_bad_prefix_refused_at_load_with_path(prefix: str, text: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(yaml.safe_dump(ivpol(prefix)), "p.yaml")
    assert any(p.path == PATH and text in p.message for p in info.value.problems), info.value.problems


def ivpol(prefix: str, cosign: dict[str, Any] | None = None) -> dict[str, Any]:
    attestor = cosign or {"key": {"data": PEM}}
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "attestors": [{"name": "k", "cosign": {**attestor, "source": {"tagPrefix": prefix}}}],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"}],
        },
    }


@pytest.mark.parametrize(
    "cosign",
    [
        {"key": {"data": PEM}},
        {"keyless": {"identities": [{"issuer": "https://issuer.example", "subject": "me"}]}},
        {"certificate": {"cert": {"value": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}},
    ],
    ids=["key", "keyless", "certificate"],
)
def test_prefix_reaches_every_engine_entry(cosign: dict[str, Any]) -> None:
    (policy,) = load_policy_text(yaml.safe_dump(ivpol("foo-", cosign)), "p.yaml").image_policies
    (entry,) = policy.attestors["k"].attestors.entries
    assert isinstance(entry, PrefixedAttestor)
    assert entry.signature_tag_prefix == "foo-"


def test_no_prefix_is_a_plain_entry_and_clusterpolicy_entries_have_none() -> None:
    (policy,) = load_policy_text(yaml.safe_dump(ivpol("")), "p.yaml").image_policies
    (entry,) = policy.attestors["k"].attestors.entries
    assert type(entry) is Attestor and entry.signature_tag_prefix == ""


def test_prefix_changes_the_policy_hash() -> None:
    """The verdict key of an IVPOL check carries the policy's content hash: another prefix is another key."""
    hashes = {
        prefix: load_policy_text(yaml.safe_dump(ivpol(prefix)), "p.yaml").image_policies[0].content_hash
        for prefix in ("", "foo-", "bar-")
    }
    assert len(set(hashes.values())) == 3


def test_clusterpolicy_attestor_cannot_set_a_prefix() -> None:
    """The prefix is an IVPOL field only: a ClusterPolicy attestor entry naming one is an unknown field."""
    with pytest.raises(ValueError, match=r"tagPrefix"):
        Attestor.model_validate({"keys": {"publicKeys": PEM}, "tagPrefix": "foo-"})

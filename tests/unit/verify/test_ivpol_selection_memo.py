"""The IVPOL cache-hit path remembers pure answers (image selection, per-policy credential providers, static
signature checks) per policy content hash — bounded, and never shared between two policies.

Regression (bug: ivpol_cache_hit_1_42x_clusterpolicy): globs were matched and engine checks rebuilt for every image of
every request, so the IVPOL cache hit took 1.42x the ClusterPolicy form's time (target <= 1.10x)."""

from __future__ import annotations

from typing import Any

import yaml

from sigward.policy.loader import load_policy_text
from sigward.verify import ivpol


def policy(glob: str) -> Any:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "iv"},
        "spec": {
            "matchImageReferences": [{"glob": glob}],
            "attestors": [{"name": "k", "cosign": {"keyless": {"identities": [{"subject": "s", "issuer": "i"}]}}}],
            "validations": [{"expression": "true"}],
        },
    }
    (loaded,) = load_policy_text(yaml.safe_dump(doc), "iv.yaml").image_policies
    return loaded


def test_selection_answers_are_per_policy_and_unchanged() -> None:
    a, b = policy("ghcr.io/team/*"), policy("docker.io/library/*")
    for _ in range(3):  # asked again: the same answers
        assert ivpol.image_selected(a, "ghcr.io/team/app:v1") is True
        assert ivpol.image_selected(b, "ghcr.io/team/app:v1") is False
        assert ivpol.image_selected(b, "nginx:1") is True  # normalised spelling
        assert ivpol.image_selected(a, "nginx:1") is False


def test_selection_memo_is_bounded() -> None:
    a = policy("ghcr.io/*")
    for i in range(ivpol.MAX_CACHED_SELECTIONS + 10):
        assert ivpol.image_selected(a, f"ghcr.io/x/app{i}:v1") is True
    assert len(ivpol._selections) <= ivpol.MAX_CACHED_SELECTIONS


def test_policy_providers_follow_each_policy() -> None:
    plain = policy("ghcr.io/*")
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "iv2"},
        "spec": {
            "credentials": {"providers": ["amazon"]},
            "attestors": [{"name": "k", "cosign": {"keyless": {"identities": [{"subject": "s", "issuer": "i"}]}}}],
            "validations": [{"expression": "true"}],
        },
    }
    (narrowed,) = load_policy_text(yaml.safe_dump(doc), "iv2.yaml").image_policies
    assert ivpol.policy_providers(plain) is None
    assert ivpol.policy_providers(narrowed) == ivpol.policy_providers(narrowed)
    providers = ivpol.policy_providers(narrowed)
    assert providers is not None and "amazon" in providers

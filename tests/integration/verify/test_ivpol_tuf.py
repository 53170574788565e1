"""IVPOL ``cosign.tuf`` (without ``trustedRoot``) against a real python-tuf repository on 127.0.0.1
(tests/support/tuf_repo.py) and the real docker-registry: the repository's ``trusted_root.json`` is the keyless
attestor's only root. A wrong bootstrap root is refused (error, never a pass), a mirror down before the first good
fetch is an error that failurePolicy decides, a mirror down after one keeps the last good root, a rotated TUF root
and a new trusted root are taken on refresh, and another mirror never reuses a verdict."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sigward.admission.ivpol_cache import CachedChecks
from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.registry import RegistryClient
from sigward.verify import policy_tuf
from sigward.verify import tuf as tufmod
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import evaluate_image, evaluate_request, pod_request
from sigward.verify.oci import RegistrySignatureSource
from sigward.verify.results import RuleVerdict
from tests.support.fulcio import TEST_EMAIL, TEST_ISSUER, cert_layer, issue_leaf, make_fulcio, trusted_root_json
from tests.support.ivpol_checks import checks_for
from tests.support.policies import dump
from tests.support.registry import LocalRegistry
from tests.support.signing import SignedLayer, attach_signatures, new_key
from tests.support.tuf_repo import TufRepository

pytestmark = pytest.mark.registry
ROOT_A = trusted_root_json(make_fulcio(0))
ROOT_B = trusted_root_json(make_fulcio(1))


@pytest.fixture(autouse=True)
def _fresh_holders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIGWARD_TUF_CACHE", str(tmp_path / "tuf-cache"))
    monkeypatch.delenv("SIGWARD_TUF_OFFLINE", raising=False)
    tufmod.reset()
    yield
    tufmod.reset()


@pytest.fixture
def repo() -> Iterator[TufRepository]:
    with TufRepository({"trusted_root.json": ROOT_A}) as served:
        yield served


@pytest.fixture(scope="module")
def images(registry: LocalRegistry) -> dict[int, str]:
    """CA slot -> an image keyless-signed by a leaf of that Fulcio CA (with its Rekor SET)."""
    out: dict[int, str] = {}
    for slot in (0, 1):
        repo_name = f"tuf/ca{slot}"
        digest = registry.push_image(repo_name, tag="v1")
        ca = make_fulcio(slot)
        signer = new_key("p256", slot=70 + slot)
        layer = cert_layer(signer, issue_leaf(ca, signer), image_digest=digest, chain=ca.chain, rekor=ca.rekor)
        pushed = SignedLayer(payload=layer.payload, annotations=dict(layer.annotations), media_type=layer.media_type)
        attach_signatures(registry, repo_name, digest, [pushed])
        out[slot] = f"{registry.host}/{repo_name}@{digest}"
    return out


def policy(host: str, mirror: str, bootstrap: bytes, failure_policy: str = "Fail") -> ImagePolicy:
    doc: dict[str, Any] = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "tuf"},
        "spec": {
            "matchImageReferences": [{"glob": f"{host}/tuf/*"}],
            "failurePolicy": failure_policy,
            "attestors": [
                {
                    "name": "k",
                    "cosign": {
                        "keyless": {"identities": [{"issuer": TEST_ISSUER, "subject": TEST_EMAIL}]},
                        "tuf": {"mirror": mirror, "root": {"data": base64.b64encode(bootstrap).decode()}},
                    },
                }
            ],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.k]) > 0)"}],
        },
    }
    (found,) = load_policy_text(dump(doc), "tuf.yaml").image_policies
    return found


def verdict(p: ImagePolicy, image: str, checks: CachedChecks) -> RuleVerdict:
    (found,) = evaluate_image([p], image, checks=checks, deadline=Deadline.after(30))
    return found


def test_root_from_the_policy_repository_decides(
    registry: LocalRegistry, client: RegistryClient, repo: TufRepository, images: dict[int, str]
) -> None:
    p = policy(registry.host, repo.url, repo.bootstrap_root)
    assert verdict(p, images[0], checks_for(client)).verdict.value == "pass"
    other = verdict(p, images[1], checks_for(client))  # a CA the repository's root does not list
    assert other.verdict.value == "fail", other


def test_wrong_bootstrap_root_is_refused(
    registry: LocalRegistry, client: RegistryClient, repo: TufRepository, images: dict[int, str]
) -> None:
    """A bootstrap root whose keys did not sign the repository: python-tuf rejects its metadata, so there is no
    root and the check is an error (never a pass, never the public-good root instead)."""
    with TufRepository({"trusted_root.json": ROOT_A}) as stranger:
        p = policy(registry.host, repo.url, stranger.bootstrap_root)
    found = verdict(p, images[0], checks_for(client))
    assert found.verdict.value == "error", found
    assert repo.url in found.message and "rejected" in found.message, found.message


@pytest.mark.parametrize(("failure_policy", "allowed"), [("Fail", False), ("Ignore", False)])
def test_mirror_down_at_start_denies_whatever_the_failure_policy(
    registry: LocalRegistry,
    client: RegistryClient,
    repo: TufRepository,
    images: dict[int, str],
    failure_policy: str,
    allowed: bool,
) -> None:
    repo.fail_with(503)
    p = policy(registry.host, repo.url, repo.bootstrap_root, failure_policy)
    decision = evaluate_request([p], pod_request(images[0]), checks=checks_for(client), deadline=Deadline.after(30))
    assert decision.allowed is allowed, decision
    (outcome,) = decision.outcomes
    assert outcome.verdict.value == "error" and "no trusted root yet" in outcome.message, outcome


def test_mirror_down_after_a_good_fetch_keeps_the_last_good_root(
    registry: LocalRegistry, client: RegistryClient, repo: TufRepository, images: dict[int, str]
) -> None:
    p = policy(registry.host, repo.url, repo.bootstrap_root)
    assert verdict(p, images[0], checks_for(client)).verdict.value == "pass"
    repo.fail_with(500)
    assert not holder(repo).refresh()  # the refresh fails...
    assert verdict(p, images[0], checks_for(client)).verdict.value == "pass"  # ...and the last good root stays


def holder(repo: TufRepository) -> tufmod.TrustRootHolder:
    """The process-wide holder the checks above used (same mirror, bootstrap root and environment)."""
    return policy_tuf._policies.get(repo.url, repo.bootstrap_root, os.environ)


def test_rotated_tuf_root_and_new_trusted_root_are_taken(
    registry: LocalRegistry, client: RegistryClient, repo: TufRepository, images: dict[int, str]
) -> None:
    p = policy(registry.host, repo.url, repo.bootstrap_root)
    assert verdict(p, images[0], checks_for(client)).verdict.value == "pass"
    repo.rotate_root("root", "timestamp", "targets")
    repo.publish({"trusted_root.json": ROOT_B})
    assert holder(repo).refresh()
    assert verdict(p, images[1], checks_for(client)).verdict.value == "pass"  # the new CA
    assert verdict(p, images[0], checks_for(client)).verdict.value == "fail"  # the old one is gone


def test_another_mirror_never_reuses_a_verdict(
    registry: LocalRegistry, client: RegistryClient, repo: TufRepository, images: dict[int, str]
) -> None:
    """Regression: one shared admission cache; the pass under mirror 1 must not answer for mirror 2 (down)."""
    shared: TTLCache[Any, RuleVerdict] = TTLCache(max_entries=10, ttl=60)
    first = policy(registry.host, repo.url, repo.bootstrap_root)
    assert verdict(first, images[0], checks_for(client, shared)).verdict.value == "pass"
    with TufRepository({"trusted_root.json": ROOT_A}) as second_repo:
        second_repo.fail_with(503)
        second = policy(registry.host, second_repo.url, repo.bootstrap_root)
        assert second.content_hash != first.content_hash
        found = verdict(second, images[0], checks_for(client, shared))
    assert found.verdict.value == "error", found


def test_memory_only_pass_never_waits_for_the_first_fetch(
    registry: LocalRegistry, client: RegistryClient, repo: TufRepository, images: dict[int, str]
) -> None:
    """Admission's memory-only pass runs on the event loop: with no root fetched yet it refuses at once (the slow
    path then fetches); once a root is held, it answers a cached verdict without any TUF request."""
    from sigward.admission.ivpol_cache import NotInMemory

    p = policy(registry.host, repo.url, repo.bootstrap_root)
    shared: TTLCache[Any, RuleVerdict] = TTLCache(max_entries=10, ttl=60)
    fast = CachedChecks(
        verifier=Verifier(source=RegistrySignatureSource(client)),
        cache=shared,
        store=None,
        pass_ttl=60,
        memory_only=True,
    )
    started = time.monotonic()
    with pytest.raises(NotInMemory):
        verdict(p, images[0], fast)
    assert time.monotonic() - started < 1.0
    assert verdict(p, images[0], checks_for(client, shared)).verdict.value == "pass"  # the slow path
    repo.fail_with(500)  # no TUF request is needed any more
    assert verdict(p, images[0], fast).verdict.value == "pass"

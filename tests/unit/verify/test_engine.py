"""Attestor semantics of the Verifier (Kyverno's imageverifier.go) as scenario tables over an in-memory source:
AND across attestor sets, `count` within a set, several PEMs in one `publicKeys` as separate entries, nested
`attestor`, per-entry repository, and infrastructure errors versus decided failures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError
from sigward.policy.loader import load_policy_text
from sigward.references import ImageReference, Repository
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.results import Verdict
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, keys_entry
from tests.support.signing import SignedLayer, new_key, signed_layer

REPO = "registry.test/app"
IMAGE = f"{REPO}:v1"
DIGEST = "sha256:" + "c" * 64
K0, K1, K2 = (new_key("p256", slot=i) for i in range(3))


def layer(s: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))


def source_signed_by(*slots: int, repo: str = REPO) -> MemorySignatureSource:
    source = MemorySignatureSource()
    source.add_image(IMAGE, DIGEST)
    source.add_signatures(
        repo, DIGEST, tuple(layer(signed_layer(new_key("p256", slot=s), image_digest=DIGEST)) for s in slots)
    )
    return source


def verify(source: Any, attestors: list[dict[str, Any]], **iv: Any) -> tuple[Verdict, str]:
    doc = cluster_policy("p", [{"imageReferences": ["registry.test/*"], "attestors": attestors, **iv}])
    policies = load_policy_text(dump(doc), "p.yaml").policies
    (result,) = Verifier(source=source).verify_images([IMAGE], policies, deadline=Deadline.after(5))
    return result.verdict, result.message


def entries(*keys: Any, count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"entries": [keys_entry(k.public_pem) if hasattr(k, "public_pem") else k for k in keys]}
    if count is not None:
        out["count"] = count
    return out


@dataclass(frozen=True)
class Case:
    name: str
    signed_by: tuple[int, ...]
    attestors: list[dict[str, Any]]
    verdict: Verdict
    message: str = ""


CASES = [
    Case("one-key", (0,), [entries(K0)], Verdict.PASS, "verified image signatures for registry.test/app:v1"),
    Case(
        "all-entries-by-default",
        (0,),
        [entries(K0, K1)],
        Verdict.FAIL,
        ".attestors[0].entries[1].keys: no matching signatures",
    ),
    Case("all-entries-signed", (0, 1), [entries(K0, K1)], Verdict.PASS),
    Case("count-1-of-2", (1,), [entries(K0, K1, count=1)], Verdict.PASS),
    Case(
        "count-1-of-2-none",
        (2,),
        [entries(K0, K1, count=1)],
        Verdict.FAIL,
        ".attestors[0].entries[0].keys: no matching signatures",
    ),
    Case("count-2-of-3", (0, 2), [entries(K0, K1, K2, count=2)], Verdict.PASS),
    Case("count-2-of-3-only-one", (2,), [entries(K0, K1, K2, count=2)], Verdict.FAIL, ".attestors[0].entries[1].keys"),
    Case(
        "sets-are-anded",
        (0,),
        [entries(K0), entries(K1)],
        Verdict.FAIL,
        ".attestors[1].entries[0].keys: no matching signatures",
    ),
    Case("sets-are-anded-pass", (0, 1), [entries(K0), entries(K1)], Verdict.PASS),
    Case(
        "several-pems-are-separate-entries",
        (1,),
        [{"count": 1, "entries": [keys_entry(K0.public_pem + K1.public_pem)]}],
        Verdict.FAIL,  # Kyverno validates count against the entries as written (1), then expands: count 1 of 2
    ),
    Case(
        "several-pems-all-required",
        (0,),
        [{"entries": [keys_entry(K0.public_pem + K1.public_pem)]}],
        Verdict.FAIL,
        ".attestors[0].entries[1].keys",
    ),
    Case(
        "several-pems-all-signed",
        (0, 1),
        [{"entries": [keys_entry(K0.public_pem + K1.public_pem)]}],
        Verdict.PASS,
    ),
    Case(
        "nested-attestor",
        (2,),
        [{"count": 1, "entries": [keys_entry(K0.public_pem), {"attestor": entries(K1, K2, count=1)}]}],
        Verdict.PASS,
    ),
    Case(
        "nested-attestor-fails",
        (),
        [{"entries": [{"attestor": entries(K1)}]}],
        Verdict.FAIL,
        ".attestors[0].entries[0].attestor.entries[0].keys: no signatures found",
    ),
    Case("unsigned", (), [entries(K0)], Verdict.FAIL, ".attestors[0].entries[0].keys: no signatures found"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attestor_semantics(case: Case) -> None:
    if case.name == "several-pems-are-separate-entries":
        # count 1 with one written entry holding two PEMs: one signature by either key suffices
        verdict, message = verify(source_signed_by(*case.signed_by), case.attestors)
        assert verdict == Verdict.PASS, message
        return
    verdict, message = verify(source_signed_by(*case.signed_by), case.attestors)
    assert verdict == case.verdict, message
    assert case.message in message
    if verdict == Verdict.FAIL:
        assert message.startswith("failed to verify image registry.test/app:v1: ")


def test_entry_repository_overrides_image_repository() -> None:
    source = source_signed_by(0, repo="registry.test/signatures")
    entry = {**keys_entry(K0.public_pem), "repository": "registry.test/signatures"}
    assert verify(source, [{"entries": [entry]}])[0] == Verdict.PASS
    assert verify(source, [entries(K0)])[0] == Verdict.FAIL
    assert verify(source, [entries(K0)], repository="registry.test/signatures")[0] == Verdict.PASS


class FlakySource(MemorySignatureSource):
    def __init__(self, down_repo: str) -> None:
        super().__init__()
        self.down_repo = down_repo

    def signature_layers(
        self, repo: Repository, image_digest: str, *, deadline: Deadline, tag_prefix: str = ""
    ) -> tuple[SignatureLayer, ...]:
        if str(repo) == self.down_repo:
            raise ExternalServiceError(f"{repo} unreachable")
        return super().signature_layers(repo, image_digest, deadline=deadline, tag_prefix=tag_prefix)


def test_outage_in_one_entry_does_not_matter_when_count_is_met() -> None:
    source = FlakySource("registry.test/down")
    source.add_image(IMAGE, DIGEST)
    source.add_signatures(REPO, DIGEST, (layer(signed_layer(K0, image_digest=DIGEST)),))
    down_entry = {**keys_entry(K1.public_pem), "repository": "registry.test/down"}
    assert verify(source, [{"count": 1, "entries": [down_entry, keys_entry(K0.public_pem)]}])[0] == Verdict.PASS
    # when the count is not met, the outage makes the result an infrastructure error (failurePolicy decides)
    verdict, message = verify(source, [{"entries": [down_entry, keys_entry(K0.public_pem)]}])
    assert verdict == Verdict.ERROR
    assert "unreachable" in message


def test_image_not_found_is_a_failure_and_unmatched_images_skip() -> None:
    source = MemorySignatureSource()
    verdict, message = verify(source, [entries(K0)])
    assert verdict == Verdict.FAIL and "not found" in message
    doc = cluster_policy("p", [{"imageReferences": ["other.test/*"], "attestors": [entries(K0)]}])
    (result,) = Verifier(source=source).verify_images(
        ["registry.test/app:v1"], load_policy_text(dump(doc), "p.yaml").policies, deadline=Deadline.after(5)
    )
    assert result.verdict == Verdict.SKIP and result.policy == ""


def test_skip_image_references() -> None:
    doc = cluster_policy(
        "p",
        [
            {
                "imageReferences": ["registry.test/*"],
                "skipImageReferences": ["registry.test/app:*"],
                "attestors": [entries(K0)],
            }
        ],
    )
    (result,) = Verifier(source=MemorySignatureSource()).verify_images(
        [IMAGE], load_policy_text(dump(doc), "p.yaml").policies, deadline=Deadline.after(5)
    )
    assert result.verdict == Verdict.SKIP
    assert "skipImageReferences" in result.message


class SlowSource(MemorySignatureSource):
    def resolve_digest(self, ref: ImageReference, *, deadline: Deadline) -> str:
        time.sleep(0.3)
        return DIGEST


def test_images_are_verified_concurrently() -> None:
    source = SlowSource()
    source.add_signatures(REPO, DIGEST, (layer(signed_layer(K0, image_digest=DIGEST)),))
    doc = cluster_policy("p", [{"imageReferences": ["registry.test/*"], "attestors": [entries(K0)]}])
    images = [f"{REPO}:v{i}" for i in range(8)]
    started = time.monotonic()
    results = Verifier(source=source).verify_images(
        images, load_policy_text(dump(doc), "p.yaml").policies, deadline=Deadline.after(10)
    )
    elapsed = time.monotonic() - started
    assert [r.verdict for r in results] == [Verdict.PASS] * 8
    assert elapsed < 1.0, f"8 images × 0.3 s took {elapsed:.2f}s: not concurrent"

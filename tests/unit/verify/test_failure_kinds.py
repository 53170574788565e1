"""Decided failures carry a typed kind (sigward.errors.FailureKind) from where they are raised to the verdict: the
stored
status ``unsigned`` and the choice between a legacy and an OCI-referrer failure read the kind, never the message.
Every case runs twice, once with Kyverno's wording and once with the "nothing found" messages reworded by a test
double; the outcome must not change (regression: push recorded ``unsigned`` when a message merely contained
"no signatures found", and the engine compared message text to pick which failure stands)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from sigward import errors
from sigward.deadline import Deadline
from sigward.errors import FailureKind, VerificationFailure
from sigward.events import PushEvent
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.push.service import PushService, PushSettings
from sigward.store.memory import MemoryStore
from sigward.verify import attestations, bundles, cosign, engine, keyless
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.plan import RulePlan
from sigward.verify.results import RuleVerdict, Verdict
from tests.support.memory import MemorySignatureSource, stored_verdict
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import SignedLayer, attestation_layer, in_toto_statement, new_key, signed_layer

HOST = "registry.test"
REPO = "team/app"
IMAGE = f"{HOST}/{REPO}:v1"
DIGEST = "sha256:" + "4" * 64
KEY = new_key("p256", slot=51)
OTHER_KEY = new_key("p256", slot=52)
PREDICATE = "https://example.com/checked/v1"
REWORDED_SIGNATURES = "the registry holds nothing signed for this image (reworded)"
REWORDED_ATTESTATIONS = "nothing attested here (reworded)"


@pytest.fixture(params=["kyverno-wording", "reworded"])
def wording(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Swap every producer of the "nothing found" failures for one with other text and the same kind."""
    if request.param == "reworded":

        def signatures() -> VerificationFailure:
            return VerificationFailure(REWORDED_SIGNATURES, kind=FailureKind.NO_SIGNATURES)

        def attestations_(detail: str = "") -> VerificationFailure:
            return VerificationFailure(REWORDED_ATTESTATIONS, kind=FailureKind.NO_ATTESTATIONS)

        for module in (cosign, bundles, keyless, engine):
            if hasattr(module, "no_signatures_found"):
                monkeypatch.setattr(module, "no_signatures_found", signatures)
        for module in (attestations, bundles, keyless):
            monkeypatch.setattr(module, "no_attestations_found", attestations_)
    yield request.param


def _layer(s: SignedLayer) -> SignatureLayer:
    return SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))


def sign_with(key: Any) -> Callable[[MemorySignatureSource], None]:
    def apply(source: MemorySignatureSource) -> None:
        source.add_signatures(f"{HOST}/{REPO}", DIGEST, (_layer(signed_layer(key, image_digest=DIGEST)),))

    return apply


def nothing(source: MemorySignatureSource) -> None:
    """An image pushed without signatures or attestations."""


def attested_with_other_type(source: MemorySignatureSource) -> None:
    sign_with(KEY)(source)
    statement = in_toto_statement(DIGEST, "https://example.com/other/v1", {"checked": True})
    source.add_attestations(f"{HOST}/{REPO}", DIGEST, (_layer(attestation_layer(KEY, statement)),))


def with_attestation(**iv: Any) -> dict[str, Any]:
    iv["attestations"] = [{"type": PREDICATE, "attestors": [{"entries": [keys_entry(KEY.public_pem)]}]}]
    return iv


@dataclass(frozen=True)
class Row:
    name: str
    setup: Callable[[MemorySignatureSource], None]
    verify_image: Mapping[str, Any]
    kind: FailureKind
    stored: str  # the push-time status recorded after the grace period


ROWS = [
    Row(
        "unsigned",
        nothing,
        key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)]),
        FailureKind.NO_SIGNATURES,
        "unsigned",
    ),
    Row(
        "wrong-key",
        sign_with(OTHER_KEY),
        key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)]),
        FailureKind.NOT_SATISFIED,
        "fail",
    ),
    Row(
        "unsigned-in-every-entry",
        nothing,
        key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem), keys_entry(OTHER_KEY.public_pem)], count=1),
        FailureKind.NO_SIGNATURES,
        "unsigned",
    ),
    Row(
        "one-entry-unsigned-one-wrong-key",  # mixed: something was signed, just not as required
        sign_with(OTHER_KEY),
        key_verification(
            [f"{HOST}/*"],
            [keys_entry(KEY.public_pem, repository=f"{HOST}/elsewhere"), keys_entry(KEY.public_pem)],
            count=1,
        ),
        FailureKind.NOT_SATISFIED,
        "fail",
    ),
    Row(
        "attestation-of-wanted-type-missing",
        attested_with_other_type,
        with_attestation(**key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)])),
        FailureKind.NO_ATTESTATIONS,
        "fail",
    ),
    Row(
        "no-attestations-at-all",
        sign_with(KEY),
        with_attestation(**key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)])),
        FailureKind.NO_ATTESTATIONS,
        "fail",
    ),
]


def policy_of(iv: Mapping[str, Any]) -> Policy:
    (policy,) = load_policy_text(dump(cluster_policy("p", [iv])), "p.yaml").policies
    return policy


def make_source(row: Row) -> MemorySignatureSource:
    source = MemorySignatureSource()
    source.add_image(IMAGE, DIGEST)
    row.setup(source)
    return source


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_engine_verdict_carries_the_kind(row: Row, wording: str) -> None:
    policy = policy_of(row.verify_image)
    (verdict,) = Verifier(source=make_source(row)).verify_images([IMAGE], [policy], deadline=Deadline.after(5))
    assert verdict.verdict is Verdict.FAIL
    assert verdict.failure is row.kind
    # the legacy failure stands alone when the OCI referrers had nothing (chosen by kind, not by text)
    assert "OCI referrers" not in verdict.message, verdict.message


def test_signed_image_has_no_failure_kind(wording: str) -> None:
    row = ROWS[1]
    policy = policy_of(key_verification([f"{HOST}/*"], [keys_entry(OTHER_KEY.public_pem)]))
    (verdict,) = Verifier(source=make_source(row)).verify_images([IMAGE], [policy], deadline=Deadline.after(5))
    assert verdict.verdict is Verdict.PASS and verdict.failure is None


class _Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _push_event() -> PushEvent:
    return PushEvent(
        source="distribution",
        event_id="e1",
        action="push",
        registry=HOST,
        repository=REPO,
        digest=DIGEST,
        tag="v1",
        media_type="application/vnd.oci.image.manifest.v1+json",
    )


def _recorded_status(verifier: Verifier, policy: Policy) -> str | None:
    store, clock = MemoryStore(), _Clock()
    service = PushService(
        policies=lambda: [policy], verifier=verifier, store=store, settings=PushSettings(grace_seconds=60), clock=clock
    )
    assert service.handle(_push_event()).status == "retry"  # inside the grace period
    clock.now += 120
    assert service.handle(_push_event()).status == "recorded"
    return stored_verdict(store, policy, IMAGE, DIGEST, now=clock.now)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_push_status_follows_the_kind(row: Row, wording: str) -> None:
    policy = policy_of(row.verify_image)
    assert _recorded_status(Verifier(source=make_source(row)), policy) == row.stored


class _FixedVerdict(Verifier):
    """A verifier double answering one FAIL verdict with a chosen message and kind."""

    def __init__(self, message: str, failure: FailureKind) -> None:
        super().__init__(source=MemorySignatureSource())
        self._message, self._failure = message, failure

    def evaluate(self, plan: RulePlan, *, deadline: Deadline, **_: Any) -> RuleVerdict:
        return RuleVerdict(
            image=IMAGE,
            reference=IMAGE,
            digest=DIGEST,
            verdict=Verdict.FAIL,
            policy=plan.policy.name,
            rule=plan.rule.name,
            message=self._message,
            failure=self._failure,
        )


@pytest.mark.parametrize(
    ("message", "failure", "status"),
    [
        ("no signatures found", FailureKind.NOT_SATISFIED, "fail"),  # the text alone must not make it unsigned
        (
            ".attestors[0].entries[0].keys: no signatures found; other: no signatures found",
            FailureKind.NOT_SATISFIED,
            "fail",
        ),
        ("nothing signed it", FailureKind.NO_SIGNATURES, "unsigned"),  # nor its absence make it a plain fail
        ("no matching attestations: no attestations found", FailureKind.NO_ATTESTATIONS, "fail"),
    ],
)
def test_push_status_never_reads_the_message(message: str, failure: FailureKind, status: str) -> None:
    policy = policy_of(key_verification([f"{HOST}/*"], [keys_entry(KEY.public_pem)]))
    assert _recorded_status(_FixedVerdict(message, failure), policy) == status


@pytest.mark.parametrize(
    ("kinds", "combined"),
    [
        ((FailureKind.NO_SIGNATURES,), FailureKind.NO_SIGNATURES),
        ((FailureKind.NO_SIGNATURES, FailureKind.NO_SIGNATURES), FailureKind.NO_SIGNATURES),
        ((FailureKind.NO_SIGNATURES, FailureKind.NOT_SATISFIED), FailureKind.NOT_SATISFIED),
        ((FailureKind.NO_SIGNATURES, FailureKind.NO_ATTESTATIONS), FailureKind.NOT_SATISFIED),
        ((), FailureKind.NOT_SATISFIED),
    ],
)
def test_combined_kind(kinds: tuple[FailureKind, ...], combined: FailureKind) -> None:
    assert errors.combined_kind(kinds) is combined


def test_failure_kind_of_errors() -> None:
    assert errors.failure_kind_of(errors.no_signatures_found()) is FailureKind.NO_SIGNATURES
    assert errors.failure_kind_of(errors.NotFoundError("manifest not found")) is FailureKind.NOT_SATISFIED
    assert errors.failure_kind_of(errors.BadRequestError("bad")) is FailureKind.NOT_SATISFIED
    assert errors.failure_kind_of(errors.ExternalServiceError("down")) is None  # an outage decided nothing
    assert errors.no_signatures_found().message == "no signatures found"  # Kyverno's wording stays
    assert errors.no_attestations_found().message == "no matching attestations: no attestations found"

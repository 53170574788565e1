"""The stored status is an enum built from a verdict in one place (StoredStatus.of): its kind decides ``unsigned``,
never its message; a skip is not stored; text a backend holds that no version wrote reads as ERROR (never reused)."""

from __future__ import annotations

import pytest

from sigward.errors import FailureKind
from sigward.store import StoredStatus, StoredVerdict
from sigward.verify.plan import VerdictKey
from sigward.verify.results import RuleVerdict, Verdict


def verdict(v: Verdict, *, failure: FailureKind | None = None, message: str = "m") -> RuleVerdict:
    return RuleVerdict(
        image="i", reference="r", digest="d", verdict=v, policy="p", rule="r", message=message, failure=failure
    )


@pytest.mark.parametrize(
    ("given", "status"),
    [
        (verdict(Verdict.PASS), StoredStatus.PASS),
        (verdict(Verdict.FAIL, failure=FailureKind.NO_SIGNATURES, message="reworded"), StoredStatus.UNSIGNED),
        (verdict(Verdict.FAIL, failure=FailureKind.NOT_SATISFIED, message="no signatures found"), StoredStatus.FAIL),
        (verdict(Verdict.FAIL, failure=FailureKind.NO_ATTESTATIONS), StoredStatus.FAIL),
        (verdict(Verdict.FAIL, failure=None, message="no signatures found"), StoredStatus.FAIL),
        (verdict(Verdict.ERROR, message="no signatures found"), StoredStatus.ERROR),
    ],
)
def test_status_follows_the_kind_not_the_message(given: RuleVerdict, status: StoredStatus) -> None:
    assert StoredStatus.of(given) is status


def test_a_skip_is_not_stored() -> None:
    with pytest.raises(ValueError, match="skip"):
        StoredStatus.of(verdict(Verdict.SKIP))


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("pass", StoredStatus.PASS),
        ("unsigned", StoredStatus.UNSIGNED),
        ("PASS", StoredStatus.ERROR),
        ("", StoredStatus.ERROR),
        ("passed", StoredStatus.ERROR),
    ],
)
def test_backend_text_parses_fail_closed(text: str, status: StoredStatus) -> None:
    assert StoredStatus.parse(text) is status


def test_recorded_under_its_key_round_trips() -> None:
    key = VerdictKey(
        policy_hash="h",
        rule="r",
        repository="reg/app",
        digest="sha256:" + "1" * 64,
        entries=(0, 2),
        inputs='{"trust":"x"}',
    )
    stored = StoredVerdict.of(key, policy="p", verdict=StoredStatus.PASS, message="ok", verified_at=1.0, ttl=10.0)
    assert stored.verdict_key == key and stored.key == key.stored and stored.expires_at == 11.0
    assert stored.as_json()["verdict"] == "pass"
    other = VerdictKey(
        policy_hash="h", rule="r", repository="reg/app", digest=key.digest, entries=(0,), inputs=key.inputs
    )
    assert other.stored != stored.key  # other applied entries: another key

"""Kyverno's IVPOL wording for a missed evidence threshold: typed kinds in, sigstore-go's texts out (text only at
the edge), and only a threshold every tried bundle missed is named."""

from __future__ import annotations

import pytest

from sigward.errors import FailureKind, evidence_kind
from sigward.verify.ivpol import kyverno_reason

K = FailureKind
TLOG = "failed to verify log inclusion: not enough verified log entries from transparency log: 0 < 1"
SCT = "failed to verify signed certificate timestamp: only able to verify 0 SCT entries; unable to meet threshold of 1"
TSA = "threshold not met for verified signed timestamps: 0 < 1"


@pytest.mark.parametrize(
    ("kinds", "text"),
    [
        ((K.TLOG_ENTRIES,), TLOG),
        ((K.SCT_ENTRIES,), SCT),
        ((K.SIGNED_TIMESTAMPS,), TSA),
        ((K.TLOG_ENTRIES, K.TLOG_ENTRIES), TLOG),  # named once
        ((K.SCT_ENTRIES, K.TLOG_ENTRIES), f"{SCT}; {TLOG}"),  # in the order the checks failed
        ((K.NOT_SATISFIED, K.TLOG_ENTRIES), TLOG),
        ((K.NOT_SATISFIED,), ""),  # an identity mismatch, a bad signature: no threshold to name
        ((K.NO_SIGNATURES, K.NO_ATTESTATIONS), ""),
        ((), ""),
    ],
)
def test_kyverno_reason(kinds: tuple[FailureKind, ...], text: str) -> None:
    assert kyverno_reason(kinds) == text


@pytest.mark.parametrize(
    ("kinds", "kind"),
    [
        ((K.TLOG_ENTRIES,), K.TLOG_ENTRIES),
        ((K.TLOG_ENTRIES, K.TLOG_ENTRIES), K.TLOG_ENTRIES),
        ((K.TLOG_ENTRIES, K.SCT_ENTRIES), K.NOT_SATISFIED),  # bundles disagree: nothing shared to name
        ((K.TLOG_ENTRIES, K.NOT_SATISFIED), K.NOT_SATISFIED),
        ((K.NO_SIGNATURES,), K.NOT_SATISFIED),  # a bundle that failed is never "unsigned"
        ((), K.NOT_SATISFIED),
    ],
)
def test_evidence_kind(kinds: tuple[FailureKind, ...], kind: FailureKind) -> None:
    assert evidence_kind(kinds) is kind

"""``selector.matchLabels`` wildcards, as Kyverno's ``wildcards.ReplaceInSelector``.

Regression (bug: wildcard_selector_never_matched): the model documented ``*``/``?`` in ``matchLabels`` but compared
values literally, so ``app: "*"`` never matched and a rule selecting every labelled Pod verified nothing."""

from __future__ import annotations

import pytest

from sigward.policy.models import LabelSelector

CASES = [
    ({"app": "*"}, {"app": "web"}, True),
    ({"app": "*"}, {"tier": "web"}, False),  # the key must exist
    ({"app": "web-*"}, {"app": "web-1"}, True),
    ({"app": "web-*"}, {"app": "db-1"}, False),
    ({"app": "we?"}, {"app": "web"}, True),
    ({"app": "we?"}, {"app": "webb"}, False),
    ({"team.*/owner": "a"}, {"team.example.com/owner": "a"}, True),
    ({"team.*/owner": "a"}, {"team.example.com/owner": "b"}, False),
    ({"app": "web"}, {"app": "web"}, True),
    ({"app": "web"}, {"app": "web-1"}, False),  # no wildcard: literal
    ({"app": "*", "env": "prod"}, {"app": "x", "env": "dev"}, False),
    ({}, {}, True),
]


@pytest.mark.parametrize(("match_labels", "labels", "want"), CASES)
def test_match_labels_wildcards(match_labels: dict[str, str], labels: dict[str, str], want: bool) -> None:
    assert LabelSelector(match_labels=match_labels).matches(labels) is want

"""Which push events give the re-verification of their subject a tag hint (distribution notifies before it links
the tag): a push by tag, about another image, of a tag sigward reads for it, in the event's repository."""

from __future__ import annotations

from typing import Literal

import pytest

from sigward.events import PushEvent
from sigward.push.service import event_tag_hints
from sigward.references import Repository

HOST = "registry.example"
REPO = "team/app"
SUBJECT = "sha256:" + "a" * 64
PUSHED = "sha256:" + "c" * 64
SIG = "sha256-" + "a" * 64 + ".sig"


def event(tag: str, *, action: Literal["push", "delete"] = "push", digest: str = PUSHED) -> PushEvent:
    return PushEvent(
        source="distribution", event_id="e1", action=action, registry=HOST, repository=REPO, digest=digest, tag=tag
    )


@pytest.mark.parametrize(
    ("pushed", "subject", "hinted"),
    [
        (event(SIG), SUBJECT, True),
        (event("sha256-" + "a" * 64 + ".att"), SUBJECT, True),
        (event("sha256-" + "a" * 64), SUBJECT, True),
        (event("sha256-" + "a" * 64 + ".sbom"), SUBJECT, False),
        (event(SIG, action="delete"), SUBJECT, False),
        (event(""), SUBJECT, False),  # a referrer pushed by digest: nothing to hint
        (event("v1"), PUSHED, False),  # an image push is about itself
        (event(SIG), "sha256:" + "b" * 64, False),  # the tag is not one of this subject's
    ],
)
def test_event_tag_hints(pushed: PushEvent, subject: str, hinted: bool) -> None:
    hints = event_tag_hints(pushed, subject)
    assert bool(hints) is hinted
    if hinted:
        assert hints.digest_for(Repository(HOST, REPO), pushed.tag) == PUSHED
        assert hints.digest_for(Repository(HOST, "team/other"), pushed.tag) is None


PREFIXED = "team-sha256-" + "a" * 64 + ".sig"


@pytest.mark.parametrize(
    ("pushed", "prefixes", "hinted"),
    [
        (event(PREFIXED), ("team-",), True),
        (event("team-sha256-" + "a" * 64 + ".att"), ("team-", "x-"), True),
        (event(PREFIXED), (), False),  # no loaded policy reads that prefix
        (event(PREFIXED), ("other-",), False),
        (event(PREFIXED, action="delete"), ("team-",), False),
    ],
)
def test_prefixed_signature_push_hints_only_with_a_loaded_prefix(
    pushed: PushEvent, prefixes: tuple[str, ...], hinted: bool
) -> None:
    hints = event_tag_hints(pushed, SUBJECT, prefixes)
    assert bool(hints) is hinted
    if hinted:
        assert hints.digest_for(Repository(HOST, REPO), pushed.tag) == PUSHED

"""Property tests for the verdict plan/key (issue 12 §2): two tags of one digest share a key exactly when the rule
reads no tag, and the tag, pinned and digest-only spellings of a tag-independent rule agree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sigward.references import parse_image_reference
from sigward.verify.plan import plan_rule
from tests.unit.admission.test_verdict_reuse import DIGEST, REPO, deny_if, entry, load

# Docker's tag grammar: a word character first, then up to 127 of [A-Za-z0-9_.-].
TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", fullmatch=True)

TAG_READING = load({**entry(), **deny_if("{{ image.tag }}", "forbidden-tag-value")})[0]
TAG_FREE = load(entry())[0]


def _key(policy_tag: str, tag: str, *, pinned: bool = False) -> object:
    policy = TAG_READING if policy_tag == "reads" else TAG_FREE
    text = f"{REPO}:{tag}@{DIGEST}" if pinned else f"{REPO}:{tag}"
    plan = plan_rule(policy, policy.spec.rules[0], parse_image_reference(text))
    assert plan is not None
    return plan.key(DIGEST, trust_fingerprint="sha256:root")


@settings(max_examples=150, deadline=None)
@given(TAGS, TAGS)
def test_tag_reading_rule_keys_differ_exactly_when_tags_differ(a: str, b: str) -> None:
    assert (_key("reads", a) == _key("reads", b)) == (a == b)


@settings(max_examples=150, deadline=None)
@given(TAGS, TAGS)
def test_tag_free_rule_keys_agree_across_tags_and_pinned_forms(a: str, b: str) -> None:
    assert _key("free", a) == _key("free", b) == _key("free", a, pinned=True)
    digest_only = plan_rule(TAG_FREE, TAG_FREE.spec.rules[0], parse_image_reference(f"{REPO}@{DIGEST}"))
    assert digest_only is not None
    assert digest_only.key(DIGEST, trust_fingerprint="sha256:root") == _key("free", b)


@settings(max_examples=50, deadline=None)
@given(TAGS)
def test_trust_root_is_part_of_every_key(tag: str) -> None:
    plan = plan_rule(TAG_FREE, TAG_FREE.spec.rules[0], parse_image_reference(f"{REPO}:{tag}"))
    assert plan is not None
    assert plan.key(DIGEST, trust_fingerprint="sha256:a") != plan.key(DIGEST, trust_fingerprint="sha256:b")

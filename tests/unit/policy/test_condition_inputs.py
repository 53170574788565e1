"""What a condition reads from the request (verdict reuse keys): the static analysis is conservative, never blind."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.policy.conditions import ALL_INPUTS, NO_INPUTS, ConditionInputs, inputs_read


def image(*fields: str) -> ConditionInputs:
    return ConditionInputs(frozenset(fields), False)


REQUEST = ConditionInputs(frozenset(), True)

ROWS: list[tuple[str, Any, ConditionInputs]] = [
    ("tag", "{{ image.tag }}", image("tag")),
    ("referenceWithTag", "{{image.referenceWithTag}}", image("referenceWithTag")),
    ("quoted-fields", '{{ "image"."tag" }}', image("tag")),
    ("digest-only", "{{ image.digest }}", image("digest")),
    ("whole-image", "{{ to_string(image) }}", ConditionInputs(ALL_INPUTS.image, False)),
    ("request-object", "{{ request.object.metadata.labels.team }}", REQUEST),
    ("request-in-function", "{{ contains(request.object.metadata.name, 'x') }}", REQUEST),
    ("predicate-only", "{{ builder.id }}", NO_INPUTS),
    ("filter-relative-to-elements", "{{ materials[?uri == image.tag] }}", NO_INPUTS),
    ("pipe-right-side-relative", "{{ materials | image }}", NO_INPUTS),
    ("current-node", "{{ to_string(@) }}", ALL_INPUTS),
    ("nested-expression", "{{ regex_match('^x', '{{ builder.id }}') }}", ALL_INPUTS),
    ("unparseable", "{{ image.tag[ }}", ALL_INPUTS),
    ("escaped-is-literal", "\\{{ image.tag }}", NO_INPUTS),
    ("no-variables", "v1", NO_INPUTS),
    ("mapping-keys-and-lists", {"{{ image.tag }}": ["{{ request.uid }}"]}, ConditionInputs(frozenset({"tag"}), True)),
]


@pytest.mark.parametrize(("text", "expected"), [(r[1], r[2]) for r in ROWS], ids=[r[0] for r in ROWS])
def test_inputs_read(text: Any, expected: ConditionInputs) -> None:
    assert inputs_read(text) == expected


def test_tag_dependence() -> None:
    assert image("referenceWithTag").tag_dependent
    assert image("reference").tag_dependent
    assert not image("digest", "registry").tag_dependent

"""Image volumes (``volumes[*].image.reference``, KEP-4639) are images a Pod runs from: they are extracted like
containers in Pods and every Pod template, with a JSON pointer the digest patch writes to (issue 12 §6)."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.admission.images import POD_CONTROLLERS, extract_images
from sigward.errors import BadRequestError

SIGNED = "registry.example.com/team/data:v1"
OTHER = "registry.example.com/team/tools:v2"

_TEMPLATE_PATH = {
    "Pod": ("spec",),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def _pod_spec(volumes: list[Any]) -> dict[str, Any]:
    return {"containers": [{"name": "app", "image": OTHER}], "volumes": volumes}


def _resource(kind: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    path = _TEMPLATE_PATH.get(kind, ("spec", "template", "spec"))
    obj: dict[str, Any] = dict(pod_spec)
    for field in reversed(path):
        obj = {field: obj}
    return {"kind": kind, "metadata": {"name": "x"}, **obj}


def _pointer(kind: str, rest: str) -> str:
    return "/" + "/".join(_TEMPLATE_PATH.get(kind, ("spec", "template", "spec"))) + rest


VOLUMES = [
    {"name": "cfg", "configMap": {"name": "c"}},
    {"name": "data", "image": {"reference": SIGNED, "pullPolicy": "IfNotPresent"}},
    {"name": "empty", "emptyDir": {}},
    {"name": "tools", "image": {"reference": OTHER}},
]


@pytest.mark.parametrize("kind", ["Pod", *POD_CONTROLLERS])
def test_image_volume_is_extracted_in_every_pod_template(kind: str) -> None:
    found = extract_images(_resource(kind, _pod_spec(VOLUMES)), kind=kind)
    volumes = [i for i in found if i.group == "volumes"]
    assert [(i.pointer, i.image) for i in volumes] == [
        (_pointer(kind, "/volumes/1/image/reference"), SIGNED),
        (_pointer(kind, "/volumes/3/image/reference"), OTHER),
    ]
    assert volumes[0].ref.reference == SIGNED
    assert [i.pointer for i in found if i.group == "containers"] == [_pointer(kind, "/containers/0/image")]


@pytest.mark.parametrize(
    "volumes",
    [
        [],
        [{"name": "cfg", "configMap": {"name": "c"}}],
        [{"name": "blank", "image": {"reference": ""}}],
        [{"name": "none", "image": {"pullPolicy": "Always"}}],
    ],
)
def test_image_volume_absent_or_empty_adds_nothing(volumes: list[Any]) -> None:
    found = extract_images(_resource("Pod", _pod_spec(volumes)), kind="Pod")
    assert [i.group for i in found] == ["containers"]


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        ([{"name": "bad", "image": {"reference": "UPPER/Case:v1"}}], "/spec/volumes/0/image/reference"),
        ([{"name": "bad", "image": {"reference": "a b"}}], "invalid image 'a b'"),
        ([{"name": "bad", "image": "registry.example.com/x:v1"}], "/spec/volumes/0/image: expected an object"),
        ("not-a-list", "/spec/volumes: expected a list or map"),
    ],
)
def test_image_volume_malformed_is_refused(volumes: Any, message: str) -> None:
    with pytest.raises(BadRequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        extract_images(_resource("Pod", _pod_spec(volumes)), kind="Pod")


def test_image_volume_not_extracted_for_other_kinds_or_custom_extractors() -> None:
    assert extract_images({"spec": _pod_spec(VOLUMES)}, kind="ConfigMap") == []

    class _Custom:
        path = "/spec/containers/*/image"
        value = ""
        name = "custom"
        key = ""
        jmes_path = ""

    found = extract_images(_resource("Pod", _pod_spec(VOLUMES)), kind="Pod", extractors={"Pod": [_Custom()]})
    assert [i.image for i in found] == [OTHER]  # imageExtractors replace the built-in extraction, as in Kyverno

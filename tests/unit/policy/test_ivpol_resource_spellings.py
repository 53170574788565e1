"""Kyverno's ``resource`` library spellings (kyverno/sdk extensions/cel/libs/resource: ``Get``/``List`` always,
``get``/``list`` from library version 1.18): every spelling compiles in every request-level expression kind and
reaches the one implementation with the same arguments; spellings Kyverno does not declare stay type errors at load
(regression: Kyverno's context/configmap and context/resource policies failed with an undeclared ``get``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.policy.ivpol.cel import LIBRARY_VALUES, CelError, bound, compile_expression
from sigward.policy.loader import load_policies

VECTORS = Path("/work/shared/vectors/kyverno-ivpol/chainsaw")


class Recorder:
    """The service layer's side of :class:`sigward.policy.ivpol.cel.ImageFunctions`, recording lookups."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def verify_image_signatures(self, image: str, attestors: Sequence[str]) -> int:
        raise AssertionError("not called")

    def verify_attestation_signatures(self, image: str, attestation: str, attestors: Sequence[str]) -> int:
        raise AssertionError("not called")

    def extract_payload(self, image: str, attestation: str) -> Any:
        raise AssertionError("not called")

    def image_data(self, image: str) -> Any:
        self.calls.append(("image_data", (image,)))
        return {"config": {}}

    def resource_get(self, api_version: str, resource: str, namespace: str, name: str) -> Any:
        self.calls.append(("get", (api_version, resource, namespace, name)))
        return {"metadata": {"name": name}, "data": {"env": "prod"}}

    def resource_list(self, api_version: str, resource: str, namespace: str) -> Any:
        self.calls.append(("list", (api_version, resource, namespace)))
        return {"items": [{"metadata": {"name": "a"}}]}

    def http_call(self, method: str, url: str, headers: Mapping[str, str], body: Any) -> Any:
        raise AssertionError("not called")

    def global_context_get(self, name: str, projection: str) -> Any:
        raise AssertionError("not called")


DATA: dict[str, Any] = {
    "object": {"metadata": {"namespace": "team"}},
    "oldObject": None,
    "request": {},
    "namespaceObject": None,
    "variables": {},
    "images": {},
    "attestors": {},
    "attestations": {},
    "image": {},
    **LIBRARY_VALUES,
}


@pytest.mark.parametrize("kind", ["request", "image"])
@pytest.mark.parametrize(
    ("expression", "call"),
    [
        ("resource.Get('v1', 'configmaps', object.metadata.namespace, 'cm').data.env == 'prod'", "get"),
        ("resource.get('v1', 'configmaps', object.metadata.namespace, 'cm').data.env == 'prod'", "get"),
        ("size(resource.List('v1', 'configmaps', object.metadata.namespace).items) == 1", "list"),
        ("size(resource.list('v1', 'configmaps', object.metadata.namespace).items) == 1", "list"),
    ],
)
def test_every_spelling_reaches_the_one_implementation(kind: str, expression: str, call: str) -> None:
    program = compile_expression(expression, "spec.variables[0].expression", kind=kind, want_bool=True)
    recorder = Recorder()
    with bound(recorder):
        assert program.evaluate(DATA) is True
    args = ("v1", "configmaps", "team", "cm") if call == "get" else ("v1", "configmaps", "team")
    assert recorder.calls == [(call, args)]


@pytest.mark.parametrize(
    "expression",
    [
        "resource.GET('v1', 'configmaps', 'ns', 'cm') != null",  # not a Kyverno spelling
        "resource.get('v1', 'configmaps', 'ns') != null",  # get takes four arguments
        "resource.list('v1', 'configmaps', 'ns', 'cm') != null",  # list takes three
        "imagedata.get('ghcr.io/x') != null",  # imagedata has Get only
    ],
)
def test_other_spellings_are_type_errors_at_load(expression: str) -> None:
    with pytest.raises(CelError, match=r"spec\.validations\[0\]\.expression"):
        compile_expression(expression, "spec.validations[0].expression", kind="image", want_bool=True)


def test_imagedata_handle_is_not_a_resource_handle() -> None:
    """``get`` checks its receiver as ``Get`` does: the imagedata handle cannot be used as the resource library."""
    program = compile_expression("imagedata.get('v1', 'configmaps', 'ns', 'cm') != null", "p", kind="image")
    with bound(Recorder()), pytest.raises(CelError):
        program.evaluate(DATA)


@pytest.mark.parametrize("directory", ["context/configmap", "context/resource"])
def test_regression_vectors_using_lowercase_get_load(directory: str) -> None:
    policy_file = VECTORS / directory / "policy.yaml"
    assert "resource.get(" in policy_file.read_text()
    (policy,) = load_policies([str(policy_file)]).image_policies
    assert "resource.get(" in yaml.safe_dump(policy.spec.model_dump(by_alias=True))

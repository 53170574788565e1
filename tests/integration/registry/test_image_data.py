"""Kyverno's imageRegistry context data fetched from the real local registry (pkg/engine/context/loaders/imagedata.go
field names), and a missing image as an error."""

from __future__ import annotations

import pytest

from sigward.errors import SigwardError
from sigward.registry import RegistryClient
from sigward.registry.imagedata import RegistryImageData
from tests.support.registry import LocalRegistry, local_config

pytestmark = pytest.mark.registry


def test_image_data_fields(registry: LocalRegistry) -> None:
    digest = registry.push_image("imgdata/app", tag="v1")
    with RegistryClient(local_config(registry)) as client:
        data = RegistryImageData(client)(f"{registry.host}/imgdata/app:v1")
        pinned = RegistryImageData(client)(f"{registry.host}/imgdata/app:v1@{digest}")
    assert data["resolvedImage"] == f"{registry.host}/imgdata/app@{digest}"
    assert data["registry"] == registry.host and data["repository"] == "imgdata/app"
    assert data["identifier"] == "v1" and pinned["identifier"] == f"v1@{digest}"
    assert data["manifest"]["schemaVersion"] == 2
    assert data["configData"] is not None and data["manifestList"] is None


def test_missing_image_is_an_error(registry: LocalRegistry) -> None:
    with RegistryClient(local_config(registry)) as client, pytest.raises(SigwardError):
        RegistryImageData(client)(f"{registry.host}/imgdata/none:v1")

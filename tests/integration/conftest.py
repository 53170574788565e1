"""Fixtures for integration tests; the logic lives in :mod:`tests.support`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sigward.registry import RegistryClient
from tests.support.registry import LocalRegistry, local_config


@pytest.fixture
def client(registry: LocalRegistry) -> Iterator[RegistryClient]:
    """A registry client trusting the session ``registry`` (closed after the test); a module may define its own."""
    c = RegistryClient(local_config(registry))
    yield c
    c.close()

"""Fixtures of the registry integration tests."""

from tests.support.moto import aws_moto_server  # noqa: F401 - fixture

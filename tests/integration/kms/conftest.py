"""Fixtures of the KMS integration tests. The logic lives in :mod:`tests.support`; each backend's fixtures are
imported here under their own names."""

from __future__ import annotations

# AWS KMS through a real moto_server; HashiCorp Vault through tests.support.vaultserver (real hvac client).
from tests.support.moto import aws_kms_env, aws_moto_admin, aws_moto_keys, aws_moto_server  # noqa: F401
from tests.support.vaultserver import vault_env, vault_server  # noqa: F401

"""Images for the fault tests, pushed once to the session registry: a signed image, a second signed image (whose
signature a lying proxy can substitute), an unsigned one. Policies and proxies are made per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sigward.kms import backends
from tests.support.faults import FaultProxy
from tests.support.policies import cluster_policy, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import SigningKey, attach_signatures, new_key, signed_layer

KEY: SigningKey = new_key("p256", slot=70)
DEADLINE = 1.5
# Generous: the decision must come within the deadline plus scheduling noise on a loaded 2-core machine.
SLACK = 1.0


@dataclass(frozen=True)
class FaultImages:
    signed_repo: str
    signed_digest: str
    other_repo: str
    other_digest: str
    unsigned_repo: str


@pytest.fixture(scope="session")
def fault_images(registry: LocalRegistry) -> FaultImages:
    signed = registry.push_image("faults/app", tag="v1")
    attach_signatures(registry, "faults/app", signed, [signed_layer(KEY, image_digest=signed)])
    other = registry.push_image("faults/other", tag="v1")
    attach_signatures(registry, "faults/other", other, [signed_layer(KEY, image_digest=other)])
    registry.push_image("faults/unsigned", tag="v1")
    return FaultImages("faults/app", signed, "faults/other", other, "faults/unsigned")


@pytest.fixture
def proxy(registry: LocalRegistry) -> Iterator[FaultProxy]:
    with FaultProxy(registry.url) as p:
        yield p


@pytest.fixture(autouse=True)
def _fresh_kms_backends() -> Iterator[None]:
    """KMS backends are process-wide and keep their SDK session (and its environment) once made."""
    backends.reset()
    yield
    backends.reset()


def require_signed(host: str, *, failure_policy: str = "Fail", entries: list[dict[str, Any]] | None = None) -> Any:
    return cluster_policy(
        "require-signed",
        [key_verification([f"{host}/*"], entries or [keys_entry(KEY.public_pem)], mutate_digest=False)],
        failure_policy=failure_policy,
    )

"""No starvation, no fail-open by exhaustion (issue 12 §3), decided on one AdmissionService over the real registry
client while another request's images hang on a registry that never answers:

- request A (50 images on the silent registry) does not keep request B's image from starting: B is decided (denied
  for its unsigned image, allowed for a signed one) quickly, not errored;
- a decided failure and a timed-out image in one request: denied even under ``failurePolicy: Ignore``;
- a pool exhausted by A: B's image never starts, and that denies it under ``Ignore`` (it is not an outage) —
  while a real outage of B's own registry under ``Ignore`` still admits (the twin that shows the difference).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.faults.conftest import DEADLINE, SLACK, FaultImages, require_signed
from tests.support.faults import Admission, admission
from tests.support.httpservers import SilentServer
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.registry


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def both(silent: SilentServer, registry: LocalRegistry, failure_policy: str) -> Any:
    policy = require_signed(silent.host, failure_policy=failure_policy)
    policy["spec"]["rules"][0]["verifyImages"][0]["imageReferences"].append(f"{registry.host}/*")
    return policy


def hanging_request(adm: Admission, silent: SilentServer, count: int = 50) -> threading.Thread:
    images = [f"{silent.host}/hang/app{i}:v1" for i in range(count)]
    thread = threading.Thread(target=adm.decide, args=images, daemon=True)
    thread.start()
    time.sleep(0.2)  # A's verifications hold their threads
    return thread


@pytest.mark.parametrize(
    ("repo_of", "allowed", "expect"),
    [
        (lambda images: images.unsigned_repo, False, "no signatures found"),
        (lambda images: images.signed_repo, True, ""),
    ],
    ids=["unsigned-denied", "signed-allowed"],
)
def test_request_with_hanging_images_does_not_starve_another(
    silent: SilentServer, registry: LocalRegistry, fault_images: FaultImages, repo_of: Any, allowed: bool, expect: str
) -> None:
    with admission(both(silent, registry, "Ignore"), insecure=[silent.host, registry.host], workers=256) as adm:
        a = hanging_request(adm, silent)
        response, elapsed = adm.decide(f"{registry.host}/{repo_of(fault_images)}:v1")
        assert response["allowed"] is allowed, response
        assert elapsed < 1.0, elapsed
        if expect:
            assert expect in response["status"]["message"], response
            assert "deadline" not in response["status"]["message"]
        a.join(DEADLINE + SLACK + 1)


@pytest.mark.parametrize("failure_policy", ["Ignore", "Fail"])
def test_decided_failure_and_timed_out_image_is_denied(
    silent: SilentServer, registry: LocalRegistry, fault_images: FaultImages, failure_policy: str
) -> None:
    with admission(both(silent, registry, failure_policy), insecure=[silent.host, registry.host]) as adm:
        response, elapsed = adm.decide(f"{silent.host}/hang/app:v1", f"{registry.host}/{fault_images.unsigned_repo}:v1")
        assert response["allowed"] is False, response
        assert "no signatures found" in response["status"]["message"]
        assert elapsed < DEADLINE + SLACK


def test_timed_out_image_alone_follows_failure_policy_ignore(
    silent: SilentServer, registry: LocalRegistry, fault_images: FaultImages
) -> None:
    """The twin: an outage of the image's own registry (it started, it timed out) is what Ignore admits."""
    with admission(both(silent, registry, "Ignore"), insecure=[silent.host, registry.host]) as adm:
        response, _ = adm.decide(f"{silent.host}/hang/app:v1", f"{registry.host}/{fault_images.signed_repo}:v1")
        assert response["allowed"] is True, response
        assert any("deadline exceeded" in w for w in response.get("warnings", [])), response


def test_image_that_never_started_is_not_an_outage(
    silent: SilentServer, registry: LocalRegistry, fault_images: FaultImages
) -> None:
    """Every verification thread is held by A past B's deadline (a step that overruns its own deadline, simulated
    by a digest resolver that waits for a gate): B's signed image never starts, and B is denied under Ignore."""
    gate = threading.Event()
    with admission(both(silent, registry, "Ignore"), insecure=[silent.host, registry.host], workers=8) as adm:
        default_digest = adm.service._digest

        def resolve(image: Any, rule: Any, deadline: Any) -> str:
            if image.ref.registry == silent.host:
                gate.wait(10)
            return default_digest(image, rule, deadline)

        adm.service._digest = resolve  # type: ignore[method-assign]
        try:
            a = hanging_request(adm, silent, count=16)
            response, elapsed = adm.decide(f"{registry.host}/{fault_images.signed_repo}:v1")
            assert response["allowed"] is False, response
            assert "too busy to start" in response["status"]["message"]
            assert DEADLINE - 0.1 <= elapsed < DEADLINE + SLACK
        finally:
            gate.set()
        a.join(DEADLINE + SLACK + 1)
        # once A is done, the same image is verified and allowed
        response, _ = adm.decide(f"{registry.host}/{fault_images.signed_repo}:v1")
        assert response["allowed"] is True, response

"""The reverify target's HTTP contract: the OIDC check runs before any work (401 without a token, 500 on half a
configuration), a run's report is a 200 even with flips, an unavailable store is a 503 (the scheduler retries),
other methods are refused; no error echoes configuration secrets."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from sigward.errors import ConfigurationError, ExternalServiceError
from sigward.reverify.http import handle_reverify
from sigward.reverify.service import ReverifyReport, ReverifyService


class FakeRun:
    def __init__(self, outcome: ReverifyReport | Exception) -> None:
        self.outcome = outcome
        self.calls = 0

    def run(self) -> ReverifyReport:
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def factory(run: FakeRun) -> Callable[[], ReverifyService]:
    return lambda: run  # type: ignore[return-value]


OIDC = {
    "SIGWARD_REVERIFY_AUDIENCE": "sigward-reverify",
    "SIGWARD_REVERIFY_SERVICE_ACCOUNTS": "sched@p.iam.gserviceaccount.com",
}


@pytest.mark.parametrize(
    ("env", "headers", "status"),
    [
        (OIDC, {}, 401),  # no token
        (OIDC, {"Authorization": "Bearer not-a-jwt"}, 401),  # not a Google-signed token
        ({"SIGWARD_REVERIFY_AUDIENCE": "a"}, {}, 500),  # half a configuration: refuse, never run unchecked
        ({"SIGWARD_REVERIFY_SERVICE_ACCOUNTS": "sched@p.iam.gserviceaccount.com"}, {}, 500),
    ],
)
def test_refused_before_any_work(env: dict[str, str], headers: dict[str, str], status: int) -> None:
    run = FakeRun(ReverifyReport())
    response = handle_reverify(method="POST", headers=headers, env=env, service=factory(run))
    assert response.status == status and run.calls == 0
    body = json.loads(response.body)
    assert "SIGWARD_PUBSUB" not in body["error"]  # errors name the reverify variables


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (ReverifyReport(examined=3, verified=3), 200),
        (ExternalServiceError("Firestore query failed (DeadlineExceeded)"), 503),
        (ConfigurationError("no policy configured"), 500),
    ],
)
def test_run_outcomes(outcome: ReverifyReport | Exception, status: int) -> None:
    run = FakeRun(outcome)
    response = handle_reverify(method="POST", headers={}, env={}, service=factory(run))
    assert response.status == status and run.calls == 1
    if status == 200:
        assert json.loads(response.body)["examined"] == 3


def test_other_methods_are_refused() -> None:
    run = FakeRun(ReverifyReport())
    assert handle_reverify(method="DELETE", headers={}, env={}, service=factory(run)).status == 405
    assert run.calls == 0

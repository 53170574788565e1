"""A request a CEL PolicyException exempted from an ImageValidatingPolicy: the decision audit names the exception
(top-level ``exceptions`` and the policy's ``image_policies`` entry) and the exceptions counter counts it under the
policy's name as rule (as Kyverno's reports name an IVPOL's rule); an outcome without exceptions adds neither."""

from __future__ import annotations

from pathlib import Path

from sigward.admission.audit import decision_fields
from sigward.admission.review import parse_review
from sigward.admission.service import Decision
from sigward.verify.ivpol import PolicyOutcome
from sigward.verify.results import Verdict
from tests.support.admission import pod, pod_request, review
from tests.support.fresh_process import REPO, run_fresh

SKIPPED = PolicyOutcome(
    policy="p",
    verdict=Verdict.SKIP,
    message="rule is skipped due to policy exception: team/e",
    exceptions=("team/e",),
)
FAILED = PolicyOutcome(policy="q", verdict=Verdict.FAIL, message="failed to verify image")


def test_audit_names_the_exception() -> None:
    request = parse_review(review(pod_request(pod("ghcr.io/x/y:1"))))
    fields = decision_fields(
        request, Decision(allowed=True, image_policies=(SKIPPED, FAILED)), mode="mutate", latency_ms=1.0
    )
    assert fields["exceptions"] == ["team/e"]
    assert fields["image_policies"] == [
        {"policy": "p", "verdict": "skip", "message": SKIPPED.message, "exceptions": ["team/e"]},
        {"policy": "q", "verdict": "fail", "message": "failed to verify image"},
    ]


def test_audit_without_exceptions_or_image_policies_is_unchanged() -> None:
    request = parse_review(review(pod_request(pod("ghcr.io/x/y:1"))))
    plain = decision_fields(request, Decision(allowed=True), mode="mutate", latency_ms=1.0)
    assert "exceptions" not in plain and "image_policies" not in plain
    failed = decision_fields(request, Decision(allowed=False, image_policies=(FAILED,)), mode="mutate", latency_ms=1.0)
    assert "exceptions" not in failed


def test_exception_is_counted(tmp_path: Path) -> None:
    code = f"""
        import time
        from sigward import metrics
        from sigward.admission.http import log_decision
        from sigward.admission.review import parse_review
        from sigward.admission.service import Decision
        from sigward.verify.ivpol import PolicyOutcome
        from sigward.verify.results import Verdict
        from tests.support.admission import pod, pod_request, review
        metrics.enable(multiprocess=True, multiprocess_dir={str(tmp_path / "p")!r})
        request = parse_review(review(pod_request(pod("ghcr.io/x/y:1"))))
        outcomes = (
            PolicyOutcome(policy="p", verdict=Verdict.SKIP, exceptions=("team/e",)),
            PolicyOutcome(policy="q", verdict=Verdict.FAIL),
        )
        log_decision(
            request_uid=request.uid, request=request, decision=Decision(allowed=True, image_policies=outcomes),
            mode="mutate", started=time.monotonic(),
        )
        print(metrics.render()[0].decode())
    """
    lines = [
        line
        for line in run_fresh(code, REPO).splitlines()
        if line.startswith("sigward_policy_exceptions_applied_total")
    ]
    assert len(lines) == 1, lines
    assert 'exception="team/e"' in lines[0] and 'policy_name="p"' in lines[0] and lines[0].endswith(" 1.0")

"""The decision audit record: everything needed to answer "why was this Pod denied, and who asked?" from the logs
alone — who asked (``userInfo.username``, groups), what (namespace, kind, name, operation, request uid), each image
with its digest, policy/rule, verdict and typed reason, the outcome and the latency. Never an object body, never
``userInfo.extra`` (it can carry credentials), never a token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sigward.verify.results import RuleVerdict, Verdict

if TYPE_CHECKING:
    from sigward.admission.review import AdmissionRequest
    from sigward.admission.service import Decision

# A user in hundreds of groups (some IdPs) would bloat every line; the first ones name the team, the count says more.
MAX_GROUPS = 32
# Usernames and group names are short in practice; a forged review must not write megabytes into the log.
MAX_NAME_CHARS = 256


def reason_type(verdict: RuleVerdict) -> str:
    """The typed reason of one verdict ("" for a pass or skip): the failure kind of a FAIL, ``infrastructure`` for an
    ERROR (registry/KMS/deadline: failurePolicy applies)."""
    if verdict.verdict == Verdict.FAIL:
        return (verdict.failure.name if verdict.failure is not None else "NOT_SATISFIED").lower()
    if verdict.verdict == Verdict.ERROR:
        return "infrastructure"
    return ""


def _short(value: object) -> str:
    return value[:MAX_NAME_CHARS] if isinstance(value, str) else ""


def requester(request: AdmissionRequest) -> dict[str, Any]:
    """``user`` and ``groups`` from the review's ``userInfo`` (strings only, bounded)."""
    info = request.raw.get("userInfo") if isinstance(request.raw, Mapping) else None
    if not isinstance(info, Mapping):
        return {"user": "", "groups": []}
    groups = info.get("groups")
    names = [_short(g) for g in groups if isinstance(g, str)] if isinstance(groups, list) else []
    found: dict[str, Any] = {"user": _short(info.get("username")), "groups": names[:MAX_GROUPS]}
    if len(names) > MAX_GROUPS:
        found["groups_total"] = len(names)
    return found


def decision_fields(request: AdmissionRequest, decision: Decision, *, mode: str, latency_ms: float) -> dict[str, Any]:
    verdicts = [
        {
            "image": c.image.image,
            "digest": c.verdict.digest,
            "policy": c.policy.key,
            "rule": c.rule_name,
            "verdict": c.verdict.verdict.value,
            "reason_type": reason_type(c.verdict),
            "blocking": c.blocking,
            "cached": c.cached,
            "message": c.verdict.message,
            **({"exceptions": list(c.exceptions)} if c.exceptions else {}),
        }
        for c in decision.checks
    ]
    exempted = sorted(
        {key for c in decision.checks for key in c.exceptions}
        | {key for o in decision.image_policies for key in o.exceptions}
    )
    image_policies = [
        {
            "policy": o.policy,
            "verdict": o.verdict.value,
            "message": o.message,
            **({"exceptions": list(o.exceptions)} if o.exceptions else {}),
        }
        for o in decision.image_policies
    ]
    return {
        "uid": request.uid,
        **requester(request),
        "mode": mode,
        "operation": request.operation,
        "kind": request.kind.kind,
        "namespace": request.namespace,
        "name": request.object_name,
        "dryRun": request.dry_run,
        "allowed": decision.allowed,
        "outcome": "allowed" if decision.allowed else "denied",
        "images": sorted({c.image.image for c in decision.checks}),
        "digests": sorted({c.verdict.digest for c in decision.checks if c.verdict.digest}),
        "verdicts": verdicts,
        "patched": len(decision.patch),
        **({"exceptions": exempted} if exempted else {}),
        **({"image_policies": image_policies} if image_policies else {}),
        "latency_ms": latency_ms,
    }

"""The admission function's HTTP contract, independent of the web framework: authentication before anything is
parsed, a precise 400 for malformed reviews, an AdmissionReview for everything else, one log line per decision.

Errors become HTTP answers here and only here. An unexpected exception still yields an AdmissionReview that denies
(fail closed) — never a stack trace, and never a 500 that a ``failurePolicy: Ignore`` webhook would turn into an allow.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core import logs
from core.admission.review import MAX_REVIEW_BYTES, parse_json_body, parse_review, review_response
from core.errors import BadRequestError, SigwardError

if TYPE_CHECKING:
    from core.admission.service import AdmissionService, Decision, Mode

ENV_TOKEN = "SIGWARD_ADMISSION_TOKEN"  # noqa: S105 - the variable name, not a secret


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


def _json(status: int, doc: Any) -> HttpResponse:
    return HttpResponse(status=status, body=json.dumps(doc, separators=(",", ":")).encode())


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        for key, val in headers.items():
            if key.lower() == lower:
                return val
        return ""
    return value


def authorized(*, path: str, headers: Mapping[str, str], token: str) -> tuple[bool, str]:
    """Check the admission token (path segment or ``Authorization: Bearer``) in constant time; return the path
    with the token segment removed, so the token never reaches a log line."""
    segments = [s for s in path.split("/") if s]
    ok = False
    remaining = []
    for seg in segments:
        if hmac.compare_digest(seg.encode(), token.encode()):
            ok = True
        else:
            remaining.append(seg)
    auth = _header(headers, "Authorization")
    if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
        ok = True
    return ok, "/" + "/".join(remaining)


def mode_for(path: str) -> Mode:
    return "validate" if path.rstrip("/").endswith("/validate") else "mutate"


def handle_admission(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    service: Callable[[], AdmissionService] | None = None,
    environ: Mapping[str, str] | None = None,
) -> HttpResponse:
    env = os.environ if environ is None else environ
    token = env.get(ENV_TOKEN, "")
    clean_path = path
    if token:
        ok, clean_path = authorized(path=path, headers=headers, token=token)
        if not ok:
            logs.emit(
                "WARNING", "admission request refused: missing or wrong token", path_segments=len(path.split("/"))
            )
            return _json(401, {"error": "unauthorized: the admission token is missing or wrong"})
    if method.upper() != "POST":
        return _json(405, {"error": f"method {method} not allowed: POST an AdmissionReview"})
    started = time.monotonic()
    try:
        doc = parse_json_body(body, what="AdmissionReview", max_bytes=MAX_REVIEW_BYTES)
        request = parse_review(doc)
    except BadRequestError as exc:
        logs.emit("WARNING", "malformed admission request", error=exc.message)
        return _json(400, {"error": exc.message})
    mode = mode_for(clean_path)
    try:
        from core import runtime

        svc = (service or runtime.admission_service)()
        decision = svc.decide(request, mode=mode)
    except SigwardError as exc:
        logs.emit("ERROR", "admission could not be decided", uid=request.uid, error=exc.message)
        return _json(
            200,
            review_response(request.uid, allowed=False, code=500, message=f"sigward could not decide: {exc.message}"),
        )
    except Exception as exc:
        logs.emit("ERROR", "admission failed unexpectedly", uid=request.uid, error=type(exc).__name__)
        return _json(
            200, review_response(request.uid, allowed=False, code=500, message="sigward internal error (denied)")
        )
    log_decision(request_uid=request.uid, request=request, decision=decision, mode=mode, started=started)
    return _json(
        200,
        review_response(
            request.uid,
            allowed=decision.allowed,
            message=decision.message,
            code=decision.code if not decision.allowed else None,
            patch=decision.patch,
            warnings=decision.warnings,
        ),
    )


def log_decision(*, request_uid: str, request: Any, decision: Decision, mode: str, started: float) -> None:
    verdicts = [
        {
            "image": c.image.image,
            "digest": c.verdict.digest,
            "policy": c.policy.name,
            "rule": c.rule_name,
            "verdict": c.verdict.verdict.value,
            "cached": c.cached,
            "message": c.verdict.message,
        }
        for c in decision.checks
    ]
    logs.emit(
        "INFO" if decision.allowed else "WARNING",
        "admission decision",
        uid=request_uid,
        mode=mode,
        operation=request.operation,
        kind=request.kind.kind,
        namespace=request.namespace,
        name=request.object_name,
        dryRun=request.dry_run,
        allowed=decision.allowed,
        images=sorted({c.image.image for c in decision.checks}),
        verdicts=verdicts,
        patched=len(decision.patch),
        latency_ms=round((time.monotonic() - started) * 1000, 2),
    )

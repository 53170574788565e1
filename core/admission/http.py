"""The admission function's HTTP contract, independent of the web framework: authentication before anything is
parsed, a precise 400 for malformed reviews, an AdmissionReview for everything else, one log line per decision.

Errors become HTTP answers here and only here. An unexpected exception still yields an AdmissionReview that denies
(fail closed) — never a stack trace, and never a 500 that a ``failurePolicy: Ignore`` webhook would turn into an allow.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sigward import logs, metrics, tracing
from sigward.admission.review import MAX_REVIEW_BYTES, parse_json_body, parse_review, review_response
from sigward.admission.selectors import ROUTE_PREFIX, parse_route
from sigward.errors import BadRequestError, ConfigurationError, SigwardError

if TYPE_CHECKING:
    from sigward.admission.review import AdmissionRequest
    from sigward.admission.service import AdmissionService, Decision, Mode

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


@dataclass(frozen=True)
class AdmissionToken:
    """One accepted admission token; ``cluster`` names who holds it (empty for an unnamed token)."""

    cluster: str
    secret: bytes = field(repr=False)


# Several tokens let a token rotate without downtime (add the new one, roll the clusters, remove the old one) and
# let each cluster hold its own, so the decision log names the cluster that asked (never its token).
MAX_ADMISSION_TOKENS = 64  # far more clusters than one deployment serves; bounds the constant-time scan per request
_CLUSTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# The token travels as a URL path segment or a bearer value: a character outside this set would be mangled or split.
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+-]+")


def parse_tokens(value: str) -> tuple[AdmissionToken, ...]:
    """``SIGWARD_ADMISSION_TOKEN``: comma-separated entries, each ``TOKEN`` or ``CLUSTER=TOKEN``. Errors name the
    entry by position, never by content."""
    entries = value.split(",")
    if len(entries) > MAX_ADMISSION_TOKENS:
        raise ConfigurationError(f"{ENV_TOKEN} lists {len(entries)} tokens; at most {MAX_ADMISSION_TOKENS}")
    tokens: list[AdmissionToken] = []
    names: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        cluster, sep, secret = entry.strip().rpartition("=")
        cluster, secret = cluster.strip(), secret.strip()
        where = f"{ENV_TOKEN} entry {index}"
        if not secret:
            raise ConfigurationError(f"{where} has no token")
        if sep and not _CLUSTER_RE.fullmatch(cluster):
            raise ConfigurationError(f"{where}: the cluster name must be letters, digits, '.', '_' or '-'")
        if not _TOKEN_RE.fullmatch(secret):
            raise ConfigurationError(f"{where}: the token may hold only letters, digits and . _ ~ + -")
        if sep and cluster in names:
            raise ConfigurationError(f"{where}: cluster {cluster!r} is named twice")
        names.add(cluster)
        tokens.append(AdmissionToken(cluster=cluster, secret=secret.encode()))
    return tuple(tokens)


def _matching(candidate: bytes, tokens: tuple[AdmissionToken, ...]) -> AdmissionToken | None:
    """Compare ``candidate`` with every token, always all of them, each in constant time."""
    found: AdmissionToken | None = None
    for token in tokens:
        if hmac.compare_digest(candidate, token.secret) and found is None:
            found = token
    return found


def authenticate_tokens(
    *, path: str, headers: Mapping[str, str], tokens: tuple[AdmissionToken, ...]
) -> tuple[AdmissionToken | None, str]:
    """The token the request carries (a path segment or ``Authorization: Bearer``), or None; and the path with
    every token segment removed, so no token reaches a log line or the mode decision."""
    found: AdmissionToken | None = None
    remaining = []
    for seg in (s for s in path.split("/") if s):
        match = _matching(seg.encode("utf-8", "surrogatepass"), tokens)
        if match is None:
            remaining.append(seg)
        elif found is None:
            found = match
    auth = _header(headers, "Authorization")
    if auth[:7].lower() == "bearer ":
        match = _matching(auth[7:].strip().encode("utf-8", "surrogatepass"), tokens)
        if found is None:
            found = match
    return found, "/" + "/".join(remaining)


def mode_for(path: str) -> Mode:
    """``…/validate`` or ``…/validate/sel-<key>`` validates; anything else mutates."""
    segments = [s for s in path.split("/") if s]
    if segments and segments[-1].startswith(ROUTE_PREFIX):
        segments = segments[:-1]
    return "validate" if segments and segments[-1] == "validate" else "mutate"


def route_for(path: str) -> str:
    """The selector route key of a ``…/sel-<key>`` path ("" for the plain path)."""
    segments = [s for s in path.split("/") if s]
    return parse_route(segments[-1:])


def handle_admission(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    service: Callable[[], AdmissionService],
    environ: Mapping[str, str] | None = None,
) -> HttpResponse:
    def decide(svc: AdmissionService, request: AdmissionRequest, mode: Mode, route: str) -> Decision:
        return svc.decide(request, mode=mode, route=route)

    answer = _handle(method, path, headers, body, service, environ, decide)
    assert answer is not None  # decide always decides
    return answer


def answer_from_memory(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    service: Callable[[], AdmissionService],
    environ: Mapping[str, str] | None = None,
) -> HttpResponse | None:
    """:func:`handle_admission`'s answer when it needs nothing outside this process's memory (every verdict
    cached, or a refusal); None — having logged nothing — when the decision needs a registry, the store or a
    thread: then call :func:`handle_admission`."""

    def decide(svc: AdmissionService, request: AdmissionRequest, mode: Mode, route: str) -> Decision | None:
        return svc.decide_from_memory(request, mode=mode, route=route)

    return _handle(method, path, headers, body, service, environ, decide)


def _handle(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    service: Callable[[], AdmissionService],
    environ: Mapping[str, str] | None,
    decide: Callable[[AdmissionService, AdmissionRequest, Mode, str], Decision | None],
) -> HttpResponse | None:
    env = os.environ if environ is None else environ
    configured = env.get(ENV_TOKEN, "")
    clean_path = path
    cluster = ""
    if configured:
        try:
            tokens = parse_tokens(configured)
        except ConfigurationError as exc:
            return _misconfigured(body, exc)
        found, clean_path = authenticate_tokens(path=path, headers=headers, tokens=tokens)
        if found is None:
            logs.emit(
                "WARNING", "admission request refused: missing or wrong token", path_segments=len(path.split("/"))
            )
            return _json(401, {"error": "unauthorized: the admission token is missing or wrong"})
        cluster = found.cluster
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
        with tracing.span(
            "sigward.admission",
            uid=request.uid,
            mode=mode,
            operation=request.operation,
            kind=request.kind.kind,
            namespace=request.namespace,
        ) as current:
            decision = decide(service(), request, mode, route_for(clean_path))
            if decision is not None:
                tracing.set_attributes(current, allowed=decision.allowed, checks=len(decision.checks))
        if decision is None:
            return None
    except SigwardError as exc:
        logs.emit("ERROR", "admission could not be decided", uid=request.uid, error=exc.message)
        _record_undecided(request, mode, started)
        return _json(
            200,
            review_response(request.uid, allowed=False, code=500, message=f"sigward could not decide: {exc.message}"),
        )
    except Exception as exc:
        logs.emit("ERROR", "admission failed unexpectedly", uid=request.uid, error=type(exc).__name__)
        _record_undecided(request, mode, started)
        return _json(
            200, review_response(request.uid, allowed=False, code=500, message="sigward internal error (denied)")
        )
    log_decision(
        request_uid=request.uid, request=request, decision=decision, mode=mode, started=started, cluster=cluster
    )
    return _json(
        200,
        decision.review(request.uid),
    )


def _record_undecided(request: AdmissionRequest, mode: str, started: float) -> None:
    metrics.record_admission(
        webhook=mode,
        kind=request.kind.kind,
        operation=request.operation,
        allowed=None,
        seconds=time.monotonic() - started,
    )


def _misconfigured(body: bytes, exc: ConfigurationError) -> HttpResponse:
    """An unusable ``SIGWARD_ADMISSION_TOKEN`` authenticates nobody: deny with an AdmissionReview (a 500 would be an
    allow under ``failurePolicy: Ignore``), or 400 when the body is not one."""
    logs.emit("ERROR", "admission token configuration is unusable; denying", error=exc.message)
    try:
        request = parse_review(parse_json_body(body, what="AdmissionReview", max_bytes=MAX_REVIEW_BYTES))
    except BadRequestError as bad:
        return _json(400, {"error": bad.message})
    return _json(
        200,
        review_response(request.uid, allowed=False, code=500, message="sigward configuration error (denied)"),
    )


def log_decision(
    *, request_uid: str, request: Any, decision: Decision, mode: str, started: float, cluster: str = ""
) -> None:
    """The decision's audit line (:mod:`sigward.admission.audit`) and its metrics."""
    from sigward.admission.audit import decision_fields

    seconds = time.monotonic() - started
    fields = decision_fields(request, decision, mode=mode, latency_ms=round(seconds * 1000, 2))
    fields["uid"] = request_uid
    if cluster:
        fields["cluster"] = cluster
    logs.emit("INFO" if decision.allowed else "WARNING", "admission decision", **fields)
    metrics.record_admission(
        webhook=mode, kind=request.kind.kind, operation=request.operation, allowed=decision.allowed, seconds=seconds
    )
    metrics.record_rule_results(
        ((check.policy.key, check.rule_name, check.verdict.verdict.value) for check in decision.checks),
        cause="admission_request",
    )
    for check in decision.checks:
        for key in check.exceptions:
            metrics.record_exception_applied(policy=check.policy.key, rule=check.rule_name, exception=key)
    for outcome in decision.image_policies:
        for key in outcome.exceptions:
            # an ImageValidatingPolicy's one "rule" is the policy itself (Kyverno's reports name it so)
            metrics.record_exception_applied(policy=outcome.policy, rule=outcome.policy, exception=key)

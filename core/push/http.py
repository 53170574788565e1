"""The push functions' HTTP contract (framework-agnostic), errors mapped to answers here and only here:

- authentication first (``SIGWARD_PUSH_SECRET``: ``Authorization``, ``X-Sigward-Secret`` or a GitHub HMAC; for
  ``push_pubsub`` also a Google OIDC token when ``SIGWARD_PUBSUB_AUDIENCE`` is set), before any parsing: 401 and no
  work;
- malformed webhook deliveries → 400 with a precise message; a malformed Pub/Sub message is acknowledged (2xx and a
  log line), or Pub/Sub would redeliver it until it expires;
- "signature not there yet" (within the grace period) or an unreachable registry/KMS/store → 503, so the platform
  redelivers (Pub/Sub, EventBridge, Event Grid, distribution all retry non-2xx);
- validation handshakes answered exactly as the adapter says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sigward import logs
from sigward.admission.http import HttpResponse
from sigward.errors import BadRequestError, ConfigurationError, ExternalServiceError, SigwardError

if TYPE_CHECKING:
    from sigward.events import PushEvent
    from sigward.push.service import PushOutcome, PushService

ENV_SECRET = "SIGWARD_PUSH_SECRET"  # noqa: S105 - the variable's name


def _json(status: int, doc: Any) -> HttpResponse:
    return HttpResponse(status=status, body=json.dumps(doc, separators=(",", ":")).encode())


def _authenticate(headers: Mapping[str, str], body: bytes, env: Mapping[str, str]) -> HttpResponse | None:
    secret = env.get(ENV_SECRET, "")
    if not secret:
        return None
    from sigward.events import Unauthenticated, authenticate

    try:
        authenticate(headers, body, secret=secret)
    except Unauthenticated as exc:
        logs.emit("WARNING", "push request refused: not authenticated", reason=exc.message)
        return _json(401, {"error": f"unauthorized: {exc.message}"})
    return None


def _authenticate_pubsub(headers: Mapping[str, str], body: bytes, env: Mapping[str, str]) -> HttpResponse | None:
    """The Google OIDC token of a Pub/Sub push delivery, when ``SIGWARD_PUBSUB_AUDIENCE`` asks for one: 401 (or 503
    when Google's certificates cannot be fetched, so Pub/Sub redelivers) and no work otherwise. Without it, the push
    secret applies when set (a push subscription cannot add headers, so the two do not combine)."""
    from sigward.events.auth import OidcUnauthenticated, PubSubAuth, verify_pubsub_token

    try:
        config = PubSubAuth.from_env(env)
        if config is None:
            return _authenticate(headers, body, env)
        sender = verify_pubsub_token(headers, config)
    except OidcUnauthenticated as exc:
        logs.emit("WARNING", "Pub/Sub push refused: not authenticated", reason=exc.reason.name)
        return _json(401, {"error": f"unauthorized: {exc.message}"})
    except ConfigurationError as exc:
        logs.emit("ERROR", "Pub/Sub push refused: authentication is misconfigured", error=exc.message)
        return _json(500, {"error": f"sigward configuration error: {exc.message}"})
    except ExternalServiceError as exc:
        logs.emit("WARNING", "Pub/Sub push refused: cannot check its token now", error=exc.message)
        return _json(503, {"error": f"retry later: {exc.message}"})
    logs.emit("DEBUG", "Pub/Sub push authenticated", service_account=sender)
    return None


def _process(pushes: tuple[PushEvent, ...], service: Callable[[], PushService]) -> HttpResponse:
    outcomes: list[PushOutcome] = []
    try:
        svc = service()
        deadline = svc.delivery_deadline()  # one delivery, one deadline, whatever number of events it carries
        for push in pushes:
            outcomes.append(svc.handle(push, deadline=deadline))
    except ExternalServiceError as exc:
        logs.emit("WARNING", "push handling failed; asking for redelivery", error=exc.message)
        return _json(503, {"error": f"retry later: {exc.message}", "results": [o.as_json() for o in outcomes]})
    except SigwardError as exc:
        logs.emit("ERROR", "push handling could not run", error=exc.message)
        return _json(500, {"error": exc.message})
    for outcome in outcomes:
        logs.emit(
            "INFO" if outcome.status != "retry" else "WARNING",
            "push handled",
            event_id=outcome.event_id,
            image=outcome.image,
            digest=outcome.digest,
            status=outcome.status,
            reason=outcome.reason,
            verdicts=[{"policy": r.policy, "rule": r.rule, "verdict": r.verdict} for r in outcome.rules],
        )
    body = {"results": [o.as_json() for o in outcomes]}
    if any(o.status == "retry" for o in outcomes):
        return _json(503, body)
    return _json(200, body)


def handle_push_webhook(
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    service: Callable[[], PushService],
    environ: Mapping[str, str] | None = None,
) -> HttpResponse:
    env = os.environ if environ is None else environ
    denied = _authenticate(headers, body, env)
    if denied is not None:
        return denied
    from sigward.events import parse_webhook

    try:
        result = parse_webhook(method, headers, body)
    except BadRequestError as exc:
        logs.emit("WARNING", "malformed push event", error=exc.message)
        return _json(400, {"error": exc.message})
    if result.handshake is not None:
        reply = result.handshake
        return HttpResponse(status=reply.status, body=reply.body, headers=dict(reply.headers))
    for reason in result.ignored:
        logs.emit("INFO", "push event ignored", source=result.source, reason=reason)
    return _process(result.pushes, service)


def handle_push_pubsub(
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    service: Callable[[], PushService],
    environ: Mapping[str, str] | None = None,
) -> HttpResponse:
    """Artifact Registry / GCR notifications: an Eventarc CloudEvent (binary or structured) or a raw Pub/Sub push
    envelope. A push subscription's Google OIDC token is checked here when ``SIGWARD_PUBSUB_AUDIENCE`` is set (a
    function reachable without Cloud Run IAM); behind IAM, Cloud Run checks it and strips its signature, so leave
    the variable unset there. Without it, a configured ``SIGWARD_PUSH_SECRET`` is checked instead."""
    env = os.environ if environ is None else environ
    denied = _authenticate_pubsub(headers, body, env)
    if denied is not None:
        return denied
    if method.upper() != "POST":
        return _json(405, {"error": f"method {method} not allowed: POST a Pub/Sub message"})
    from sigward.events import from_pubsub_cloudevent, from_pubsub_push
    from sigward.events.cloudevents import binary_event, looks_structured, structured_events

    try:
        lowered = {k.lower(): v for k, v in headers.items()}
        if "ce-specversion" in lowered:
            event = binary_event(lowered, body)
            pushes = from_pubsub_cloudevent(event.data, {})
        else:
            from sigward.events import MAX_WEBHOOK_BYTES
            from sigward.jsonbody import parse_json_body

            doc = parse_json_body(body, what="Pub/Sub message", max_bytes=MAX_WEBHOOK_BYTES)
            if looks_structured(doc):
                pushes = tuple(p for e in structured_events(doc) for p in from_pubsub_cloudevent(e.data, {}))
            else:
                pushes = from_pubsub_push(body, headers)
    except BadRequestError as exc:
        # acknowledged: a message that cannot be parsed will not parse on redelivery either
        logs.emit("ERROR", "malformed Pub/Sub message acknowledged without work", error=exc.message)
        return _json(200, {"acknowledged": True, "error": exc.message})
    return _process(pushes, service)

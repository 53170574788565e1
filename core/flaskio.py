"""Flask ↔ framework-agnostic handlers: bounded body reads and response conversion (functions-framework and
``sigward serve`` both hand us a Flask request)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sigward.admission.http import HttpResponse, handle_admission
from sigward.admission.review import MAX_REVIEW_BYTES

if TYPE_CHECKING:
    import flask

    from sigward.admission.service import AdmissionService
    from sigward.push.service import PushService
    from sigward.reverify.service import ReverifyService


def read_body(request: flask.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (read no further than limit + 1 bytes)."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        return None
    return data


def to_flask(response: HttpResponse) -> flask.Response:
    import flask

    return flask.Response(response.body, status=response.status, headers=dict(response.headers))


def too_large(limit: int) -> HttpResponse:
    import json

    return HttpResponse(
        status=413, body=json.dumps({"error": f"request body exceeds the limit of {limit} bytes"}).encode()
    )


def respond(
    request: flask.Request, *, limit: int, handler: Callable[[str, dict[str, str], bytes], HttpResponse]
) -> flask.Response:
    """Read the body within ``limit`` (413 past it) and answer with ``handler(method, headers, body)``."""
    body = read_body(request, limit)
    if body is None:
        return to_flask(too_large(limit))
    return to_flask(handler(request.method, dict(request.headers), body))


def serve_admission(request: flask.Request, *, path: str, service: Callable[[], AdmissionService]) -> flask.Response:
    return respond(
        request,
        limit=MAX_REVIEW_BYTES,
        handler=lambda method, headers, body: handle_admission(
            method=method, path=path, headers=headers, body=body, service=service
        ),
    )


def serve_push_pubsub(request: flask.Request, *, service: Callable[[], PushService]) -> flask.Response:
    from sigward.events import MAX_WEBHOOK_BYTES
    from sigward.push.http import handle_push_pubsub

    return respond(
        request,
        limit=MAX_WEBHOOK_BYTES,
        handler=lambda method, headers, body: handle_push_pubsub(
            method=method, headers=headers, body=body, service=service
        ),
    )


def serve_push_webhook(request: flask.Request, *, service: Callable[[], PushService]) -> flask.Response:
    from sigward.events import MAX_WEBHOOK_BYTES
    from sigward.push.http import handle_push_webhook

    return respond(
        request,
        limit=MAX_WEBHOOK_BYTES,
        handler=lambda method, headers, body: handle_push_webhook(
            method=method, headers=headers, body=body, service=service
        ),
    )


def serve_reverify(
    request: flask.Request, *, env: Mapping[str, str], service: Callable[[], ReverifyService]
) -> flask.Response:
    """The ``reverify`` target: no body is read (Cloud Scheduler sends none that matters); ``env`` configures the
    caller check, which runs before ``service`` is built."""
    from sigward.reverify.http import handle_reverify

    return to_flask(handle_reverify(method=request.method, headers=dict(request.headers), env=env, service=service))

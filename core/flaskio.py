"""Flask ↔ framework-agnostic handlers: bounded body reads and response conversion (functions-framework and
``sigward serve`` both hand us a Flask request)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.admission.http import HttpResponse

if TYPE_CHECKING:
    import flask


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

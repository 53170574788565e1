"""Deployable function targets (functions-framework): thin adapters that parse the trigger, call core and shape
the response. Each target is a plain function in this module, as Cloud Run functions require; ``core/`` sits
beside this file in the deployed archive (and on ``sys.path`` through the repository root locally)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import functions_framework

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repository layout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # deployed archive layout
# `sigward package` bundles policies in policies/ beside this file; they apply unless SIGWARD_POLICY says otherwise.
if os.path.isdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "policies")):
    os.environ.setdefault("SIGWARD_POLICY", os.path.join(os.path.dirname(os.path.abspath(__file__)), "policies"))

from core.admission.http import handle_admission
from core.admission.review import MAX_REVIEW_BYTES
from core.flaskio import read_body, to_flask, too_large

if TYPE_CHECKING:
    import flask


@functions_framework.http
def admission(request: flask.Request) -> flask.Response:
    """Kubernetes AdmissionReview v1: ``…/mutate`` (default) verifies and pins digests, ``…/validate`` checks."""
    body = read_body(request, MAX_REVIEW_BYTES)
    if body is None:
        return to_flask(too_large(MAX_REVIEW_BYTES))
    return to_flask(
        handle_admission(method=request.method, path=request.path, headers=dict(request.headers), body=body)
    )


@functions_framework.http
def push_pubsub(request: flask.Request) -> flask.Response:
    """Artifact Registry / GCR notifications (topic ``gcr``): an Eventarc CloudEvent or a Pub/Sub push envelope.

    Declared as an HTTP function on purpose: functions-framework's CloudEvent wrapper echoes request headers and
    body in its 400 answer and turns exceptions into bare 500s; here every answer is sigward's own (503 asks the
    platform to redeliver while a signature may still arrive)."""
    from core.events import MAX_WEBHOOK_BYTES
    from core.push.http import handle_push_pubsub

    body = read_body(request, MAX_WEBHOOK_BYTES)
    if body is None:
        return to_flask(too_large(MAX_WEBHOOK_BYTES))
    return to_flask(handle_push_pubsub(method=request.method, headers=dict(request.headers), body=body))


@functions_framework.http
def push_webhook(request: flask.Request) -> flask.Response:
    """Registry push webhooks: AWS ECR (EventBridge API destination), Azure Container Registry (Event Grid, incl.
    the validation handshake), CNCF distribution notifications, Harbor, GitHub packages."""
    from core.events import MAX_WEBHOOK_BYTES
    from core.push.http import handle_push_webhook

    body = read_body(request, MAX_WEBHOOK_BYTES)
    if body is None:
        return to_flask(too_large(MAX_WEBHOOK_BYTES))
    return to_flask(handle_push_webhook(method=request.method, headers=dict(request.headers), body=body))

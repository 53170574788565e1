"""Deployable function targets (functions-framework): thin adapters that parse the trigger, call the ``sigward``
package and shape the response. The process's services are built once, on first use, by
:func:`sigward.wiring.process_services`. Each target is a plain function in this module, as Cloud Run functions require;
``sigward/`` sits beside this file in the deployed archive (locally the repository root's ``sigward -> core`` link, or
an installed distribution)."""

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

from sigward import tracing
from sigward.flaskio import serve_admission, serve_push_pubsub, serve_push_webhook, serve_reverify
from sigward.wiring import process_services

tracing.check(os.environ)  # OTEL_* settings that cannot work fail the cold start, not the first request

if TYPE_CHECKING:
    import flask


@functions_framework.http
def admission(request: flask.Request) -> flask.Response:
    """Kubernetes AdmissionReview v1: ``…/mutate`` (default) verifies and pins digests, ``…/validate`` checks."""
    tracing.ensure_configured(os.environ)
    return serve_admission(request, path=request.path, service=lambda: process_services().admission())


@functions_framework.http
def push_pubsub(request: flask.Request) -> flask.Response:
    """Artifact Registry / GCR notifications (topic ``gcr``): an Eventarc CloudEvent or a Pub/Sub push envelope.

    Declared as an HTTP function on purpose: functions-framework's CloudEvent wrapper echoes request headers and
    body in its 400 answer and turns exceptions into bare 500s; here every answer is sigward's own (503 asks the
    platform to redeliver while a signature may still arrive)."""
    tracing.ensure_configured(os.environ)
    return serve_push_pubsub(request, service=lambda: process_services().push())


@functions_framework.http
def push_webhook(request: flask.Request) -> flask.Response:
    """Registry push webhooks: AWS ECR (EventBridge API destination), Azure Container Registry (Event Grid, incl.
    the validation handshake), CNCF distribution notifications, Harbor, GitHub packages."""
    tracing.ensure_configured(os.environ)
    return serve_push_webhook(request, service=lambda: process_services().push())


@functions_framework.http
def reverify(request: flask.Request) -> flask.Response:
    """Re-evaluate recorded verdicts in one bounded run (Cloud Scheduler with OIDC): findings for every flip."""
    tracing.ensure_configured(os.environ)
    return serve_reverify(request, env=process_services().environ, service=lambda: process_services().reverify())

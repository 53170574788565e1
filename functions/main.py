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

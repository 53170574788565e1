"""The ``reverify`` function target's HTTP contract (Cloud Scheduler with an OIDC token, or any scheduler):

- when ``SIGWARD_REVERIFY_AUDIENCE`` and ``SIGWARD_REVERIFY_SERVICE_ACCOUNTS`` are set, the request must carry a
  Google-signed OIDC token for that audience issued to one of those accounts (the Pub/Sub push check, same code);
  otherwise the platform guards the target (Cloud Run IAM: only the scheduler's account may invoke it);
- 200 with the run's report (flips included: they are findings, not errors); 503 when the store or the verifier's
  infrastructure failed, so the scheduler retries; 500 on a configuration error. No body is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sigward import logs
from sigward.admission.http import HttpResponse
from sigward.errors import ConfigurationError, ExternalServiceError, SigwardError

if TYPE_CHECKING:
    from sigward.reverify.service import ReverifyService

ENV_AUDIENCE = "SIGWARD_REVERIFY_AUDIENCE"
ENV_SERVICE_ACCOUNTS = "SIGWARD_REVERIFY_SERVICE_ACCOUNTS"


def _json(status: int, doc: Any) -> HttpResponse:
    return HttpResponse(status=status, body=json.dumps(doc, separators=(",", ":")).encode())


def _authenticate(headers: Mapping[str, str], env: Mapping[str, str]) -> HttpResponse | None:
    from sigward.events.auth import (
        ENV_GOOGLE_CERTS_URL,
        ENV_PUBSUB_AUDIENCE,
        ENV_PUBSUB_SERVICE_ACCOUNTS,
        OidcUnauthenticated,
        PubSubAuth,
        verify_pubsub_token,
    )

    mapped = {
        ENV_PUBSUB_AUDIENCE: env.get(ENV_AUDIENCE, ""),
        ENV_PUBSUB_SERVICE_ACCOUNTS: env.get(ENV_SERVICE_ACCOUNTS, ""),
        ENV_GOOGLE_CERTS_URL: env.get(ENV_GOOGLE_CERTS_URL, ""),
    }
    try:
        config = PubSubAuth.from_env(mapped)
        if config is None:
            return None
        verify_pubsub_token(headers, config)
    except ConfigurationError as exc:
        message = exc.message.replace(ENV_PUBSUB_AUDIENCE, ENV_AUDIENCE).replace(
            ENV_PUBSUB_SERVICE_ACCOUNTS, ENV_SERVICE_ACCOUNTS
        )
        logs.emit("ERROR", "reverify refused: authentication is misconfigured", error=message)
        return _json(500, {"error": f"sigward configuration error: {message}"})
    except OidcUnauthenticated as exc:
        logs.emit("WARNING", "reverify refused: not authenticated", reason=exc.reason.name)
        return _json(401, {"error": f"unauthorized: {exc.message}"})
    except ExternalServiceError as exc:
        return _json(503, {"error": f"retry later: {exc.message}"})
    return None


def handle_reverify(
    *, method: str, headers: Mapping[str, str], env: Mapping[str, str], service: Callable[[], ReverifyService]
) -> HttpResponse:
    if method not in ("POST", "GET"):
        return _json(405, {"error": "use POST (Cloud Scheduler) or GET"})
    refused = _authenticate(headers, env)
    if refused is not None:
        return refused
    try:
        report = service().run()
    except ConfigurationError as exc:
        logs.emit("ERROR", "reverify: configuration error", error=exc.message)
        return _json(500, {"error": f"sigward configuration error: {exc.message}"})
    except ExternalServiceError as exc:
        logs.emit("WARNING", "reverify: infrastructure unavailable; the scheduler retries", error=exc.message)
        return _json(503, {"error": f"retry later: {exc.message}"})
    except SigwardError as exc:
        logs.emit("ERROR", "reverify failed", error=exc.message)
        return _json(500, {"error": exc.message})
    logs.emit(
        "INFO",
        "reverify run",
        examined=report.examined,
        updated=report.updated,
        flipped=len(report.flips),
        errors=report.errors,
        busy=report.busy,
        cycle_complete=report.cycle_complete,
    )
    return _json(200, report.as_json())

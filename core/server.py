"""``sigward serve``: every function target on one port — ``/admission/...``, ``/push/...`` — plus ``GET
/healthz``, served by gunicorn with threads, as functions-framework serves a single target."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import flask


def create_app() -> flask.Flask:
    import flask

    from core.admission.http import handle_admission
    from core.admission.review import MAX_REVIEW_BYTES
    from core.flaskio import read_body, to_flask, too_large

    app = flask.Flask("sigward")
    # "//" in a path must not become a redirect that echoes the path (the admission token may be a segment of it)
    app.url_map.merge_slashes = False

    @app.route("/healthz", methods=["GET"])
    def healthz() -> flask.Response:
        from core import runtime

        try:
            loaded = runtime.policies()
        except Exception as exc:
            return flask.Response(
                json.dumps({"status": "unhealthy", "error": str(exc)}), status=503, mimetype="application/json"
            )
        body = {"status": "ok", "policies": [p.key for p in loaded.policies]}
        return flask.Response(json.dumps(body), status=200, mimetype="application/json")

    @app.route("/admission", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    @app.route("/admission/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def admission(rest: str) -> flask.Response:
        body = read_body(flask.request, MAX_REVIEW_BYTES)
        if body is None:
            return to_flask(too_large(MAX_REVIEW_BYTES))
        return to_flask(
            handle_admission(
                method=flask.request.method, path="/" + rest, headers=dict(flask.request.headers), body=body
            )
        )

    @app.route("/push/pubsub", methods=["POST", "GET", "PUT"])
    def push_pubsub() -> flask.Response:
        from core.events import MAX_WEBHOOK_BYTES
        from core.push.http import handle_push_pubsub

        body = read_body(flask.request, MAX_WEBHOOK_BYTES)
        if body is None:
            return to_flask(too_large(MAX_WEBHOOK_BYTES))
        return to_flask(handle_push_pubsub(method=flask.request.method, headers=dict(flask.request.headers), body=body))

    @app.route("/push/webhook", methods=["POST", "OPTIONS", "GET", "PUT"])
    def push_webhook() -> flask.Response:
        from core.events import MAX_WEBHOOK_BYTES
        from core.push.http import handle_push_webhook

        body = read_body(flask.request, MAX_WEBHOOK_BYTES)
        if body is None:
            return to_flask(too_large(MAX_WEBHOOK_BYTES))
        return to_flask(
            handle_push_webhook(method=flask.request.method, headers=dict(flask.request.headers), body=body)
        )

    return app


def serve(*, host: str, port: int, workers: int, threads: int) -> None:
    """Run the app under gunicorn (as functions-framework does in production)."""
    from gunicorn.app.base import BaseApplication

    app = create_app()

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings: dict[str, Any] = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "timeout": 0,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> flask.Flask:
            return app

    _App().run()

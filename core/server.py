"""``sigward serve``: every function target on one port — ``/admission/...``, ``/push/...`` — plus ``GET
/healthz``, served by gunicorn with threads, as functions-framework serves a single target."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import flask


def create_app() -> flask.Flask:
    import flask

    from core.flaskio import serve_admission, serve_push_pubsub, serve_push_webhook

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
        return serve_admission(flask.request, path="/" + rest)

    @app.route("/push/pubsub", methods=["POST", "GET", "PUT"])
    def push_pubsub() -> flask.Response:
        return serve_push_pubsub(flask.request)

    @app.route("/push/webhook", methods=["POST", "OPTIONS", "GET", "PUT"])
    def push_webhook() -> flask.Response:
        return serve_push_webhook(flask.request)

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

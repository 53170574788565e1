"""A local stand-in for the Kubernetes API server: HTTPS with a self-signed CA, bearer-token auth, and the real
read paths (``/api/v1/namespaces/NS/configmaps/NAME``, ``.../secrets/NAME``, ``/api/v1/namespaces/NAME``) answering
objects or the API server's ``Status`` documents (401, 403, 404), as ``kubectl get --raw`` sees them."""

from __future__ import annotations

import base64
import json
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.httpservers import Reply, ScriptedServer, Seen
from tests.support.moto import self_signed_tls

_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)(?:/(?P<res>configmaps|secrets)/(?P<name>[^/?]+))?$")


def _status(code: int, reason: str, message: str) -> Reply:
    doc = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return Reply(status=code, headers={"Content-Type": "application/json"}, body=json.dumps(doc).encode())


def configmap(namespace: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data),
    }


def secret(namespace: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "data": encoded}


def namespace(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels)}}


class KubeAPI:
    """Serves ``objects`` to requests carrying ``Authorization: Bearer <token>``; use as a context manager."""

    def __init__(
        self, workdir: Path, *, token: str = "kube-test-token", authenticate: Callable[[str], bool] | None = None
    ) -> None:
        """``authenticate``: decides a bearer token instead of comparing it with ``token`` (as a cloud cluster's
        authenticator does: an EKS STS URL, a Google or Entra access token)."""
        self.token = token
        self.authenticate = authenticate
        self.objects: dict[str, dict[str, Any]] = {}
        self.raw: dict[str, Reply] = {}  # path -> scripted reply (redirects, oversize answers, ...)
        cert, key = self_signed_tls(workdir)
        self.ca_file = str(cert)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self._server = ScriptedServer(self._handle, tls=ctx)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def seen(self) -> list[Seen]:
        return self._server.requests_seen()

    def add(self, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            path = f"/api/v1/namespaces/{meta['name']}"
        else:
            res = {"ConfigMap": "configmaps", "Secret": "secrets", "Pod": "pods"}[obj["kind"]]
            path = f"/api/v1/namespaces/{meta['namespace']}/{res}/{meta['name']}"
        self.objects[path] = dict(obj)

    def add_list(self, path: str, kind: str, items: Sequence[Mapping[str, Any]]) -> None:
        """Serve ``path`` (a collection, e.g. ``/apis/apps/v1/deployments``) as the API server lists it: a
        ``<kind>List`` whose items carry no apiVersion/kind of their own."""
        api_version = path.split("/")[2] if path.startswith("/api/") else "/".join(path.split("/")[2:4])
        stripped = [{k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in items]
        doc = {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {}, "items": stripped}
        self.raw[path] = Reply(200, {"Content-Type": "application/json"}, json.dumps(doc).encode())

    def _handle(self, seen: Seen) -> Reply:
        auth = seen.headers.get("authorization") or ""
        if self.authenticate is not None:
            accepted = auth.startswith("Bearer ") and self.authenticate(auth[7:])
        else:
            accepted = auth == f"Bearer {self.token}"
        if not accepted:
            return _status(401, "Unauthorized", "Unauthorized")
        if seen.path in self.raw:
            return self.raw[seen.path]
        found = self.objects.get(seen.path)
        if found is not None:
            return Reply(200, {"Content-Type": "application/json"}, json.dumps(found).encode())
        m = _PATH.match(seen.path)
        if m is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        what = m.group("res") or "namespaces"
        return _status(404, "NotFound", f'{what} "{m.group("name") or m.group("ns")}" not found')

    def __enter__(self) -> KubeAPI:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    def kubeconfig(self, path: Path, *, token: str | None = None) -> Path:
        ca = base64.b64encode(Path(self.ca_file).read_bytes()).decode()
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": self.url, "certificate-authority-data": ca}}],
            "users": [{"name": "u", "user": {"token": self.token if token is None else token}}],
        }
        path.write_text(json.dumps(doc))
        return path

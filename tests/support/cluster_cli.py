"""``sigward`` CLI runs against a cluster's registry Secrets (the Kubernetes API stand-in + an htpasswd registry):
one environment, one dockerconfigjson builder and one in-process runner for every such test."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from sigward import wiring
from sigward.cli import run
from tests.support.registry import HTPASSWD_PASSWORD, HTPASSWD_USER, LocalRegistry

SECRETS_NAMESPACE = "sigward-system"


def dockerconfig(host: str, password: str = HTPASSWD_PASSWORD) -> str:
    """A ``.dockerconfigjson`` whose one ``auths`` entry (keyed by a URL, as ``kubectl create secret`` writes it)
    holds the htpasswd user with ``password`` for ``host``."""
    auth = base64.b64encode(f"{HTPASSWD_USER}:{password}".encode()).decode()
    return json.dumps({"auths": {f"https://{host}/v1/": {"auth": auth}}})


def run_sigward(argv: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> tuple[int, str]:
    """The CLI in-process under ``env``, with fresh wiring before and after (no client outlives the run); the exit
    code and everything it wrote."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    out, err = io.StringIO(), io.StringIO()
    try:
        code = run(argv, out=out, err=err)
    finally:
        wiring.reset()
    return code, out.getvalue() + err.getvalue()


def secrets_env(tmp_path: Path, registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No cluster connection nor policy from the outer environment, an empty docker config (credentials come only
    from Secrets), ``registry`` reachable over plain HTTP, Secrets read from :data:`SECRETS_NAMESPACE`."""
    (tmp_path / "empty-docker-config").mkdir()
    for name in ("SIGWARD_KUBECONFIG", "SIGWARD_CLUSTER", "KUBERNETES_SERVICE_HOST", "SIGWARD_POLICY"):
        monkeypatch.delenv(name, raising=False)
    return {
        "DOCKER_CONFIG": str(tmp_path / "empty-docker-config"),
        "SIGWARD_INSECURE_REGISTRIES": registry.host,
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        "SIGWARD_SECRETS_NAMESPACE": SECRETS_NAMESPACE,
    }

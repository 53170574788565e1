"""The cluster connection with the function's own workload identity, through the real client libraries (google-auth,
boto3, azure-identity) against local stand-ins, and the HTTPS Kubernetes API stand-in asserting the exact bearer it
received. Negative twins: GKE metadata server down, EKS token bound to another cluster name (refused by the
stand-in's STS-style SigV4 check), AKS federated credential refused, and settings missing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests

from sigward.cluster.data import ClusterLookupError, ObjectRef
from sigward.cluster.identity import AKS_SCOPE, EKS_CLUSTER_HEADER, EKS_TOKEN_PREFIX
from sigward.cluster.sources import cluster_data_from_env
from sigward.errors import ConfigurationError
from tests.support.gce_metadata import install_access_token_metadata
from tests.support.keyvault_server import _CLEARED, KeyVaultServer
from tests.support.kubeapi import KubeAPI, namespace
from tests.support.moto import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    MotoServer,
    aws_moto_server,  # noqa: F401 - session fixture
    point_at_moto,
)

NS = ObjectRef("namespaces", "", "strict")
LABELS = {"signed": "required"}


def _env(kube: KubeAPI, provider: str, **extra: str) -> dict[str, str]:
    return {
        "SIGWARD_CLUSTER_PROVIDER": provider,
        "SIGWARD_CLUSTER_SERVER": kube.url,
        "SIGWARD_CLUSTER_CA": kube.ca_file,
        **extra,
    }


@pytest.fixture
def kube_with(tmp_path: Path) -> Iterator[list[KubeAPI]]:
    started: list[KubeAPI] = []
    yield started
    for k in started:
        k.__exit__(None, None, None)


def _kube(started: list[KubeAPI], tmp_path: Path, authenticate: object) -> KubeAPI:
    kube = KubeAPI(tmp_path / f"kube{len(started)}", authenticate=authenticate)  # type: ignore[arg-type]
    kube.__enter__()
    kube.add(namespace("strict", LABELS))
    started.append(kube)
    return kube


# -- GKE ---------------------------------------------------------------------------------------------------------


def test_gke_metadata_access_token_reaches_the_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kube_with: list[KubeAPI]
) -> None:
    md = install_access_token_metadata(monkeypatch, tmp_path / "home")
    try:
        kube = _kube(kube_with, tmp_path, lambda token: token in md.issued)
        data = cluster_data_from_env(_env(kube, "gke"))
        assert data.namespace_labels("strict") == LABELS
        (token,) = md.issued
        (seen,) = [s for s in kube.seen if s.path == NS.api_path]
        assert seen.headers["authorization"] == f"Bearer {token}"
    finally:
        md.close()


def test_gke_metadata_down_is_an_infrastructure_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kube_with: list[KubeAPI]
) -> None:
    md = install_access_token_metadata(monkeypatch, tmp_path / "home")
    md.close()  # the metadata server is gone
    kube = _kube(kube_with, tmp_path, lambda token: True)
    data = cluster_data_from_env(_env(kube, "gke"))
    with pytest.raises(ClusterLookupError, match="GKE cluster token unavailable") as err:
        data.namespace_labels("strict")
    assert "ya29" not in err.value.message
    assert not [s for s in kube.seen if s.path == NS.api_path]  # nothing sent without a token


# -- EKS ---------------------------------------------------------------------------------------------------------


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def eks_authenticator(cluster_name: str, sts_url: str) -> tuple[list[str], object]:
    """What EKS's authenticator checks, as a stand-in: the token is ``k8s-aws-v1.`` + a presigned STS
    GetCallerIdentity URL for this STS host whose SigV4 signature covers ``x-k8s-aws-id: <this cluster>`` (checked
    with the test credentials: moto does not verify signatures); then the URL is called on STS (moto)."""
    accepted: list[str] = []

    def authenticate(token: str) -> bool:
        if not token.startswith(EKS_TOKEN_PREFIX):
            return False
        raw = token[len(EKS_TOKEN_PREFIX) :]
        url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if f"{parts.scheme}://{parts.netloc}" != sts_url or query.get("Action") != "GetCallerIdentity":
            return False
        signed = query["X-Amz-SignedHeaders"].split(";")
        if EKS_CLUSTER_HEADER not in signed:
            return False
        headers = {"host": parts.netloc, EKS_CLUSTER_HEADER: cluster_name}
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, v in sorted(query.items())
            if k != "X-Amz-Signature"
        )
        canonical = "\n".join(
            [
                "GET",
                parts.path or "/",
                canonical_query,
                "".join(f"{h}:{headers[h]}\n" for h in signed),
                ";".join(signed),
                hashlib.sha256(b"").hexdigest(),
            ]
        )
        date, scope = query["X-Amz-Date"], query["X-Amz-Credential"].split("/", 1)[1]
        to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + SECRET_ACCESS_KEY).encode()
        for part in scope.split("/"):
            key = _sign(key, part)
        if not hmac.compare_digest(
            hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), query["X-Amz-Signature"]
        ):
            return False
        if not query["X-Amz-Credential"].startswith(ACCESS_KEY_ID + "/"):
            return False
        # moto_server picks the service from an Authorization header's credential scope, which a presigned GET
        # lacks: name STS there (moto verifies no signature; the check above did)
        route = f"AWS4-HMAC-SHA256 Credential={query['X-Amz-Credential']}, SignedHeaders=host, Signature=0"
        answer = requests.get(url, headers={"Authorization": route, EKS_CLUSTER_HEADER: cluster_name}, timeout=5)
        if answer.status_code != 200 or "GetCallerIdentityResponse" not in answer.text:
            return False
        accepted.append(token)
        return True

    return accepted, authenticate


@pytest.mark.parametrize(("token_cluster", "ok"), [("prod-cluster", True), ("other-cluster", False)])
def test_eks_presigned_sts_token_bound_to_the_cluster_name(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kube_with: list[KubeAPI],
    aws_moto_server: MotoServer,  # noqa: F811
    token_cluster: str,
    ok: bool,
) -> None:
    point_at_moto(monkeypatch, tmp_path, aws_moto_server)
    accepted, authenticate = eks_authenticator("prod-cluster", aws_moto_server.url)
    kube = _kube(kube_with, tmp_path, authenticate)
    data = cluster_data_from_env(_env(kube, "eks", SIGWARD_CLUSTER_NAME=token_cluster))
    if ok:
        assert data.namespace_labels("strict") == LABELS
        (token,) = accepted
        (seen,) = [s for s in kube.seen if s.path == NS.api_path]
        assert seen.headers["authorization"] == f"Bearer {token}"
    else:
        with pytest.raises(ClusterLookupError, match="HTTP 401: permission denied") as err:
            data.namespace_labels("strict")
        assert EKS_TOKEN_PREFIX not in err.value.message and not accepted


def test_eks_needs_the_cluster_name(tmp_path: Path, kube_with: list[KubeAPI]) -> None:
    kube = _kube(kube_with, tmp_path, lambda token: True)
    with pytest.raises(ConfigurationError, match="SIGWARD_CLUSTER_NAME"):
        cluster_data_from_env(_env(kube, "eks"))


# -- AKS ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("refused", [False, True])
def test_aks_entra_token_for_the_aks_server_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kube_with: list[KubeAPI], refused: bool
) -> None:
    with KeyVaultServer(tmp_path / "entra") as entra:
        for name in _CLEARED:
            monkeypatch.delenv(name, raising=False)
        for name, value in entra.environment().items():
            monkeypatch.setenv(name, value)
        entra.extra_scopes.add(AKS_SCOPE)
        entra.refuse_tokens = refused
        kube = _kube(kube_with, tmp_path, lambda token: token in entra.tokens)
        data = cluster_data_from_env(_env(kube, "aks"))
        if refused:
            with pytest.raises(ClusterLookupError, match="AKS cluster token unavailable"):
                data.namespace_labels("strict")
            assert not [s for s in kube.seen if s.path == NS.api_path]
        else:
            assert data.namespace_labels("strict") == LABELS
            (token,) = entra.tokens
            (seen,) = [s for s in kube.seen if s.path == NS.api_path]
            assert seen.headers["authorization"] == f"Bearer {token}"
        assert [r.get("scope") for r in entra.token_requests] == [AKS_SCOPE]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIGWARD_CLUSTER_PROVIDER": "gke"}, "SIGWARD_CLUSTER_SERVER"),
        ({"SIGWARD_CLUSTER_PROVIDER": "doks", "SIGWARD_CLUSTER_SERVER": "https://k.example"}, "one of gke, eks, aks"),
        ({"SIGWARD_CLUSTER_PROVIDER": "gke", "SIGWARD_CLUSTER_SERVER": "http://k.example"}, "https://"),
        (
            {"SIGWARD_CLUSTER_PROVIDER": "gke", "SIGWARD_CLUSTER_SERVER": "https://k", "SIGWARD_CLUSTER_CA": "/nope"},
            "no such file",
        ),
    ],
)
def test_settings_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        cluster_data_from_env(env)

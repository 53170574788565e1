"""Every command that loads policies asks one place what they may use (``Services.capabilities``): a policy reading
registry credentials from cluster Secrets (Kyverno's notary-image-verification-secret-from-policy) loads in each
of them exactly when a cluster connection is configured (SIGWARD_KUBECONFIG to the Kubernetes API stand-in), and is
refused with its YAML path when none is. ``package`` still ships no Secret with credentials and says the deployed
function needs the connection."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward.cli import run
from tests.support.admission import pod, pod_request, review
from tests.support.kubeapi import KubeAPI, configmap

VECTOR = Path(
    "/work/shared/vectors/kyverno-policies/kyverno-tests/"
    "clusterpolicy__standard__notary-image-verification-secret-from-policy__policy.yaml"
)
REFUSAL = "spec.rules[0].verifyImages[0].imageRegistryCredentials.secrets"
OTHER_IMAGE = "127.0.0.1:9/none/app:v1"  # matches no rule: nothing is fetched once the policy loads


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    import os

    vectors = Path(os.environ.get("SIGWARD_VECTORS", "/work/shared/vectors"))
    src = vectors / VECTOR.relative_to("/work/shared/vectors")
    if not src.is_file():
        pytest.skip(f"vector {src} not present")
    dst = tmp_path / "policy.yaml"
    shutil.copy(src, dst)
    return dst


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeAPI]:
    with KubeAPI(tmp_path / "kube-tls") as api:
        api.add(configmap("test-verify-images", "keys", {"certificate": "not read: no image matches"}))
        yield api


@pytest.fixture(params=["connected", "no connection"])
def connected(request: pytest.FixtureRequest, kube: KubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bool:
    for name in ("SIGWARD_KUBECONFIG", "KUBERNETES_SERVICE_HOST", "SIGWARD_CLUSTER_PROVIDER", "SIGWARD_POLICY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGWARD_STORE", "memory:")
    if request.param == "connected":
        monkeypatch.setenv("SIGWARD_KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        return True
    monkeypatch.setenv("SIGWARD_CLUSTER", "none")
    return False


def cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def commands(policy: Path, tmp_path: Path) -> dict[str, list[str]]:
    review_file = tmp_path / "review.json"
    review_file.write_text(json.dumps(review(pod_request(pod(OTHER_IMAGE)))))
    return {
        "check-policy": ["check-policy", str(policy)],
        "verify": ["verify", "--policy", str(policy), OTHER_IMAGE],
        "review": ["review", "--policy", str(policy), str(review_file)],
        "reverify": ["reverify", "--policy", str(policy)],
        "webhook-config": ["webhook-config", "--url", "https://sigward.example/admission", "--policy", str(policy)],
        "package": ["package", "--out", str(tmp_path / "dist"), "--policy", str(policy)],
    }


@pytest.mark.parametrize("command", ["check-policy", "verify", "review", "reverify", "webhook-config", "package"])
def test_secrets_policy_loads_exactly_with_a_connection(
    policy: Path, tmp_path: Path, connected: bool, command: str
) -> None:
    code, text = cli(*commands(policy, tmp_path)[command])
    if connected:
        assert code == 0, text
        assert "error:" not in text
    else:
        assert code == 2, text
        assert REFUSAL in text and "cluster connection" in text


def test_package_says_the_deployed_function_needs_the_connection(policy: Path, tmp_path: Path, connected: bool) -> None:
    code, text = cli(*commands(policy, tmp_path)["package"])
    if not connected:
        assert code == 2  # refused as everywhere else (the negative twin)
        return
    assert code == 0, text
    assert f"note: {policy}#doc1: {REFUSAL} is read through the cluster connection at run time" in text
    archives = list((tmp_path / "dist").glob("sigward-*.zip"))
    assert len(archives) == 1
    import zipfile

    with zipfile.ZipFile(archives[0]) as zf:
        shipped = [n for n in zf.namelist() if n.startswith("policies/")]
        assert shipped == ["policies/policy.yaml"]  # the policy only: no Secret (credentials stay in the cluster)

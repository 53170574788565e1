"""Registry-credential Secrets come from the live connection only: a shipped manifest never supplies one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from sigward.cluster.data import ClusterData, ClusterLookupError, ObjectRef

REF = ObjectRef("secrets", "kyverno", "regcred")
SHIPPED = {"metadata": {"name": "regcred"}, "data": {".dockerconfigjson": '{"auths": {}}'}}


class _Live:
    def __init__(self, obj: Mapping[str, Any] | None) -> None:
        self.obj, self.calls = obj, 0

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        self.calls += 1
        return self.obj


def test_shipped_manifest_is_not_used_without_a_connection() -> None:
    with pytest.raises(ClusterLookupError, match="cluster connection only"):
        ClusterData(manifests={REF: SHIPPED}).live_secret("kyverno", "regcred")


def test_shipped_manifest_is_not_used_when_the_cluster_has_none() -> None:
    with pytest.raises(ClusterLookupError, match="not found in the cluster"):
        ClusterData(manifests={REF: SHIPPED}, live=_Live(None)).live_secret("kyverno", "regcred")


def test_live_secret_is_cached_with_the_cluster_ttl() -> None:
    now = [0.0]
    live = _Live({"metadata": {"name": "regcred"}, "data": {".dockerconfigjson": "e30="}})
    cluster = ClusterData(live=live, ttl=30.0, clock=lambda: now[0])
    assert cluster.live_secret("kyverno", "regcred")["data"] == {".dockerconfigjson": "{}"}
    cluster.live_secret("kyverno", "regcred")
    assert live.calls == 1
    now[0] = 31.0
    cluster.live_secret("kyverno", "regcred")
    assert live.calls == 2


# Regression: `.dockerconfigjson` counted as public material, so resource.Get / context lookups (and a CEL
# messageExpression) could read registry passwords, and shipped manifests could carry them into an archive.
CREDENTIALS = {".dockerconfigjson": "eyJhdXRocyI6IHsicmVnLmV4YW1wbGUiOiB7ImF1dGgiOiAiZFhObGNqcHdZWE56In19fQ=="}


def test_registry_credentials_are_never_in_a_public_view() -> None:
    from sigward.cluster.data import public_secret

    secret = {"metadata": {"name": "regcred"}, "data": {**CREDENTIALS, "note": "cHVibGlj"}}
    assert public_secret(secret)["data"] == {"note": "public"}


def test_credential_view_is_cached_apart_from_the_public_view() -> None:
    live = _Live({"metadata": {"name": "regcred", "namespace": "kyverno"}, "data": {**CREDENTIALS, "note": "cHVibGlj"}})
    cluster = ClusterData(live=live, ttl=30.0, clock=lambda: 0.0)
    credentials = cluster.live_secret("kyverno", "regcred")
    assert set(credentials["data"]) == {".dockerconfigjson"}
    public = cluster.get(REF)
    assert public is not None and public["data"] == {"note": "public"}


def test_package_refuses_shipped_registry_credentials(tmp_path: Any) -> None:
    from sigward.cluster.sources import private_secrets

    path = tmp_path / "regcred.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: kyverno}\n"
        f"type: kubernetes.io/dockerconfigjson\ndata: {{.dockerconfigjson: {CREDENTIALS['.dockerconfigjson']}}}\n"
    )
    assert private_secrets([path]) == ["kyverno/regcred (.dockerconfigjson)"]


class _Raw:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def raw(self, path: str, *, method: str = "GET", body: Any = None) -> Any:
        return self.answer


@pytest.mark.parametrize("kind", ["Secret", "SecretList"])
def test_api_call_answers_carry_no_private_material(kind: str) -> None:
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {**CREDENTIALS, "cosign.key": "eA==", "pub": "eA=="}}
    answer = secret if kind == "Secret" else {"kind": "SecretList", "items": [secret]}
    got = ClusterData(raw_source=_Raw(answer)).raw("/api/v1/namespaces/kyverno/secrets")
    one = got if kind == "Secret" else got["items"][0]
    assert one["data"] == {"pub": "x"}

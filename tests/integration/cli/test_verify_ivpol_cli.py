"""`sigward verify IMAGE` and `check-policy` with ImageValidatingPolicies against the real local registry: each image
is evaluated as for a Pod in namespace default running it; exit codes follow the contract (0 pass / nothing
selected, 1 failed, 3 registry unreachable)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward import cli
from tests.support.netutil import free_port
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry

KEY, OTHER = new_key("p256", slot=40), new_key("p256", slot=41)


@dataclass(frozen=True)
class Images:
    host: str
    signed: str
    unsigned: str
    other_key: str


@pytest.fixture(scope="module")
def images(registry: LocalRegistry) -> Images:
    host = registry.host
    out = {}
    for name, signer in (("signed", KEY), ("unsigned", None), ("other-key", OTHER)):
        digest = registry.push_image(f"ivcli/{name}", tag="v1")
        if signer is not None:
            attach_signatures(registry, f"ivcli/{name}", digest, [signed_layer(signer, image_digest=digest)])
        out[name] = f"{host}/ivcli/{name}:v1"
    return Images(host, out["signed"], out["unsigned"], out["other-key"])


def ivpol(glob: str, *, name: str = "ivcli", conditions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "matchConstraints": {
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
            ]
        },
        "matchImageReferences": [{"glob": glob}],
        "attestors": [
            {"name": "k", "cosign": {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}}
        ],
        "validations": [
            {
                "expression": "images.containers.map(i, verifyImageSignatures(i, [attestors.k])).all(n, n > 0)",
                "message": "not signed by the team key",
            }
        ],
    }
    if conditions:
        spec["matchConditions"] = conditions
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture
def env(images: Images, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", f"{images.host},127.0.0.1")
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    monkeypatch.delenv("SIGWARD_POLICY", raising=False)


def run(tmp_path: Path, docs: list[dict[str, Any]], *args: str) -> tuple[int, str]:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out, err = io.StringIO(), io.StringIO()
    code = cli.run([args[0], "--policy", str(path), *args[1:]], out=out, err=err)
    return code, out.getvalue() + err.getvalue()


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("which", "code", "verdict"),
    [("signed", 0, "pass"), ("unsigned", 1, "fail"), ("other_key", 1, "fail")],
    ids=["signed", "unsigned", "wrong-key"],
)
def test_verify_with_ivpol(images: Images, tmp_path: Path, which: str, code: int, verdict: str) -> None:
    image = getattr(images, which)
    got, output = run(tmp_path, [ivpol(f"{images.host}/ivcli/*")], "verify", "--json", image)
    assert got == code, output
    (result,) = json.loads(output[: output.rindex("}") + 1])["results"]
    assert (result["verdict"], result["policy"], result["rule"]) == (verdict, "ivcli", "ImageValidatingPolicy")
    if verdict == "fail":
        assert result["message"] == "not signed by the team key"
    else:
        assert result["digest"].startswith("sha256:")


@pytest.mark.usefixtures("env")
def test_image_no_policy_selects_is_skipped(images: Images, tmp_path: Path) -> None:
    got, output = run(tmp_path, [ivpol("elsewhere.test/*")], "verify", images.unsigned)
    assert got == 0 and "SKIP" in output and "no verifyImages rule matches" in output


@pytest.mark.usefixtures("env")
def test_match_conditions_not_met_for_the_synthetic_pod_is_a_skip(images: Images, tmp_path: Path) -> None:
    needs_label = [
        {"name": "prod", "expression": "has(object.metadata.labels) && object.metadata.labels.prod == 'true'"}
    ]
    got, output = run(tmp_path, [ivpol(f"{images.host}/ivcli/*", conditions=needs_label)], "verify", images.unsigned)
    assert got == 0 and "SKIP" in output and "matchConditions not met" in output


@pytest.mark.usefixtures("env")
def test_registry_down_is_exit_3(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    got, output = run(tmp_path, [ivpol(f"{dead}/*")], "verify", "--timeout", "5", f"{dead}/x/y:v1")
    assert got == 3, output
    assert "ERROR" in output


@pytest.mark.usefixtures("env")
def test_check_policy_lists_ivpol(images: Images, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(ivpol(f"{images.host}/*")))
    out = io.StringIO()
    assert cli.run(["check-policy", str(path)], out=out, err=io.StringIO()) == 0
    autogen = "autogen: cronjobs=cronjobs defaults=daemonsets,deployments,replicasets,statefulsets,jobs"
    assert f"ok: {path}#doc1: ImageValidatingPolicy ivcli (1 validations; {autogen})" in out.getvalue()

"""`sigward check-policy` as a process: exit 0 for valid policies, 2 with every problem and its YAML path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

REPO = Path(__file__).resolve().parents[3]


def check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", "check-policy", *map(str, paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_invalid_and_skipped_documents(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        dump(cluster_policy("good", [key_verification(["ghcr.io/*"], [keys_entry(new_key().public_pem)])]))
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"
    )
    proc = check(good)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: " in proc.stdout and "ClusterPolicy good (1 verifyImages rules)" in proc.stdout
    assert "ConfigMap" in proc.stdout  # skipped with a note

    bad = tmp_path / "bad.yaml"
    doc = cluster_policy("bad", [key_verification(["ghcr.io/*"], [keys_entry(new_key().public_pem)])])
    entry = doc["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]
    entry["keys"]["secret"] = {"name": "cosign", "namespace": "default"}
    doc["spec"]["rules"][0]["verifyImages"][0]["attestors"].append({"entries": []})
    bad.write_text(dump(doc))
    doc["spec"]["rules"][0]["verifyImages"][0]["bogusField"] = True
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(dump(doc))
    proc = check(good, bad, unknown)
    assert proc.returncode == 2
    out = proc.stdout
    assert "ok: " in out  # the good file is still reported
    assert "bad.yaml#doc1: spec.rules[0].verifyImages[0].attestors[0].entries[0].keys: publicKeys, secret" in out
    assert "bad.yaml#doc1: spec.rules[0].verifyImages[0].attestors[1]" in out
    assert 'unknown.yaml#doc1: spec.rules[0].verifyImages[0]: unknown field "bogusField"' in out
    assert "Traceback" not in proc.stderr


def _secret_policy(tmp_path: Path, *, ship: bool) -> Path:
    entry = {"keys": {"secret": {"name": "cosign", "namespace": "sigs"}}}
    doc = cluster_policy("secret-key", [key_verification(["ghcr.io/*"], [entry])])
    doc["spec"]["rules"][0]["context"] = [{"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}]
    text = dump(doc)
    if ship:
        text += (
            "---\napiVersion: v1\nkind: Secret\nmetadata: {name: cosign, namespace: sigs}\n"
            "stringData: {cosign.pub: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: keys}\ndata: {}\n"
        )
    path = tmp_path / ("shipped.yaml" if ship else "bare.yaml")
    path.write_text(text)
    return path


def test_cluster_objects_must_be_shipped_or_reachable(tmp_path: Path) -> None:
    """Issue 15: keys.secret and configMap entries are refused with their path when no source can supply them."""
    import os

    env_backup = os.environ.pop("KUBERNETES_SERVICE_HOST", None)
    try:
        bare = check(_secret_policy(tmp_path, ship=False))
        shipped = check(_secret_policy(tmp_path, ship=True))
    finally:
        if env_backup is not None:
            os.environ["KUBERNETES_SERVICE_HOST"] = env_backup
    assert bare.returncode == 2, bare.stdout
    assert "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.secret: needs secret sigs/cosign" in bare.stdout
    assert "spec.rules[0].context[0].configMap: needs configmap default/keys" in bare.stdout
    assert shipped.returncode == 0, shipped.stdout


def _global_entry_policy(tmp_path: Path, spec: dict[str, object], name: str) -> Path:
    doc = cluster_policy("global-key", [key_verification(["ghcr.io/*"], [keys_entry("{{ keys }}")])])
    doc["spec"]["rules"][0]["context"] = [{"name": "keys", "globalReference": {"name": "entry"}}]
    entry = {"apiVersion": "kyverno.io/v2beta1", "kind": "GlobalContextEntry", "metadata": {"name": "entry"}}
    path = tmp_path / name
    path.write_text(dump(doc, {**entry, "spec": spec}))
    return path


def test_global_context_entries_need_a_connection_unless_shipped_collections(tmp_path: Path) -> None:
    """A GlobalContextEntry that only a live cluster can answer is refused with its path when none is configured."""
    import os

    env = os.environ.pop("KUBERNETES_SERVICE_HOST", None)
    try:
        deployments = check(
            _global_entry_policy(
                tmp_path,
                {"kubernetesResource": {"group": "apps", "version": "v1", "resource": "deployments"}},
                "d.yaml",
            )
        )
        apicall = check(_global_entry_policy(tmp_path, {"apiCall": {"urlPath": "/api/v1/namespaces"}}, "a.yaml"))
        configmaps = check(
            _global_entry_policy(
                tmp_path, {"kubernetesResource": {"version": "v1", "resource": "configmaps"}}, "c.yaml"
            )
        )
    finally:
        if env is not None:
            os.environ["KUBERNETES_SERVICE_HOST"] = env
    assert (
        deployments.returncode == 2
        and "spec.kubernetesResource: GlobalContextEntry entry lists apps/v1 deployments" in deployments.stdout
    )
    assert (
        apicall.returncode == 2
        and "spec.apiCall.urlPath: GlobalContextEntry entry reads /api/v1/namespaces" in apicall.stdout
    )
    assert configmaps.returncode == 0, configmaps.stdout
    assert "GlobalContextEntry entry" in configmaps.stdout


def test_cel_policy_exception_vectors_and_a_bad_exception(tmp_path: Path) -> None:
    """Kyverno's exceptions/autogen files as shipped, in one directory (policy, CEL PolicyException, resources
    skipped as non-policies), pass; a CEL type error in an exception's matchConditions exits 2 with its path."""
    vector = Path("/work/shared/vectors/kyverno-ivpol/chainsaw/exceptions/autogen")
    good = tmp_path / "good"
    good.mkdir()
    for name in ("policy.yaml", "exception.yaml", "skipped-resources.yaml"):
        (good / name).write_text((vector / name).read_text())
    proc = check(good)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exception.yaml#doc1: PolicyException default/check-name (policies.kyverno.io)" in proc.stdout
    assert "policies.kyverno.io/v1alpha1 is deprecated" in proc.stdout
    (good / "exception.yaml").write_text(
        (vector / "exception.yaml").read_text().replace("object.metadata.name in", "1 in")
    )
    proc = check(good)
    assert proc.returncode == 2, proc.stdout
    assert "exception.yaml#doc1: spec.matchConditions[0].expression:" in proc.stdout
    assert "Traceback" not in proc.stderr

"""Build the :class:`~sigward.cluster.data.ClusterData` service from the environment, in one place.

- Manifests: the ConfigMaps, Secrets and Namespaces (``apiVersion: v1``) in the policy paths, as ``kubectl apply -f``
  would create them (no ``metadata.namespace`` → ``default``; ``kind: List`` and multi-document files expanded).
- Live connection, first found: ``SIGWARD_KUBECONFIG`` (a kubeconfig's current context, bearer token only), else a
  GKE/EKS/AKS cluster reached with the function's own workload identity (``SIGWARD_CLUSTER_PROVIDER``,
  :mod:`sigward.cluster.identity`), else the in-cluster service account (``KUBERNETES_SERVICE_HOST`` and the
  mounted token); ``SIGWARD_CLUSTER=none`` turns the
  live connection off.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sigward.cluster.api import (
    Connection,
    KubeClient,
    in_cluster_connection,
    kubeconfig_connection,
    workload_identity_connection,
)
from sigward.cluster.data import ClusterData, ObjectRef, public_secret

KUBECONFIG_ENV = "SIGWARD_KUBECONFIG"
CLUSTER_ENV = "SIGWARD_CLUSTER"  # "none": no live connection even inside a cluster
_KINDS = {"ConfigMap": "configmaps", "Secret": "secrets", "Namespace": "namespaces"}
DEFAULT_NAMESPACE = "default"  # kubectl's namespace for a manifest without one (and no -n)


def manifest_objects(paths: Sequence[str | os.PathLike[str]]) -> dict[ObjectRef, Mapping[str, Any]]:
    """The cluster objects written beside the policies; unreadable files are the policy loader's to report."""
    out: dict[ObjectRef, Mapping[str, Any]] = {}
    for doc in _documents(paths):
        if not isinstance(doc, dict) or doc.get("apiVersion") != "v1":
            continue
        resource = _KINDS.get(str(doc.get("kind")))
        meta = doc.get("metadata")
        if resource is None or not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            continue
        namespace = "" if resource == "namespaces" else str(meta.get("namespace") or DEFAULT_NAMESPACE)
        ref = ObjectRef(resource, namespace, meta["name"])
        obj = {**doc, "metadata": {**meta, **({"namespace": namespace} if namespace else {})}}
        out[ref] = public_secret(obj) if resource == "secrets" else obj
    return out


def private_secrets(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The Secrets in ``paths`` that hold private material (which ``package`` must not bundle): "ns/name (keys)"."""
    out: list[str] = []
    for doc in _documents(paths):
        if not isinstance(doc, dict) or doc.get("kind") != "Secret" or not isinstance(doc.get("metadata"), dict):
            continue
        kept = public_secret(doc)["data"]
        given = [str(k) for field in ("data", "stringData") if isinstance(doc.get(field), dict) for k in doc[field]]
        dropped = [k for k in given if k not in kept]
        if dropped:
            meta = doc["metadata"]
            out.append(f"{meta.get('namespace') or DEFAULT_NAMESPACE}/{meta.get('name')} ({', '.join(dropped)})")
    return out


def _documents(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Any]:
    from sigward.policy.loader import (
        JSON_SUFFIX,
        MAX_POLICY_FILE_BYTES,
        POLICY_FILE_SUFFIXES,
        iter_yaml_documents,
        parse_json_document,
    )

    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files.extend(sorted(f for f in path.iterdir() if f.suffix in POLICY_FILE_SUFFIXES and f.is_file()))
        elif path.is_file():
            files.append(path)
    for f in files:
        try:
            if f.stat().st_size > MAX_POLICY_FILE_BYTES:
                continue
            text = f.read_text(encoding="utf-8-sig")
            docs = [parse_json_document(text)] if f.suffix == JSON_SUFFIX else list(iter_yaml_documents(text))
        except Exception:  # noqa: S112 - the policy loader reports unreadable files with their reason
            continue
        for doc in docs:
            yield from _expand(doc)


def _expand(doc: Any) -> Iterator[Any]:
    if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _expand(item)
    else:
        yield doc


def cluster_data_from_env(
    environ: Mapping[str, str] | None = None, policy_paths: Sequence[str | os.PathLike[str]] = ()
) -> ClusterData:
    """The cluster data service for this process: the one place reading its configuration."""
    from sigward.cluster.services import ServiceCaller

    env = os.environ if environ is None else environ
    manifests = manifest_objects(policy_paths)
    services = ServiceCaller.from_env(env)
    if env.get(CLUSTER_ENV, "").strip().lower() == "none":
        return ClusterData(manifests=manifests, services=services)
    kubeconfig = env.get(KUBECONFIG_ENV, "").strip()
    connection: Connection | None
    if kubeconfig:
        connection = kubeconfig_connection(kubeconfig, Path(tempfile.mkdtemp(prefix="sigward-kube-")))
    else:
        connection = workload_identity_connection(env) or in_cluster_connection(env)
    if connection is None:
        return ClusterData(manifests=manifests, services=services)
    client = KubeClient(connection)
    return ClusterData(manifests=manifests, live=client, raw_source=client, services=services)

"""Build Kyverno ClusterPolicy YAML for tests (in the seeds' style) without hand-indenting PEMs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml


class _Literal(str):
    """A string rendered as a YAML block literal (PEMs keep their newlines)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


yaml.SafeDumper.add_representer(_Literal, _literal)


def keys_entry(
    pem: str,
    *,
    ignore_tlog: bool = True,
    signature_algorithm: str | None = None,
    annotations: Mapping[str, str] | None = None,
    repository: str | None = None,
    rekor_pubkey: str | None = None,
) -> dict[str, Any]:
    keys: dict[str, Any] = {"publicKeys": _Literal(pem)}
    if ignore_tlog:
        keys["rekor"] = {"ignoreTlog": True}
    elif rekor_pubkey is not None:
        keys["rekor"] = {"pubkey": _Literal(rekor_pubkey)}
    if signature_algorithm:
        keys["signatureAlgorithm"] = signature_algorithm
    entry: dict[str, Any] = {"keys": keys}
    if annotations:
        entry["annotations"] = dict(annotations)
    if repository:
        entry["repository"] = repository
    return entry


def cluster_policy(
    name: str,
    verify_images: Sequence[Mapping[str, Any]],
    *,
    rule: str = "verify-signature",
    action: str = "Enforce",
    failure_policy: str | None = None,
    kinds: Sequence[str] = ("Pod",),
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "validationFailureAction": action,
        "rules": [
            {
                "name": rule,
                "match": {"any": [{"resources": {"kinds": list(kinds)}}]},
                "verifyImages": [dict(v) for v in verify_images],
            }
        ],
    }
    if failure_policy:
        spec["failurePolicy"] = failure_policy
    return {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": name}, "spec": spec}


def key_verification(
    image_references: Sequence[str],
    entries: Sequence[Mapping[str, Any]],
    *,
    count: int | None = None,
    repository: str | None = None,
    mutate_digest: bool | None = None,
    extra_sets: Sequence[Sequence[Mapping[str, Any]]] = (),
) -> dict[str, Any]:
    attestor_set: dict[str, Any] = {"entries": [dict(e) for e in entries]}
    if count is not None:
        attestor_set["count"] = count
    iv: dict[str, Any] = {
        "imageReferences": list(image_references),
        "attestors": [attestor_set] + [{"entries": [dict(e) for e in s]} for s in extra_sets],
    }
    if repository:
        iv["repository"] = repository
    if mutate_digest is not None:
        iv["mutateDigest"] = mutate_digest
    return iv


def dump(*documents: Mapping[str, Any]) -> str:
    return yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False)

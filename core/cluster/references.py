"""The cluster objects loaded policies name literally (``keys.secret``, ``k8s://NS/NAME`` keys, ``configMap`` context
entries), with their YAML paths: ``check-policy`` refuses those neither shipped beside the policies nor reachable
through a configured cluster connection, so a policy that can only error at admission is caught before deploying."""

from __future__ import annotations

from collections.abc import Iterator

from sigward.cluster.data import ClusterData, ObjectRef
from sigward.cluster.globalcontext import SHIPPED_COLLECTIONS
from sigward.errors import PolicyProblem
from sigward.policy.dynamic import K8S_KEY_PREFIX
from sigward.policy.loader import PolicySet
from sigward.policy.models import AttestorSet, Policy
from sigward.policy.validation import has_variable


def _keys(sets: tuple[AttestorSet, ...], path: str) -> Iterator[tuple[str, ObjectRef]]:
    for n, s in enumerate(sets):
        for i, entry in enumerate(s.entries):
            epath = f"{path}[{n}].entries[{i}]"
            keys = entry.keys
            if keys is not None:
                ref = keys.public_keys.strip()
                if ref.startswith(K8S_KEY_PREFIX) and not has_variable(ref):
                    ns, _, name = ref[len(K8S_KEY_PREFIX) :].partition("/")
                    yield f"{epath}.keys.publicKeys", ObjectRef("secrets", ns, name)
                elif not ref and keys.secret is not None and not has_variable(keys.secret.name + keys.secret.namespace):
                    yield f"{epath}.keys.secret", ObjectRef("secrets", keys.secret.namespace, keys.secret.name)
            if entry.attestor is not None:
                yield from _keys((entry.attestor,), f"{epath}.attestor")


def references(policy: Policy) -> Iterator[tuple[str, ObjectRef]]:
    """(YAML path, object) for every literal cluster object the policy's rules read."""
    for r, rule in enumerate(policy.spec.rules):
        path = f"spec.rules[{r}]"
        for c, entry in enumerate(rule.context):
            cm = entry.get("configMap")
            literal = (
                isinstance(cm, dict)
                and isinstance(cm.get("name"), str)
                and isinstance(cm.get("namespace"), str)
                and not has_variable(cm["name"] + cm["namespace"])
            )
            if literal:
                assert isinstance(cm, dict)
                ns = cm["namespace"] or policy.namespace or "default"
                yield f"{path}.context[{c}].configMap", ObjectRef("configmaps", ns, cm["name"])
        for j, iv in enumerate(rule.verify_images):
            ipath = f"{path}.verifyImages[{j}]"
            yield from _keys(iv.attestors, f"{ipath}.attestors")
            for a, att in enumerate(iv.attestations):
                yield from _keys(att.attestors, f"{ipath}.attestations[{a}].attestors")


def unavailable(policy_set: PolicySet, cluster: ClusterData) -> list[PolicyProblem]:
    """Problems for the named objects ``cluster`` cannot supply (not shipped, and no live connection), and the
    GlobalContextEntries that can only be read through a connection."""
    if cluster.connected:
        return []
    out = []
    for entry in policy_set.global_context:
        res, call = entry.spec.kubernetes_resource, entry.spec.api_call
        if res is not None and (res.group or res.version != "v1" or res.resource not in SHIPPED_COLLECTIONS):
            path, what = (
                "spec.kubernetesResource",
                f"lists {res.group + '/' if res.group else ''}{res.version} {res.resource}",
            )
        elif call is not None and call.url_path:
            path, what = "spec.apiCall.urlPath", f"reads {call.url_path}"
        else:
            continue
        out.append(
            PolicyProblem(
                source=entry.source,
                path=path,
                message=f"GlobalContextEntry {entry.name} {what}, which needs a cluster connection "
                "(SIGWARD_KUBECONFIG, or the in-cluster service account); shipped manifests answer v1 configmaps, "
                "secrets and namespaces",
            )
        )
    for policy in policy_set.policies:
        for path, ref in references(policy):
            if ref not in cluster.manifests:
                out.append(
                    PolicyProblem(
                        source=policy.source,
                        path=path,
                        message=f"needs {ref}: ship it as a manifest beside the policies, or configure a cluster "
                        "connection (SIGWARD_KUBECONFIG, or the in-cluster service account)",
                    )
                )
    return out

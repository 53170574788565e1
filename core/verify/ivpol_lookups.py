"""What ImageValidatingPolicy expressions read besides signatures: Kyverno's ``resource`` library (cluster objects
through :class:`~sigward.cluster.data.ClusterData`), its ``imagedata`` library (an image's manifest and config
through the registry client), and ``cosign.trustedRoot.expression`` (a root kept in a ConfigMap, evaluated per
check). Lookups that cannot be served raise :class:`~sigward.cluster.data.ClusterLookupError`, an infrastructure
error: the policy's failurePolicy decides, a missing ConfigMap never reads as an empty value."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sigward.cluster.data import ClusterData, ClusterLookupError, ObjectRef
from sigward.cluster.globalcontext import GlobalContext, GlobalEntryNotFound
from sigward.errors import ConfigurationError, ExternalServiceError
from sigward.policy.ivpol.cel import CelError
from sigward.policy.ivpol.models import InlineTrustedRoot, RootedAttestorSet
from sigward.policy.trustroots import inline_root_problems

if TYPE_CHECKING:
    from sigward.policy.ivpol.load import CompiledAttestor
    from sigward.verify.engine import Verifier

# The collections ClusterData serves (core v1): public key material, roots and namespace labels, and Pods (Kyverno's
# context/resource test reads a Pod's labels; live connection only, never shipped, and the function's RBAC needs
# ``get`` on pods only when a policy reads one). Anything else would need RBAC sigward does not ask for; asking is an
# error, not an empty answer.
SERVED_RESOURCES = {"configmaps": "ConfigMap", "secrets": "Secret", "namespaces": "Namespace", "pods": "Pod"}
# Kubernetes object and namespace names (DNS-1123 subdomain, ≤ 253): a name from request data must not be able to
# walk the live API path (``..``, ``/``, ``?``).
MAX_NAME_LENGTH = 253
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def _name(value: str, what: str) -> str:
    if len(value) > MAX_NAME_LENGTH or not _NAME.fullmatch(value) or ".." in value:
        raise CelError(f"resource lookup: {what} {value[:80]!r} is not a valid Kubernetes name")
    return value


def _resource(api_version: str, resource: str) -> str:
    if api_version != "v1" or resource not in SERVED_RESOURCES:
        raise ClusterLookupError(
            f"resource lookup of {api_version}/{resource}: sigward serves only v1 "
            + ", ".join(sorted(SERVED_RESOURCES))
        )
    return resource


def _as_api_object(resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as the API server returns it: a private copy; a Secret's (public) data base64 again."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", SERVED_RESOURCES[resource])
    if resource == "secrets" and isinstance(out.get("data"), Mapping):
        out["data"] = {k: base64.b64encode(str(v).encode()).decode() for k, v in out["data"].items()}
    return out


def resource_get(cluster: ClusterData, api_version: str, resource: str, namespace: str, name: str) -> Any:
    """Kyverno's ``resource.Get(apiVersion, resource, namespace, name)``."""
    kind = _resource(api_version, resource)
    ns = "" if kind == "namespaces" else _name(namespace, "namespace")
    return _as_api_object(kind, cluster.get(ObjectRef(kind, ns, _name(name, "name"))))


def resource_list(cluster: ClusterData, api_version: str, resource: str, namespace: str) -> Any:
    """Kyverno's ``resource.List(apiVersion, resource, namespace)``: a ``<Kind>List``."""
    kind = _resource(api_version, resource)
    ns = "" if kind == "namespaces" else _name(namespace, "namespace")
    items = [_as_api_object(kind, o) for o in cluster.list(kind, ns)]
    return {"apiVersion": "v1", "kind": SERVED_RESOURCES[kind] + "List", "items": items}


def global_context_get(global_context: GlobalContext, name: str, projection: str) -> Any:
    """Kyverno's ``globalContext.Get(name, projection)``: an entry that is not loaded reads as null (Kyverno's
    contextProvider.GetGlobalReference); data that cannot be read is an infrastructure error."""
    try:
        return global_context.get(name, projection)
    except GlobalEntryNotFound:
        return None


def image_data(verifier: Verifier, image: str, providers: tuple[str, ...] | None = None) -> Any:
    """Kyverno's ``imagedata.Get(image)`` / ``image.GetMetadata(image)``: the image's manifest and config (an
    index resolved to its linux/amd64 manifest, the index kept as ``imageIndex``), read with the policy's
    ``credentials`` (``providers``; None: the process-wide setting)."""
    fetch = verifier.image_data
    if fetch is None:
        raise ExternalServiceError(f"failed to get imagedata for {image}: no registry client is configured")
    found = dict(fetch(image, providers))
    found.setdefault("config", found.get("configData"))
    found.setdefault("imageIndex", found.get("manifestList"))
    return found


def resolve_root(compiled: CompiledAttestor, data: Mapping[str, Any]) -> RootedAttestorSet:
    """``compiled``'s attestor set under the root its ``cosign.trustedRoot.expression`` evaluates to now. The
    root is shape-checked as a ``trustedRoot.value`` is at load; a malformed one is an error naming the path."""
    program = compiled.root_expression
    placeholder = compiled.attestors
    if program is None or not isinstance(placeholder, RootedAttestorSet):
        raise CelError(f"attestor {compiled.name} has no trustedRoot expression")
    text = program.evaluate(data)
    if not isinstance(text, str):
        raise CelError(f"{program.path}: must evaluate to a string (a trusted root JSON), not {type(text).__name__}")
    problems = inline_root_problems(text, program.path)
    if problems:
        where, message = problems[0]
        raise CelError(f"{where}: {message}")
    root = InlineTrustedRoot(value=text, path=program.path)
    return placeholder.model_copy(update={"trusted_root": root})


def resolve_tuf_root(compiled: CompiledAttestor, lookup: Callable[[Callable[[], Any]], Any]) -> RootedAttestorSet:
    """``compiled``'s attestor set under the ``trusted_root.json`` its ``cosign.tuf`` repository publishes now (read
    through :mod:`sigward.verify.tuf`: cached, refreshed in the background, last good root kept); it is then used
    exactly as a ``trustedRoot.value`` (its fingerprint keys the verdict). No root yet is an outage; the first fetch
    is waited for through ``lookup`` (the checks' own: a memory-only pass refuses instead of blocking)."""
    tuf = compiled.tuf
    placeholder = compiled.attestors
    if tuf is None or not isinstance(placeholder, RootedAttestorSet):
        raise CelError(f"attestor {compiled.name} has no TUF repository")
    from sigward.verify.policy_tuf import policy_trusted_root

    root = policy_trusted_root(tuf.mirror, tuf.root, wait=lookup)
    try:
        text = root.raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{tuf.path}: {tuf.mirror} trusted_root.json is not UTF-8") from None
    return placeholder.model_copy(update={"trusted_root": InlineTrustedRoot(value=text, path=tuf.path)})

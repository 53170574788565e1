"""A rule as it applies to one request: Kyverno's steps 4–8 (``pkg/engine/engine.go``, ``mutate_image.go``)
between matching and verification.

1. ``context`` entries, loaded lazily as Kyverno does by default: only an entry some expression of the rule
   (preconditions, verifyImages, other entries) names is loaded, in declaration order;
2. ``preconditions`` (false → ``skip`` with ``preconditions not met; <messages>``);
3. ``{{ }}`` substitution over every ``verifyImages`` entry except attestation ``conditions`` and
   ``validate.deny.conditions`` (evaluated per image later), a missing key an error;
4. ``keys.secret`` and ``k8s://NS/NAME`` keys replaced by the Secret's ``cosign.pub`` (public material only).

The resolved rule's fingerprint enters the verdict key (:mod:`sigward.verify.plan`): a changed ConfigMap, rotated
Secret key or different request value gives another key, so no verdict is reused across different inputs.
Failures raise :class:`RuleContextError` (an infrastructure-class error: the rule is ``error``, failurePolicy
decides), with Kyverno's message prefixes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sigward.errors import ExternalServiceError, SigwardError
from sigward.policy.conditions import evaluate_preconditions
from sigward.policy.dynamic import K8S_KEY_PREFIX, expressions, substitutable, texts
from sigward.policy.jmes import search, to_json_data
from sigward.policy.models import AttestorSet, ImageVerification, Policy, Rule
from sigward.policy.variables import substitute_json

if TYPE_CHECKING:
    from sigward.cluster.data import ClusterData
    from sigward.cluster.globalcontext import GlobalContext

COSIGN_PUBLIC_KEY = "cosign.pub"  # the Secret key `cosign generate-key-pair k8s://…` writes the public key to
DEFAULT_NAMESPACE = "default"
# Kyverno's maxContextSize default (pkg/config DefaultMaxContextSize): what one rule's context entries may hold.
MAX_CONTEXT_BYTES = 2 * 1024 * 1024


#: ``(reference, credential providers or None) -> Kyverno's image data`` (sigward.registry.imagedata).
ImageData = Callable[[str, tuple[str, ...] | None], Mapping[str, Any]]


class RuleContextError(ExternalServiceError):
    """A rule could not be prepared for this request (context lookup, precondition or substitution error)."""


@dataclass(frozen=True)
class Resolution:
    """``rule``: the rule to verify with (None when skipped); ``skip``: the skip message; ``fingerprint``: hash of
    what the resolution read (the resolved entries), for verdict keys."""

    rule: Rule | None
    skip: str = ""
    fingerprint: str = ""


def _named(expressions: Sequence[str], name: str) -> bool:
    pattern = re.compile(r"(?:\A|\s|[^.0-9A-Za-z])" + re.escape(name) + r"\b")  # Go regexp's \z cannot precede a name
    return any(pattern.search(e) for e in expressions)


def resolve_rule(
    policy: Policy,
    rule: Rule,
    *,
    request: Mapping[str, Any] | None,
    images: Mapping[str, Any] | None,
    cluster: ClusterData,
    now: datetime,
    image_data: ImageData | None = None,
    global_context: GlobalContext | None = None,
) -> Resolution:
    """The rule prepared for one request (``request`` None: no admission request, as for ``verify`` and push);
    ``global_context``: the GlobalContextEntries ``globalReference`` entries read (None: none loaded)."""
    data: dict[str, Any] = {}
    if request is not None:
        data["request"] = to_json_data(request)
        user = str((request.get("userInfo") or {}).get("username") or "") if isinstance(request, Mapping) else ""
        parts = user.split(":")
        sa = len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]
        data["serviceAccountName"] = parts[3] if sa else ""
        data["serviceAccountNamespace"] = parts[2] if sa else ""
        data["images"] = to_json_data(images or {})
    if rule.cel_preconditions:
        skip = _cel_preconditions(rule, request, cluster)
        if skip:
            return Resolution(None, skip)
    entries = [substitutable(iv) for iv in rule.verify_images]
    used = expressions([rule.preconditions, entries, [iv.model_dump(by_alias=True) for iv in rule.verify_images]])
    needed: set[str] = set()
    for entry in reversed(rule.context):
        name = str(entry.get("name", ""))
        if name and (
            _named(used, name) or any(_named(list(texts(e)), name) for e in rule.context if e.get("name") in needed)
        ):
            needed.add(name)
    size = 0
    for entry in rule.context:
        name = str(entry.get("name", ""))
        if name in needed:
            data[name] = _load_entry(policy, entry, data, cluster, now, image_data, global_context)
            size += len(json.dumps(to_json_data(data[name]), default=str))
            if size > MAX_CONTEXT_BYTES:
                raise RuleContextError(
                    f"context size limit exceeded: {size} bytes exceeds limit of {MAX_CONTEXT_BYTES} bytes"
                )

    if rule.preconditions is not None:
        try:
            outcome = evaluate_preconditions(rule.preconditions, data, now=now)
        except SigwardError as exc:
            raise RuleContextError(f"failed to evaluate preconditions: {exc.message}") from None
        if not outcome.passed:
            return Resolution(None, "; ".join(m for m in ("preconditions not met", outcome.message) if m))

    resolved: list[ImageVerification] = []
    json_data = to_json_data(data)
    for j, (iv, dumped) in enumerate(zip(rule.verify_images, entries, strict=True)):
        path = f"verifyImages[{j}]"
        try:
            out = substitute_json(dumped, json_data, now=now, missing="error")
        except SigwardError as exc:
            raise RuleContextError(f"failed to substitute variables: {path}: {exc.message}") from None
        out["validate"] = iv.model_dump(by_alias=True)["validate"]
        for att_out, att in zip(out.get("attestations", ()), iv.attestations, strict=False):
            att_out["conditions"] = [c.model_dump(by_alias=True) for c in att.conditions]
        try:
            new = ImageVerification.model_validate(out)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RuleContextError(
                f"failed to substitute variables: {path}.{where}: {first['msg']} after substitution"
            ) from None
        _check_substituted(new, path)
        new = new.model_copy(
            update={
                "attestors": _with_secret_keys(new.attestors, cluster, f"{path}.attestors"),
                "attestations": tuple(
                    a.model_copy(update={"attestors": _with_secret_keys(a.attestors, cluster, f"{path}.attestations")})
                    for a in new.attestations
                ),
            }
        )
        resolved.append(new)
    rule_out = rule.model_copy(update={"verify_images": tuple(resolved)})
    canon = json.dumps([iv.model_dump(by_alias=True) for iv in resolved], sort_keys=True, default=str)
    return Resolution(rule_out, "", hashlib.sha256(canon.encode()).hexdigest())


def _check_substituted(iv: ImageVerification, path: str) -> None:
    """Kyverno's own entry validation again on the substituted entry: a ``{{ }}`` that resolved to null, "" or
    blanks must not leave a key, certificate or attestor empty. Kyverno substitutes null without an error and, with
    an empty key, would fall back to keyless verification; sigward refuses instead (the rule errs, failurePolicy
    decides), with Kyverno's message for the empty field and its path."""
    from sigward.policy.validation import MSG_KEY_REQUIRED, validate_image_verification

    problems = validate_image_verification(iv, path, audit=False)
    problems += [(f"{where}.keys", MSG_KEY_REQUIRED) for where in _blank_keys(iv, path)]
    if problems:
        where, message = problems[0]
        raise RuleContextError(f"failed to substitute variables: {where}: {message} (after substitution)")


def _blank_keys(iv: ImageVerification, path: str) -> list[str]:
    """Paths of key attestors whose ``publicKeys`` is only whitespace (Kyverno's check compares with "")."""

    def walk(sets: Sequence[AttestorSet], where: str) -> Iterable[str]:
        for i, s in enumerate(sets):
            for j, entry in enumerate(s.entries):
                epath = f"{where}[{i}].entries[{j}]"
                keys = entry.keys
                blank = keys is not None and keys.public_keys and not keys.public_keys.strip()
                if blank and keys is not None and not keys.kms and keys.secret is None:
                    yield epath
                if entry.attestor is not None:
                    yield from walk((entry.attestor,), f"{epath}.attestor")

    found = list(walk(iv.attestors, f"{path}.attestors"))
    for k, att in enumerate(iv.attestations):
        found += walk(att.attestors, f"{path}.attestations[{k}].attestors")
    return found


def _cel_preconditions(rule: Rule, request: Mapping[str, Any] | None, cluster: ClusterData) -> str:
    """Kyverno's ``celPreconditions`` (Kubernetes matchConditions semantics): the skip message when one is false;
    an error (or no request to evaluate them on) raises :class:`RuleContextError`, so failurePolicy decides."""
    from sigward.policy.ivpol.matchconditions import evaluate_conditions, request_data, rule_preconditions

    if request is None:
        raise RuleContextError("celPreconditions need an admission request: evaluated at admission only")
    conditions = rule_preconditions(rule)
    namespace_object = None
    namespace = str(request.get("namespace") or "")
    kind = request.get("kind") if isinstance(request.get("kind"), Mapping) else {}
    reads_namespace = any("namespaceObject" in program.source for _, program in conditions.conditions)
    if reads_namespace and namespace and (kind or {}).get("kind") != "Namespace":
        from sigward.cluster.data import ObjectRef

        try:
            namespace_object = cluster.get(ObjectRef("namespaces", "", namespace))
        except SigwardError as exc:
            raise RuleContextError(f"failed to evaluate cel preconditions: namespaceObject: {exc.message}") from None
    result = evaluate_conditions(conditions, request_data(to_json_data(request), namespace_object))
    if result.error:
        raise RuleContextError(f"failed to evaluate cel preconditions: {result.error}")
    return "" if result.matched else "cel preconditions not met"


def _with_secret_keys(sets: Sequence[AttestorSet], cluster: ClusterData, path: str) -> tuple[AttestorSet, ...]:
    out = []
    for s in sets:
        entries = []
        for entry in s.entries:
            keys = entry.keys
            update: dict[str, Any] = {}
            if keys is not None:
                ref = keys.public_keys.strip()
                if ref.startswith(K8S_KEY_PREFIX):
                    ns, _, name = ref[len(K8S_KEY_PREFIX) :].partition("/")
                    if not ns or not name or "/" in name:
                        raise RuleContextError(f"{path}: key reference {ref!r} is not k8s://NAMESPACE/NAME")
                    update["keys"] = keys.model_copy(update={"public_keys": _secret_key(cluster, ns, name)})
                elif not ref and keys.secret is not None:
                    pem = _secret_key(cluster, keys.secret.namespace, keys.secret.name)
                    update["keys"] = keys.model_copy(update={"public_keys": pem, "secret": None})
            if entry.attestor is not None:
                update["attestor"] = _with_secret_keys((entry.attestor,), cluster, path)[0]
            entries.append(entry.model_copy(update=update) if update else entry)
        out.append(s.model_copy(update={"entries": tuple(entries)}))
    return tuple(out)


def _secret_key(cluster: ClusterData, namespace: str, name: str) -> str:
    try:
        secret = cluster.secret(namespace, name)
    except SigwardError as exc:
        raise RuleContextError(f"failed to read key from secret {namespace}/{name}: {exc.message}") from None
    pem = (secret.get("data") or {}).get(COSIGN_PUBLIC_KEY)
    if not isinstance(pem, str) or not pem.strip():
        raise RuleContextError(f"secret {namespace}/{name} has no {COSIGN_PUBLIC_KEY} public key")
    return pem.strip()


def _sub(value: Any, data: Mapping[str, Any], now: datetime, what: str) -> Any:
    try:
        return substitute_json(to_json_data(value), to_json_data(data), now=now, missing="error")
    except SigwardError as exc:
        raise RuleContextError(f"failed to substitute variables in {what}: {exc.message}") from None


def _load_entry(
    policy: Policy,
    entry: Mapping[str, Any],
    data: Mapping[str, Any],
    cluster: ClusterData,
    now: datetime,
    image_data: ImageData | None,
    global_context: GlobalContext | None = None,
) -> Any:
    name = str(entry.get("name"))
    try:
        if "variable" in entry:
            return _variable(name, entry["variable"] or {}, data, now)
        if "configMap" in entry:
            return _configmap(policy, name, entry["configMap"] or {}, data, cluster, now)
        if "apiCall" in entry:
            return _api_call(policy, name, entry["apiCall"] or {}, data, cluster, now)
        if "imageRegistry" in entry:
            return _image_registry(name, entry["imageRegistry"] or {}, data, now, image_data)
        if "globalReference" in entry:
            return _global_reference(name, entry["globalReference"] or {}, data, now, global_context)
    except RuleContextError as exc:
        raise RuleContextError(f"failed to load context entry {name}: {exc.message}") from None
    raise RuleContextError(
        f"context entry {name}: only variable, configMap, apiCall, imageRegistry and globalReference are supported"
    )


def _global_reference(
    name: str, spec: Mapping[str, Any], data: Mapping[str, Any], now: datetime, global_context: GlobalContext | None
) -> Any:
    """Kyverno's gctxLoader: ``name`` is ``<entry>`` or ``<entry>.<projection>`` (after substitution), then the
    reference's ``jmesPath`` over that data."""
    ref = _sub(dict(spec), data, now, f"globalReference {name}")
    target = ref.get("name")
    if not isinstance(target, str) or not target:
        raise RuleContextError(f"globalReference {name}: name must be a non-empty string")
    parts = target.split(".")
    entry, projection = parts[0], parts[1] if len(parts) > 1 else ""
    if global_context is None:
        raise RuleContextError(f"failed to fetch entry key={entry}")
    try:
        result = global_context.get(entry, projection)
    except SigwardError as exc:
        raise RuleContextError(exc.message) from None
    jmes = ref.get("jmesPath")
    if not jmes:
        return result
    try:
        return search(str(jmes), to_json_data(result), now=now, missing="error")
    except SigwardError as exc:
        raise RuleContextError(f"failed to apply JMESPath {jmes} for context entry {name}: {exc.message}") from None


def _image_registry(
    name: str, spec: Mapping[str, Any], data: Mapping[str, Any], now: datetime, image_data: ImageData | None
) -> Any:
    reference = _sub(spec.get("reference", ""), data, now, f"imageRegistry {name} reference")
    if not isinstance(reference, str) or not reference:
        raise RuleContextError(f"imageRegistry {name}: reference must be a non-empty string")
    if image_data is None:
        raise RuleContextError(f"imageRegistry {name}: no registry client in this verifier")
    creds = spec.get("imageRegistryCredentials")
    providers: tuple[str, ...] | None = None
    if isinstance(creds, Mapping):
        providers = tuple(str(p) for p in creds.get("providers") or ()) or ("default",)
    try:
        result: Any = image_data(reference, providers)
    except SigwardError as exc:
        raise RuleContextError(f"failed to fetch image descriptor: {reference}: {exc.message}") from None
    return _apply_jmes(f"imageRegistry {name}", spec, result, data, now)


def _variable(name: str, spec: Mapping[str, Any], data: Mapping[str, Any], now: datetime) -> Any:
    sub = {k: _sub(v, data, now, f"variable {name}") for k, v in spec.items() if k in ("value", "jmesPath", "default")}
    path = sub.get("jmesPath")
    try:
        if path:
            target = sub["value"] if "value" in sub else to_json_data(data)
            result = search(str(path), target, now=now, missing="error")
        else:
            result = sub.get("value")
    except SigwardError as exc:
        if "default" in sub:
            return sub["default"]
        raise RuleContextError(f"failed to evaluate jmesPath of variable {name}: {exc.message}") from None
    if result is None:
        if "default" in sub and sub["default"] is not None:
            return sub["default"]
        raise RuleContextError(f"failed to add context entry for variable {name} since it evaluated to nil")
    return result


def _configmap(
    policy: Policy, name: str, spec: Mapping[str, Any], data: Mapping[str, Any], cluster: ClusterData, now: datetime
) -> Any:
    cm_name = _sub(spec.get("name", ""), data, now, f"configMap {name} name")
    namespace = _sub(spec.get("namespace", ""), data, now, f"configMap {name} namespace")
    if not isinstance(cm_name, str) or not isinstance(namespace, str) or not cm_name:
        raise RuleContextError(f"configMap {name}: name and namespace must be strings")
    namespace = namespace or policy.namespace or DEFAULT_NAMESPACE
    if policy.kind == "Policy" and namespace != (policy.namespace or DEFAULT_NAMESPACE):
        raise RuleContextError(f"configMap namespace {namespace} is different from policy namespace {policy.namespace}")
    try:
        cm = cluster.configmap(namespace, cm_name)
    except SigwardError as exc:
        raise RuleContextError(f"failed to get configmap {namespace}/{cm_name} : {exc.message}") from None
    return {"data": dict(cm.get("data") or {}), "metadata": dict(cm.get("metadata") or {})}


def _api_call(
    policy: Policy, name: str, spec: Mapping[str, Any], data: Mapping[str, Any], cluster: ClusterData, now: datetime
) -> Any:
    from sigward.cluster.apicall import execute

    call = _sub({k: v for k, v in spec.items() if k != "jmesPath"}, data, now, f"apiCall {name}")
    service = call.get("service")
    if service is not None:
        if not isinstance(service, Mapping) or not isinstance(service.get("url"), str):
            raise RuleContextError(f"apiCall {name}: service.url must be a string")
    else:
        path = call.get("urlPath")
        if not isinstance(path, str) or not path:
            raise RuleContextError(f"apiCall {name}: urlPath is required")
        own = f"/namespaces/{policy.namespace or DEFAULT_NAMESPACE}/"
        if policy.kind == "Policy" and own not in path.split("?", 1)[0] + "/":
            raise RuleContextError(f"apiCall {name}: a namespaced Policy may only read its own namespace ({path})")
    try:
        result = execute(cluster, call)
    except SigwardError as exc:
        if "default" in call:
            return call["default"]
        raise RuleContextError(exc.message) from None
    return _apply_jmes(f"apiCall {name}", spec, result, data, now)


def _apply_jmes(entry: str, spec: Mapping[str, Any], result: Any, data: Mapping[str, Any], now: datetime) -> Any:
    """``result`` through the context entry's ``jmesPath`` (``entry``: "apiCall NAME" or "imageRegistry NAME")."""
    jmes = spec.get("jmesPath")
    if jmes:
        expr = _sub(jmes, data, now, f"{entry} jmesPath")
        try:
            result = search(str(expr), to_json_data(result), now=now, missing="error")
        except SigwardError as exc:
            raise RuleContextError(f"failed to apply jmesPath of {entry}: {exc.message}") from None
    return result


def images_context(images: Iterable[Any]) -> dict[str, Any]:
    """Kyverno's ``images`` variable: ``images.<group>.<name>.{registry,name,path,tag,digest,reference,...}``
    for the resource's images (``ResourceImage``s of :mod:`sigward.admission.images`)."""
    out: dict[str, dict[str, Any]] = {}
    for image in images:
        ref = image.ref
        out.setdefault(image.group, {})[image.key] = {
            "registry": ref.registry,
            "name": ref.name,
            "path": ref.path,
            "tag": ref.tag,
            "digest": ref.digest,
            "reference": ref.reference,
            "referenceWithTag": ref.reference_with_tag,
            "jsonPointer": image.pointer,
        }
    return out

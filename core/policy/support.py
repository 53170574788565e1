"""Refuse what sigward does not implement (see :mod:`sigward.policy.capabilities`), each with its YAML path.

Only ``verifyImages`` rules are looked at: the loader skips the others. Deprecated single-image fields are
checked where they are written (``verifyImages[0].key``, ``.issuer``), before they are converted, so the paths
point at the user's YAML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from sigward.errors import BadRequestError
from sigward.policy.capabilities import Capabilities, refusal
from sigward.policy.ivpol.matchconditions import rule_preconditions, webhook_match_conditions
from sigward.policy.models import (
    PEM_PUBLIC_KEY_END,
    AttestorSet,
    ImageVerification,
    MatchResources,
    PolicySpec,
    ResourceDescription,
    StaticKeyAttestor,
)
from sigward.policy.validation import Problem, has_variable
from sigward.references import parse_repository

PEM_PUBLIC_KEY_BEGIN = "-----BEGIN PUBLIC KEY-----"
# cosign's KMS key reference schemes (sigstore/pkg/signature/kms).
KMS_URI_RE = re.compile(r"^(awskms|gcpkms|azurekms|hashivault)://")
K8S_KEY_REF_PREFIX = "k8s://"


def unsupported(spec: PolicySpec, caps: Capabilities) -> list[Problem]:
    """Every use of a feature ``caps`` does not have, plus values sigward cannot use (a PEM that does not
    parse)."""
    out: list[Problem] = []
    if spec.validation_failure_action_overrides and not caps.failure_action_overrides:
        out.append(("spec.validationFailureActionOverrides", refusal("failure_action_overrides")))
    for i, override in enumerate(spec.validation_failure_action_overrides):
        if override.namespace_selector is not None and not caps.override_namespace_selector:
            out.append(
                (
                    f"spec.validationFailureActionOverrides[{i}].namespaceSelector",
                    refusal("override_namespace_selector"),
                )
            )
    wc = spec.webhook_configuration
    if wc is not None and wc.match_conditions and not caps.webhook_match_conditions:
        out.append(("spec.webhookConfiguration.matchConditions", refusal("webhook_match_conditions")))
    elif wc is not None and wc.match_conditions:
        out.extend((f"spec.webhookConfiguration.{p}", m) for p, m in webhook_match_conditions(wc).problems)
    if spec.apply_rules == "One" and not caps.apply_rules_one:
        out.append(("spec.applyRules", refusal("apply_rules_one")))
    for i, rule in enumerate(spec.rules):
        if not rule.verify_images:
            continue
        path = f"spec.rules[{i}]"
        if rule.context and not caps.rule_context:
            out.append((f"{path}.context", refusal("rule_context")))
        elif rule.context:
            out.extend(context_problems(rule.context, f"{path}.context"))
        if caps.variables:
            from sigward.policy.dynamic import undefined_variables

            out.extend(
                (
                    path,
                    f'variable substitution failed for rule "{rule.name}": unknown variable {{{{ {v} }}}} (not '
                    "request, images, serviceAccountName, serviceAccountNamespace or a context entry)",
                )
                for v in undefined_variables(rule)
            )
        if rule.preconditions is not None and not caps.preconditions:
            out.append((f"{path}.preconditions", refusal("preconditions")))
        if rule.cel_preconditions and not caps.cel_preconditions:
            out.append((f"{path}.celPreconditions", refusal("cel_preconditions")))
        elif rule.cel_preconditions:
            out.extend((f"{path}.{p}", m) for p, m in rule_preconditions(rule).problems)
        out.extend(_match(rule.match, f"{path}.match", caps))
        if rule.exclude is not None:
            out.extend(_match(rule.exclude, f"{path}.exclude", caps))
        for j, iv in enumerate(rule.verify_images):
            out.extend(_image_verification(iv, f"{path}.verifyImages[{j}]", caps))
    return out


def _match(m: MatchResources, path: str, caps: Capabilities) -> list[Problem]:
    out: list[Problem] = []
    filters = [(f"{path}.{name}[{j}]", f) for name in ("any", "all") for j, f in enumerate(getattr(m, name))]
    places: list[tuple[str, Any, ResourceDescription]] = [(p, f, f.resources) for p, f in filters]
    places.append((path, m, m.resources))
    for where, holder, rd in places:
        for field in ("subjects", "roles", "clusterRoles"):
            if not getattr(holder, _snake(field)):
                continue
            if not caps.user_info:
                out.append((f"{where}.{field}", refusal("user_info")))
            elif field != "subjects" and not caps.user_roles:
                out.append((f"{where}.{field}", refusal("user_roles")))
        if rd.namespace_selector is not None and not caps.namespace_selector:
            out.append((f"{where}.resources.namespaceSelector", refusal("namespace_selector")))
    return out


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _image_verification(iv: ImageVerification, path: str, caps: Capabilities) -> list[Problem]:
    out: list[Problem] = []
    if iv.type == "SigstoreBundle" and not caps.sigstore_bundle:
        out.append((f"{path}.type", refusal("sigstore_bundle")))
    if iv.cosign_oci11 and not caps.cosign_oci11:
        out.append((f"{path}.cosignOCI11", refusal("cosign_oci11")))
    if iv.attestations and not caps.attestations:
        out.append((f"{path}.attestations", refusal("attestations")))
    # `validate: {}` is Kyverno's zero value (HasValidateImageVerification is false): nothing to refuse.
    if iv.validate is not None and (iv.validate.message or iv.validate.deny is not None) and not caps.validate_deny:
        out.append((f"{path}.validate", refusal("validate_deny")))
    # allowInsecureRegistry is accepted and never changes transport (see validation.credential_notes).
    creds = iv.image_registry_credentials
    if creds is not None and creds.secrets and not caps.registry_secrets:
        out.append((f"{path}.imageRegistryCredentials.secrets", refusal("registry_secrets")))
    out.extend(_repository(iv.repository, f"{path}.repository", caps))

    # The deprecated single-image form, where it is written.
    if iv.key:
        out.extend(_key_text(iv.key, f"{path}.key", caps))
        for name in ("issuer", "subject", "roots"):
            if getattr(iv, name):
                out.append(
                    (
                        f"{path}.{name}",
                        f"{name} cannot be combined with key: Kyverno ignores it when key is set; "
                        "use attestors[].entries[] with one keys or keyless entry each",
                    )
                )
    elif iv.issuer:
        if not caps.keyless:
            out.append((f"{path}.issuer", refusal("keyless")))
    else:
        for name in ("subject", "roots"):
            if getattr(iv, name):
                out.append(
                    (
                        f"{path}.{name}",
                        f"{name} without issuer is ignored by Kyverno: set issuer, or use "
                        "attestors[].entries[].keyless",
                    )
                )
    if iv.additional_extensions and (iv.key or not iv.issuer):
        out.append(
            (
                f"{path}.additionalExtensions",
                "additionalExtensions is only used with issuer (keyless): move it to attestors[].entries[].keyless",
            )
        )

    for n, attestor_set in enumerate(iv.attestors):
        out.extend(_attestor_set(attestor_set, f"{path}.attestors[{n}]", caps))

    if not caps.variables:
        # imageReferences: Kyverno's own check; key/publicKeys/kms: checked as keys above.
        dumped = iv.model_dump(by_alias=True, exclude={"attestations", "validate", "image_references", "image", "key"})
        out.extend((p, refusal("variables")) for p in _variable_paths(dumped, path))
    return out


def _attestor_set(attestor_set: AttestorSet, path: str, caps: Capabilities) -> list[Problem]:
    out: list[Problem] = []
    for i, entry in enumerate(attestor_set.entries):
        epath = f"{path}.entries[{i}]"
        out.extend(_repository(entry.repository, f"{epath}.repository", caps))
        keys = entry.keys
        if keys is not None:
            kpath = f"{epath}.keys"
            given = [
                name for name, v in (("publicKeys", keys.public_keys), ("secret", keys.secret), ("kms", keys.kms)) if v
            ]
            if len(given) > 1:
                out.append(
                    (
                        kpath,
                        f"{', '.join(given)} are set together: Kyverno uses only the first of "
                        "publicKeys, secret, kms; set one (use several entries for several keys)",
                    )
                )
            if keys.public_keys:
                out.extend(_key_text(keys.public_keys, f"{kpath}.publicKeys", caps))
            elif keys.secret is not None:
                if not caps.secret_keys:
                    out.append((f"{kpath}.secret", refusal("secret_keys")))
            elif keys.kms:
                out.extend(_key_reference(keys.kms, f"{kpath}.kms", caps))
            if keys.ctlog is not None and keys.ctlog.tsa_cert_chain and not caps.tsa_timestamps:
                out.append((f"{kpath}.ctlog.tsaCertChain", refusal("tsa_timestamps")))
            if (
                "signature_algorithm" in entry.model_fields_set
                and entry.signature_algorithm != keys.signature_algorithm
            ):
                out.append(
                    (
                        f"{epath}.signatureAlgorithm",
                        "Kyverno uses keys.signatureAlgorithm for keys and ignores this one: "
                        "set keys.signatureAlgorithm instead",
                    )
                )
        if entry.certificates is not None and not caps.certificates:
            out.append((f"{epath}.certificates", refusal("certificates")))
        if entry.keyless is not None and not caps.keyless:
            out.append((f"{epath}.keyless", refusal("keyless")))
        if entry.attestor is not None:
            out.extend(_attestor_set(entry.attestor, f"{epath}.attestor", caps))
    return out


def _repository(value: str, path: str, caps: Capabilities) -> list[Problem]:
    if not value or has_variable(value):
        return []  # variables are reported on their own
    try:
        parse_repository(value)
    except BadRequestError as exc:
        return [(path, str(exc).replace("invalid image reference", "invalid repository", 1))]
    return []


def _key_text(text: str, path: str, caps: Capabilities) -> list[Problem]:
    """``publicKeys`` (or deprecated ``key``): PEM public key(s) or one key reference."""
    if has_variable(text):
        return [] if caps.variables else [(path, refusal("variables"))]
    pieces = StaticKeyAttestor(public_keys=text).public_key_entries()
    out: list[Problem] = []
    for n, piece in enumerate(pieces):
        which = f"key {n + 1} of {len(pieces)}: " if len(pieces) > 1 else ""
        if piece.startswith(PEM_PUBLIC_KEY_BEGIN):
            error = _pem_error(piece)
            if error:
                out.append((path, f"{which}{error}"))
        else:
            out.extend((p, f"{which}{m}") for p, m in _key_reference(piece, path, caps))
    return out


def _key_reference(ref: str, path: str, caps: Capabilities) -> list[Problem]:
    if has_variable(ref):
        return [] if caps.variables else [(path, refusal("variables"))]
    if ref.startswith(K8S_KEY_REF_PREFIX):
        return [] if caps.k8s_key_refs else [(path, refusal("k8s_key_refs"))]
    if KMS_URI_RE.match(ref):
        if not caps.kms_keys:
            return [(path, refusal("kms_keys"))]
        from sigward.errors import BadRequestError
        from sigward.policy.kms_uri import parse_kms_uri

        try:
            parse_kms_uri(ref)
        except BadRequestError as exc:
            return [(path, exc.message)]
        return []
    return [
        (
            path,
            f"not a PEM public key ({PEM_PUBLIC_KEY_BEGIN} ... {PEM_PUBLIC_KEY_END}) or a key reference "
            "(awskms://, gcpkms://, azurekms://, hashivault://, k8s://)",
        )
    ]


def _pem_error(pem: str) -> str:
    try:
        load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        reason = str(exc).split("\n", 1)[0].strip() or type(exc).__name__
        return f"not a valid PEM public key: {reason}"
    return ""


def _variable_paths(value: Any, path: str) -> list[str]:
    """YAML paths of the strings holding a {{ ... }} variable (keys.publicKeys and keys.kms are checked as
    keys)."""
    if isinstance(value, str):
        return [path] if has_variable(value) else []
    if isinstance(value, Mapping):
        out: list[str] = []
        for k, v in value.items():
            if k in ("publicKeys", "kms"):
                continue
            child = f"{path}.{k}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)) else f"{path}[{k}]"
            out.extend(_variable_paths(v, child))
        return out
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _variable_paths(v, f"{path}[{i}]")]
    return []


# Context entry kinds (api/kyverno/v1/common_types.go ContextEntry) and what sigward does with each.
CONTEXT_KINDS = ("configMap", "apiCall", "imageRegistry", "variable", "globalReference")
# Kyverno's validateRuleContext: names the engine itself puts in the JSON context.
RESERVED_CONTEXT_NAMES = (
    "images",
    "request",
    "serviceAccountName",
    "serviceAccountNamespace",
    "element",
    "elementIndex",
)


def context_problems(entries: Any, path: str) -> list[Problem]:
    """Kyverno's checks of rule ``context`` entries, and the entry kinds a verifier outside the cluster refuses."""
    out: list[Problem] = []
    for i, entry in enumerate(entries):
        epath = f"{path}[{i}]"
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            out.append((f"{epath}.name", "a context entry needs a name"))
        elif any(name == r or name.startswith(r + ".") for r in RESERVED_CONTEXT_NAMES):
            out.append((f"{epath}.name", f"entry name {name} is invalid as it conflicts with a pre-defined variable"))
        kinds = [k for k in CONTEXT_KINDS if entry.get(k) is not None]
        if len(kinds) != 1:
            out.append(
                (
                    epath,
                    "exactly one of configMap or apiCall or imageRegistry or variable is required for context entries",
                )
            )
            continue
        kind = kinds[0]
        body = entry[kind]
        if not isinstance(body, Mapping):
            out.append((f"{epath}.{kind}", "must be a mapping"))
            continue
        if kind == "variable":
            if body.get("value") is None and not body.get("jmesPath"):
                out.append((f"{epath}.variable", "a variable must define a value or a jmesPath expression"))
            if body.get("default") is not None and not body.get("jmesPath"):
                out.append(
                    (
                        f"{epath}.variable.default",
                        "a variable must define a default value only when a jmesPath expression is defined",
                    )
                )
        elif kind == "configMap":
            for field in ("name", "namespace"):
                if not isinstance(body.get(field), str) or not body.get(field):
                    out.append((f"{epath}.configMap.{field}", f"a configMap context entry needs {field}"))
        elif kind == "apiCall":
            service = body.get("service")
            if service is not None:
                if not isinstance(service, Mapping) or not isinstance(service.get("url"), str):
                    out.append((f"{epath}.apiCall.service.url", "an apiCall service needs url"))
            elif not isinstance(body.get("urlPath"), str) or not body.get("urlPath"):
                out.append((f"{epath}.apiCall.urlPath", "an apiCall context entry needs urlPath"))
            if str(body.get("method") or "GET") not in ("GET", "POST"):
                out.append((f"{epath}.apiCall.method", "method must be GET or POST"))
        elif kind == "imageRegistry":
            if not isinstance(body.get("reference"), str) or not body.get("reference"):
                out.append((f"{epath}.imageRegistry.reference", "an imageRegistry context entry needs reference"))
        else:
            if not isinstance(body.get("name"), str) or not body.get("name"):
                out.append((f"{epath}.globalReference.name", "a globalReference context entry needs name"))
            if not isinstance(body.get("jmesPath", ""), str):
                out.append((f"{epath}.globalReference.jmesPath", "must be a string"))
            unknown = sorted(str(k) for k in body if k not in ("name", "jmesPath"))
            out.extend((f"{epath}.globalReference", f'unknown field "{k}"') for k in unknown)
    return out


def global_references(spec: PolicySpec) -> list[tuple[str, str]]:
    """(YAML path, GlobalContextEntry name) of every verifyImages rule's ``globalReference`` whose name has no
    variable: ``<entry>`` or ``<entry>.<projection>`` (Kyverno splits at the first dot)."""
    out: list[tuple[str, str]] = []
    for i, rule in enumerate(spec.rules):
        if not rule.verify_images:
            continue
        for j, entry in enumerate(rule.context):
            ref = entry.get("globalReference")
            name = ref.get("name") if isinstance(ref, Mapping) else None
            if isinstance(name, str) and name and not has_variable(name):
                out.append((f"spec.rules[{i}].context[{j}].globalReference.name", name.split(".")[0]))
    return out

"""Kyverno's own policy validation, with its messages, for the parts sigward uses.

Sources (kyverno/kyverno): ``api/kyverno/v1`` (``Validate`` methods of ImageVerification, AttestorSet,
Attestor, StaticKeyAttestor, CertificateAttestor, KeylessAttestor, Rule, MatchResources, ResourceDescription,
Spec, ClusterPolicy) and ``pkg/validation/policy/validate.go`` (mutateDigest under Audit, kinds, wildcards,
image extractors, variables). Kyverno stops at the first of several of these; here every problem is reported.

Checks that need a cluster (discovery of kinds, cluster-scoped kinds in namespaced policies) are not made.
Rules without ``verifyImages`` are only checked for what makes the whole policy invalid (rule names, one
operation per rule); sigward skips them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sigward.errors import VerificationFailure
from sigward.patterns import PatternError, compile_re2, wildcard_match
from sigward.policy.jmes import compile_expression
from sigward.policy.models import (
    MAX_WEBHOOK_TIMEOUT_SECONDS,
    SIGNATURE_ALGORITHMS,
    AttestorSet,
    ImageVerification,
    LabelSelector,
    MatchResources,
    PolicySpec,
    ResourceDescription,
    Rule,
)
from sigward.policy.trustroots import trusted_roots_problems
from sigward.references import normalize_pattern

Problem = tuple[str, str]  # (YAML path, message)

# metadata.name of a policy is stored in report labels, hence Kubernetes' label value limit.
MAX_POLICY_NAME_LENGTH = 63
# CRD: rules[].name maxLength.
MAX_RULE_NAME_LENGTH = 63
AUTOGEN_ANNOTATION = "pod-policies.kyverno.io/autogen-controllers"

# pkg/engine/variables/regex: a {{ ... }} variable not escaped with a backslash.
VARIABLE_RE = re.compile(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})")

# api/kyverno/v1/common_types.go ConditionOperators (the CRD enum adds nothing).
CONDITION_OPERATORS = (
    "Equals",
    "NotEquals",
    "In",
    "AnyIn",
    "AllIn",
    "NotIn",
    "AnyNotIn",
    "AllNotIn",
    "GreaterThanOrEquals",
    "GreaterThan",
    "LessThanOrEquals",
    "LessThan",
    "DurationGreaterThanOrEquals",
    "DurationGreaterThan",
    "DurationLessThanOrEquals",
    "DurationLessThan",
    "Equal",
    "NotEqual",
)
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

MSG_MUTATE_DIGEST_AUDIT = "mutateDigest must be set to false for \u2018Audit\u2019 failure action"
MSG_IMAGE_REFERENCE_REQUIRED = "An image reference is required"
MSG_ENTRY_REQUIRED = "An entry is required"
MSG_COUNT_EXCEEDS = "Count cannot exceed length of entries"
MSG_ATTESTOR_KIND = "keys, certificates, keyless, or a nested attestor is required"
MSG_KEY_REQUIRED = "A public key, kms key or secret is required"
MSG_SIGNATURE_ALGORITHM = "Invalid signature algorithm provided"
MSG_CERT_REQUIRED = "cert or certChain required"
MSG_REKOR_OR_ROOTS = "Either Rekor URL or roots are required"
MSG_URL_REQUIRED = "An URL is required"
MSG_KINDS_REQUIRED = (
    "at least one element must be specified in a kind block, the kind attribute is mandatory when "
    "working with the resources element"
)
MSG_EMPTY_SET = "Rule is matching an empty set"


def has_variable(text: str) -> bool:
    return VARIABLE_RE.search(text) is not None


def validate_metadata(kind: str, name: str, namespace: str, annotations: Mapping[str, str]) -> list[Problem]:
    out: list[Problem] = []
    if kind == "ClusterPolicy" and namespace:
        out.append(("metadata.namespace", "A clusterpolicy should not have the namespace defined"))
    # A Policy without metadata.namespace applies to `default`, as `kubectl apply` without -n puts it there (the
    # loader notes it).
    if not name:
        out.append(("metadata.name", "a policy name is required"))
    elif len(name) > MAX_POLICY_NAME_LENGTH:
        out.append(("metadata.name", f"Too long: may not be more than {MAX_POLICY_NAME_LENGTH} bytes"))
    if annotations.get(AUTOGEN_ANNOTATION) == "all":
        out.append(
            (
                "metadata.annotations",
                "Autogen annotation does not support 'all' anymore, remove the annotation or set it to a valid value",
            )
        )
    out.extend(trusted_roots_problems(annotations))
    return out


def validate_spec(spec: PolicySpec, *, namespaced: bool) -> list[Problem]:
    """``Spec.Validate`` plus the spec-level checks of ``pkg/validation/policy``."""
    out: list[Problem] = []
    wc = spec.webhook_configuration
    fields = spec.model_fields_set
    if "webhook_timeout_seconds" in fields and wc is not None and wc.timeout_seconds is not None:
        out.append(
            (
                "spec.webhookTimeoutSeconds",
                "remove the deprecated field and use spec.webhookConfiguration.timeoutSeconds instead",
            )
        )
    if "failure_policy" in fields and wc is not None and wc.failure_policy is not None:
        out.append(
            (
                "spec.failurePolicy",
                "remove the deprecated field and use spec.webhookConfiguration.failurePolicy instead",
            )
        )
    if spec.generate_existing_on_policy_update is not None:
        out.append(
            (
                "spec.generateExistingOnPolicyUpdate",
                "remove the deprecated field and use spec.generate[*].generateExisting instead",
            )
        )
    timeout_message = f"the timeout value must be between 1 and {MAX_WEBHOOK_TIMEOUT_SECONDS} seconds"
    if "webhook_timeout_seconds" in fields and not 1 <= spec.webhook_timeout_seconds <= MAX_WEBHOOK_TIMEOUT_SECONDS:
        out.append(("spec.webhookTimeoutSeconds", timeout_message))
    if wc is not None and wc.timeout_seconds is not None and not 1 <= wc.timeout_seconds <= MAX_WEBHOOK_TIMEOUT_SECONDS:
        out.append(("spec.webhookConfiguration.timeoutSeconds", timeout_message))
    if namespaced and spec.validation_failure_action_overrides:
        out.append(
            (
                "spec.validationFailureActionOverrides",
                "Use of validationFailureActionOverrides is supported only with ClusterPolicy",
            )
        )
    for i, override in enumerate(spec.validation_failure_action_overrides):
        if override.action not in ("audit", "enforce", "Audit", "Enforce"):
            out.append(
                (
                    f"spec.validationFailureActionOverrides[{i}].action",
                    "must be one of: Audit, Enforce, audit, enforce",
                )
            )
    if not spec.admission and not spec.background:
        out.append(("spec", "disabling both admission and background processing is not allowed"))
    elif not spec.admission and any(r.verify_images for r in spec.rules):
        out.append(("spec.admission", "disabling admission processing is only allowed with validation policies"))

    seen: set[str] = set()
    for i, rule in enumerate(spec.rules):
        path = f"spec.rules[{i}]"
        if rule.name in seen:
            out.append((f"{path}.name", f"Duplicate rule name: '{rule.name}'"))
        seen.add(rule.name)
        out.extend(_validate_rule_type(rule, path))
        if rule.verify_images:
            out.extend(_validate_verify_images_rule(rule, path, spec, namespaced=namespaced))
    return out


# --- rules


def _validate_rule_type(rule: Rule, path: str) -> list[Problem]:
    out: list[Problem] = []
    if not rule.name:
        out.append((f"{path}.name", "a rule name is required"))
    elif len(rule.name) > MAX_RULE_NAME_LENGTH:
        out.append((f"{path}.name", f"Too long: may not be more than {MAX_RULE_NAME_LENGTH} bytes"))
    count = sum(bool(x) for x in (rule.mutate, rule.validate, rule.generate, rule.verify_images))
    if count == 0:
        out.append(
            (
                path,
                f"No operation defined in the rule '{rule.name}'.(supported operations: "
                "mutate,validate,generate,verifyImages)",
            )
        )
    elif count > 1:
        out.append(
            (
                path,
                f"Multiple operations defined in the rule '{rule.name}', only one operation "
                "(mutate,validate,generate,verifyImages) is allowed per rule",
            )
        )
    if rule.image_extractors and not rule.verify_images:
        out.append(
            (
                f"{path}.imageExtractors",
                f"Invalid rule spec for rule '{rule.name}', imageExtractors can only be defined for verifyImages rule",
            )
        )
    return out


def _validate_verify_images_rule(rule: Rule, path: str, spec: PolicySpec, *, namespaced: bool) -> list[Problem]:
    out: list[Problem] = []
    out.extend(_validate_match(rule.match, f"{path}.match", namespaced=namespaced, is_match=True))
    if rule.exclude is not None:
        out.extend(_validate_match(rule.exclude, f"{path}.exclude", namespaced=namespaced, is_match=False))
    if _matches_empty_set(rule):
        out.append((path, MSG_EMPTY_SET))
    out.extend(_validate_kinds(rule.match, f"{path}.match", background=spec.background))
    if rule.exclude is not None:
        out.extend(_validate_kinds(rule.exclude, f"{path}.exclude", background=spec.background))
    if spec.background:
        out.extend(_background_user_info(rule, path))
    if _any_variable(rule.match.model_dump(by_alias=True)):
        out.append((f"{path}.match", f'rule "{rule.name}" should not have variables in match section'))
    if rule.exclude is not None and _any_variable(rule.exclude.model_dump(by_alias=True)):
        out.append((f"{path}.exclude", f'rule "{rule.name}" should not have variables in exclude section'))
    if any(has_variable(ref) for iv in rule.verify_images for ref in iv.converted().image_references):
        out.append((path, "variables are not allowed in image reference"))
    if any(iv.mutate_digest for iv in rule.verify_images) and any(
        extractor.jmes_path for extractors in rule.image_extractors.values() for extractor in extractors
    ):
        out.append((path, "jmespath may not be used in an image extractor when mutating digests with verify images"))

    # pkg/validation/policy: the action starts from the spec and each entry's failureAction replaces it for
    # that entry and the entries after it (Kyverno carries it over).
    is_audit = spec.validation_failure_action == "Audit"
    for j, iv in enumerate(rule.verify_images):
        if iv.failure_action is not None:
            is_audit = iv.failure_action == "Audit"
        out.extend(validate_image_verification(iv, f"{path}.verifyImages[{j}]", audit=is_audit))
    return out


def _any_variable(value: Any) -> bool:
    if isinstance(value, str):
        return has_variable(value)
    if isinstance(value, Mapping):
        return any(_any_variable(k) or _any_variable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_any_variable(v) for v in value)
    return False


# --- match / exclude


def _validate_match(m: MatchResources, path: str, *, namespaced: bool, is_match: bool) -> list[Problem]:
    out: list[Problem] = []
    if m.any and m.all:
        out.append((path, "Can't specify any and all together"))
    if (m.any or m.all) and not m.resources.is_empty():
        which = "match" if is_match else "exclude"
        out.append((path, f"can't specify any/all together with {which} resources"))
    for name in ("any", "all"):
        for j, f in enumerate(getattr(m, name)):
            fpath = f"{path}.{name}[{j}]"
            out.extend(_validate_roles(f.roles, fpath))
            out.extend(_validate_description(f.resources, f"{fpath}.resources", namespaced=namespaced))
            if is_match and f.resources.is_empty():
                out.append((f"{fpath}.resources", "match resources not specified"))
            elif is_match and not f.resources.kinds:
                out.append((f"{fpath}.resources.kinds", MSG_KINDS_REQUIRED))
    out.extend(_validate_roles(m.roles, path))
    out.extend(_validate_description(m.resources, f"{path}.resources", namespaced=namespaced))
    if is_match and not m.any and not m.all:
        if m.resources.is_empty():
            out.append((f"{path}.resources", "match resources not specified"))
        elif not m.resources.kinds:
            out.append((f"{path}.resources.kinds", MSG_KINDS_REQUIRED))
    return out


def _validate_roles(roles: Iterable[str], path: str) -> list[Problem]:
    return [
        (f"{path}.roles[{i}]", "Role is expected to be in namespace:name format")
        for i, role in enumerate(roles)
        if len(role.split(":")) != 2
    ]


def _validate_description(rd: ResourceDescription, path: str, *, namespaced: bool) -> list[Problem]:
    out: list[Problem] = []
    if rd.name and rd.names:
        out.append((path, "Both name and names can not be specified together"))
    if rd.selector is not None:
        out.extend(_validate_selector(rd.selector, f"{path}.selector"))
    if rd.namespace_selector is not None:
        out.extend(_validate_selector(rd.namespace_selector, f"{path}.namespaceSelector", require=False))
    if namespaced and rd.namespaces:
        out.append((f"{path}.namespaces", "Filtering namespaces not allowed in namespaced policies"))
    return out


def _validate_selector(selector: LabelSelector, path: str, *, require: bool = True) -> list[Problem]:
    if any("*" in s or "?" in s for kv in selector.match_labels.items() for s in kv):
        return []  # kubeutils.LabelSelectorContainsWildcard: Kyverno matches these itself
    out: list[Problem] = []
    for i, req in enumerate(selector.match_expressions):
        rpath = f"{path}.matchExpressions[{i}]"
        if req.operator not in _SELECTOR_OPERATORS:
            out.append((f"{rpath}.operator", f'"{req.operator}" is not a valid label selector operator'))
        elif req.operator in ("In", "NotIn") and not req.values:
            out.append((f"{rpath}.values", "for 'in', 'notin' operators, values set can't be empty"))
        elif req.operator in ("Exists", "DoesNotExist") and req.values:
            out.append((f"{rpath}.values", "values set must be empty for exists and does not exist"))
    if require and not out and not selector.match_labels and not selector.match_expressions:
        out.append((path, "The requirements are not specified in selector"))
    return out


BACKGROUND_USER_INFO = (
    "only select variables are allowed in background mode. Set spec.background=false to disable background mode "
    "for this policy rule: invalid variable used at path: {where}"
)


def _background_user_info(rule: Rule, path: str) -> list[Problem]:
    """Kyverno's ``hasUserMatchExclude`` (validation/policy/background.go): a background scan has no requesting
    user, so with ``spec.background: true`` match/exclude may not name subjects, roles or clusterRoles."""
    out: list[Problem] = []
    for block_name, block in (("match", rule.match), ("exclude", rule.exclude)):
        if block is None:
            continue
        places = [("", block)] + [
            (f"{part}[{i}]", f) for part in ("any", "all") for i, f in enumerate(getattr(block, part))
        ]
        for where, holder in places:
            for field_name, value in (
                ("roles", holder.roles),
                ("clusterRoles", holder.cluster_roles),
                ("subjects", holder.subjects),
            ):
                if value:
                    yaml_path = ".".join(p for p in (path, block_name, where, field_name) if p)
                    slash = yaml_path.replace(".", "/")
                    out.append((yaml_path, BACKGROUND_USER_INFO.format(where=slash)))
                    break
    return out


def _validate_kinds(m: MatchResources, path: str, *, background: bool) -> list[Problem]:
    """``validateWildcard``: ``*`` is no kind for a verifyImages rule."""
    out: list[Problem] = []
    blocks = [(f"{path}.any[{j}].resources.kinds", f.resources.kinds) for j, f in enumerate(m.any)]
    blocks += [(f"{path}.all[{j}].resources.kinds", f.resources.kinds) for j, f in enumerate(m.all)]
    blocks.append((f"{path}.resources.kinds", m.resources.kinds))
    for kpath, kinds in blocks:
        if "*" not in kinds:
            continue
        if background:
            out.append(
                (
                    kpath,
                    "wildcard policy not allowed in background mode. Set spec.background=false to disable "
                    "background mode for this policy rule",
                )
            )
        elif len(kinds) > 1:
            out.append((kpath, "wildcard policy can not deal with more than one kind"))
        else:
            out.append((kpath, "wildcard policy does not support rule type"))
    return out


def _json(value: Any) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(by_alias=True)
    return json.dumps(value, sort_keys=True)


def _matches_empty_set(rule: Rule) -> bool:
    """``Rule.ValidateMatchExcludeConflict``: does ``exclude`` remove everything ``match`` selects?"""
    m, e = rule.match, rule.exclude
    if e is None or e.all or m.all:
        return False
    if m.any and e.any:
        return any(rmr == rer for rmr in m.any for rer in e.any)
    if e == MatchResources():
        return False
    mr, er = m.resources, e.resources
    if e.roles and (not m.roles or not set(e.roles).issuperset(m.roles)):
        return False
    if e.cluster_roles and (not m.cluster_roles or not set(e.cluster_roles).issuperset(m.cluster_roles)):
        return False
    if e.subjects:
        excluded = {_json(s) for s in e.subjects}
        if not m.subjects or any(_json(s) not in excluded for s in m.subjects):
            return False
    if er.name and not wildcard_match(er.name, mr.name):
        return False
    if er.names:
        return bool(mr.names) and any(wildcard_match(x, n) for n in mr.names for x in er.names)
    if er.namespaces and (not mr.namespaces or not set(er.namespaces).issuperset(mr.namespaces)):
        return False
    if er.kinds and (not mr.kinds or not set(er.kinds).issuperset(mr.kinds)):
        return False
    for ms, es in ((mr.selector, er.selector), (mr.namespace_selector, er.namespace_selector)):
        if ms is not None and es is not None:
            excluded = {_json(x) for x in es.match_expressions}
            if excluded and (not ms.match_expressions or any(_json(x) not in excluded for x in ms.match_expressions)):
                return False
            if es.match_labels and (
                not ms.match_labels or any(es.match_labels.get(k, "") != v for k, v in ms.match_labels.items())
            ):
                return False
        if (ms is None) != (es is None):
            return False
    if mr.annotations and er.annotations and dict(mr.annotations) != dict(er.annotations):
        return False
    return bool(mr.annotations) == bool(er.annotations)


# --- verifyImages


def validate_image_verification(iv: ImageVerification, path: str, *, audit: bool) -> list[Problem]:
    """``ImageVerification.Validate(isAuditFailureAction)``, on the converted (modern) form."""
    out: list[Problem] = []
    if audit and iv.mutate_digest:
        out.append((f"{path}.mutateDigest", MSG_MUTATE_DIGEST_AUDIT))
    modern = iv.converted()
    if not modern.image_references:
        out.append((path, MSG_IMAGE_REFERENCE_REQUIRED))
    for k, attestation in enumerate(modern.attestations):
        apath = f"{path}.attestations[{k}]"
        if not attestation.type and not attestation.predicate_type:
            out.append((apath, "missing type"))
        for n, attestor_set in enumerate(attestation.attestors):
            out.extend(validate_attestor_set(attestor_set, f"{apath}.attestors[{n}]"))
        for c, block in enumerate(attestation.conditions):
            for name in ("any", "all"):
                for d, cond in enumerate(getattr(block, name)):
                    cpath = f"{apath}.conditions[{c}].{name}[{d}]"
                    for field in ("key", "value", "message"):
                        out.extend(pattern_problems(getattr(cond, field), f"{cpath}.{field}"))
                    if cond.operator not in CONDITION_OPERATORS:
                        out.append(
                            (
                                f"{apath}.conditions[{c}].{name}[{d}].operator",
                                "entered value of `operator` is invalid. valid values: "
                                + ", ".join(CONDITION_OPERATORS[:16]),
                            )
                        )
    for n, attestor_set in enumerate(modern.attestors):
        out.extend(validate_attestor_set(attestor_set, f"{path}.attestors[{n}]"))
    if modern.validate is not None and modern.validate.deny is not None:
        out.extend(pattern_problems(modern.validate.deny.conditions, f"{path}.validate.deny.conditions"))
    if modern.type == "Notary":
        for attestor_set in modern.attestors:
            for entry in attestor_set.entries:
                if entry.keyless is not None:
                    out.append((f"{path}.attestors", "Keyless field is not allowed for type notary"))
                if entry.keys is not None:
                    out.append((f"{path}.attestors", "Keys field is not allowed for type notary"))
    return out


# Kyverno's JMESPath functions whose first argument is a Go (RE2) regular expression.
REGEX_FUNCTIONS = frozenset({"regex_match", "regex_replace_all", "regex_replace_all_literal"})


def _re2_problem(pattern: str, path: str) -> list[Problem]:
    try:
        compile_re2(pattern, path=path)
    except PatternError as exc:
        return [(path, str(PatternError(path="", pattern=pattern, refusal=exc.refusal, detail=exc.detail)))]
    return []


def pattern_problems(value: Any, path: str) -> list[Problem]:
    """Literal patterns of the regex functions inside ``{{ }}`` expressions anywhere in ``value`` that RE2 refuses,
    each with the YAML path of the string holding it (patterns computed at run time are checked when evaluated)."""
    out: list[Problem] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            out.extend(pattern_problems(v, f"{path}.{k}"))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out.extend(pattern_problems(v, f"{path}[{i}]"))
    elif isinstance(value, str) and "{{" in value:
        for found in VARIABLE_RE.finditer(value):
            expression = found.group(2)[2:-2].strip().removeprefix("-").strip()
            try:
                parsed = compile_expression(expression).parsed
            except VerificationFailure:
                continue  # reported (or tolerated) where the expression is evaluated
            for pattern in _literal_patterns(parsed):
                out.extend(_re2_problem(pattern, path))
    return out


def _literal_patterns(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if not isinstance(current, dict):
            continue
        children = current.get("children") or []
        if current.get("type") == "function_expression" and current.get("value") in REGEX_FUNCTIONS and children:
            first = children[0]
            if isinstance(first, dict) and first.get("type") == "literal" and isinstance(first.get("value"), str):
                found.append(first["value"])
        stack.extend(c for c in children if isinstance(c, dict))
    return found


def validate_attestor_set(attestor_set: AttestorSet, path: str, *, nested: bool = False) -> list[Problem]:
    out: list[Problem] = []
    if attestor_set.count is not None:
        # The CRD's minimum is 1; a nested attestor has no schema, where 0 means "all" (RequiredCount).
        if attestor_set.count < (0 if nested else 1):
            out.append((f"{path}.count", f"should be greater than or equal to {0 if nested else 1}"))
        if attestor_set.count > len(attestor_set.entries):
            out.append((path, MSG_COUNT_EXCEEDS))
    if not attestor_set.entries:
        out.append((path, MSG_ENTRY_REQUIRED))
    for i, entry in enumerate(attestor_set.entries):
        epath = f"{path}.entries[{i}]"
        if len(entry.kinds_set()) != 1:
            out.append((epath, MSG_ATTESTOR_KIND))
        if entry.keys is not None:
            keys = entry.keys
            if not keys.public_keys and not keys.kms and keys.secret is None:
                out.append((f"{epath}.keys", MSG_KEY_REQUIRED))
            if keys.signature_algorithm not in SIGNATURE_ALGORITHMS:
                out.append((f"{epath}.keys", MSG_SIGNATURE_ALGORITHM))
        if entry.certificates is not None and not entry.certificates.cert and not entry.certificates.cert_chain:
            out.append((f"{epath}.certificates", MSG_CERT_REQUIRED))
        if entry.keyless is not None:
            keyless = entry.keyless
            if keyless.rekor is None and not keyless.roots:
                out.append((f"{epath}.keyless", MSG_REKOR_OR_ROOTS))
            # The CRD gives rekor.url no default: `rekor: {}` has an empty URL for Kyverno.
            if keyless.rekor is not None and ("url" not in keyless.rekor.model_fields_set or not keyless.rekor.url):
                out.append((f"{epath}.keyless", MSG_URL_REQUIRED))
            for name, pattern in (("subjectRegExp", keyless.subject_reg_exp), ("issuerRegExp", keyless.issuer_reg_exp)):
                if pattern and not has_variable(pattern):
                    out.extend(_re2_problem(pattern, f"{epath}.keyless.{name}"))
        if entry.attestor is not None:
            out.extend(validate_attestor_set(entry.attestor, f"{epath}.attestor", nested=True))
    return out


def pattern_notes(iv: ImageVerification, path: str) -> list[str]:
    """Notes for image patterns written in a non-normal form: sigward matches them normalized (stricter than Kyverno,
    which compares them as written), so say how each one is read."""
    notes: list[str] = []
    for k, pattern in enumerate(iv.image_references):
        normal = normalize_pattern(pattern)
        if normal != pattern:
            notes.append(
                f"{path}.imageReferences[{k}]: {pattern!r} is matched as {normal!r} (sigward normalizes the registry "
                "spelling; Kyverno compares patterns as written and would miss images spelled the other way)"
            )
    for k, pattern in enumerate(iv.skip_image_references):
        normal = normalize_pattern(pattern, short_names=False)
        if normal != pattern:
            notes.append(
                f"{path}.skipImageReferences[{k}]: {pattern!r} is matched as {normal!r} (sigward normalizes the "
                "registry spelling)"
            )
        elif normalize_pattern(pattern) != pattern:
            notes.append(
                f"{path}.skipImageReferences[{k}]: {pattern!r} names no registry, so it skips nothing (as in Kyverno); "
                f"write {normalize_pattern(pattern)!r} to skip those images"
            )
    return notes


#: What ``allowInsecureRegistry: true`` means here: the policy author cannot downgrade transport; the operator can.
INSECURE_REGISTRY_NOTE = (
    "allowInsecureRegistry is accepted but changes nothing by itself: sigward never skips TLS verification, and "
    "reaches a registry over plain HTTP only when the operator lists it in SIGWARD_INSECURE_REGISTRIES"
)


def credential_notes(iv: ImageVerification, path: str) -> list[str]:
    """Notes on ``imageRegistryCredentials`` fields that sigward reads differently from Kyverno."""
    creds = iv.image_registry_credentials
    if creds is not None and creds.allow_insecure_registry:
        return [f"{path}.imageRegistryCredentials.allowInsecureRegistry: {INSECURE_REGISTRY_NOTE}"]
    return []


#: Label selector operators and values, Kyverno's and Kubernetes' rule (ImageValidatingPolicy selectors too).
validate_selector = _validate_selector


# --- background mode: request-only variables

# pkg/validation/policy/background.go ForbiddenUserVariables: data a background scan does not have (there is no
# requesting user). Kyverno matches these against each whole ``{{ … }}`` token; the non-dot guard lets
# ``request.object.spec.serviceAccountName`` through.
FORBIDDEN_BACKGROUND_VARIABLES = tuple(
    re.compile(rf"[^.]({name})\b")
    for name in (
        "serviceAccountName",
        "serviceAccountNamespace",
        r"request.userInfo",
        r"request.roles",
        r"request.clusterRoles",
    )
)
BACKGROUND_VARIABLE = (
    "only select variables are allowed in background mode. Set spec.background=false to disable background mode "
    "for this policy rule: variable {variable} is not allowed"
)
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


def background_variable_problems(document: Mapping[str, Any], spec: PolicySpec) -> list[Problem]:
    """Kyverno's ``containsUserVariables`` for ``spec.background: true`` (the default): every ``{{ }}`` anywhere
    in the policy (Kyverno scans the serialised policy, so preconditions, context, verifyImages and even
    annotations count) naming request-only data is refused, with the YAML path where it occurs. Kyverno skips
    the scan when a rule mutates existing resources (``mutate.targets``)."""
    if not spec.background:
        return []
    if any(r.mutate is not None and r.mutate.get("targets") is not None for r in spec.rules):
        return []
    out: list[Problem] = []
    for path, text in _strings(document, ""):
        if path in ("status", f"metadata.annotations.{LAST_APPLIED_ANNOTATION}") or path.startswith("status."):
            continue
        for found in VARIABLE_RE.finditer(text):
            token = found.group(2)
            if any(banned.search(token) for banned in FORBIDDEN_BACKGROUND_VARIABLES):
                out.append((path, BACKGROUND_VARIABLE.format(variable=token)))
    return out


def _strings(node: Any, path: str) -> Iterable[tuple[str, str]]:
    """Every string (keys included) in a parsed document, with its YAML path."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield child, key
            yield from _strings(value, child)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")

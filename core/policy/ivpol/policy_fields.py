"""Load-time checks of an ImageValidatingPolicy's policy-level fields that are not about attestors: the
``matchConstraints`` label selectors, ``credentials`` and ``auditAnnotations``.

- Selectors are Kubernetes label selectors (no Kyverno wildcards: the API server refuses ``*`` in a label value);
  their operators are checked by the same rule as a ClusterPolicy's selectors.
- ``credentials`` mean what a ClusterPolicy's ``imageRegistryCredentials`` mean (the same model is built from them
  by :func:`registry_credentials`): ``providers`` narrow the policy's registry requests, ``secrets`` need the live
  cluster connection (refused without one, through the same capability flag), ``allowInsecureRegistry`` loads
  with the note a ClusterPolicy gets (it can never downgrade transport).
- ``auditAnnotations`` follow ValidatingAdmissionPolicy: a key that is a qualified-name part of at most 63
  characters, unique; ``valueExpression`` compiled once and typed string (or null: no annotation).
"""

from __future__ import annotations

import re

from sigward.policy.capabilities import Capabilities, refusal
from sigward.policy.ivpol.cel import CelError, Program, compile_expression
from sigward.policy.ivpol.models import ImageValidatingPolicySpec
from sigward.policy.models import ImageRegistryCredentials, LabelSelector
from sigward.policy.serviceurls import split_service_url
from sigward.policy.validation import INSECURE_REGISTRY_NOTE, Problem, validate_selector

# ValidatingAdmissionPolicy's auditAnnotations[].key: a qualified-name part (``[A-Za-z0-9]([-A-Za-z0-9_.]*…)?``),
# at most 63 characters (apis/admissionregistration validation), as the annotation key is ``<policy>/<key>``.
MAX_AUDIT_KEY_LENGTH = 63
_AUDIT_KEY_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def selector_problems(spec: ImageValidatingPolicySpec) -> list[Problem]:
    mc = spec.match_constraints
    if mc is None:
        return []
    out: list[Problem] = []
    for label, selector in (("namespaceSelector", mc.namespace_selector), ("objectSelector", mc.object_selector)):
        if selector is None:
            continue
        path = f"spec.matchConstraints.{label}"
        for key, value in selector.match_labels.items():
            if any(c in text for text in (key, value) for c in "*?"):
                out.append((f"{path}.matchLabels.{key}", "wildcards are not allowed in a Kubernetes label selector"))
        out.extend(validate_selector(selector, path, require=False))
    return out


def selectors(spec: ImageValidatingPolicySpec) -> tuple[LabelSelector | None, LabelSelector | None]:
    """The policy's (namespaceSelector, objectSelector); an empty selector (matches everything) is None."""
    mc = spec.match_constraints
    if mc is None:
        return None, None

    def used(sel: LabelSelector | None) -> LabelSelector | None:
        return sel if sel is not None and (sel.match_labels or sel.match_expressions) else None

    return used(mc.namespace_selector), used(mc.object_selector)


# ``http.Get('…')`` / ``http.Post('…'`` with the URL written as a string literal (the usual form).
_LITERAL_HTTP_URL = re.compile(r"""\bhttp\s*\.\s*(?:Get|Post)\s*\(\s*(['"])(.*?)\1""")


def http_url_problems(spec: ImageValidatingPolicySpec) -> list[Problem]:
    """``http`` calls to a literal URL that no allowlist (``SIGWARD_APICALL_SERVICES``) could ever permit: refused at
    load with the path, since the call could only ever fail. Whether an allowed-shape URL is allowlisted is a
    deployment setting, decided when the call runs (an error under failurePolicy when it is not)."""
    sources = [(f"spec.matchConditions[{i}].expression", c.expression) for i, c in enumerate(spec.match_conditions)]
    sources += [(f"spec.images[{i}].expression", e.expression) for i, e in enumerate(spec.images)]
    sources += [(f"spec.variables[{i}].expression", v.expression) for i, v in enumerate(spec.variables)]
    for i, v in enumerate(spec.validations):
        sources += [(f"spec.validations[{i}].expression", v.expression)]
        sources += [(f"spec.validations[{i}].messageExpression", v.message_expression)]
    sources += [
        (f"spec.auditAnnotations[{i}].valueExpression", a.value_expression)
        for i, a in enumerate(spec.audit_annotations)
    ]
    out: list[Problem] = []
    for path, source in sources:
        for match in _LITERAL_HTTP_URL.finditer(source):
            split, why = split_service_url(match.group(2))
            if split is None:
                out.append((path, f"http call to {match.group(2)[:100]!r} can never be allowed: {why}"))
    return out


def registry_credentials(spec: ImageValidatingPolicySpec) -> ImageRegistryCredentials | None:
    """``credentials`` as the ClusterPolicy model, so the engine narrows registry credentials the same way."""
    creds = spec.credentials
    if creds is None:
        return None
    return ImageRegistryCredentials(
        allow_insecure_registry=creds.allow_insecure_registry, providers=creds.providers, secrets=creds.secrets
    )


def credential_problems(spec: ImageValidatingPolicySpec, capabilities: Capabilities) -> list[Problem]:
    creds = spec.credentials
    if creds is not None and creds.secrets and not capabilities.registry_secrets:
        return [("spec.credentials.secrets", refusal("registry_secrets"))]
    return []


def credential_notes(spec: ImageValidatingPolicySpec) -> list[str]:
    creds = spec.credentials
    if creds is not None and creds.allow_insecure_registry:
        return [f"spec.credentials.allowInsecureRegistry: {INSECURE_REGISTRY_NOTE}"]
    return []


def audit_annotations(spec: ImageValidatingPolicySpec, problems: list[Problem]) -> tuple[tuple[str, Program], ...]:
    """The compiled ``auditAnnotations`` (problems appended for bad keys and expressions)."""
    from cel_expr_python import cel

    out: list[tuple[str, Program]] = []
    seen: set[str] = set()
    for i, item in enumerate(spec.audit_annotations):
        path = f"spec.auditAnnotations[{i}]"
        if len(item.key) > MAX_AUDIT_KEY_LENGTH or not _AUDIT_KEY_RE.fullmatch(item.key):
            problems.append(
                (f"{path}.key", f"must be a qualified name part of at most {MAX_AUDIT_KEY_LENGTH} characters")
            )
        elif item.key in seen:
            problems.append((f"{path}.key", f'duplicate key "{item.key}"'))
        seen.add(item.key)
        try:
            program = compile_expression(item.value_expression, f"{path}.valueExpression", kind="image")
        except CelError as exc:
            where, _, message = exc.message.partition(": ")
            problems.append((where, message))
            continue
        returns = program.program.return_type()
        if returns not in (cel.Type.STRING, cel.Type.DYN, cel.Type.NULL):
            problems.append((f"{path}.valueExpression", f"must evaluate to a string, not {returns.name()}"))
            continue
        out.append((item.key, program))
    return tuple(out)

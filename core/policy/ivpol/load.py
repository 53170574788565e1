"""Load one ImageValidatingPolicy document: schema (unknown fields refused), Kyverno's validation, what sigward
cannot honour refused with its YAML path, every CEL expression compiled once (type errors at load, as Kyverno
reports them when the policy is applied), and each cosign attestor translated into the attestor model the
verification engine already checks (:mod:`sigward.policy.models`), so both policy forms share one verifier."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigward.policy import capabilities as capabilities_module
from sigward.policy.capabilities import REFUSALS, Capabilities
from sigward.policy.ivpol import policy_fields
from sigward.policy.ivpol.cel import CelError, Program, compile_expression
from sigward.policy.ivpol.exceptions import CelPolicyException
from sigward.policy.ivpol.matchconditions import MatchConditions, compile_conditions
from sigward.policy.ivpol.models import (
    Attestor,
    ImageValidatingPolicySpec,
    InlineTrustedRoot,
    MatchImageReference,
    NotaryTrust,
    PolicyTuf,
    PrefixedAttestor,
    RootedAttestorSet,
)
from sigward.policy.models import (
    DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
    MAX_WEBHOOK_TIMEOUT_SECONDS,
    AttestorSet,
    CertificateAttestor,
    CTLog,
    KeylessAttestor,
    Rekor,
    StaticKeyAttestor,
    VerificationType,
)
from sigward.policy.models import Attestor as EngineAttestor
from sigward.policy.trustroots import inline_root_problems
from sigward.policy.tufroot import MAX_TUF_ROOT_BYTES, PUBLIC_GOOD_MIRROR, mirror_problem, tuf_root_problem
from sigward.policy.validation import Problem
from sigward.references import tag_prefix_problem

API_GROUP = "policies.kyverno.io"
API_VERSIONS = ("v1alpha1", "v1beta1", "v1")
KINDS = ("ImageValidatingPolicy", "NamespacedImageValidatingPolicy")
DEPRECATED_VERSIONS = ("v1alpha1",)
# Kubernetes' DNS-1123 subdomain rule for object names (the API server refuses anything else).
MAX_NAME_LENGTH = 253
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A CEL identifier: names of attestors, attestations, variables and image extractors are CEL map keys read as
# ``attestors.<name>``.
_CEL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# How the loader names one document of a file (``policy.yaml#doc2``): ``root.path`` is relative to the file.
_DOCUMENT_SUFFIX_RE = re.compile(r"#doc\d+$")
# Pod controllers Kyverno generates rules for by default (pkg/cel/autogen): not replicationcontrollers.
DEFAULT_POD_CONTROLLERS = ("daemonsets", "deployments", "replicasets", "statefulsets", "jobs", "cronjobs")
# evaluation.mode JSON/HTTP/Envoy: Kyverno evaluates the policy against a raw JSON payload (kyverno-json, the CLI's
# ``--json`` input) or an HTTP/Envoy authorization request. sigward's entry points (admission, ``verify``/``review``
# of images and Kubernetes resources, push events) all hand a policy an AdmissionRequest, never such a payload, so
# a JSON-mode policy would never be evaluated where its author expects: refused, not silently never applied.
EVALUATION_MODE_REFUSAL = (
    "sigward evaluates policies on Kubernetes admission requests (and images as Pods), never on raw JSON, HTTP or "
    "Envoy payloads: use mode Kubernetes (the default), or evaluate JSON payloads with kyverno-json"
)
# Where an attestor expression's value goes (slot -> YAML path below the attestor). ``subject`` slots carry the
# identity index: ``subject:0``.
MATERIAL_SLOTS = {
    "key": "cosign.key.expression",
    "cert": "cosign.certificate.cert.expression",
    "certChain": "cosign.certificate.certChain.expression",
    "notary.certs": "notary.certs.expression",
    "notary.tsaCerts": "notary.tsaCerts.expression",
}


@dataclass(frozen=True)
class CompiledAttestor:
    """An IVPOL attestor: the engine's attestor set (count 1: any identity of the attestor verifies) and the
    verification type it is checked with (``notary`` attestors: Notation signatures and OCI referrers)."""

    name: str
    attestors: AttestorSet
    type: VerificationType = "Cosign"
    # ``cosign.trustedRoot.expression``: evaluated per check (typically ``resource.Get`` of a ConfigMap); until it
    # is, ``attestors`` holds a :class:`RootedAttestorSet` with an empty root, which can verify nothing.
    root_expression: Program | None = None
    # Attestor material from expressions (``cosign.key.expression``, ``cosign.certificate.cert/certChain
    # .expression``, ``notary.certs/tsaCerts.expression``, ``keyless.identities[i].subjectExpression``): slot
    # (see :data:`MATERIAL_SLOTS`) and program, evaluated per check by :mod:`sigward.verify.ivpol_material`.
    material: tuple[tuple[str, Program], ...] = ()
    # ``cosign.source.PullSecrets``: dockerconfigjson Secret names for this attestor's registry requests.
    pull_secrets: tuple[str, ...] = ()
    # ``cosign.tuf`` (without ``trustedRoot``): the repository whose ``trusted_root.json`` is the attestor's root,
    # read per check; until it is, ``attestors`` is a :class:`RootedAttestorSet` with an empty root.
    tuf: PolicyTuf | None = None


@dataclass(frozen=True)
class ImagePolicy:
    """A loaded ImageValidatingPolicy with its compiled expressions. ``content_hash`` covers the whole document,
    CEL included (cache and verdict keys)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    spec: ImageValidatingPolicySpec
    source: str
    content_hash: str
    match_conditions: MatchConditions
    match_images: tuple[MatchImageReference | Program, ...]
    extractors: Mapping[str, Program]
    variables: Mapping[str, Program]
    validations: tuple[tuple[Program, Program | None], ...]
    attestors: Mapping[str, CompiledAttestor]
    attestations: Mapping[str, str]
    pod_controllers: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # Names of ``attestations`` of the ``referrer`` form (Notary attestations: OCI referrers of that artifactType).
    referrers: frozenset[str] = frozenset()
    # ``auditAnnotations``: (key, compiled string-typed valueExpression), in the policy's order.
    audit_annotations: tuple[tuple[str, Program], ...] = ()
    # The CEL PolicyExceptions naming this policy (attached by the loader once every document is read).
    exceptions: tuple[CelPolicyException, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def timeout_seconds(self) -> int:
        wc = self.spec.webhook_configuration
        return (
            wc.timeout_seconds if wc is not None and wc.timeout_seconds is not None else DEFAULT_WEBHOOK_TIMEOUT_SECONDS
        )


def _refuse(path: str, what: str, why: str) -> Problem:
    return (path, f"{what} is not supported: {why}")


def _translate_notary(attestor: Attestor, path: str, problems: list[Problem]) -> AttestorSet | None:
    """The engine's form of a ``notary`` attestor (Kyverno's ivpol notary verifier: ``certs`` the ``ca`` store,
    ``tsaCerts`` the ``tsa`` store, strict level, any identity), or None with problems."""
    notary = attestor.notary
    assert notary is not None
    before = len(problems)
    for name, value in (("certs", notary.certs), ("tsaCerts", notary.tsa_certs)):
        if value is not None and value.expression and value.value:
            problems.append((f"{path}.notary.{name}", "value and expression are mutually exclusive"))
        if value is not None and value.value and "-----BEGIN CERTIFICATE-----" not in value.value:
            problems.append((f"{path}.notary.{name}.value", "must hold PEM certificates"))
    if notary.certs is None or not (notary.certs.value.strip() or notary.certs.expression):
        problems.append((f"{path}.notary.certs", "certificates are required: without them nothing can verify"))
    if len(problems) > before:
        return None
    assert notary.certs is not None
    tsa = notary.tsa_certs.value if notary.tsa_certs is not None else ""
    trust = NotaryTrust(cert=notary.certs.value, ctlog=CTLog(tsa_cert_chain=tsa) if tsa.strip() else None)
    return AttestorSet(count=1, entries=(EngineAttestor(certificates=trust),))


def _inline_root(attestor: Attestor, path: str, problems: list[Problem], notes: list[str]) -> InlineTrustedRoot | None:
    """``cosign.trustedRoot`` (Kyverno's ``resolveTrustedMaterial``: it takes precedence over ``tuf``), shape-checked;
    None when not given or with problems. ``tuf`` alone gives an empty placeholder root, filled per check from the
    repository (:func:`policy_tuf`)."""
    cosign = attestor.cosign
    assert cosign is not None
    given = cosign.trusted_root
    if given is None or not (given.value or given.expression):
        if given is not None:
            problems.append((f"{path}.cosign.trustedRoot", "either value or expression must be set"))
        if cosign.tuf is not None and given is None:
            return InlineTrustedRoot(value="", path=f"{path}.cosign.tuf")
        return None
    if cosign.tuf is not None:
        notes.append(f"{path}.cosign.tuf is ignored: cosign.trustedRoot takes precedence (as in Kyverno)")
    if given.value and given.expression:
        problems.append((f"{path}.cosign.trustedRoot", "value and expression are mutually exclusive"))
        return None
    if given.expression:  # compiled by the caller; resolved per check (sigward.verify.ivpol)
        return InlineTrustedRoot(value="", path=f"{path}.cosign.trustedRoot.expression")
    where = f"{path}.cosign.trustedRoot.value"
    found = inline_root_problems(given.value, where)
    problems.extend(found)
    return None if found else InlineTrustedRoot(value=given.value, path=where)


def policy_tuf(attestor: Attestor, path: str, source: str, problems: list[Problem]) -> PolicyTuf | None:
    """``cosign.tuf`` without ``trustedRoot`` (which takes precedence, as in Kyverno): the mirror checked and the
    bootstrap root read now. ``root.data`` is base64 (Kyverno decodes it so); ``root.path`` is a file on the
    verifier, relative to the policy file's directory or absolute, read at load (Kyverno reads a path inside its own
    container; a policy loaded from text, not a file, needs an absolute path). Without a root only the public-good
    mirror can be read (its root ships with sigward), as Kyverno falls back to its embedded root."""
    cosign = attestor.cosign
    if cosign is None or cosign.tuf is None or cosign.trusted_root is not None:
        return None
    tuf, where = cosign.tuf, f"{path}.cosign.tuf"
    before = len(problems)
    mirror = tuf.mirror.strip().rstrip("/")
    why = mirror_problem(mirror) if mirror else "a mirror URL is required"
    if why is not None:
        problems.append((f"{where}.mirror", why))
    root_spec = tuf.root
    raw = b""
    if root_spec is not None and root_spec.path and root_spec.data:
        problems.append((f"{where}.root", "path and data are mutually exclusive"))
    elif root_spec is not None and root_spec.data:
        try:
            raw = base64.b64decode(root_spec.data.strip(), validate=True)
        except (binascii.Error, ValueError):
            problems.append((f"{where}.root.data", "must be the base64 of a TUF root.json"))
    elif root_spec is not None and root_spec.path:
        raw = _read_tuf_root(root_spec.path, source, f"{where}.root.path", problems)
    elif why is None and mirror != PUBLIC_GOOD_MIRROR:
        problems.append((f"{where}.root", f"root.path or root.data is required: no TUF root ships for {mirror}"))
    if raw and len(problems) == before:
        root_why = tuf_root_problem(raw)
        if root_why is not None:
            problems.append((f"{where}.root", f"the TUF root {root_why}"))
    if len(problems) > before:
        return None
    return PolicyTuf(mirror=mirror, root=raw, path=where)


def _read_tuf_root(given: str, source: str, where: str, problems: list[Problem]) -> bytes:
    path = Path(given)
    if not path.is_absolute():
        policy_file = Path(_DOCUMENT_SUFFIX_RE.sub("", source))  # the loader names documents "<file>#doc<n>"
        if not policy_file.is_file():
            problems.append((where, "a relative path needs a policy file to be relative to: give an absolute path"))
            return b""
        path = policy_file.parent / path
    try:
        with path.open("rb") as fh:
            return fh.read(MAX_TUF_ROOT_BYTES + 1)
    except OSError as exc:
        problems.append((where, f"cannot read {path}: {exc.strerror or type(exc).__name__}"))
        return b""


def _translate_cosign(
    attestor: Attestor, path: str, problems: list[Problem], notes: list[str] | None = None
) -> AttestorSet | None:
    """The engine's form of a ``cosign`` attestor, or None with problems. With ``trustedRoot`` the set is a
    :class:`RootedAttestorSet`: its checks verify under that root only."""
    cosign = attestor.cosign
    assert cosign is not None
    before = len(problems)
    root = _inline_root(attestor, path, problems, notes if notes is not None else [])
    prefix = cosign.source.tag_prefix if cosign.source is not None else ""
    if prefix:
        why = tag_prefix_problem(prefix)
        if why is not None:
            problems.append((f"{path}.cosign.source.tagPrefix", why))
    set_kinds = [
        n for n, v in (("key", cosign.key), ("keyless", cosign.keyless), ("certificate", cosign.certificate)) if v
    ]
    if len(set_kinds) != 1:
        problems.append((f"{path}.cosign", "exactly one of key, keyless or certificate must be set"))
    rekor: Rekor | None = None
    ctlog: CTLog | None = None
    if cosign.ctlog is not None:
        c = cosign.ctlog
        rekor = Rekor(**({"url": c.url} if c.url else {}), pub_key=c.rekor_pub_key, ignore_tlog=c.insecure_ignore_tlog)
        ctlog = CTLog(ignore_sct=c.insecure_ignore_sct, pub_key=c.ct_log_pub_key, tsa_cert_chain=c.tsa_cert_chain)
    common: dict[str, Any] = {
        "annotations": dict(cosign.annotations),
        "repository": cosign.source.repository if cosign.source is not None else "",
    }
    entry_type: type[EngineAttestor] = EngineAttestor
    if prefix:
        common["tag_prefix"] = prefix
        entry_type = PrefixedAttestor
    entries: list[EngineAttestor] = []
    if cosign.key is not None:
        key = cosign.key
        if [bool(key.data), bool(key.kms), bool(key.expression)].count(True) != 1:
            problems.append((f"{path}.cosign.key", "exactly one of data, kms or expression must be set"))
        entries.append(
            entry_type(
                keys=StaticKeyAttestor(
                    public_keys=key.data, kms=key.kms, signature_algorithm=key.hash_algorithm, rekor=rekor, ctlog=ctlog
                ),
                **common,
            )
        )
    if cosign.keyless is not None:
        if not cosign.keyless.identities:
            problems.append((f"{path}.cosign.keyless.identities", "at least one identity is required"))
        for i, identity in enumerate(cosign.keyless.identities):
            if identity.subject_expression and identity.subject_reg_exp:
                problems.append(
                    (
                        f"{path}.cosign.keyless.identities[{i}].subjectExpression",
                        "subjectExpression and subjectRegExp are mutually exclusive",
                    )
                )
            entries.append(
                entry_type(
                    keyless=KeylessAttestor(
                        rekor=rekor,
                        ctlog=ctlog,
                        issuer=identity.issuer,
                        issuer_reg_exp=identity.issuer_reg_exp,
                        subject=identity.subject,
                        subject_reg_exp=identity.subject_reg_exp,
                        roots=cosign.keyless.roots,
                        additional_extensions=dict(cosign.keyless.additional_extensions),
                    ),
                    **common,
                )
            )
    if cosign.certificate is not None:
        cert = cosign.certificate
        for name, value in (("cert", cert.cert), ("certChain", cert.cert_chain)):
            if value is not None and value.expression and value.value:
                problems.append((f"{path}.cosign.certificate.{name}", "value and expression are mutually exclusive"))
        entries.append(
            entry_type(
                certificates=CertificateAttestor(
                    cert=cert.cert.value if cert.cert is not None else "",
                    cert_chain=cert.cert_chain.value if cert.cert_chain is not None else "",
                    rekor=rekor,
                    ctlog=ctlog,
                ),
                **common,
            )
        )
    if len(problems) > before:
        return None
    if root is not None:
        return RootedAttestorSet(count=1, entries=tuple(entries), trusted_root=root)
    return AttestorSet(count=1, entries=tuple(entries))


def attestor_material(attestor: Attestor, path: str, problems: list[Problem]) -> tuple[tuple[str, Program], ...]:
    """The attestor's material expressions compiled (Kyverno's ``CompileAttestors``: the image environment, a
    string result), as (slot, program); type errors become problems naming the field."""
    sources: list[tuple[str, str]] = []
    cosign, notary = attestor.cosign, attestor.notary
    if cosign is not None and cosign.key is not None and cosign.key.expression:
        sources.append(("key", cosign.key.expression))
    if cosign is not None and cosign.certificate is not None:
        for slot, value in (("cert", cosign.certificate.cert), ("certChain", cosign.certificate.cert_chain)):
            if value is not None and value.expression:
                sources.append((slot, value.expression))
    if cosign is not None and cosign.keyless is not None:
        for i, identity in enumerate(cosign.keyless.identities):
            if identity.subject_expression:
                sources.append((f"subject:{i}", identity.subject_expression))
    if notary is not None:
        for slot, value in (("notary.certs", notary.certs), ("notary.tsaCerts", notary.tsa_certs)):
            if value is not None and value.expression:
                sources.append((slot, value.expression))
    out: list[tuple[str, Program]] = []
    for slot, source in sources:
        program = _compile(source, material_path(path, slot), "image", problems, want_string=True)
        if program is not None:
            out.append((slot, program))
    return tuple(out)


def material_path(path: str, slot: str) -> str:
    """The YAML path of ``slot``'s expression below the attestor at ``path``."""
    if slot.startswith("subject:"):
        return f"{path}.cosign.keyless.identities[{slot.partition(':')[2]}].subjectExpression"
    return f"{path}.{MATERIAL_SLOTS[slot]}"


def _pull_secrets(
    attestor: Attestor, path: str, problems: list[Problem], capabilities: Capabilities
) -> tuple[str, ...]:
    """``cosign.source.PullSecrets`` names (LocalObjectReference ``{name}``). Kyverno reads them from its own
    namespace (``regcreds.NewSecretsKeychain(…, config.KyvernoNamespace(), …)``), as ClusterPolicy
    ``imageRegistryCredentials.secrets``: the same reader (live cluster only), so without a connection refused."""
    source = attestor.cosign.source if attestor.cosign is not None else None
    refs = source.pull_secrets if source is not None else ()
    if refs and not capabilities.registry_secrets:
        problems.append((f"{path}.cosign.source.PullSecrets", REFUSALS["registry_secrets"]))
        return ()
    names: list[str] = []
    for i, ref in enumerate(refs):
        name = ref.get("name")
        valid = isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and _NAME_RE.fullmatch(name) is not None
        if set(ref) - {"name"} or not valid or not isinstance(name, str):
            problems.append((f"{path}.cosign.source.PullSecrets[{i}]", "must be {name: <a Secret name>}"))
            continue
        names.append(name)
    return tuple(names)


def _compile(
    source: str, path: str, kind: str, problems: list[Problem], *, want_bool: bool = False, want_string: bool = False
) -> Program | None:
    try:
        return compile_expression(source, path, kind=kind, want_bool=want_bool, want_string=want_string)
    except CelError as exc:
        where, _, message = exc.message.partition(": ")
        problems.append((where, message))
        return None


def _names(items: Any, path: str, problems: list[Problem], *, cel_names: bool = True) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if cel_names and not _CEL_NAME_RE.fullmatch(item.name):
            problems.append((f"{path}[{i}].name", f'"{item.name}" is not a CEL identifier'))
        if item.name in seen:
            problems.append((f"{path}[{i}].name", f'duplicate name "{item.name}"'))
        seen.add(item.name)


def pods_only(spec: ImageValidatingPolicySpec) -> bool:
    """Kyverno's autogen eligibility (pkg/cel/autogen/support.go ``CanAutoGen``): exactly one resource rule, for
    ``[""]`` / ``["v1"]`` / ``["pods"]`` exactly, without ``resourceNames``, no ``excludeResourceRules`` and no
    non-empty ``objectSelector``. Anything else (two pods rules, ``apiVersions: ["*"]``, …) gets no autogen."""
    mc = spec.match_constraints
    if mc is None or len(mc.resource_rules) != 1 or mc.exclude_resource_rules:
        return False
    if mc.object_selector is not None and (mc.object_selector.match_labels or mc.object_selector.match_expressions):
        return False
    (rule,) = mc.resource_rules
    return (
        not rule.resource_names
        and tuple(rule.api_groups) == ("",)
        and tuple(rule.api_versions) == ("v1",)
        and tuple(rule.resources) == ("pods",)
    )


def build(
    *,
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    spec: ImageValidatingPolicySpec,
    source: str,
    digest: str,
    capabilities: Capabilities | None = None,
) -> tuple[ImagePolicy | None, list[Problem], list[str]]:
    """Validate and compile ``spec``; the policy, or None and the problems; plus notes. ``capabilities``: what
    this process can honour (default :data:`~sigward.policy.capabilities.CURRENT`; PullSecrets and
    ``credentials.secrets`` need a cluster connection, :func:`capabilities.for_cluster`)."""
    if capabilities is None:
        capabilities = capabilities_module.CURRENT
    problems: list[Problem] = []
    notes: list[str] = []
    if api_version.rpartition("/")[2] in DEPRECATED_VERSIONS:
        notes.append(f"{api_version} is deprecated: use {API_GROUP}/v1")
    if kind == "NamespacedImageValidatingPolicy" and not namespace:
        problems.append(("metadata.namespace", "a NamespacedImageValidatingPolicy needs metadata.namespace"))
    if kind == "ImageValidatingPolicy" and namespace:
        problems.append(("metadata.namespace", "an ImageValidatingPolicy is cluster-scoped: remove metadata.namespace"))
    if not name:
        problems.append(("metadata.name", "a policy name is required"))
    elif len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        problems.append(("metadata.name", f'"{name[:64]}" is not a valid Kubernetes object name'))
    if not spec.validations:
        problems.append(("spec.validations", "at least one validation is required"))
    if len(set(spec.validation_actions)) != len(spec.validation_actions):
        problems.append(("spec.validationActions", "duplicate actions"))
    if "Deny" in spec.validation_actions and "Warn" in spec.validation_actions:
        problems.append(("spec.validationActions", "Deny and Warn cannot be used together"))
    wc = spec.webhook_configuration
    if wc is not None and wc.timeout_seconds is not None and not 1 <= wc.timeout_seconds <= MAX_WEBHOOK_TIMEOUT_SECONDS:
        problems.append(
            ("spec.webhookConfiguration.timeoutSeconds", f"must be between 1 and {MAX_WEBHOOK_TIMEOUT_SECONDS}")
        )
    if spec.evaluation.mode != "Kubernetes":
        problems.append(_refuse("spec.evaluation.mode", f"mode {spec.evaluation.mode}", EVALUATION_MODE_REFUSAL))
    audit_annotations = policy_fields.audit_annotations(spec, problems)
    problems.extend(policy_fields.selector_problems(spec))
    problems.extend(policy_fields.http_url_problems(spec))
    problems.extend(policy_fields.credential_problems(spec, capabilities or capabilities_module.CURRENT))
    notes.extend(policy_fields.credential_notes(spec))
    for name_path, items in (
        ("spec.attestors", spec.attestors),
        ("spec.attestations", spec.attestations),
        ("spec.variables", spec.variables),
        ("spec.images", spec.images),
    ):
        _names(items, name_path, problems)
    _names(spec.match_conditions, "spec.matchConditions", problems, cel_names=False)

    attestors: dict[str, CompiledAttestor] = {}
    for i, attestor in enumerate(spec.attestors):
        path = f"spec.attestors[{i}]"
        if (attestor.cosign is None) == (attestor.notary is None):
            problems.append((path, "exactly one of cosign or notary must be set"))
            continue
        material = attestor_material(attestor, path, problems)
        if attestor.notary is not None:
            notary = _translate_notary(attestor, path, problems)
            if notary is not None:
                attestors[attestor.name] = CompiledAttestor(attestor.name, notary, type="Notary", material=material)
            continue
        translated = _translate_cosign(attestor, path, problems, notes)
        root = attestor.cosign.trusted_root if attestor.cosign is not None else None
        expression = None
        if root is not None and root.expression and not root.value:
            expression = _compile(root.expression, f"{path}.cosign.trustedRoot.expression", "image", problems)
        tuf = policy_tuf(attestor, path, source, problems)
        if translated is not None:
            attestors[attestor.name] = CompiledAttestor(
                attestor.name,
                translated,
                root_expression=expression,
                material=material,
                pull_secrets=_pull_secrets(attestor, path, problems, capabilities),
                tuf=tuf,
            )
    attestations: dict[str, str] = {}
    referrers: set[str] = set()
    for i, att in enumerate(spec.attestations):
        path = f"spec.attestations[{i}]"
        if (att.intoto is None) == (att.referrer is None):
            problems.append((path, "exactly one of intoto or referrer must be set"))
            continue
        form = att.referrer or att.intoto
        assert form is not None
        # not ``kind``: that is the policy's kind, stored on the ImagePolicy below
        form_name, predicate = ("referrer" if att.referrer is not None else "intoto"), form.type
        if not predicate.strip():
            problems.append((f"{path}.{form_name}.type", "a type is required"))
        attestations[att.name] = predicate
        if form_name == "referrer":
            referrers.add(att.name)

    match_images: list[MatchImageReference | Program] = []
    for i, m in enumerate(spec.match_image_references):
        path = f"spec.matchImageReferences[{i}]"
        if bool(m.glob) == bool(m.expression):
            problems.append((path, "either glob or expression must be set"))
        elif m.glob:
            match_images.append(m)
        else:
            program = _compile(m.expression, f"{path}.expression", "ref", problems, want_bool=True)
            if program is not None:
                match_images.append(program)
    conditions = compile_conditions([c.model_dump() for c in spec.match_conditions], "spec.matchConditions")
    problems.extend(p for p in conditions.problems if not p[0].endswith(".name"))  # names: checked above
    extractors = {
        e.name: _compile(e.expression, f"spec.images[{i}].expression", "request", problems)
        for i, e in enumerate(spec.images)
    }
    variables = {
        v.name: _compile(v.expression, f"spec.variables[{i}].expression", "image", problems)
        for i, v in enumerate(spec.variables)
    }
    validations: list[tuple[Program | None, Program | None]] = []
    for i, v in enumerate(spec.validations):
        rule = _compile(v.expression, f"spec.validations[{i}].expression", "image", problems, want_bool=True)
        message = (
            _compile(v.message_expression, f"spec.validations[{i}].messageExpression", "image", problems)
            if v.message_expression
            else None
        )
        validations.append((rule, message))
    controllers: tuple[str, ...] = ()
    if pods_only(spec):
        configured = spec.autogen.pod_controllers.controllers if spec.autogen and spec.autogen.pod_controllers else None
        controllers = DEFAULT_POD_CONTROLLERS if configured is None else tuple(configured)
        unknown = [c for c in controllers if c not in DEFAULT_POD_CONTROLLERS]
        if unknown:
            problems.append(("spec.autogen.podControllers.controllers", f"unknown controllers: {', '.join(unknown)}"))
    if problems:
        return None, problems, notes
    policy = ImagePolicy(
        api_version=api_version,
        kind=kind,
        name=name,
        namespace=namespace,
        spec=spec,
        source=source,
        content_hash=digest,
        match_conditions=conditions,
        match_images=tuple(match_images),
        extractors={k: v for k, v in extractors.items() if v is not None},
        variables={k: v for k, v in variables.items() if v is not None},
        validations=tuple((r, m) for r, m in validations if r is not None),
        attestors=attestors,
        attestations=attestations,
        pod_controllers=controllers,
        notes=tuple(notes),
        referrers=frozenset(referrers),
        audit_annotations=audit_annotations,
    )
    return policy, problems, notes

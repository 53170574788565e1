"""Typed models of ``ImageValidatingPolicy`` specs as the CRD (``policies.kyverno.io`` v1alpha1/v1beta1/v1, identical
spec schemas) defines them. Unknown fields are refused (``extra="forbid"`` from :class:`KyvernoModel`); defaults are
the CRD's (``validationConfigurations`` fields default to true). Fields sigward cannot honour are parsed here and
refused with their path by :mod:`sigward.policy.ivpol.load`, never silently ignored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from sigward.policy.models import Attestor as EngineAttestor
from sigward.policy.models import AttestorSet, CertificateAttestor, ImageVerification, KyvernoModel, LabelSelector

ValidationAction = Literal["Deny", "Audit", "Warn"]
FailurePolicy = Literal["Fail", "Ignore"]
HashAlgorithm = Literal["sha224", "sha256", "sha384", "sha512"]


class NamedExpression(KyvernoModel):
    """``matchConditions[]``, ``variables[]`` and ``images[]``: a name and a CEL expression (both required)."""

    name: StrictStr
    expression: StrictStr


class ResourceRule(KyvernoModel):
    api_groups: tuple[StrictStr, ...] = ()
    api_versions: tuple[StrictStr, ...] = ()
    operations: tuple[StrictStr, ...] = ()
    resources: tuple[StrictStr, ...] = ()
    resource_names: tuple[StrictStr, ...] = ()
    scope: StrictStr = "*"


class MatchConstraints(KyvernoModel):
    """ValidatingAdmissionPolicy ``MatchResources``."""

    resource_rules: tuple[ResourceRule, ...] = ()
    exclude_resource_rules: tuple[ResourceRule, ...] = ()
    namespace_selector: LabelSelector | None = None
    object_selector: LabelSelector | None = None
    match_policy: Literal["Exact", "Equivalent"] = "Equivalent"


class MatchImageReference(KyvernoModel):
    """Exactly one of ``glob`` or ``expression`` (CEL over ``ref``)."""

    glob: StrictStr = ""
    expression: StrictStr = ""


class StringOrExpression(KyvernoModel):
    """``{value | expression}`` (certificates, trusted roots, notary certs)."""

    value: StrictStr = ""
    expression: StrictStr = ""


class CosignKey(KyvernoModel):
    data: StrictStr = ""
    kms: StrictStr = ""
    expression: StrictStr = ""
    hash_algorithm: HashAlgorithm = "sha256"


class Identity(KyvernoModel):
    issuer: StrictStr = ""
    issuer_reg_exp: StrictStr = ""
    subject: StrictStr = ""
    subject_reg_exp: StrictStr = ""
    subject_expression: StrictStr = ""


class Keyless(KyvernoModel):
    identities: tuple[Identity, ...] = ()
    roots: StrictStr = ""
    additional_extensions: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)


class CosignCertificate(KyvernoModel):
    cert: StringOrExpression | None = None
    cert_chain: StringOrExpression | None = None


class CosignCTLog(KyvernoModel):
    url: StrictStr = ""
    rekor_pub_key: StrictStr = ""
    ct_log_pub_key: StrictStr = ""
    tsa_cert_chain: StrictStr = ""
    insecure_ignore_tlog: StrictBool = False
    # Kyverno's JSON name keeps "SCT" upper-case (the camelCase alias would say insecureIgnoreSct).
    insecure_ignore_sct: StrictBool = Field(default=False, alias="insecureIgnoreSCT")


class TufRoot(KyvernoModel):
    path: StrictStr = ""
    data: StrictStr = ""


class Tuf(KyvernoModel):
    mirror: StrictStr = ""
    root: TufRoot | None = None


class CosignSource(KyvernoModel):
    repository: StrictStr = ""
    tag_prefix: StrictStr = ""
    pull_secrets: tuple[Mapping[StrictStr, Any], ...] = Field(default=(), alias="PullSecrets")


class Cosign(KyvernoModel):
    key: CosignKey | None = None
    keyless: Keyless | None = None
    certificate: CosignCertificate | None = None
    ctlog: CosignCTLog | None = None
    trusted_root: StringOrExpression | None = None
    tuf: Tuf | None = None
    source: CosignSource | None = None
    annotations: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)


class Notary(KyvernoModel):
    certs: StringOrExpression | None = None
    tsa_certs: StringOrExpression | None = None


class NotaryTrust(CertificateAttestor):
    """The engine's form of a ``notary`` attestor: ``certs`` as the ``ca`` store (``cert``), ``tsaCerts`` as the
    ``tsa`` store (``ctlog.tsaCertChain``). Kyverno's IVPOL verifier leaves notation-go's default ``verifyTimestamp:
    always``: with TSA certificates every signature needs a trusted timestamp (a ClusterPolicy's ``tsaCertChain`` is
    read with ``afterCertExpiry``, see :mod:`sigward.verify.notation.policy`). Built by the loader, never from YAML."""

    verify_timestamp: Literal["always", "afterCertExpiry"] = "always"


class PrefixedAttestor(EngineAttestor):
    """An engine attestor entry whose cosign signatures and attestations live under tags with ``tag_prefix``
    (``cosign.source.tagPrefix``: ``<prefix>sha256-<hex>.sig``/``.att``). Built by the loader, never from YAML."""

    tag_prefix: StrictStr

    @property
    def signature_tag_prefix(self) -> str:
        return self.tag_prefix


class InlineTrustedRoot(KyvernoModel):
    """A ``cosign.trustedRoot.value`` (sigstore-go trusted-root JSON, or gh's JSONL) and the YAML path it came from,
    for messages. Shape-checked at load (:func:`sigward.policy.trustroots.inline_root_problems`), parsed by the verify
    layer. Built by the loader, never from YAML."""

    value: StrictStr
    path: StrictStr


class PolicyTuf(KyvernoModel):
    """A ``cosign.tuf`` repository as loaded: the mirror URL (checked at load), its bootstrap ``root.json`` (from
    ``root.data``, base64 as in Kyverno, or the file ``root.path`` read at load; empty for the public-good mirror:
    the root sigward ships) and the YAML path, for messages.
    Its ``trusted_root.json`` target becomes the attestor's only root (as ``trustedRoot.value`` would), read per
    check through :mod:`sigward.verify.tuf`. Built by the loader, never from YAML."""

    mirror: StrictStr
    root: bytes
    path: StrictStr


class RootedAttestorSet(AttestorSet):
    """An attestor set whose checks verify under ``trusted_root`` ONLY (Kyverno's ``resolveTrustedMaterial``: a
    policy's trustedRoot takes precedence over TUF; neither the public-good nor GitHub's root is added). Built by
    the loader from an attestor with ``cosign.trustedRoot``, never from YAML."""

    trusted_root: InlineTrustedRoot


def inline_root_of(iv: ImageVerification) -> InlineTrustedRoot | None:
    """The one inline trusted root of ``iv``'s attestor sets (those of its attestations included), or None when no
    set has one. Raises ValueError when sets disagree (one check verifies under one set of roots: fail closed)."""
    sets = [*iv.attestors, *(s for a in iv.attestations for s in a.attestors)]
    roots = {s.trusted_root if isinstance(s, RootedAttestorSet) else None for s in sets}
    if roots <= {None}:
        return None
    if len(roots) != 1:
        raise ValueError("one check mixes attestors with different trusted roots")
    return roots.pop()


class Attestor(KyvernoModel):
    name: StrictStr
    cosign: Cosign | None = None
    notary: Notary | None = None


class InToto(KyvernoModel):
    type: StrictStr


class Referrer(KyvernoModel):
    type: StrictStr


class Attestation(KyvernoModel):
    name: StrictStr
    intoto: InToto | None = None
    referrer: Referrer | None = None


class Validation(KyvernoModel):
    expression: StrictStr
    message: StrictStr = ""
    message_expression: StrictStr = ""
    reason: StrictStr = ""


class AuditAnnotation(KyvernoModel):
    key: StrictStr
    value_expression: StrictStr


class ValidationConfigurations(KyvernoModel):
    mutate_digest: StrictBool = True
    verify_digest: StrictBool = True
    required: StrictBool = True


class WebhookConfiguration(KyvernoModel):
    timeout_seconds: StrictInt | None = None


class Enabled(KyvernoModel):
    enabled: StrictBool = True


class Evaluation(KyvernoModel):
    admission: Enabled = Field(default_factory=Enabled)
    background: Enabled = Field(default_factory=Enabled)
    mode: Literal["Kubernetes", "JSON", "HTTP", "Envoy"] = "Kubernetes"


class PodControllers(KyvernoModel):
    controllers: tuple[StrictStr, ...] | None = None


class Autogen(KyvernoModel):
    pod_controllers: PodControllers | None = None


class Credentials(KyvernoModel):
    allow_insecure_registry: StrictBool = False
    providers: tuple[Literal["default", "amazon", "azure", "google", "github"], ...] = ()
    secrets: tuple[StrictStr, ...] = ()


class ImageValidatingPolicySpec(KyvernoModel):
    match_constraints: MatchConstraints | None = None
    match_conditions: tuple[NamedExpression, ...] = ()
    match_image_references: tuple[MatchImageReference, ...] = ()
    images: tuple[NamedExpression, ...] = ()
    # Required but may be empty: Kyverno's conformance policies use ``attestors: []`` for digest-only policies.
    attestors: tuple[Attestor, ...]
    attestations: tuple[Attestation, ...] = ()
    validations: tuple[Validation, ...]
    variables: tuple[NamedExpression, ...] = ()
    audit_annotations: tuple[AuditAnnotation, ...] = ()
    validation_actions: tuple[ValidationAction, ...] = ()
    failure_policy: FailurePolicy = "Fail"
    validation_configurations: ValidationConfigurations = Field(default_factory=ValidationConfigurations)
    webhook_configuration: WebhookConfiguration | None = None
    evaluation: Evaluation = Field(default_factory=Evaluation)
    autogen: Autogen | None = None
    credentials: Credentials | None = None

    def effective_actions(self) -> tuple[ValidationAction, ...]:
        """No ``validationActions`` acts as Deny (Kyverno test validation-actions/none)."""
        return self.validation_actions or ("Deny",)

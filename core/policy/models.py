"""Typed models of Kyverno ``ClusterPolicy``/``Policy`` (``kyverno.io/v1``, ``v2beta1``) as users write them.

Field names follow ``api/kyverno/v1`` (``image_verification_types.go``, ``rule_types.go``, ``spec_types.go``,
``match_resources_types.go``, ``resource_description_types.go``); YAML keys are the camelCase aliases, Python
attributes are snake_case. Defaults are the CRD schema's (``mutateDigest: true`` and friends), not Go zero
values.

Every model forbids unknown fields and is frozen. Scalars are strict (a YAML ``"true"`` is not a boolean,
``30`` is not a string), as the Kubernetes API server's schema validation is. A YAML ``null`` on a typed field
means "not set", as the API server prunes it before defaulting.

The loader (:mod:`sigward.policy.loader`) validates documents against these models with aliases only, applies
Kyverno's own validation and the capability table, converts the deprecated single-image form into the modern
one, and sets ``Policy.source``/``Policy.content_hash``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from sigward.policy.conditions import ConditionInputs

Action = Literal["Audit", "Enforce"]
FailurePolicy = Literal["Fail", "Ignore"]
VerificationType = Literal["Cosign", "SigstoreBundle", "Notary"]
Operation = Literal["CREATE", "CONNECT", "UPDATE", "DELETE"]
CredentialProvider = Literal["default", "amazon", "azure", "google", "github"]
# The request namespace's labels, read only when needed (sigward.cluster); raises a SigwardError when unreadable.
NamespaceLabels = Callable[[], Mapping[str, str]]

DEFAULT_REKOR_URL = "https://rekor.sigstore.dev"
DEFAULT_SIGNATURE_ALGORITHM = "sha256"
# Kyverno's signatureAlgorithmMap (api/kyverno/v1/image_verification_types.go).
SIGNATURE_ALGORITHMS = ("sha224", "sha256", "sha384", "sha512")
# Kyverno's default admission webhook timeout; policies may set 1..30.
DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 10
MAX_WEBHOOK_TIMEOUT_SECONDS = 30
# ExpandStaticKeys splits publicKeys after every occurrence of this marker.
PEM_PUBLIC_KEY_END = "-----END PUBLIC KEY-----"

# YAML keys that are not plain camelCase of the Python name.
_ALIAS_EXCEPTIONS = {
    "cosign_oci11": "cosignOCI11",
    "pub_key": "pubkey",
    "ignore_sct": "ignoreSCT",
}


def _alias(name: str) -> str:
    return _ALIAS_EXCEPTIONS.get(name) or to_camel(name)


class KyvernoModel(BaseModel):
    """Base of every policy model: strict about unknown fields, immutable, camelCase in YAML."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=_alias,
        hide_input_in_errors=True,
    )

    # YAML keys whose explicit ``null`` is a value (schemaless fields), not "unset".
    _null_is_value: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in cls._null_is_value}
        return data


# --- match / exclude


class LabelSelectorRequirement(KyvernoModel):
    key: StrictStr
    operator: StrictStr
    values: tuple[StrictStr, ...] = ()


class LabelSelector(KyvernoModel):
    """A Kubernetes label selector; Kyverno allows ``*``/``?`` wildcards in ``matchLabels``."""

    match_labels: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes selector semantics (every label and expression must hold; an unknown operator never
        matches), with Kyverno's wildcards in ``matchLabels`` (``wildcards.ReplaceInSelector``: a ``*``/``?`` key or
        value holds when some label of the object matches both)."""
        from sigward.patterns import wildcard_match

        for key, value in self.match_labels.items():
            if not any(c in key or c in value for c in "*?"):
                if labels.get(key) != value:
                    return False
            elif not any(wildcard_match(key, k) and wildcard_match(value, v) for k, v in labels.items()):
                return False
        for expr in self.match_expressions:
            present = expr.key in labels
            if expr.operator == "In":
                ok = present and labels[expr.key] in expr.values
            elif expr.operator == "NotIn":
                ok = not (present and labels[expr.key] in expr.values)
            elif expr.operator in ("Exists", "DoesNotExist"):
                ok = present == (expr.operator == "Exists")
            else:
                ok = False
            if not ok:
                return False
        return True


class ResourceDescription(KyvernoModel):
    kinds: tuple[StrictStr, ...] = ()
    name: StrictStr = ""  # deprecated in favour of names
    names: tuple[StrictStr, ...] = ()
    namespaces: tuple[StrictStr, ...] = ()
    annotations: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
    selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    operations: tuple[Operation, ...] = ()

    def is_empty(self) -> bool:
        return not (
            self.kinds
            or self.name
            or self.names
            or self.namespaces
            or self.annotations
            or self.selector is not None
            or self.namespace_selector is not None
            or self.operations
        )


class Subject(KyvernoModel):
    """An RBAC subject (``rbacv1.Subject``)."""

    kind: StrictStr
    name: StrictStr
    namespace: StrictStr = ""
    api_group: StrictStr = ""


class ResourceFilter(KyvernoModel):
    """One element of ``match.any``/``match.all``: resource criteria plus user info (subjects, roles, clusterRoles)."""

    resources: ResourceDescription = Field(default_factory=ResourceDescription)
    subjects: tuple[Subject, ...] = ()
    roles: tuple[StrictStr, ...] = ()
    cluster_roles: tuple[StrictStr, ...] = ()

    def has_user_info(self) -> bool:
        return bool(self.subjects or self.roles or self.cluster_roles)


class MatchResources(KyvernoModel):
    """``match``/``exclude``: ``any`` (OR) or ``all`` (AND) of filters, or the legacy inline form
    (``kyverno.io/v1`` only): ``resources`` plus user info directly under ``match``."""

    any: tuple[ResourceFilter, ...] = ()
    all: tuple[ResourceFilter, ...] = ()
    resources: ResourceDescription = Field(default_factory=ResourceDescription)
    subjects: tuple[Subject, ...] = ()
    roles: tuple[StrictStr, ...] = ()
    cluster_roles: tuple[StrictStr, ...] = ()

    def has_user_info(self) -> bool:
        return bool(self.subjects or self.roles or self.cluster_roles)

    def filters(self) -> tuple[ResourceFilter, ...]:
        """The filters in effect: ``any`` or ``all``, else the legacy inline form as one filter."""
        if self.any:
            return self.any
        if self.all:
            return self.all
        return (
            ResourceFilter(
                resources=self.resources,
                subjects=self.subjects,
                roles=self.roles,
                cluster_roles=self.cluster_roles,
            ),
        )

    def kinds(self) -> tuple[str, ...]:
        """Every kind named anywhere in the block (Kyverno's ``GetKinds``)."""
        out = list(self.resources.kinds)
        for f in (*self.all, *self.any):
            out.extend(f.resources.kinds)
        return tuple(out)


# --- attestors


class Rekor(KyvernoModel):
    """Transparency log settings; ``rekor: {}`` means the public Rekor instance."""

    url: StrictStr = DEFAULT_REKOR_URL
    pub_key: StrictStr = ""
    ignore_tlog: StrictBool = False


class CTLog(KyvernoModel):
    """Certificate transparency / timestamp settings."""

    ignore_sct: StrictBool = False
    pub_key: StrictStr = ""
    tsa_cert_chain: StrictStr = ""


class SecretReference(KyvernoModel):
    name: StrictStr
    namespace: StrictStr


class StaticKeyAttestor(KyvernoModel):
    """``keys``: PEM public key(s) in ``publicKeys`` (or a key URI), a ``kms`` URI, or a Kubernetes
    ``secret``.

    Kyverno's precedence is publicKeys, then secret, then kms.
    """

    public_keys: StrictStr = ""
    signature_algorithm: StrictStr = DEFAULT_SIGNATURE_ALGORITHM
    kms: StrictStr = ""
    secret: SecretReference | None = None
    rekor: Rekor | None = None
    ctlog: CTLog | None = None

    def public_key_entries(self) -> tuple[str, ...]:
        """``publicKeys`` as Kyverno's ``ExpandStaticKeys`` counts it: several PEMs in one string are split
        after each ``-----END PUBLIC KEY-----`` and each is a separate entry (text after the last marker is
        dropped); anything else (one PEM, a key URI) is one entry. Entries are stripped of surrounding
        whitespace."""
        if not self.public_keys:
            return ()
        pieces = self.public_keys.split(PEM_PUBLIC_KEY_END)
        if len(pieces) > 2:
            return tuple((piece + PEM_PUBLIC_KEY_END).strip() for piece in pieces[:-1])
        return (self.public_keys.strip(),)


class CertificateAttestor(KyvernoModel):
    cert: StrictStr = ""
    cert_chain: StrictStr = ""
    rekor: Rekor | None = None
    ctlog: CTLog | None = None


class KeylessAttestor(KyvernoModel):
    rekor: Rekor | None = None
    ctlog: CTLog | None = None
    issuer: StrictStr = ""
    issuer_reg_exp: StrictStr = ""
    subject: StrictStr = ""
    subject_reg_exp: StrictStr = ""
    roots: StrictStr = ""
    additional_extensions: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)


class Attestor(KyvernoModel):
    """One entry of an attestor set: exactly one of ``keys``, ``certificates``, ``keyless`` or a nested
    ``attestor`` set, plus the annotations the signature payload must carry and an alternate signature
    ``repository``.

    ``signature_algorithm`` is the attestor-level setting; for ``keys`` Kyverno uses
    ``keys.signatureAlgorithm``.
    """

    keys: StaticKeyAttestor | None = None
    certificates: CertificateAttestor | None = None
    keyless: KeylessAttestor | None = None
    attestor: AttestorSet | None = None
    annotations: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
    repository: StrictStr = ""
    signature_algorithm: StrictStr = DEFAULT_SIGNATURE_ALGORITHM

    @property
    def signature_tag_prefix(self) -> str:
        """cosign's signature tag prefix for this entry: none for a ClusterPolicy (only an ImageValidatingPolicy's
        ``cosign.source.tagPrefix`` sets one, see :class:`sigward.policy.ivpol.models.PrefixedAttestor`)."""
        return ""

    def kinds_set(self) -> tuple[str, ...]:
        """Which of keys/certificates/keyless/attestor are set (YAML names)."""
        present = (
            ("keys", self.keys),
            ("certificates", self.certificates),
            ("keyless", self.keyless),
            ("attestor", self.attestor),
        )
        return tuple(name for name, value in present if value is not None)


class AttestorSet(KyvernoModel):
    """``count`` of the ``entries`` must verify; no count (or 0) means all of them."""

    count: StrictInt | None = None
    entries: tuple[Attestor, ...] = ()

    def required_count(self) -> int:
        """Kyverno's ``RequiredCount``: nil or 0 means every entry (counted before multi-PEM expansion)."""
        if not self.count:
            return len(self.entries)
        return self.count


Attestor.model_rebuild()


# --- conditions


class Condition(KyvernoModel):
    _null_is_value: ClassVar[frozenset[str]] = frozenset({"key", "value"})

    key: Any = None
    operator: StrictStr = ""
    value: Any = None
    message: StrictStr = ""


class AnyAllConditions(KyvernoModel):
    any: tuple[Condition, ...] = ()
    all: tuple[Condition, ...] = ()


class Attestation(KyvernoModel):
    """A check on signed in-toto statements of ``type`` (``predicateType`` is the deprecated spelling; the
    loader moves it onto ``type``)."""

    type: StrictStr = ""
    predicate_type: StrictStr = ""
    name: StrictStr = ""
    attestors: tuple[AttestorSet, ...] = ()
    conditions: tuple[AnyAllConditions, ...] = ()


class Deny(KyvernoModel):
    # any/all conditions, or (legacy) a plain list of conditions; kept as written.
    conditions: Any = None


# ``validate`` is Kyverno's YAML key; as a pydantic field it shadows the deprecated ``BaseModel.validate``.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)

    class ValidateImageVerification(KyvernoModel):
        message: StrictStr = ""
        deny: Deny | None = None

    class ImageRegistryCredentials(KyvernoModel):
        allow_insecure_registry: StrictBool = False
        providers: tuple[CredentialProvider, ...] = ()
        secrets: tuple[StrictStr, ...] = ()

    class ImageVerification(KyvernoModel):
        """One ``verifyImages`` entry. After loading, the deprecated single-image fields (``image``, ``key``,
        ``roots``, ``subject``, ``issuer``, ``annotations``, ``additionalExtensions``) are empty: the loader
        has converted them into ``image_references`` and ``attestors`` as Kyverno's ``Convert()`` does."""

        failure_action: Action | None = None
        type: VerificationType = "Cosign"
        image_references: tuple[StrictStr, ...] = ()
        skip_image_references: tuple[StrictStr, ...] = ()
        attestors: tuple[AttestorSet, ...] = ()
        attestations: tuple[Attestation, ...] = ()
        repository: StrictStr = ""
        cosign_oci11: StrictBool = False
        mutate_digest: StrictBool = True
        verify_digest: StrictBool = True
        validate: ValidateImageVerification | None = None  # type: ignore[assignment]
        required: StrictBool = True
        image_registry_credentials: ImageRegistryCredentials | None = None
        use_cache: StrictBool = True
        # deprecated single-image form (kyverno.io/v1 only)
        image: StrictStr = ""
        key: StrictStr = ""
        roots: StrictStr = ""
        subject: StrictStr = ""
        issuer: StrictStr = ""
        additional_extensions: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
        annotations: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)

        def deprecated_fields(self) -> tuple[str, ...]:
            """YAML names of the deprecated single-image fields that are set."""
            present = (
                ("image", self.image),
                ("key", self.key),
                ("roots", self.roots),
                ("subject", self.subject),
                ("issuer", self.issuer),
                ("additionalExtensions", self.additional_extensions),
                ("annotations", self.annotations),
            )
            return tuple(name for name, value in present if value)

        @cached_property
        def condition_inputs(self) -> ConditionInputs:
            """The request-specific values (``image.tag``, ``request.*``, ...) this entry's attestation
            ``conditions`` and ``validate`` can read: a verdict is reusable only for the same values."""
            from sigward.policy.conditions import inputs_read

            return inputs_read([[a.conditions for a in self.attestations], self.validate])

        def effective_failure_action(self, default: Action) -> Action:
            """This entry's ``failureAction`` if set, else ``default`` (the policy's)."""
            return self.failure_action or default

        def converted(self) -> ImageVerification:
            """The modern form of this entry, following Kyverno's ``ImageVerification.Convert()``:

            ``image`` is appended to ``imageReferences``; when ``image``, ``key`` or ``issuer`` is set and one
            of ``key``, ``issuer``, ``annotations`` is, one attestor set with one entry is appended to
            ``attestors`` (or to every attestation's attestors, when there are attestations):
            ``keys.publicKeys`` from ``key``, else ``keyless`` from ``issuer``/``subject``/``roots`` (and
            ``additionalExtensions``), carrying ``annotations``.

            Kyverno also passes the entry-level ``annotations`` to every attestor that has none of its own, so
            they are copied into such attestors (nested ones and the attestations' included). Two deliberate
            differences: Kyverno drops the created attestor when there are attestations (its copy is
            overwritten) and never uses deprecated ``additionalExtensions``; here both are kept, which can
            only verify more, not less.
            """
            if not self.deprecated_fields():
                return self
            refs = self.image_references + ((self.image,) if self.image else ())
            attestors = self.attestors
            attestations = self.attestations
            # Kyverno converts only when image, key or issuer is set; annotations alone apply to attestors.
            if (self.image or self.key or self.issuer) and (self.key or self.issuer or self.annotations):
                keys = StaticKeyAttestor(public_keys=self.key) if self.key else None
                keyless = (
                    KeylessAttestor(
                        issuer=self.issuer,
                        subject=self.subject,
                        roots=self.roots,
                        additional_extensions=self.additional_extensions,
                    )
                    if not self.key and self.issuer
                    else None
                )
                created = AttestorSet(
                    entries=(Attestor(keys=keys, keyless=keyless, annotations=dict(self.annotations)),)
                )
                if attestations:
                    attestations = tuple(
                        a.model_copy(update={"attestors": (*a.attestors, created)}) for a in attestations
                    )
                else:
                    attestors = (*attestors, created)
            if self.annotations:
                attestors = tuple(_inherit_annotations(s, self.annotations) for s in attestors)
                attestations = tuple(
                    a.model_copy(
                        update={"attestors": tuple(_inherit_annotations(s, self.annotations) for s in a.attestors)}
                    )
                    for a in attestations
                )
            return self.model_copy(
                update={
                    "image_references": refs,
                    "attestors": attestors,
                    "attestations": attestations,
                    "image": "",
                    "key": "",
                    "roots": "",
                    "subject": "",
                    "issuer": "",
                    "additional_extensions": {},
                    "annotations": {},
                }
            )


def _inherit_annotations(attestor_set: AttestorSet, annotations: Mapping[str, str]) -> AttestorSet:
    entries = []
    for entry in attestor_set.entries:
        update: dict[str, Any] = {}
        if not entry.annotations:
            update["annotations"] = dict(annotations)
        if entry.attestor is not None:
            update["attestor"] = _inherit_annotations(entry.attestor, annotations)
        entries.append(entry.model_copy(update=update) if update else entry)
    return attestor_set.model_copy(update={"entries": tuple(entries)})


# --- rules


class ImageExtractorConfig(KyvernoModel):
    """Where images are in a custom kind: ``path`` (``/``-separated, ``*`` expands), ``value`` (the field
    holding the image; default the last path segment), ``key`` (map key naming the image), ``jmesPath``
    (transform)."""

    path: StrictStr
    value: StrictStr = ""
    name: StrictStr = ""
    key: StrictStr = ""
    jmes_path: StrictStr = ""


with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)

    class Rule(KyvernoModel):
        """A policy rule. sigward uses ``verifyImages`` rules; ``validate``/``mutate``/``generate`` rules are
        kept as written (the loader skips them with a note)."""

        name: StrictStr
        match: MatchResources
        exclude: MatchResources | None = None
        context: tuple[Mapping[StrictStr, Any], ...] = ()
        preconditions: Any = None
        cel_preconditions: tuple[Mapping[StrictStr, Any], ...] = ()
        report_properties: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
        image_extractors: Mapping[StrictStr, tuple[ImageExtractorConfig, ...]] = Field(default_factory=dict)
        mutate: Mapping[StrictStr, Any] | None = None
        validate: Mapping[StrictStr, Any] | None = None  # type: ignore[assignment]
        generate: Mapping[StrictStr, Any] | None = None
        verify_images: tuple[ImageVerification, ...] = ()
        skip_background_requests: StrictBool = True

        def has_verify_images(self) -> bool:
            return bool(self.verify_images)

        @cached_property
        def prepared_per_request(self) -> bool:
            """Whether the rule needs context, preconditions, variables or cluster keys prepared per request
            (:mod:`sigward.policy.dynamic`); cached, as admission asks for every rule of every request. A
            ``model_copy`` keeps the cached answer: copies are only made of loaded rules before it is read, or of
            prepared rules (where True stays the conservative answer)."""
            from sigward.policy.dynamic import needs_preparation

            return needs_preparation(self)

        def condition_inputs(self, entries: tuple[int, ...] | None = None) -> ConditionInputs:
            """What the conditions of ``entries`` (indexes into ``verify_images``; default all) read from the
            request: ``.request`` true means the rule reads admission request data."""
            from sigward.policy.conditions import NO_INPUTS

            found = NO_INPUTS
            for i, iv in enumerate(self.verify_images):
                if entries is None or i in entries:
                    found = found | iv.condition_inputs
            return found

        def explicit_failure_action(self) -> Action | None:
            """Kyverno's ``EngineResponse.ruleAction`` for a verifyImages rule: ``Enforce`` if any entry
            enforces, else the first entry's explicit action, else None (the policy decides)."""
            explicit = [iv.failure_action for iv in self.verify_images if iv.failure_action is not None]
            if "Enforce" in explicit:
                return "Enforce"
            return explicit[0] if explicit else None

        def failure_action(self, default: Action) -> Action:
            """The rule's own action, else ``default``."""
            return self.explicit_failure_action() or default


# --- spec / policy


class ValidationFailureActionOverride(KyvernoModel):
    action: StrictStr = ""
    namespaces: tuple[StrictStr, ...] = ()
    namespace_selector: LabelSelector | None = None


class WebhookConfiguration(KyvernoModel):
    failure_policy: FailurePolicy | None = None
    timeout_seconds: StrictInt | None = None
    match_conditions: tuple[Mapping[StrictStr, Any], ...] = ()


def _normalize_action(value: Any) -> Any:
    """``validationFailureAction`` is case-insensitive on input (Kyverno also takes the old
    ``audit``/``enforce``)."""
    if isinstance(value, str):
        for action in ("Audit", "Enforce"):
            if value.lower() == action.lower():
                return action
    return value


class PolicySpec(KyvernoModel):
    """``spec``. After loading, ``failure_policy`` and ``webhook_timeout_seconds`` are the effective values
    (``webhookConfiguration`` wins over the deprecated spec fields) and ``rules`` holds only verifyImages
    rules."""

    rules: tuple[Rule, ...] = ()
    apply_rules: Literal["All", "One"] = "All"
    failure_policy: FailurePolicy = "Fail"
    validation_failure_action: Action = "Audit"
    validation_failure_action_overrides: tuple[ValidationFailureActionOverride, ...] = ()
    emit_warning: StrictBool = False
    admission: StrictBool = True
    background: StrictBool = True
    schema_validation: StrictBool | None = None
    webhook_timeout_seconds: StrictInt = DEFAULT_WEBHOOK_TIMEOUT_SECONDS
    mutate_existing_on_policy_update: StrictBool = False
    generate_existing_on_policy_update: StrictBool | None = None
    generate_existing: StrictBool = False
    use_server_side_apply: StrictBool = False
    webhook_configuration: WebhookConfiguration | None = None

    @model_validator(mode="before")
    @classmethod
    def _case_insensitive_action(cls, data: Any) -> Any:
        if isinstance(data, dict) and "validationFailureAction" in data:
            return {**data, "validationFailureAction": _normalize_action(data["validationFailureAction"])}
        return data

    def rule_failure_action(
        self, rule: Rule, *, namespace: str = "", namespace_labels: NamespaceLabels | None = None
    ) -> Action:
        """Whether a failure of ``rule`` for a resource in ``namespace`` blocks (Enforce) or is reported (Audit),
        as Kyverno decides it per failed rule since v1.19 (kyverno/kyverno@111e07bbecc66abfde36ab99969af22d7a961003,
        pkg/engine/api/engineresponse.go ``HasEnforcedFailure`` -> ``failureActionForRule`` -> ``ruleAction``):

        1. the rule's own action: ``Enforce`` if any verifyImages entry sets ``failureAction: Enforce``, else the
           first entry that sets one (even ``Audit`` when the policy says Enforce);
        2. else the first ``spec.validationFailureActionOverrides`` item that matches ``namespace``
           (``matchOverride``: an item without ``namespaces`` matches every namespace, an empty list none;
           namespaces are wildcards; an item's ``namespaceSelector`` must match the namespace's labels too);
        3. else ``spec.validationFailureAction``.
        """
        explicit = rule.explicit_failure_action()
        if explicit is not None:
            return explicit
        override = self.matching_override(namespace, namespace_labels)
        return override if override is not None else self.validation_failure_action

    def matching_override(self, namespace: str, namespace_labels: NamespaceLabels | None = None) -> Action | None:
        """The action of the first valid ``validationFailureActionOverrides`` item matching ``namespace``
        (Kyverno's ``GetValidationFailureAction``: ``namespaces`` wildcards, then ``namespaceSelector`` on the
        namespace's labels). Labels that cannot be read (``namespace_labels`` None or raising a SigwardError) make
        the item decide ``Enforce``: unlike Kyverno, which skips the item, an unknown namespace never relaxes a
        failure to Audit."""
        from sigward.errors import SigwardError
        from sigward.references import wildcard_match

        for override in self.validation_failure_action_overrides:
            action = _normalize_action(override.action)
            if action not in ("Audit", "Enforce"):
                continue
            listed = "namespaces" in override.model_fields_set
            if listed and not any(wildcard_match(ns, namespace) for ns in override.namespaces):
                continue
            selector = override.namespace_selector
            if selector is None:
                return action  # type: ignore[no-any-return]
            if not namespace:
                continue  # a cluster-scoped resource has no namespace labels
            if namespace_labels is None:
                return "Enforce"
            try:
                labels = namespace_labels()
            except SigwardError:
                return "Enforce"
            if selector.matches(labels):
                return action  # type: ignore[no-any-return]
        return None

    def enforces(self, rule: Rule, *, namespace: str = "", namespace_labels: NamespaceLabels | None = None) -> bool:
        return self.rule_failure_action(rule, namespace=namespace, namespace_labels=namespace_labels) == "Enforce"


class Policy(KyvernoModel):
    """A loaded ``ClusterPolicy`` or namespaced ``Policy``.

    ``source`` is ``<file>#doc<N>`` (N counts the file's YAML documents from 1); ``content_hash`` is the
    sha256 (hex) of the RFC 8785 canonical JSON of the whole document as written, identifying the policy
    content for caches.
    """

    api_version: StrictStr
    kind: Literal["ClusterPolicy", "Policy"]
    name: StrictStr
    namespace: StrictStr = ""
    annotations: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
    labels: Mapping[StrictStr, StrictStr] = Field(default_factory=dict)
    spec: PolicySpec
    source: StrictStr = ""
    content_hash: StrictStr = ""

    @property
    def key(self) -> str:
        """``name`` for a ClusterPolicy, ``namespace/name`` for a Policy (Kyverno's policy key)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def rule_failure_action(
        self, rule: Rule, *, namespace: str = "", namespace_labels: NamespaceLabels | None = None
    ) -> Action:
        return self.spec.rule_failure_action(rule, namespace=namespace, namespace_labels=namespace_labels)

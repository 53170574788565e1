"""What sigward implements of Kyverno's ``verifyImages`` today: the one table the policy loader consults.

Users bring their existing ClusterPolicies. A field sigward does not implement yet is never ignored: ignoring
it would verify less than the policy author asked for (a skipped attestation, a key read from a Secret we
cannot see, a precondition that was meant to narrow the rule). Instead the loader refuses the policy and names
the field by its YAML path, with the message below saying what to write instead.

Everything not listed here is implemented and always accepted: ``keys.publicKeys`` holding one or several PEM
public keys, ``keys.signatureAlgorithm``, ``keys.rekor`` (``url``, ``pubkey``, ``ignoreTlog``), ``keys.ctlog``
(``ignoreSCT``, ``pubkey``), attestor ``annotations`` and ``repository``, nested ``attestor`` sets, ``count``,
``imageReferences``/``skipImageReferences``, ``repository``, ``mutateDigest``/``verifyDigest``/``required``/
``useCache``, ``failureAction``, ``type: Cosign``, rule ``match``/``exclude`` on kinds, names, namespaces,
label ``selector``, annotations and operations, ``imageExtractors``, and
``imageRegistryCredentials.providers`` (that entry's registry requests use only those credential providers).

Each flag below is one feature; ``False`` means "refuse policies that use it". Later work flips a flag to
``True`` when the verifier implements the feature. Tests (and callers that know better) pass their own
:class:`Capabilities` to the loader, or replace :data:`CURRENT`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Capabilities:
    """One flag per Kyverno feature that changes what verification means; ``True`` = implemented."""

    # verifyImages[].type
    sigstore_bundle: bool = True
    # key material
    secret_keys: bool = True  # keys.secret {name, namespace}
    k8s_key_refs: bool = True  # publicKeys: k8s://namespace/secret
    kms_keys: bool = True  # awskms:// gcpkms:// azurekms:// hashivault:// in publicKeys or keys.kms
    tsa_timestamps: bool = True  # ctlog.tsaCertChain (RFC 3161 signed timestamps)
    # other attestor kinds
    keyless: bool = True
    certificates: bool = True
    # what is checked beyond signatures
    attestations: bool = True
    validate_deny: bool = True  # verifyImages[].validate
    cosign_oci11: bool = True  # cosignOCI11: true (signatures as OCI 1.1 referrers)
    # registry access
    registry_secrets: bool = False  # imageRegistryCredentials.secrets (cluster Secrets)
    # rule selection
    rule_context: bool = True  # rule context entries (ConfigMap, apiCall, imageRegistry, variable, globalReference)
    preconditions: bool = True
    cel_preconditions: bool = True  # K8s matchConditions semantics (sigward.policy.ivpol.matchconditions)
    user_info: bool = True  # match/exclude (and PolicyException) subjects, from request.userInfo
    user_roles: bool = False  # match/exclude roles, clusterRoles: RBAC bindings read through the cluster connection
    namespace_selector: bool = True  # match/exclude namespaceSelector (labels from sigward.cluster)
    override_namespace_selector: bool = True  # validationFailureActionOverrides[].namespaceSelector (cluster labels)
    variables: bool = True  # {{ ... }} substitution in verifyImages fields
    # policy-wide switches
    failure_action_overrides: bool = True  # spec.validationFailureActionOverrides (namespaces, namespaceSelector)
    webhook_match_conditions: bool = True  # spec.webhookConfiguration.matchConditions
    apply_rules_one: bool = True  # spec.applyRules: One (sigward.verify.applyrules)

    def with_all(self) -> Capabilities:
        """Every feature on: for tests of Kyverno's own validation, independent of what is implemented."""
        return Capabilities(**{f.name: True for f in fields(self)})


#: What the running code implements. Loaders read this at call time, so replacing it takes effect at once.
CURRENT = Capabilities()


def for_cluster(connected: bool) -> Capabilities:
    """:data:`CURRENT` for a process with (``connected``) or without a live cluster connection: registry
    credentials from cluster Secrets and the RoleBindings behind ``roles``/``clusterRoles`` are read from the live
    cluster only, so they load only when one is configured."""
    return replace(
        CURRENT,
        registry_secrets=CURRENT.registry_secrets or connected,
        user_roles=CURRENT.user_roles or connected,
    )


# What the refusal says, per feature: why sigward cannot honour it (yet) and what to write instead.
REFUSALS: dict[str, str] = {
    "sigstore_bundle": ("type SigstoreBundle is not supported yet: sigward verifies Cosign signatures (type: Cosign)"),
    "secret_keys": (
        "keys.secret needs the Kubernetes API to read the Secret, which sigward does not use: "
        "put the PEM public key in keys.publicKeys instead"
    ),
    "k8s_key_refs": (
        "k8s:// key references need the Kubernetes API to read the Secret, which sigward does not use: "
        "put the PEM public key in keys.publicKeys instead"
    ),
    "kms_keys": (
        "KMS key references are not supported yet: export the public key "
        "(cosign public-key --key <uri>) and put the PEM in keys.publicKeys instead"
    ),
    "tsa_timestamps": (
        "ctlog.tsaCertChain (RFC 3161 timestamp verification) is not supported yet: "
        "remove it to verify with the transparency log (rekor), or with the key alone "
        "(rekor.ignoreTlog: true)"
    ),
    "keyless": "keyless attestors are not supported yet: use keys.publicKeys with a PEM public key",
    "certificates": "certificates attestors are not supported yet: use keys.publicKeys with a PEM public key",
    "attestations": (
        "attestations are not supported yet: sigward verifies image signatures (attestors) only; "
        "remove the attestations to verify signatures"
    ),
    "validate_deny": "verifyImages validate (deny conditions) is not supported yet",
    "cosign_oci11": (
        "cosignOCI11 (signatures stored as OCI 1.1 referrers) is not supported yet: "
        "sigward reads signatures from cosign's sha256-<digest>.sig tags"
    ),
    "registry_secrets": (
        "registry credentials from cluster Secrets are not available to sigward without a cluster connection "
        "(SIGWARD_KUBECONFIG, or in-cluster service account; read from SIGWARD_SECRETS_NAMESPACE): "
        "use imageRegistryCredentials.providers (workload identity) or a docker config.json (DOCKER_CONFIG) instead"
    ),
    "rule_context": (
        "rule context entries need the Kubernetes API or variable substitution, which sigward does not have: "
        "write the values (e.g. the PEM public key) into the rule instead"
    ),
    "preconditions": "preconditions are not supported yet: narrow the rule with match/exclude instead",
    "cel_preconditions": "celPreconditions are not supported yet: narrow the rule with match/exclude instead",
    "user_info": (
        "matching on the requesting user (subjects, roles, clusterRoles) is not supported yet: "
        "match on resources instead"
    ),
    "user_roles": (
        "roles and clusterRoles are computed from the cluster's RoleBindings and ClusterRoleBindings, which sigward "
        "reads through a cluster connection only and none is configured (SIGWARD_KUBECONFIG, or in-cluster service "
        "account): configure one, or match the requesting user with subjects (User, Group, ServiceAccount) instead"
    ),
    "namespace_selector": (
        "namespaceSelector needs the Namespace's labels from the Kubernetes API, which sigward does not use: "
        "list the namespaces instead (resources.namespaces, or validationFailureActionOverrides[].namespaces)"
    ),
    "override_namespace_selector": (
        "validationFailureActionOverrides[].namespaceSelector needs namespace labels, which this verifier was "
        "built without: list the namespaces instead (validationFailureActionOverrides[].namespaces)"
    ),
    "variables": (
        "variables ({{ ... }}) are not supported yet: sigward does not substitute them; write the value literally"
    ),
    "failure_action_overrides": (
        "validationFailureActionOverrides is not supported yet: set failureAction on each verifyImages entry "
        "(or spec.validationFailureAction) instead"
    ),
    "webhook_match_conditions": (
        "webhookConfiguration.matchConditions (CEL) is not supported yet: narrow the rules with match/exclude instead"
    ),
    "apply_rules_one": "applyRules: One is not supported yet: use applyRules: All (the default)",
}


def refusal(feature: str) -> str:
    """The user-facing message for a refused feature (one of the :class:`Capabilities` flag names)."""
    return REFUSALS[feature]

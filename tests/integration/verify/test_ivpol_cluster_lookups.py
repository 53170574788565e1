"""ImageValidatingPolicy expressions that read the cluster and the registry, through the real registry:
``cosign.trustedRoot.expression`` reading GitHub's root from a ConfigMap shipped beside the policy (the
nirmata/demo-attestations-kyverno ``demos/private-sigstore`` form) verifies GitHub's TSA-only bundle, keys the
verdict by that root's fingerprint, fails with another root in the ConfigMap, and is an infrastructure error
(failurePolicy decides) when the ConfigMap is missing; ``resource.Get``/``resource.List`` read shipped
ConfigMaps/Secrets/Namespaces; ``imagedata.Get``/``image.GetMetadata`` read a pushed image's manifest and config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.admission.ivpol_cache import CachedChecks
from sigward.cache import TTLCache
from sigward.cluster.data import ClusterData
from sigward.cluster.sources import manifest_objects
from sigward.deadline import Deadline
from sigward.errors import ConfigurationError
from sigward.policy.loader import load_policy_text
from sigward.references import parse_image_reference
from sigward.registry import RegistryClient
from sigward.registry.imagedata import RegistryImageData
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import DirectChecks, evaluate_image, evaluate_request, pod_request
from sigward.verify.oci import RegistrySignatureSource
from sigward.verify.plan import image_policy_key
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.integration.admission.test_ivpol_trusted_root import ivpol, root_text
from tests.support.github_attestations import GH_1, SLSA_V1, bundle_doc, serve
from tests.support.ivpol_checks import checks_for as registry_checks
from tests.support.policies import dump
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.registry
CHECK = f"attestation:{SLSA_V1}:gh"
FROM_CONFIGMAP = "resource.Get('v1', 'configmaps', 'kyverno', 'github-trusted-root').data['trusted_root.json']"


def no_default_root() -> TrustedRoot:
    raise ConfigurationError("the process-wide trusted root was read for an attestor with its own root")


def shipped(tmp_path: Path, *docs: dict[str, Any]) -> ClusterData:
    """ClusterData from manifests written beside the policy, read as the runtime reads them."""
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return ClusterData(manifests=manifest_objects([str(path)]))


def root_configmap(root: str, *, name: str = "github-trusted-root") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "kyverno"},
        "data": {"trusted_root.json": root_text(root)},
    }


def expression_policy(host: str, failure_policy: str = "Fail", *, via_variable: bool = False) -> Any:
    """The demos/private-sigstore policy with its root read from the ConfigMap, directly or (as the demo writes it)
    through ``variables.githubTrustedRoot``."""
    doc = ivpol(host, "unused")
    expression = "variables.githubTrustedRoot" if via_variable else FROM_CONFIGMAP
    doc["spec"]["attestors"][0]["cosign"]["trustedRoot"] = {"expression": expression}
    if via_variable:
        doc["spec"]["variables"] = [{"name": "githubTrustedRoot", "expression": FROM_CONFIGMAP}]
    doc["spec"]["failurePolicy"] = failure_policy
    (policy,) = load_policy_text(dump(doc), "expression-root.yaml").image_policies
    return policy


def checks_for(client: RegistryClient, cluster: ClusterData) -> CachedChecks:
    return registry_checks(client, trusted_root=no_default_root, github_root=no_default_root, cluster=cluster)


@pytest.mark.parametrize(
    ("name", "configmaps", "verdict", "reason"),
    [
        ("github-root", ("github.json",), "pass", ""),
        ("github-root-via-variable", ("github.json",), "pass", ""),
        ("wrong-root-via-variable", ("public-good.json",), "fail", "attestation not verified"),
        ("missing-via-variable", (), "error", "configmap kyverno/github-trusted-root is not in the manifests"),
        ("wrong-root", ("public-good.json",), "fail", "attestation not verified"),
        ("missing-configmap", (), "error", "configmap kyverno/github-trusted-root is not in the manifests"),
        ("other-configmap-only", ("other",), "error", "configmap kyverno/github-trusted-root is not in the manifests"),
    ],
)
def test_trusted_root_from_configmap(
    registry: LocalRegistry,
    client: RegistryClient,
    tmp_path: Path,
    name: str,
    configmaps: tuple[str, ...],
    verdict: str,
    reason: str,
) -> None:
    image = serve(registry, f"ivroot/cm-{name}", GH_1.digest, json.dumps(bundle_doc(GH_1)).encode())
    docs = [
        root_configmap("github.json", name="unrelated") if cm == "other" else root_configmap(cm) for cm in configmaps
    ]
    policy = expression_policy(registry.host, via_variable=name.endswith("via-variable"))
    checks = checks_for(client, shipped(tmp_path, *docs))
    (found,) = evaluate_image([policy], image, checks=checks, deadline=Deadline.after(20))
    assert found.verdict.value == verdict, found
    assert reason in found.message, found.message
    if verdict == "pass":  # the verdict is keyed by the ConfigMap root's fingerprint: a rotated root re-verifies
        fingerprint = parse_trusted_root(root_text("github.json").encode(), source="cm").fingerprint
        ref = parse_image_reference(image)
        key = image_policy_key(policy.content_hash, CHECK, ref, GH_1.digest, trust_fingerprint=fingerprint)
        assert checks.cache.get(key) is not None


@pytest.mark.parametrize(("failure_policy", "allowed"), [("Fail", False), ("Ignore", False)])
def test_missing_configmap_denies_whatever_the_failure_policy(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path, failure_policy: str, allowed: bool
) -> None:
    image = serve(registry, "ivroot/cm-fp", GH_1.digest, json.dumps(bundle_doc(GH_1)).encode())
    policy = expression_policy(registry.host, failure_policy)
    checks = checks_for(client, shipped(tmp_path, root_configmap("github.json", name="unrelated")))
    decision = evaluate_request([policy], pod_request(image), checks=checks, deadline=Deadline.after(20))
    assert decision.allowed is allowed, decision
    (outcome,) = decision.outcomes
    assert outcome.verdict.value == "error" and "github-trusted-root" in outcome.message
    # Kyverno's IVPOL webhook denies an evaluation error under Deny whatever the failurePolicy
    assert decision.message.startswith(f"Policy {outcome.policy} error: "), decision.message


def test_malformed_root_in_configmap_is_an_error(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path
) -> None:
    image = serve(registry, "ivroot/cm-bad", GH_1.digest, json.dumps(bundle_doc(GH_1)).encode())
    cm = root_configmap("github.json")
    cm["data"]["trusted_root.json"] = "{}"
    checks = checks_for(client, shipped(tmp_path, cm))
    (found,) = evaluate_image([expression_policy(registry.host)], image, checks=checks, deadline=Deadline.after(20))
    assert found.verdict.value == "error", found
    assert "trustedRoot.expression" in found.message and "not a Sigstore trusted root" in found.message


NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": {"env": "prod"}}}
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "keys", "namespace": "default"},
    "stringData": {"cosign.pub": "PUBLIC", "cosign.key": "PRIVATE"},
}
SETTINGS = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "strict"}}


def lookup_policy(host: str, expression: str) -> Any:
    doc = ivpol(host, root_text("github.json"))  # an attestor is required; these policies never call it
    doc["metadata"]["name"] = "lookups"
    doc["spec"]["matchImageReferences"] = [{"glob": f"{host}/*"}]
    doc["spec"]["validations"] = [{"expression": expression, "message": "lookup did not hold"}]
    doc["spec"]["validationConfigurations"] = {"required": False}  # no signature check here
    (policy,) = load_policy_text(dump(doc), "lookups.yaml").image_policies
    return policy


@pytest.mark.parametrize(
    ("expression", "verdict", "reason"),
    [
        ("resource.Get('v1', 'namespaces', '', 'team-a').metadata.labels.env == 'prod'", "pass", ""),
        ("resource.Get('v1', 'namespaces', '', 'team-a').metadata.labels.env == 'dev'", "fail", "lookup did not hold"),
        ("resource.Get('v1', 'configmaps', 'default', 'settings').data.mode == 'strict'", "pass", ""),
        ("base64.decode(resource.Get('v1', 'secrets', 'default', 'keys').data['cosign.pub']) == b'PUBLIC'", "pass", ""),
        ("!('cosign.key' in resource.Get('v1', 'secrets', 'default', 'keys').data)", "pass", ""),
        ("resource.List('v1', 'configmaps', 'default').items.map(c, c.metadata.name) == ['settings']", "pass", ""),
        ("size(resource.List('v1', 'configmaps', 'kube-system').items) == 0", "pass", ""),
        ("resource.Get('v1', 'configmaps', 'default', 'absent') != null", "error", "configmap default/absent"),
        ("resource.Get('apps/v1', 'deployments', 'default', 'x') != null", "error", "serves only v1"),
        ("resource.Get('v1', 'configmaps', 'default', '../secrets/keys') != null", "error", "not a valid Kubernetes"),
        ("imagedata.Get('x') == null || true", "pass", ""),  # short-circuit: no lookup made
    ],
)
def test_resource_library(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path, expression: str, verdict: str, reason: str
) -> None:
    digest = registry.push_image("lookups/app", tag="v1")
    checks = DirectChecks(
        Verifier(source=RegistrySignatureSource(client), cluster=shipped(tmp_path, NAMESPACE, SECRET, SETTINGS))
    )
    image = f"{registry.host}/lookups/app@{digest}"
    policy = lookup_policy(registry.host, expression)
    (found,) = evaluate_image([policy], image, checks=checks, deadline=Deadline.after(20))
    assert found.verdict.value == verdict, found
    assert reason in found.message, found.message


@pytest.mark.parametrize(
    ("expression", "verdict", "reason"),
    [
        ("images.containers.all(i, imagedata.Get(i).config.architecture == 'amd64')", "pass", ""),
        ("images.containers.all(i, imagedata.Get(i).manifest.schemaVersion == 2)", "pass", ""),
        ("images.containers.all(i, image.GetMetadata(i).config.os == 'linux')", "pass", ""),
        ("images.containers.all(i, imagedata.Get(i).config.architecture == 'arm64')", "fail", "lookup did not hold"),
        ("imagedata.Get(images.containers[0] + '-missing').manifest != null", "error", "missing"),
    ],
)
def test_image_data_library(
    registry: LocalRegistry, client: RegistryClient, expression: str, verdict: str, reason: str
) -> None:
    registry.push_image("lookups/data", tag="v1")
    verifier = Verifier(source=RegistrySignatureSource(client), image_data=RegistryImageData(client))
    image = f"{registry.host}/lookups/data:v1"
    (found,) = evaluate_image(
        [lookup_policy(registry.host, expression)], image, checks=DirectChecks(verifier), deadline=Deadline.after(20)
    )
    assert found.verdict.value == verdict, found
    assert reason in found.message, found.message


def test_image_data_without_registry_client_is_an_error(registry: LocalRegistry, client: RegistryClient) -> None:
    digest = registry.push_image("lookups/nodata", tag="v1")
    verifier = Verifier(source=RegistrySignatureSource(client))
    policy = lookup_policy(registry.host, "images.containers.all(i, imagedata.Get(i).manifest != null)")
    image = f"{registry.host}/lookups/nodata@{digest}"
    (found,) = evaluate_image([policy], image, checks=DirectChecks(verifier), deadline=Deadline.after(20))
    assert found.verdict.value == "error" and "no registry client" in found.message, found


def test_memory_only_pass_never_waits_on_a_lookup(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path
) -> None:
    """Admission's event-loop pass (memory only) hands a lookup to the worker pass instead of doing I/O."""
    from sigward.admission.ivpol_cache import NotInMemory

    digest = registry.push_image("lookups/fast", tag="v1")
    verifier = Verifier(source=RegistrySignatureSource(client), cluster=shipped(tmp_path, SETTINGS))
    policy = lookup_policy(
        registry.host, "resource.Get('v1', 'configmaps', 'default', 'settings').data.mode == 'strict'"
    )
    request = pod_request(f"{registry.host}/lookups/fast@{digest}")
    fast = CachedChecks(
        verifier=verifier, cache=TTLCache(max_entries=10, ttl=60), store=None, pass_ttl=60, memory_only=True
    )
    with pytest.raises(NotInMemory):
        evaluate_request([policy], request, checks=fast, deadline=Deadline.after(20))
    slow = CachedChecks(verifier=verifier, cache=TTLCache(max_entries=10, ttl=60), store=None, pass_ttl=60)
    assert evaluate_request([policy], request, checks=slow, deadline=Deadline.after(20)).allowed


ENTRY_DOCS = [
    {
        "apiVersion": "kyverno.io/v2beta1",
        "kind": "GlobalContextEntry",
        "metadata": {"name": "settings"},
        "spec": {
            "kubernetesResource": {"version": "v1", "resource": "configmaps", "namespace": "default"},
            "projections": [{"name": "mode", "jmesPath": "[?metadata.name=='settings'] | [0].data.mode"}],
        },
    },
    {
        "apiVersion": "kyverno.io/v2beta1",
        "kind": "GlobalContextEntry",
        "metadata": {"name": "deployments"},
        "spec": {"kubernetesResource": {"group": "apps", "version": "v1", "resource": "deployments"}},
    },
]


@pytest.mark.parametrize(
    ("expression", "verdict", "reason"),
    [
        ("globalContext.Get('settings', 'mode') == 'strict'", "pass", ""),
        ("globalContext.get('settings', 'mode') == 'strict'", "pass", ""),  # Kyverno's tests spell it get
        ("globalContext.Get('settings', '')[0].metadata.name == 'settings'", "pass", ""),
        ("globalContext.Get('settings', 'mode') == 'lenient'", "fail", "lookup did not hold"),
        ("globalContext.Get('absent', 'x') == null", "pass", ""),  # an entry not loaded reads as null, as in Kyverno
        ("globalContext.Get('settings', 'unknown') != null", "error", 'projection "unknown" not found'),
        ("globalContext.Get('deployments', '') != null", "error", "needs a cluster connection"),
    ],
)
def test_global_context_library(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path, expression: str, verdict: str, reason: str
) -> None:
    from sigward.cluster.globalcontext import GlobalContext

    digest = registry.push_image("lookups/gctx", tag="v1")
    entries = load_policy_text(dump(*ENTRY_DOCS), "entries.yaml").global_context
    gctx = GlobalContext(entries, shipped(tmp_path, SETTINGS))
    checks = DirectChecks(Verifier(source=RegistrySignatureSource(client), global_context=gctx))
    image = f"{registry.host}/lookups/gctx@{digest}"
    (found,) = evaluate_image(
        [lookup_policy(registry.host, expression)], image, checks=checks, deadline=Deadline.after(20)
    )
    assert found.verdict.value == verdict, found
    assert reason in found.message, found.message


def test_global_context_lookup_waits_for_the_worker_pass(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path
) -> None:
    """Like resource.Get: the event loop's memory-only pass hands a globalContext read to the worker pass."""
    from sigward.admission.ivpol_cache import NotInMemory
    from sigward.cluster.globalcontext import GlobalContext

    digest = registry.push_image("lookups/gctx-fast", tag="v1")
    entries = load_policy_text(dump(*ENTRY_DOCS), "entries.yaml").global_context
    verifier = Verifier(
        source=RegistrySignatureSource(client), global_context=GlobalContext(entries, shipped(tmp_path, SETTINGS))
    )
    policy = lookup_policy(registry.host, "globalContext.Get('settings', 'mode') == 'strict'")
    request = pod_request(f"{registry.host}/lookups/gctx-fast@{digest}")
    fast = CachedChecks(
        verifier=verifier, cache=TTLCache(max_entries=10, ttl=60), store=None, pass_ttl=60, memory_only=True
    )
    with pytest.raises(NotInMemory):
        evaluate_request([policy], request, checks=fast, deadline=Deadline.after(20))

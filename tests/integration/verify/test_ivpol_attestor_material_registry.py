"""IVPOL attestor material read by CEL from a ConfigMap (``cosign.key.expression``, the form of Kyverno's
standard/notary-configmap-cert test), through the real registry: the right key verifies, a wrong key in the
ConfigMap fails, a missing ConfigMap is an infrastructure error (failurePolicy decides), a value that is not a PEM
key is an error naming the YAML path, and a changed ConfigMap never reuses the verdict of the old value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward.cache import TTLCache
from sigward.cluster.data import ClusterData
from sigward.cluster.sources import manifest_objects
from sigward.deadline import Deadline
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.loader import load_policy_text
from sigward.references import parse_image_reference
from sigward.registry import RegistryClient
from sigward.verify.ivpol import evaluate_image, evaluate_request, pod_request
from sigward.verify.ivpol_material import fingerprint
from sigward.verify.plan import image_policy_key
from sigward.verify.results import RuleVerdict
from tests.support.ivpol_checks import checks_for as registry_checks
from tests.support.policies import dump
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
KEY = new_key("p256", slot=0)
OTHER = new_key("p256", slot=1)
FROM_CONFIGMAP = "resource.Get('v1', 'configmaps', 'kyverno', 'keys').data['cosign.pub']"


@pytest.fixture
def signed(registry: LocalRegistry) -> str:
    digest = registry.push_image("material/app", tag="v1")
    attach_signatures(registry, "material/app", digest, [signed_layer(KEY, image_digest=digest)])
    return f"{registry.host}/material/app@{digest}"


def key_configmap(value: str, *, name: str = "keys") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "kyverno"},
        "data": {"cosign.pub": value},
    }


def cluster(tmp_path: Path, *docs: dict[str, Any], file: str = "cluster.yaml") -> ClusterData:
    path = tmp_path / file
    path.write_text(yaml.safe_dump_all(docs))
    return ClusterData(manifests=manifest_objects([str(path)]))


def policy(host: str, failure_policy: str = "Fail") -> ImagePolicy:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "key-from-configmap"},
        "spec": {
            "matchImageReferences": [{"glob": f"{host}/*"}],
            "failurePolicy": failure_policy,
            "attestors": [
                {
                    "name": "cm",
                    "cosign": {"key": {"expression": FROM_CONFIGMAP}, "ctlog": {"insecureIgnoreTlog": True}},
                }
            ],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.cm]) > 0)"}],
        },
    }
    (found,) = load_policy_text(dump(doc), "material.yaml").image_policies
    return found


def checks_for(client: RegistryClient, data: ClusterData, cache: TTLCache[Any, RuleVerdict] | None = None) -> Any:
    return registry_checks(client, cache, cluster=data)


@pytest.mark.parametrize(
    ("name", "configmaps", "verdict", "reason"),
    [
        ("right-key", [key_configmap(KEY.public_pem)], "pass", ""),
        ("wrong-key", [key_configmap(OTHER.public_pem)], "fail", ""),
        ("missing-configmap", [key_configmap(KEY.public_pem, name="unrelated")], "error", "kyverno/keys"),
        ("not-pem", [key_configmap("not a key")], "error", "spec.attestors[0].cosign.key.expression"),
        ("empty", [key_configmap("")], "error", "empty"),
        ("certificate-not-key", [key_configmap("-----BEGIN CERTIFICATE-----\nx\n")], "error", "PEM public key"),
    ],
)
def test_key_from_configmap(
    registry: LocalRegistry,
    client: RegistryClient,
    tmp_path: Path,
    signed: str,
    name: str,
    configmaps: list[dict[str, Any]],
    verdict: str,
    reason: str,
) -> None:
    checks = checks_for(client, cluster(tmp_path, *configmaps))
    (found,) = evaluate_image([policy(registry.host)], signed, checks=checks, deadline=Deadline.after(20))
    assert found.verdict.value == verdict, (name, found)
    assert reason in found.message, found.message


@pytest.mark.parametrize(("failure_policy", "allowed"), [("Fail", False), ("Ignore", False)])
def test_missing_configmap_denies_whatever_the_failure_policy(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path, signed: str, failure_policy: str, allowed: bool
) -> None:
    checks = checks_for(client, cluster(tmp_path, key_configmap(KEY.public_pem, name="unrelated")))
    decision = evaluate_request(
        [policy(registry.host, failure_policy)], pod_request(signed), checks=checks, deadline=Deadline.after(20)
    )
    assert decision.allowed is allowed, decision
    (outcome,) = decision.outcomes
    assert outcome.verdict.value == "error" and "kyverno/keys" in outcome.message
    # Kyverno's IVPOL webhook denies an evaluation error under Deny whatever the failurePolicy
    assert decision.message.startswith(f"Policy {outcome.policy} error: "), decision.message


def test_changed_configmap_never_reuses_the_old_verdict(
    registry: LocalRegistry, client: RegistryClient, tmp_path: Path, signed: str
) -> None:
    """Regression: the key read from the ConfigMap keys the verdict. A pass under the right key is cached; after the
    ConfigMap is changed to another key, the same cache must not answer: the check runs again and fails."""
    shared: TTLCache[Any, RuleVerdict] = TTLCache(max_entries=10, ttl=60)
    p = policy(registry.host)
    before = checks_for(client, cluster(tmp_path, key_configmap(KEY.public_pem), file="a.yaml"), shared)
    (first,) = evaluate_image([p], signed, checks=before, deadline=Deadline.after(20))
    assert first.verdict.value == "pass", first
    after = checks_for(client, cluster(tmp_path, key_configmap(OTHER.public_pem), file="b.yaml"), shared)
    (second,) = evaluate_image([p], signed, checks=after, deadline=Deadline.after(20))
    assert second.verdict.value == "fail", second
    back = checks_for(client, cluster(tmp_path, key_configmap(KEY.public_pem), file="c.yaml"), shared)
    (third,) = evaluate_image([p], signed, checks=back, deadline=Deadline.after(20))
    assert third.verdict.value == "pass", third
    trust = before.verifier.trusted_root().fingerprint
    ref = parse_image_reference(signed)
    keyed = {
        name: shared.get(image_policy_key(p.content_hash, check, ref, ref.digest, trust_fingerprint=trust))
        for name, check in (
            ("right", f"signature:cm#{fingerprint({'key': KEY.public_pem})}"),
            ("bare", "signature:cm"),
        )
    }
    assert keyed["right"] is not None and keyed["right"].verdict.value == "pass"
    assert keyed["bare"] is None  # never keyed without the material

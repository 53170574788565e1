"""Kyverno's ImageValidatingPolicy conformance cases (shared/vectors/kyverno-ivpol) that use a ``notary`` attestor,
run AS SHIPPED through the real docker-registry: the only edits are the ones a local registry forces (the
``certs`` PEM becomes our test CA's root, whose key we hold, and ``ghcr.io/*`` globs name the local registry).
``:signed`` carries a Notation signature and a Notation-signed ``sbom/cyclone-dx`` referrer; ``:unsigned`` nothing.
Each case gives Kyverno's outcome (chainsaw-test.yaml); the negative twins cover a foreign CA, an unsigned or missing
SBOM referrer, an SBOM of the wrong format (``extractPayload``), ``extractPayload`` before verification, and
``tsaCerts`` (notation-go's ``verifyTimestamp: always``: a signature without a trusted timestamp fails)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from sigward.deadline import Deadline
from sigward.policy.loader import load_policy_text
from sigward.registry import RegistryClient
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import Decision, evaluate_request
from sigward.verify.oci import RegistrySignatureSource
from tests.support.notation import TestCA, make_ca, push_notary_attestation, sign_pushed
from tests.support.registry import LocalRegistry, local_config
from tests.support.tsa import LocalTSA, make_tsa

pytestmark = pytest.mark.registry

VECTORS = Path("/work/shared/vectors/kyverno-ivpol/chainsaw")
SHIPPED_CERT_MARK = "MIIDTTCCAjWgAwIBAgIJAPI+zAzn4s0xMA0GCSqGSIb3DQEBCwUAMEwxCzAJBgNV"
SBOM = "sbom/cyclone-dx"
NOTARY_MSG = "failed to verify image with notary cert"
ATTESTATION_MSG = "failed to verify attestation with notary cert"
SBOM_MSG = "sbom is not a cyclone dx sbom"


@dataclass(frozen=True)
class World:
    host: str
    ca: TestCA
    other: TestCA
    tsa: LocalTSA
    client: RegistryClient

    def image(self, tag: str) -> str:
        return f"{self.host}/kyverno/test-verify-image:{tag}"


def _stamper(tsa: LocalTSA) -> Callable[[bytes], bytes]:
    def stamp(signature: bytes) -> bytes:
        from rfc3161_client import decode_timestamp_response

        reply = tsa.stamp(signature, gen_time=datetime.now(UTC), embed=tsa.chain)
        return decode_timestamp_response(reply).time_stamp_token()

    return stamp


@pytest.fixture(scope="module")
def world(registry: LocalRegistry) -> Iterator[World]:
    ca, other, tsa = make_ca("ivpol vectors"), make_ca("ivpol other", ec_key=True), make_tsa(7)
    repo = "kyverno/test-verify-image"
    cyclonedx: dict[str, object] = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}
    spdx: dict[str, object] = {"bomFormat": "SPDX", "spdxVersion": "SPDX-2.3"}
    for tag, signer, sbom_signer, sbom, stamp in (
        ("signed", ca, ca, cyclonedx, False),
        ("unsigned", None, None, None, False),
        ("other-ca", other, other, cyclonedx, False),
        ("sbom-unsigned", ca, None, cyclonedx, False),
        ("no-sbom", ca, None, None, False),
        ("spdx", ca, ca, spdx, False),
        ("stamped", ca, None, cyclonedx, True),
        ("stamped-sbom-unstamped", ca, ca, cyclonedx, True),
    ):
        digest = registry.push_image(repo, tag=tag)
        stamper = _stamper(tsa) if stamp else None
        if signer is not None:
            sign_pushed(registry, repo, digest, signer, timestamper=stamper)
        if sbom is not None:
            att = push_notary_attestation(registry, repo, digest, SBOM, sbom, sbom_signer)
            if tag == "stamped":  # the SBOM referrer's signature carries a timestamp too
                sign_pushed(registry, repo, att, ca, timestamper=stamper)
    client = RegistryClient(local_config(registry))
    try:
        yield World(host=registry.host, ca=ca, other=other, tsa=tsa, client=client)
    finally:
        client.close()


def shipped(directory: str, world: World, *, tsa: bool = False) -> dict[str, Any]:
    """The vector's policy with only the local-registry edits (certificate and image host)."""
    text = (VECTORS / directory / "policy.yaml").read_text()
    doc: dict[str, Any] = yaml.safe_load(text.replace("ghcr.io/", f"{world.host}/"))
    (attestor,) = [a for a in doc["spec"]["attestors"] if "notary" in a]
    assert SHIPPED_CERT_MARK in attestor["notary"]["certs"]["value"]  # the vector is as Kyverno ships it
    attestor["notary"]["certs"]["value"] = world.ca.root_pem
    if tsa:
        pem = world.tsa.root.public_bytes(serialization.Encoding.PEM).decode()
        attestor["notary"]["tsaCerts"] = {"value": pem}
    return doc


def decide(doc: dict[str, Any], image: str, world: World, *, kind: str = "Deployment") -> Decision:
    policies = load_policy_text(yaml.safe_dump(doc), "policy.yaml").image_policies
    container = {"name": "c", "image": image}
    labels = {"prod": "true"}
    if kind == "Deployment":
        obj: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "labels": labels},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
        }
        resource = {"group": "apps", "version": "v1", "resource": "deployments"}
    else:
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels}}
        obj["spec"] = {"containers": [container]}
        resource = {"group": "", "version": "v1", "resource": "pods"}
    request = {"uid": "1", "operation": "CREATE", "resource": resource, "namespace": "default", "object": obj}
    verifier = Verifier(source=RegistrySignatureSource(world.client))
    return evaluate_request(policies, request, verifier=verifier, deadline=Deadline.after(20))


@dataclass(frozen=True)
class Case:
    directory: str
    tag: str
    allowed: bool
    message: str = ""  # the denial's validation message ("" when allowed)
    warning: str = ""
    kind: str = "Deployment"


POLICY = "check-signed-images"
CASES = [
    Case("validation-rules/accept", "signed", True),
    Case("validation-rules/reject", "unsigned", False, NOTARY_MSG),
    Case("validation-actions/deny", "unsigned", False, NOTARY_MSG),
    Case("validation-actions/none", "unsigned", False, NOTARY_MSG),
    Case("validation-actions/audit", "unsigned", True),
    Case("validation-actions/warn", "unsigned", True, warning=NOTARY_MSG),
    Case("validation-actions/deny", "signed", True),
    # negative twins on the accepting vector: each breaks one thing the three validations check
    Case("validation-rules/accept", "unsigned", False, NOTARY_MSG),
    Case("validation-rules/accept", "other-ca", False, NOTARY_MSG),
    Case("validation-rules/accept", "sbom-unsigned", False, ATTESTATION_MSG),
    Case("validation-rules/accept", "no-sbom", False, ATTESTATION_MSG),
    Case("validation-rules/accept", "spdx", False, SBOM_MSG),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.directory}:{c.tag}" for c in CASES])
def test_vector_outcome(case: Case, world: World) -> None:
    decision = decide(shipped(case.directory, world), world.image(case.tag), world, kind=case.kind)
    assert decision.allowed is case.allowed, decision
    assert decision.message == (f"Policy {POLICY} failed: {case.message}" if case.message else "")
    assert decision.warnings == ((f"Policy {POLICY} failed: {case.warning}",) if case.warning else ())


def test_forged_verification_annotation_is_not_read(world: World) -> None:
    doc = shipped("security/forged-verification-annotation", world)
    decision = decide(doc, world.image("unsigned"), world, kind="Pod")
    assert not decision.allowed
    assert decision.message == f"Policy check-signed-images-forged-annotation failed: {NOTARY_MSG}"


def test_extract_payload_before_verification_is_an_error(world: World) -> None:
    """Kyverno reads a referrer's payload even unverified; sigward refuses: only verified content is read."""
    doc = shipped("validation-rules/accept", world)
    doc["spec"]["validations"] = doc["spec"]["validations"][2:]  # extractPayload alone
    decision = decide(doc, world.image("signed"), world)
    assert not decision.allowed
    (outcome,) = decision.outcomes
    assert outcome.verdict.value == "error"
    assert "cannot be fetch before verifying referrer attestation" in outcome.message


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("stamped", ""),
        ("signed", NOTARY_MSG),  # valid chain, no timestamp
        ("other-ca", NOTARY_MSG),
        ("stamped-sbom-unstamped", ATTESTATION_MSG),  # the referrer's signature needs its own timestamp
    ],
)
def test_tsa_certs_require_a_trusted_timestamp(tag: str, message: str, world: World) -> None:
    """``tsaCerts``: Kyverno's trust policy adds a ``tsa`` store under notation-go's default ``verifyTimestamp:
    always``, so a signature without a countersignature from that TSA fails even with a valid chain."""
    decision = decide(shipped("validation-rules/accept", world, tsa=True), world.image(tag), world)
    assert decision.allowed is (not message), decision
    assert decision.message == (f"Policy {POLICY} failed: {message}" if message else "")


def test_tsa_certs_of_another_tsa_refuse_a_stamped_signature(world: World) -> None:
    doc = shipped("validation-rules/accept", world)
    other = make_tsa(8).root.public_bytes(serialization.Encoding.PEM).decode()
    doc["spec"]["attestors"][0]["notary"]["tsaCerts"] = {"value": other}
    decision = decide(doc, world.image("stamped"), world)
    assert decision.message == f"Policy {POLICY} failed: {NOTARY_MSG}"


def test_notary_attestor_with_intoto_attestation_is_an_error(world: World) -> None:
    doc = shipped("validation-rules/accept", world)
    doc["spec"]["attestations"] = [{"name": "sbom", "intoto": {"type": SBOM}}]
    doc["spec"]["validations"] = doc["spec"]["validations"][1:2]
    decision = decide(doc, world.image("signed"), world)
    assert not decision.allowed
    assert "notary verifier only supports oci 1.1 referrers as attestations" in decision.outcomes[0].message


# context/globalreference: the shipped GlobalContextEntry (an apiCall listing Deployments, a projection counting those
# of the test namespace) read through the Kubernetes API stand-in; one exists, so Kyverno denies with the count.
GLOBALREFERENCE_DENIAL = "cannot create new deployment as main-deployment already exists, variables.dcount: 1"


@pytest.mark.parametrize(("existing", "denied"), [("test-globalcontext-apicall-correct", True), ("elsewhere", False)])
def test_globalreference_vector_as_shipped(world: World, tmp_path: Path, existing: str, denied: bool) -> None:
    from sigward.cluster.api import Connection, KubeClient
    from sigward.cluster.data import ClusterData
    from sigward.cluster.globalcontext import GlobalContext
    from tests.support.kubeapi import KubeAPI

    directory = VECTORS / "context/globalreference"
    entry_text = (directory / "gctxentry.yaml").read_text()
    main = yaml.safe_load((directory / "main-deployment.yaml").read_text())
    main["metadata"]["namespace"] = existing
    loaded = load_policy_text(yaml.safe_dump(shipped("context/globalreference", world)) + "---\n" + entry_text, "v")
    with KubeAPI(tmp_path) as api:
        api.add_list("/apis/apps/v1/deployments", "Deployment", [main])
        client = KubeClient(Connection(server=api.url, ca_file=api.ca_file, token=api.token))
        gctx = GlobalContext(loaded.global_context, ClusterData(live=client, raw_source=client))
        verifier = Verifier(source=RegistrySignatureSource(world.client), global_context=gctx)
        image = f"{world.host}/kyverno/test-verify-image:signed"
        obj = yaml.safe_load((directory / "new-deployment.yaml").read_text().replace("ghcr.io/", f"{world.host}/"))
        request = {
            "uid": "1",
            "operation": "CREATE",
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": obj["metadata"]["namespace"],
            "object": obj,
        }
        assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == image
        decision = evaluate_request(loaded.image_policies, request, verifier=verifier, deadline=Deadline.after(20))
    assert [s.path for s in api.seen] == ["/apis/apps/v1/deployments"]  # read once, through the connection
    messages = [o.message for o in decision.outcomes]
    assert any(GLOBALREFERENCE_DENIAL in m for m in messages) is denied, decision
    if denied:
        assert decision.allowed is False and decision.message.endswith(GLOBALREFERENCE_DENIAL)

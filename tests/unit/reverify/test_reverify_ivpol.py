"""``sigward reverify`` re-verifies the ImageValidatingPolicy checks admission recorded (``ivpol/<check>`` under the
policy's content hash): an unchanged world writes nothing, a deleted signature flips the record with one finding
naming the IVPOL and its check, and a record of a policy whose CEL changed (another content hash) is left alone."""

from __future__ import annotations

import time
from typing import Any

import yaml

from sigward.admission.ivpol_cache import CachedChecks
from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.policy.loader import load_policy_text
from sigward.references import parse_image_reference
from sigward.reverify.service import ReverifyService, ReverifySettings
from sigward.store import StoredStatus
from sigward.store.memory import MemoryStore
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import evaluate_request, pod_request
from tests.support.memory import MemorySignatureSource
from tests.support.signing import new_key, signed_layer
from tests.unit.reverify.test_reverify_service import Clock, Recorder

HOST = "registry.test"
IMAGE = f"{HOST}/team/app@sha256:" + "4" * 64
KEY, OTHER = new_key("p256", slot=72), new_key("p256", slot=73)
SIGNED = "images.containers.map(i, verifyImageSignatures(i, [attestors.k])).all(n, n > 0)"


def ivpol(expression: str = "true") -> Any:
    doc = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "iv-signed"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                ]
            },
            "matchImageReferences": [{"glob": f"{HOST}/*"}],
            "attestors": [
                {"name": "k", "cosign": {"key": {"data": KEY.public_pem}, "ctlog": {"insecureIgnoreTlog": True}}}
            ],
            "validations": [
                {
                    "expression": f"{SIGNED} && {expression}",
                    "message": "not signed",
                }
            ],
        },
    }
    return load_policy_text(yaml.safe_dump(doc), "iv.yaml").image_policies


def source(signer: Any | None) -> MemorySignatureSource:
    ref = parse_image_reference(IMAGE)
    src = MemorySignatureSource()
    src.add_image(ref.reference, ref.digest)
    if signer is not None:
        s = signed_layer(signer, image_digest=ref.digest, docker_reference=ref.repository)
        layer = SignatureLayer(media_type=s.media_type, payload=s.payload, annotations=dict(s.annotations))
        src.add_signatures(ref.repository, ref.digest, (layer,))
    return src


def admit(store: MemoryStore, policies: Any) -> None:
    checks = CachedChecks(
        verifier=Verifier(source=source(KEY)),
        cache=TTLCache(max_entries=16, ttl=60),
        store=store,
        pass_ttl=3600,
    )
    decision = evaluate_request(policies, pod_request(IMAGE), checks=checks, deadline=Deadline.after(10))
    assert decision.allowed, decision


def reverify(store: MemoryStore, policies: Any, signer: Any | None, clock: Clock) -> tuple[Any, Recorder]:
    recorder = Recorder()
    service = ReverifyService(
        policies=tuple,
        image_policies=lambda: policies,
        verifier=Verifier(source=source(signer)),
        store=store,
        settings=ReverifySettings(),
        notifier=recorder,
        clock=clock,
    )
    return service.run(), recorder


def test_recorded_ivpol_check_is_reverified_and_flips_when_the_signature_goes() -> None:
    store, clock, policies = MemoryStore(), Clock(now=time.time()), ivpol()
    admit(store, policies)
    (record,) = store.scan(after="", limit=10)
    assert (record.rule, record.policy, record.verdict) == ("ivpol/signature:k", "iv-signed", StoredStatus.PASS)
    report, recorder = reverify(store, policies, KEY, clock)
    assert (report.examined, report.verified, report.updated, report.flips) == (1, 1, 0, ())
    report, recorder = reverify(store, policies, OTHER, clock)  # re-signed by someone else: the key no longer verifies
    (flip,) = report.flips
    assert (flip.policy, flip.rule, flip.before, flip.after) == ("iv-signed", "ivpol/signature:k", "pass", "fail")
    (finding,) = recorder.findings
    assert (finding.policy, finding.rule, finding.verdict) == ("iv-signed", "ivpol/signature:k", "fail")
    (record,) = store.scan(after="", limit=10)
    assert record.verdict is StoredStatus.FAIL and record.source == "reverify"


def test_record_of_a_changed_policy_is_reverified_under_the_new_policy() -> None:
    """The CEL changed (another content hash): as for ClusterPolicies after a policy change, the old record's check is
    evaluated again under the policy loaded now, so an image that lost its signature is still found."""
    store, clock = MemoryStore(), Clock(now=time.time())
    admit(store, ivpol())
    report, recorder = reverify(store, ivpol("1 == 1"), None, clock)
    (flip,) = report.flips
    assert (flip.rule, flip.before, flip.after) == ("ivpol/signature:k", "pass", "unsigned")
    assert [f.verdict for f in recorder.findings] == ["unsigned"]


def test_record_of_a_changed_policy_still_signed_is_no_finding() -> None:
    """Twin: the same policy change with the signature still there finds nothing."""
    store, clock = MemoryStore(), Clock(now=time.time())
    admit(store, ivpol())
    report, recorder = reverify(store, ivpol("1 == 1"), KEY, clock)
    assert report.flips == () and recorder.findings == []

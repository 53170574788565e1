"""Admission and push while the KMS holding the policy's key, or the verdict store, is unavailable.

The KMS is AWS KMS as boto3 reaches it (``AWS_ENDPOINT_URL_KMS``): a closed port, a server that never answers, or a
local server speaking KMS's JSON protocol (``GetPublicKey``) that can be switched between an outage and health.
The verdict store is only an optimisation for admission (an outage costs a verification, never a decision), while
the push handler cannot do its job without it and asks for redelivery (503).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sigward import logs, wiring
from sigward.admission.http import handle_admission
from sigward.push.http import handle_push_webhook
from sigward.push.service import PushService
from sigward.registry import CredentialStore, RegistryClient, RegistryConfig
from sigward.store.memory import MemoryStore
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource
from tests.integration.faults.conftest import DEADLINE, KEY, SLACK, FaultImages, require_signed
from tests.support.admission import pod, pod_request, review
from tests.support.faults import admission, wait_until_idle
from tests.support.httpservers import Reply, ScriptedServer, Seen, SilentServer
from tests.support.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, clear_ambient_aws
from tests.support.netutil import free_port
from tests.support.policies import dump
from tests.support.registry import OCI_MANIFEST, LocalRegistry

pytestmark = pytest.mark.registry

KMS_URI = "awskms:///alias/sigward-faults"
KMS_ENTRY = {"keys": {"kms": KMS_URI, "rekor": {"ignoreTlog": True}}}
ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class FakeKms:
    """AWS KMS's JSON protocol for GetPublicKey, answering with ``KEY``, or an outage while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.server = ScriptedServer(self._answer)

    def _answer(self, seen: Seen) -> Reply:
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if self.down:
            error = {"__type": "KMSInternalException", "message": "injected outage"}
            return Reply(500, headers, json.dumps(error).encode())
        assert seen.headers.get("x-amz-target") == "TrentService.GetPublicKey"
        body: dict[str, Any] = {
            "KeyId": ARN,
            "KeySpec": "ECC_NIST_P256",
            "KeyUsage": "SIGN_VERIFY",
            "PublicKey": base64.b64encode(KEY.public_der).decode(),
            "SigningAlgorithms": ["ECDSA_SHA_256"],
        }
        return Reply(200, headers, json.dumps(body).encode())

    def calls(self) -> int:
        return len(self.server.requests_seen())


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    yield monkeypatch


def signed_image(registry: LocalRegistry, images: FaultImages) -> str:
    return f"{registry.host}/{images.signed_repo}:v1"


@pytest.mark.parametrize("failure_policy", ["Fail", "Ignore"])
def test_kms_endpoint_refusing_connections(
    registry: LocalRegistry, fault_images: FaultImages, aws_env: pytest.MonkeyPatch, failure_policy: str
) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{free_port()}")
    policy = require_signed(registry.host, failure_policy=failure_policy, entries=[KMS_ENTRY])
    with admission(policy, insecure=[registry.host]) as adm:
        response, elapsed = adm.decide(signed_image(registry, fault_images))
        assert elapsed < DEADLINE + SLACK, elapsed
        [decision] = [line for line in adm.log_lines() if line["message"] == "admission decision"]
        [verdict] = decision["verdicts"]
        assert verdict["verdict"] == "error", verdict
        assert "AWS KMS unreachable" in verdict["message"], verdict["message"]
        assert response["allowed"] is (failure_policy == "Ignore"), response
        wait_until_idle(timeout=4.0)


def test_kms_outage_is_not_cached(
    registry: LocalRegistry, fault_images: FaultImages, aws_env: pytest.MonkeyPatch
) -> None:
    kms = FakeKms()
    try:
        aws_env.setenv("AWS_ENDPOINT_URL_KMS", kms.server.url)
        with admission(
            require_signed(registry.host, entries=[KMS_ENTRY]), insecure=[registry.host], deadline=3.0
        ) as adm:
            response, _ = adm.decide(signed_image(registry, fault_images))
            assert response["allowed"] is False
            assert "KMSInternalException" in response["status"]["message"]
            assert kms.calls() == 2  # the SDK retries a 5xx once (standard mode, two attempts)
            kms.down = False
            response, _ = adm.decide(signed_image(registry, fault_images))
            assert response["allowed"] is True, response
            assert kms.calls() == 3
            # the key itself is cached once fetched: a new image costs no KMS call
            other = f"{registry.host}/{fault_images.other_repo}:v1"
            assert adm.decide(other)[0]["allowed"] is True
            assert kms.calls() == 3
    finally:
        kms.server.close()


def test_kms_that_never_answers(
    registry: LocalRegistry, fault_images: FaultImages, aws_env: pytest.MonkeyPatch
) -> None:
    """The decision holds the deadline. The SDK call itself is bounded by whole-second timeouts and one retry, so
    the worker waiting on it is free a few seconds later (one worker per key: later requests share its fetch)."""
    with SilentServer() as silent:
        aws_env.setenv("AWS_ENDPOINT_URL_KMS", f"http://{silent.host}")
        policy = require_signed(registry.host, failure_policy="Fail", entries=[KMS_ENTRY])
        with admission(policy, insecure=[registry.host]) as adm:
            response, elapsed = adm.decide(signed_image(registry, fault_images))
            assert response["allowed"] is False
            assert "deadline exceeded" in response["status"]["message"]
            assert DEADLINE - 0.1 <= elapsed < DEADLINE + SLACK, elapsed
            # two attempts of ceil(remaining deadline) = 2 s each, plus the SDK's backoff: the worker outlives the
            # decision by a few seconds at most
            wait_until_idle(timeout=5.0)


# -- the verdict store -------------------------------------------------------------------------------------------------


def test_admission_decides_without_the_verdict_store(registry: LocalRegistry, fault_images: FaultImages) -> None:
    store = MemoryStore()
    store.available = False
    with admission(require_signed(registry.host), insecure=[registry.host], store=store) as adm:
        signed, _ = adm.decide(signed_image(registry, fault_images))
        unsigned, _ = adm.decide(f"{registry.host}/{fault_images.unsigned_repo}:v1")
        assert signed["allowed"] is True
        assert unsigned["allowed"] is False
        warnings = [line["message"] for line in adm.log_lines() if line["severity"] == "WARNING"]
        assert "verdict store lookup failed; verifying instead" in warnings
        assert "verdict store write failed" in warnings
        # back: the next verified image is recorded for other instances again
        store.available = True
        other = f"{registry.host}/{fault_images.other_repo}:v1"
        assert adm.decide(other)[0]["allowed"] is True
        assert [v.verdict for v in store.for_digest(fault_images.other_digest)] == ["pass"]


def _push_event(registry: LocalRegistry, repo: str, digest: str, event_id: str) -> bytes:
    target = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "repository": repo,
        "url": f"http://{registry.host}/v2/{repo}/manifests/{digest}",
        "tag": "v1",
    }
    return json.dumps({"events": [{"id": event_id, "action": "push", "target": target}]}).encode()


HEADERS = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}


def test_push_handler_asks_for_redelivery_while_the_store_is_down(
    registry: LocalRegistry, fault_images: FaultImages
) -> None:
    from sigward.policy.loader import load_policy_text

    store = MemoryStore()
    store.available = False
    policies = load_policy_text(dump(require_signed(registry.host)), "p.yaml").policies
    config = RegistryConfig(insecure_registries=frozenset({registry.host}), private_registries=frozenset({"127.0.0.1"}))
    with RegistryClient(config, credentials=CredentialStore.empty()) as client:
        service = PushService(
            policies=lambda: policies, verifier=Verifier(source=RegistrySignatureSource(client)), store=store
        )
        body = _push_event(registry, fault_images.signed_repo, fault_images.signed_digest, "store-down-1")
        captured = _capture_logs()
        try:
            down = handle_push_webhook(method="POST", headers=HEADERS, body=body, service=lambda: service, environ={})
        finally:
            logs.set_stream(None)
        assert down.status == 503, down.body
        assert "verdict store unavailable" in json.loads(down.body)["error"]
        assert "push handling failed; asking for redelivery" in captured.getvalue()
        store.available = True
        up = handle_push_webhook(method="POST", headers=HEADERS, body=body, service=lambda: service, environ={})
        assert up.status == 200, up.body
        assert json.loads(up.body)["results"][0]["status"] == "recorded"


def _capture_logs() -> Any:
    import io

    stream = io.StringIO()
    logs.set_stream(stream)
    return stream


@pytest.fixture
def runtime_env(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.MonkeyPatch]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(dump(require_signed(registry.host)))
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's directory would go")
    monkeypatch.setenv("SIGWARD_POLICY", str(policy))
    monkeypatch.setenv("SIGWARD_STORE", f"sqlite:///{blocker}/verdicts.db")
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    monkeypatch.setenv("SIGWARD_DEADLINE_SECONDS", str(DEADLINE))
    for name in ("SIGWARD_ADMISSION_TOKEN", "SIGWARD_PUSH_SECRET"):
        monkeypatch.delenv(name, raising=False)
    wiring.reset()
    yield monkeypatch
    wiring.reset()


def test_unusable_sqlite_store_through_the_runtime(
    registry: LocalRegistry, fault_images: FaultImages, runtime_env: pytest.MonkeyPatch
) -> None:
    """``SIGWARD_STORE`` names a path that cannot be created: admission verifies without a store (and says so once),
    the push handler answers 503 so the registry redelivers."""
    assert not os.path.exists(os.environ["SIGWARD_STORE"][len("sqlite:///") :])
    captured = _capture_logs()
    try:
        answers = []
        for image in (signed_image(registry, fault_images), f"{registry.host}/{fault_images.unsigned_repo}:v1"):
            body = json.dumps(review(pod_request(pod(image)))).encode()
            resp = handle_admission(
                method="POST", path="/mutate", headers={}, body=body, service=wiring.process_services().admission
            )
            assert resp.status == 200
            answers.append(json.loads(resp.body)["response"]["allowed"])
        push = handle_push_webhook(
            method="POST",
            service=wiring.process_services().push,
            headers=HEADERS,
            body=_push_event(registry, fault_images.signed_repo, fault_images.signed_digest, "sqlite-1"),
        )
    finally:
        logs.set_stream(None)
    assert answers == [True, False]
    assert push.status == 503, push.body
    assert "unusable" in json.loads(push.body)["error"]
    text = captured.getvalue()
    assert text.count("verdict store unavailable; admission verifies without it") == 1

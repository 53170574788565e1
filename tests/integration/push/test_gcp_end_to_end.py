"""End to end on GCP's shape with the real gcloud emulators: an Artifact Registry notification published on the
Pub/Sub emulator's topic `gcr` reaches `sigward serve`'s push_pubsub through a push subscription; the verdict lands
in the Firestore emulator; the admission function then admits the same image from the stored verdict with zero
registry requests (counted)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import functions_framework
import pytest

from sigward import wiring
from sigward.store import open_store
from tests.support.admission import pod, pod_request, review
from tests.support.emulators import GcloudEmulator, gcloud_available
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.serve import REPO, Served
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(
        not (gcloud_available("pubsub-emulator") and gcloud_available("cloud-firestore-emulator")),
        reason="the gcloud Pub/Sub and Firestore emulators (google-cloud-cli-*-emulator + Java) are not installed",
    ),
]
KEY = new_key("p256", slot=41)
PROJECT = "sigward-e2e"


@pytest.fixture(scope="module")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GcloudEmulator, GcloudEmulator]]:
    workdir = tmp_path_factory.mktemp("gcp-emulators")
    pubsub = GcloudEmulator("pubsub", workdir / "pubsub")
    firestore = GcloudEmulator("firestore", workdir / "firestore")
    pubsub.start()
    try:
        firestore.start()
        try:
            yield pubsub, firestore
        finally:
            firestore.stop()
    finally:
        pubsub.stop()


def test_artifact_registry_push_to_admission(
    emulators: tuple[GcloudEmulator, GcloudEmulator],
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pubsub_emu, firestore_emu = emulators
    digest = registry.push_image("gcp/app", tag="v1")
    attach_signatures(registry, "gcp/app", digest, [signed_layer(KEY, image_digest=digest)])
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        dump(cluster_policy("require-signed", [key_verification([f"{registry.host}/*"], [keys_entry(KEY.public_pem)])]))
    )
    store_uri = f"firestore://{PROJECT}/verdicts"
    env = {
        "SIGWARD_POLICY": str(policy),
        "SIGWARD_STORE": store_uri,
        "FIRESTORE_EMULATOR_HOST": firestore_emu.host,
        "SIGWARD_INSECURE_REGISTRIES": registry.host,
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
    }
    served = Served(tmp_path, env)
    served.start()
    try:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emu.host)
        from google.cloud import pubsub_v1  # type: ignore[attr-defined,import-untyped,unused-ignore]

        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topic = publisher.topic_path(PROJECT, "gcr")
        publisher.create_topic(name=topic)
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, "sigward-push"),
            topic=topic,
            push_config=pubsub_v1.types.PushConfig(push_endpoint=f"{served.url}/push/pubsub"),
        )
        message = {
            "action": "INSERT",
            "digest": f"{registry.host}/gcp/app@{digest}",
            "tag": f"{registry.host}/gcp/app:v1",
        }
        publisher.publish(topic, json.dumps(message).encode()).result(timeout=30)

        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emu.host)
        store = open_store(store_uri)
        deadline = time.monotonic() + 60
        verdicts: list[str] = []
        while time.monotonic() < deadline and "pass" not in verdicts:
            verdicts = [v.verdict for v in store.for_digest(digest)]
            time.sleep(0.3)
        assert "pass" in verdicts, served.log()
        (recorded,) = [v for v in store.for_digest(digest) if v.verdict == "pass"]
        assert recorded.source == "gcr"
        store.close()
    finally:
        served.stop()

    # admission on a fresh instance, reading the same Firestore: the pinned image costs no registry request
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SIGWARD_ADMISSION_TOKEN", raising=False)
    wiring.reset()
    try:
        app = functions_framework.create_app("admission", str(REPO / "functions" / "main.py"))  # type: ignore[no-untyped-call]
        client = app.test_client()
        pinned = f"{registry.host}/gcp/app@{digest}"
        started = time.perf_counter()
        body = client.post("/mutate", json=review(pod_request(pod(pinned)))).get_json()
        stored_ms = (time.perf_counter() - started) * 1000
        assert body["response"]["allowed"] is True, body
        assert wiring.process_services().registry().stats.total == 0
        tag_form = f"{registry.host}/gcp/app:v1"
        body = client.post("/mutate", json=review(pod_request(pod(tag_form)))).get_json()
        assert body["response"]["allowed"] is True
        assert wiring.process_services().registry().stats.total == 1  # only the tag → digest HEAD
        print(f"admission from a stored push verdict: {stored_ms:.1f} ms, 0 registry requests (pinned)")
    finally:
        wiring.reset()


def test_malformed_pubsub_message_is_acknowledged(tmp_path: Path) -> None:
    from sigward.push.http import handle_push_pubsub

    envelope = {"subscription": "s", "message": {"messageId": "1", "data": base64.b64encode(b"not json").decode()}}
    resp = handle_push_pubsub(
        method="POST",
        headers={"Content-Type": "application/json"},
        body=json.dumps(envelope).encode(),
        service=wiring.process_services().push,
        environ={},
    )
    assert resp.status == 200 and b"acknowledged" in resp.body

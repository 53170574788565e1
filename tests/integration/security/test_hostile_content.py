"""Hostile content, end to end: oversized and deeply nested input (AdmissionReviews, push events, policies, YAML alias
bombs), compressed answers and gzip bombs from a registry, a signature manifest with thousands of layers, and
signatures or attestations that are valid but about another image.

Every case is refused or bounded: a precise error or a denial, in bounded time and with a bounded number of
registry requests — never an allow, never a crash.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sigward.admission.http import handle_admission
from sigward.cli import run
from sigward.errors import PolicyError
from sigward.events import MAX_WEBHOOK_BYTES
from sigward.policy.loader import load_policies, load_policy_text
from sigward.push.http import handle_push_pubsub, handle_push_webhook
from sigward.verify.cosign import ANNOTATION_SIGNATURE
from sigward.verify.dsse import DSSE_MEDIA_TYPE
from sigward.verify.oci import MAX_SIGNATURE_LAYERS
from tests.support.admission import pod, pod_request, review
from tests.support.bundles import dsse_bundle, encode, message_bundle, push_bundle_referrer, statement
from tests.support.faults import FaultProxy, admission, gzip_bomb, is_blob, is_signature_manifest
from tests.support.httpservers import Reply
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import OCI_MANIFEST, LocalRegistry
from tests.support.signing import (
    SignedLayer,
    attach_attestations,
    attach_signatures,
    attestation_layer,
    in_toto_statement,
    new_key,
    signed_layer,
)

pytestmark = pytest.mark.registry

KEY = new_key("p256", slot=73)
SLSA = "https://slsa.dev/provenance/v1"
DEEP = b"[" * 100_000 + b"]" * 100_000


def require_signed(host: str, *, failure_policy: str = "Ignore", attestations: bool = False, kind: str = "") -> Any:
    iv = key_verification([f"{host}/*"], [keys_entry(KEY.public_pem)], mutate_digest=False)
    if attestations:
        iv["attestations"] = [{"type": SLSA, "attestors": [{"entries": [keys_entry(KEY.public_pem)]}]}]
    if kind:
        iv["type"] = kind
    return cluster_policy("require-signed", [iv], failure_policy=failure_policy)


def nested(depth: int) -> Any:
    doc: Any = "leaf"
    for _ in range(depth):
        doc = {"n": doc}
    return doc


# -- oversized and nested requests -------------------------------------------------------------------------------------


def test_admission_reviews_too_large_or_too_deep(registry: LocalRegistry) -> None:
    with admission(require_signed(registry.host), insecure=[registry.host]) as adm:

        def post(doc: Any = None, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
            body = raw if raw is not None else json.dumps(doc).encode()
            resp = handle_admission(
                method="POST", path="/mutate", headers={}, body=body, service=lambda: adm.service, environ={}
            )
            return resp.status, json.loads(resp.body)

        def with_annotation(value: Any) -> Any:
            obj = pod(f"{registry.host}/unsigned/never:v1")
            obj["metadata"]["annotations"] = {"deep": value}
            return review(pod_request(obj))

        # 128 levels of JSON are accepted and decided (the unsigned image is denied); 129 are refused unread
        status, body = post(with_annotation(nested(128 - 6)))
        assert status == 200 and body["response"]["allowed"] is False
        status, body = post(with_annotation(nested(128)))
        assert status == 400 and "nested deeper than 128 levels" in body["error"]
        status, body = post(raw=b" " * (4 * 1024 * 1024 + 1))
        assert status == 400 and "exceeds the limit" in body["error"]
        # 10,000 containers fit in the size limit; the work does not grow with them: refused after 256, no requests
        adm.client.stats.reset()
        started = time.monotonic()
        crowd = pod(*[f"{registry.host}/crowd/app{i}:v1" for i in range(10_000)])
        status, body = post(review(pod_request(crowd)))
        assert status == 200 and body["response"]["allowed"] is False
        assert "more than 256 images" in body["response"]["status"]["message"]
        assert time.monotonic() - started < 2.0
        assert adm.client.stats.total == 0


@pytest.mark.parametrize("shape", ["deep", "oversized"])
def test_push_events_too_large_or_too_deep(shape: str) -> None:
    """Webhook deliveries are refused with a 400; a Pub/Sub message is acknowledged (it would fail the same way on
    every redelivery) — neither is a 5xx, and no service is even built."""

    def no_service() -> Any:
        raise AssertionError("a malformed event must not reach the push service")

    if shape == "deep":
        body = b'{"events": [' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"]}"
    else:
        body = b'{"events": [' + b" " * (MAX_WEBHOOK_BYTES + 1) + b"]}"
    webhook = handle_push_webhook(
        method="POST", headers={"Content-Type": "application/json"}, body=body, service=no_service, environ={}
    )
    pubsub = handle_push_pubsub(method="POST", headers={}, body=body, service=no_service, environ={})
    assert webhook.status == 400, webhook.body
    assert pubsub.status == 200 and json.loads(pubsub.body)["acknowledged"] is True
    for resp in (webhook, pubsub):
        assert b"Traceback" not in resp.body


BILLION_LAUGHS = "\n".join(
    ["apiVersion: kyverno.io/v1", "kind: ClusterPolicy", 'a0: &a0 ["lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    + ["metadata: {name: *a9}", "spec: {rules: []}"]
)
MANY_ALIASES = "a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n"
# under the alias cap (50 aliases) but 10^5 nodes once expanded
WIDE_BOMB = "\n".join(
    ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)] + ["kind: x"]
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BILLION_LAUGHS, "more than 100000 YAML nodes with aliases expanded"),
        (MANY_ALIASES, "more than 100 YAML aliases"),
        (WIDE_BOMB, "more than 100000 YAML nodes with aliases expanded"),
        ("a: &a [*a]\n", "recursive YAML alias"),
        ("[" * 10_000 + "]" * 10_000, "nested deeper than 64 levels"),
        ("x: " + "{a: " * 100 + "1" + "}" * 100, "nested deeper than 64 levels"),
        ("kind: ClusterPolicy\n" + "# padding\n" * 120_000, "larger than 1048576 bytes"),
    ],
    ids=[
        "billion-laughs",
        "many-aliases",
        "wide-alias-bomb",
        "recursive-alias",
        "deep-flow",
        "deep-mapping",
        "oversized",
    ],
)
def test_hostile_policies_are_refused_quickly(text: str, message: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PolicyError) as err:
        load_policy_text(text, "hostile.yaml")
    assert message in str(err.value)
    # the same from a file and through `sigward check-policy`: exit 2, the problem named, no traceback
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError):
        load_policies([path])
    out, errout = io.StringIO(), io.StringIO()
    assert run(["check-policy", str(path)], out=out, err=errout) == 2
    assert message in out.getvalue()
    assert time.monotonic() - started < 3.0


# -- compressed answers ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_image(registry: LocalRegistry) -> str:
    digest = registry.push_image("hostile/app", tag="v1")
    attach_signatures(registry, "hostile/app", digest, [signed_layer(KEY, image_digest=digest)])
    return "hostile/app:v1"


@pytest.mark.parametrize("where", [is_signature_manifest, is_blob], ids=["manifest", "blob"])
@pytest.mark.parametrize("payload", ["compressed", "bomb"])
def test_gzip_encoded_answers_are_refused(
    registry: LocalRegistry, hostile_image: str, where: Callable[[Any], bool], payload: str
) -> None:
    """The client asks for identity encoding; a registry answering gzip anyway (the real body compressed, or 64 MiB of
    zeros in 64 KiB) is refused without inflating anything: a decided failure, denied under failurePolicy Ignore."""
    bomb = gzip_bomb() if payload == "bomb" else None
    with FaultProxy(registry.url) as proxy:
        proxy.fault = proxy.gzip_encoded(when=where, body=bomb)
        with admission(require_signed(proxy.host), insecure=[proxy.host]) as adm:
            response, elapsed = adm.decide(f"{proxy.host}/{hostile_image}")
        seen = proxy.seen()
    assert response["allowed"] is False, response
    assert "Content-Encoding 'gzip' although identity was requested" in response["status"]["message"]
    assert elapsed < 1.0
    assert seen and all(s.headers.get("accept-encoding") == "identity" for s in seen)


# -- a signature manifest with thousands of layers ---------------------------------------------------------------------


def _sig_manifest(layers: list[tuple[SignedLayer, str]], config_digest: str) -> bytes:
    """A `.sig` manifest with exactly these (layer, blob digest) pairs, duplicates allowed."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": config_digest},
        "layers": [
            {
                "mediaType": layer.media_type,
                "size": len(layer.payload),
                "digest": digest,
                "annotations": dict(layer.annotations),
            }
            for layer, digest in layers
        ],
    }
    return json.dumps(manifest).encode()


@pytest.mark.parametrize(("count", "fragment"), [(4000, "no matching signatures"), (5000, "more than 4096 layers")])
def test_thousands_of_signature_layers_cost_bounded_work(registry: LocalRegistry, count: int, fragment: str) -> None:
    """A registry answers the `.sig` tag with thousands of layers, the one valid signature last. Only the first
    MAX_SIGNATURE_LAYERS are read: the valid one is never reached (denied), and time and blob requests stay small.
    Beyond 4096 descriptors the manifest is refused outright, before any blob is fetched."""
    repo = f"hostile/layers{count}"
    digest = registry.push_image(repo, tag="v1")
    good = signed_layer(KEY, image_digest=digest)
    bogus = SignedLayer(payload=good.payload, annotations={ANNOTATION_SIGNATURE: "MEUCIQDbogus"})
    blob = registry.push_blob(repo, good.payload)
    raw = _sig_manifest([(bogus, blob)] * (count - 1) + [(good, blob)], registry.push_blob(repo, b"{}"))
    with FaultProxy(registry.url) as proxy:

        def many_layers(seen: Any) -> Reply | None:
            if is_signature_manifest(seen):
                return Reply(200, {"Content-Type": OCI_MANIFEST}, raw)
            if is_blob(seen) and seen.path.endswith(blob):
                return Reply(200, {}, good.payload)  # answered here: fast, so only the count of requests matters
            return None

        proxy.fault = many_layers
        with admission(require_signed(proxy.host, failure_policy="Fail"), insecure=[proxy.host], deadline=5.0) as adm:
            response, elapsed = adm.decide(f"{proxy.host}/{repo}:v1")
            by_kind = adm.client.stats.snapshot()["by_kind"]
    assert response["allowed"] is False
    assert fragment in response["status"]["message"]  # decided, not a timeout
    # 32 sequential blob requests (~45 ms each against this test server), not 4000
    assert elapsed < 3.0, elapsed
    assert by_kind.get("blob", 0) <= (MAX_SIGNATURE_LAYERS if count <= 4096 else 0), by_kind
    assert sum(by_kind.values()) <= MAX_SIGNATURE_LAYERS + 8, by_kind


# -- valid material about another image --------------------------------------------------------------------------------


def _verify(registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: Any, image: str) -> Any:
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    path = tmp_path / "policy.yaml"
    path.write_text(dump(policy))
    out, err = io.StringIO(), io.StringIO()
    code = run(["verify", "--json", "--policy", str(path), image], out=out, err=err)
    [row] = json.loads(out.getvalue())["results"]
    return code, row


def test_signature_whose_payload_names_another_digest(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A genuine signature by the trusted key — of image B — copied into image A's `.sig`: `sigward verify` fails A."""
    a = registry.push_image("hostile/replay", tag="a")
    b = registry.push_image("hostile/replay", tag="b")
    attach_signatures(registry, "hostile/replay", a, [signed_layer(KEY, image_digest=b)])
    code, row = _verify(
        registry, tmp_path, monkeypatch, require_signed(registry.host), f"{registry.host}/hostile/replay:a"
    )
    assert code == 1 and row["verdict"] == "fail", row
    assert f"invalid or missing digest in claim: {b}" in row["message"]


def test_attestation_whose_subject_is_another_image(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = registry.push_image("hostile/attest", tag="a")
    b = registry.push_image("hostile/attest", tag="b")
    attach_signatures(registry, "hostile/attest", a, [signed_layer(KEY, image_digest=a)])
    attach_attestations(registry, "hostile/attest", a, [attestation_layer(KEY, in_toto_statement(b, SLSA, {}))])
    policy = require_signed(registry.host, attestations=True)
    code, row = _verify(registry, tmp_path, monkeypatch, policy, f"{registry.host}/hostile/attest:a")
    assert code == 1 and row["verdict"] == "fail", row
    assert "does not name the image digest" in row["message"]


# -- one hostile layer next to valid ones ------------------------------------------------------------------------------


# Regression test (was a strict xfail until fixed in da1389d): dsse.parse_envelope lets json's RecursionError escape
# (it catches only ValueError); it propagates out of verify_attestations_with_key's per-layer loop, so one hostile
# `.att` layer turns a valid attestation into 'sigward internal error (denied)'
def test_a_hostile_attestation_layer_does_not_sink_a_valid_one(registry: LocalRegistry) -> None:
    digest = registry.push_image("hostile/deepatt", tag="v1")
    attach_signatures(registry, "hostile/deepatt", digest, [signed_layer(KEY, image_digest=digest)])
    hostile = SignedLayer(
        payload=DEEP, annotations={ANNOTATION_SIGNATURE: "", "predicateType": SLSA}, media_type=DSSE_MEDIA_TYPE
    )
    valid = attestation_layer(KEY, in_toto_statement(digest, SLSA, {"builder": {"id": "ci"}}))
    attach_attestations(registry, "hostile/deepatt", digest, [hostile, valid])
    with admission(require_signed(registry.host, attestations=True), insecure=[registry.host]) as adm:
        response, _ = adm.decide(f"{registry.host}/hostile/deepatt:v1")
    assert response["allowed"] is True, response


# Regression test (was a strict xfail until fixed in da1389d): bundles.parse_bundle does
# _HASH_NAMES.get(messageDigest.algorithm) on an unchecked value; a list raises TypeError out of
# verify_bundle_signatures' per-bundle loop, so one hostile referrer turns a valid Sigstore bundle signature into
# 'sigward internal error (denied)'
def test_a_hostile_referrer_does_not_sink_a_valid_bundle(registry: LocalRegistry) -> None:
    repo = "hostile/referrers"
    digest = registry.push_image(repo, tag="v1")
    push_bundle_referrer(
        registry, repo, digest, encode(dsse_bundle(KEY, statement(digest))), created="2026-01-01T00:00:00Z"
    )
    hostile = message_bundle(KEY, bytes.fromhex(digest.split(":", 1)[1]))
    hostile["messageSignature"]["messageDigest"]["algorithm"] = []
    push_bundle_referrer(registry, repo, digest, encode(hostile), created="2026-02-01T00:00:00Z")
    with admission(require_signed(registry.host), insecure=[registry.host]) as adm:
        response, _ = adm.decide(f"{registry.host}/{repo}:v1")
    assert response["allowed"] is True, response

"""OpenTelemetry spans (in-memory exporter): one admission → one span per rule × image → the registry requests and
the KMS public-key fetch beneath it, all in one trace, against the real local registry and a real AWS KMS
(moto_server). Off by default: no opentelemetry import, no spans; bad OTEL_* settings are configuration errors."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sigward import tracing
from sigward.admission.http import handle_admission
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.errors import ConfigurationError
from sigward.kms.aws import AwsKms
from sigward.policy.kms_uri import parse_kms_uri
from sigward.policy.loader import load_policy_text
from sigward.registry import RegistryClient, RegistryConfig
from sigward.verify.cosign import ANNOTATION_SIGNATURE
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource
from sigward.verify.simplesigning import make_payload
from tests.support.admission import pod, pod_request, review
from tests.support.moto import MotoServer, aws_kms_env, aws_moto_admin, aws_moto_keys, aws_moto_server  # noqa: F401
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import SignedLayer, attach_signatures

pytestmark = pytest.mark.registry
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_provider(None)


def test_admission_rule_image_registry_kms_spans(
    spans: InMemorySpanExporter,
    registry: LocalRegistry,
    aws_kms_env: MotoServer,  # noqa: F811
    aws_moto_keys: dict[str, dict[str, str]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri = f"awskms:///{aws_moto_keys['ECC_NIST_P256']['alias']}"
    digest = registry.push_image("traced/app", tag="v1")
    payload = make_payload(docker_reference=f"{registry.host}/traced/app", manifest_digest=digest)
    signature = AwsKms().sign(parse_kms_uri(uri), payload, timeout=5)
    attach_signatures(
        registry,
        "traced/app",
        digest,
        [SignedLayer(payload=payload, annotations={ANNOTATION_SIGNATURE: base64.b64encode(signature).decode()})],
    )
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    policies = load_policy_text(
        dump(cluster_policy("kms-signed", [key_verification([f"{registry.host}/traced/*"], [keys_entry(uri)])])),
        "p.yaml",
    ).policies
    client = RegistryClient(RegistryConfig.from_env())
    service = AdmissionService(
        policies=lambda: policies,
        verifier=Verifier(source=RegistrySignatureSource(client)),
        settings=AdmissionSettings(deadline_seconds=10),
    )
    image = f"{registry.host}/traced/app:v1"
    request = pod_request(pod(image))
    try:
        answer = handle_admission(
            method="POST",
            path="/mutate",
            headers={},
            body=json.dumps(review(request)).encode(),
            service=lambda: service,
        )
    finally:
        service.close()
        client.close()
    assert json.loads(answer.body)["response"]["allowed"] is True

    finished = spans.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for s in finished:
        by_name.setdefault(s.name, []).append(s)
    (admission,) = by_name["sigward.admission"]
    (verify,) = by_name["sigward.verify"]
    registry_spans = by_name["sigward.registry.request"]
    (kms,) = by_name["sigward.kms.public_key"]
    assert dict(admission.attributes) == {
        "uid": request["uid"],
        "mode": "mutate",
        "operation": "CREATE",
        "kind": "Pod",
        "namespace": "default",
        "allowed": True,
        "checks": 1,
    }
    assert verify.parent.span_id == admission.context.span_id  # across the verification thread
    assert (verify.attributes["policy"], verify.attributes["image"], verify.attributes["verdict"]) == (
        "kms-signed",
        image,
        "pass",
    )
    assert verify.attributes["source"] == "cold"
    trace_id = admission.context.trace_id
    assert {s.context.trace_id for s in (*registry_spans, kms)} == {trace_id}
    assert all(s.parent is not None for s in (*registry_spans, kms))
    kinds = {s.attributes["kind"] for s in registry_spans}
    assert {"manifest.get"} <= kinds or {"manifest.head"} <= kinds
    assert all(s.attributes["host"] == registry.host for s in registry_spans)
    assert kms.attributes["scheme"] == "awskms"
    text = json.dumps([dict(s.attributes or {}) for s in finished])
    assert "Bearer" not in text and "AWS_SECRET" not in text


def test_registry_failure_is_recorded_on_its_span(spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    from sigward.deadline import Deadline
    from sigward.errors import SigwardError
    from sigward.references import parse_image_reference
    from tests.support.netutil import free_port

    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", dead)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    client = RegistryClient(RegistryConfig.from_env())
    try:
        with pytest.raises(SigwardError):
            client.resolve(parse_image_reference(f"{dead}/x/y:v1"), deadline=Deadline.after(3))
    finally:
        client.close()
    failed = [s for s in spans.get_finished_spans() if s.name == "sigward.registry.request"]
    assert failed and not failed[-1].status.is_ok
    assert any(e.name == "exception" for e in failed[-1].events)


def test_off_by_default_imports_nothing(tmp_path: Path) -> None:
    code = (
        "import sys; from sigward import tracing; "
        "from sigward.admission import http, service; from sigward.registry import transport; "
        "print(tracing.configure_from_env({}), tracing.enabled(), "
        "any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "False", "False"]
    assert tracing.span("x") is tracing.span("y")  # the shared no-op: nothing allocated per call


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False),
        ({"OTEL_SERVICE_NAME": "only-a-name"}, False),
    ],
)
def test_wanted(env: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted(env) is wanted


def test_unknown_exporter_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        tracing.check({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_otlp_without_its_package_is_a_configuration_error() -> None:
    import importlib.util

    if importlib.util.find_spec("opentelemetry.exporter") is not None:
        pytest.skip("the OTLP exporter is installed here; the missing-package path cannot be exercised")
    with pytest.raises(ConfigurationError, match="opentelemetry-exporter-otlp-proto-http"):
        tracing.check({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})


def test_console_exporter_configures_and_shuts_down() -> None:
    assert tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "sigward-test"})
    try:
        assert tracing.enabled()
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


# -- every deployment shape: the function targets and the verifying CLI commands trace too (not only serve)


def _in_memory(exporter: InMemorySpanExporter) -> Any:
    """A stand-in for configure_from_env that installs the in-memory exporter when OTEL_* asks for tracing."""

    def configure(environ: Any) -> bool:
        if not tracing.wanted(environ):
            return False
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing.use_provider(provider)
        return True

    return configure


def test_function_target_traces_once_per_process(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions_framework

    from sigward import wiring
    from tests.support.signing import new_key, signed_layer

    key = new_key("p256", slot=71)
    digest = registry.push_image("traced/fn", tag="v1")
    attach_signatures(registry, "traced/fn", digest, [signed_layer(key, image_digest=digest)])
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        dump(cluster_policy("fn", [key_verification([f"{registry.host}/traced/*"], [keys_entry(key.public_pem)])]))
    )
    for name, value in {
        "SIGWARD_POLICY": str(policy),
        "SIGWARD_STORE": "memory:",
        "SIGWARD_INSECURE_REGISTRIES": registry.host,
        "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
        "OTEL_TRACES_EXPORTER": "console",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SIGWARD_ADMISSION_TOKEN", raising=False)
    exporter = InMemorySpanExporter()
    calls: list[int] = []
    configure = _in_memory(exporter)

    def counting(environ: Any) -> bool:
        calls.append(os.getpid())
        return bool(configure(environ))

    monkeypatch.setattr(tracing, "configure_from_env", counting)
    monkeypatch.setattr(tracing, "_configured_in", None)
    wiring.reset()
    try:
        app = functions_framework.create_app("admission", str(REPO_ROOT / "functions" / "main.py"))  # type: ignore[no-untyped-call]
        client = app.test_client()
        for _ in range(2):
            body = client.post("/mutate", json=review(pod_request(pod(f"{registry.host}/traced/fn:v1")))).get_json()
            assert body["response"]["allowed"] is True, body
    finally:
        wiring.reset()
        tracing.use_provider(None)
    assert calls == [os.getpid()]  # configured on the first request only
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("sigward.admission") == 2 and "sigward.registry.request" in names


def test_function_target_without_otel_settings_configures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracing, "_configured_in", None)
    assert tracing.ensure_configured(os.environ) is False
    assert not tracing.enabled()


def test_cli_verify_traces_and_flushes(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sigward.cli import run
    from tests.support.signing import new_key, signed_layer

    key = new_key("p256", slot=72)
    digest = registry.push_image("traced/cli", tag="v1")
    attach_signatures(registry, "traced/cli", digest, [signed_layer(key, image_digest=digest)])
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        dump(cluster_policy("cli", [key_verification([f"{registry.host}/traced/*"], [keys_entry(key.public_pem)])]))
    )
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    exporter = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "configure_from_env", _in_memory(exporter))
    shutdowns: list[bool] = []
    real_shutdown = tracing.shutdown

    def shutdown() -> None:
        shutdowns.append(True)
        real_shutdown()

    monkeypatch.setattr(tracing, "shutdown", shutdown)
    code = run(["verify", "--policy", str(policy), f"{registry.host}/traced/cli:v1"])
    assert code == 0
    assert shutdowns == [True] and not tracing.enabled()
    assert "sigward.registry.request" in [s.name for s in exporter.get_finished_spans()]

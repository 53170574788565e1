"""Manifest parsing, Retry-After, configuration and the named limits."""

from __future__ import annotations

import email.utils
import json
from typing import Any

import pytest

from sigward.errors import ConfigurationError, VerificationFailure
from sigward.registry import config as config_module
from sigward.registry import models
from sigward.registry.config import RegistryConfig
from sigward.registry.models import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    compute_digest,
)
from sigward.registry.transport import parse_retry_after

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


def desc(digest: str = D1, media_type: str = "application/octet-stream", **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": 10, **extra}


def parse(data: Any, content_type: str = "") -> Manifest:
    raw = json.dumps(data).encode() if not isinstance(data, bytes) else data
    return Manifest.parse(raw, digest=compute_digest(raw), content_type=content_type, where="reg/app:tag")


def test_oci_manifest_parts() -> None:
    m = parse(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": desc(D1, "application/vnd.oci.empty.v1+json"),
            "layers": [desc(D2, "application/vnd.dev.sigstore.bundle.v0.3+json", annotations={"k": "v"})],
            "subject": desc(D1, OCI_MANIFEST),
            "annotations": {"org.opencontainers.image.created": "now"},
        }
    )
    assert not m.is_index
    assert m.config == Descriptor("application/vnd.oci.empty.v1+json", D1, 10)
    assert [layer.digest for layer in m.layers] == [D2]
    assert dict(m.layers[0].annotations) == {"k": "v"}
    assert m.subject is not None and m.subject.media_type == OCI_MANIFEST
    assert m.artifact_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert dict(m.annotations) == {"org.opencontainers.image.created": "now"}
    assert m.manifests == ()


def test_index_parts_and_media_type_from_header() -> None:
    m = parse({"schemaVersion": 2, "manifests": [desc(D1, DOCKER_MANIFEST)]}, DOCKER_MANIFEST_LIST)
    assert m.is_index and m.media_type == DOCKER_MANIFEST_LIST
    assert m.config is None and m.layers == ()
    assert [d.digest for d in m.manifests] == [D1]


def test_media_type_inferred_when_absent() -> None:
    assert parse({"schemaVersion": 2, "manifests": []}, "application/json").media_type == OCI_INDEX
    assert parse({"schemaVersion": 2, "config": desc(), "layers": []}).media_type == OCI_MANIFEST


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (b"not json", "", "not valid JSON"),
        (b"\xff\xfe", "", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "", "not valid JSON"),
        (b"[]", "", "not a JSON object"),
        (
            {"schemaVersion": 1, "mediaType": "application/vnd.docker.distribution.manifest.v1+json"},
            "",
            "schema 1",
        ),
        (
            {"schemaVersion": 1, "fsLayers": []},
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "schema 1",
        ),
        ({"schemaVersion": 2, "mediaType": "text/html"}, "", "not an OCI or Docker v2"),
        (
            {"schemaVersion": 3, "mediaType": OCI_MANIFEST, "config": desc(), "layers": []},
            "",
            "schemaVersion",
        ),
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}, "", "descriptor must be an object"),
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc()}, "", "layers must be a list"),
        (
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc("md5:abc"), "layers": []},
            "",
            "digest",
        ),
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(size=-1), "layers": []}, "", "size"),
        (
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(size=True), "layers": []},
            "",
            "size",
        ),
        (
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": desc(annotations={"a": 1}),
                "layers": [],
            },
            "",
            "annotations",
        ),
        (
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(), "layers": []},
            OCI_INDEX,
            "served as",
        ),
        (
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(), "layers": [desc()] * 5000},
            "",
            "more than 4096 layers",
        ),
    ],
)
def test_malformed_manifests_are_refused(data: Any, content_type: str, message: str) -> None:
    with pytest.raises(VerificationFailure, match=message) as err:
        parse(data, content_type)
    assert "reg/app:tag" in str(err.value)


def test_descriptor_hash_ignores_annotations() -> None:
    a = Descriptor("t", D1, 1, {"x": "y"})
    assert a == Descriptor("t", D1, 1, {"x": "y"})
    assert hash(a) == hash(Descriptor("t", D1, 1))


def test_manifest_repr_has_no_body() -> None:
    m = parse({"schemaVersion": 2, "manifests": []})
    assert "manifests" not in repr(m)


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("9" * 100) is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_config_from_env() -> None:
    cfg = RegistryConfig.from_env(
        {
            "SIGWARD_INSECURE_REGISTRIES": " 127.0.0.1:5000, Reg.Local:80 ,,",
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1,registry.internal",
            "REQUESTS_CA_BUNDLE": "/etc/ca.pem",
        }
    )
    assert cfg.insecure_registries == frozenset({"127.0.0.1:5000", "reg.local:80"})
    assert cfg.private_registries == frozenset({"127.0.0.1", "registry.internal"})
    assert cfg.ca_bundle == "/etc/ca.pem"
    assert cfg.is_insecure("127.0.0.1:5000") and not cfg.is_insecure("127.0.0.1")
    empty = RegistryConfig.from_env({})
    assert empty.insecure_registries == frozenset() and empty.private_registries == frozenset()


@pytest.mark.parametrize(
    "kwargs",
    [{"connect_timeout": 0}, {"read_timeout": -1}, {"max_manifest_bytes": 0}, {"max_retries": -1}],
)
def test_config_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RegistryConfig(**kwargs)


def test_limits_are_named_and_sane() -> None:
    assert config_module.DEFAULT_MAX_MANIFEST_BYTES == 4 * 1024 * 1024
    assert config_module.DEFAULT_MAX_BLOB_BYTES == 16 * 1024 * 1024
    cfg = RegistryConfig()
    assert cfg.max_manifest_bytes == config_module.DEFAULT_MAX_MANIFEST_BYTES
    assert cfg.max_blob_bytes == config_module.DEFAULT_MAX_BLOB_BYTES
    assert 0 < cfg.connect_timeout <= cfg.read_timeout <= 30
    assert cfg.max_retry_after <= 10
    assert models.MAX_DESCRIPTORS >= 128
    from sigward.registry import auth, credentials, transport

    assert transport.MAX_REDIRECTS == 5
    assert transport.POOL_MAXSIZE >= 16
    assert auth.DEFAULT_TOKEN_SECONDS == 60
    assert credentials.HELPER_TIMEOUT_SECONDS <= 30

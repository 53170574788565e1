"""Admission fixtures: signed and unsigned images in the real local registry, policies written to disk, and the
``admission`` target served by functions-framework itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from sigward import wiring
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class AdmissionImages:
    host: str
    signed: str
    signed_digest: str
    unsigned: str
    unsigned_digest: str
    other: str  # a second signed image
    other_digest: str


@pytest.fixture(scope="session")
def adm_images(registry: LocalRegistry) -> AdmissionImages:
    key = new_key("p256")
    signed_digest = registry.push_image("adm/signed", tag="v1")
    attach_signatures(registry, "adm/signed", signed_digest, [signed_layer(key, image_digest=signed_digest)])
    other_digest = registry.push_image("adm/other", tag="v2")
    attach_signatures(registry, "adm/other", other_digest, [signed_layer(key, image_digest=other_digest)])
    unsigned_digest = registry.push_image("adm/unsigned", tag="v1")
    host = registry.host
    return AdmissionImages(
        host=host,
        signed=f"{host}/adm/signed:v1",
        signed_digest=signed_digest,
        unsigned=f"{host}/adm/unsigned:v1",
        unsigned_digest=unsigned_digest,
        other=f"{host}/adm/other:v2",
        other_digest=other_digest,
    )


def require_signed_policy(
    host: str,
    *,
    action: str = "Enforce",
    failure_policy: str | None = None,
    mutate_digest: bool | None = None,
    pattern: str | None = None,
    name: str = "require-signed",
) -> dict[str, Any]:
    return cluster_policy(
        name,
        [
            key_verification(
                [pattern or f"{host}/adm/*"], [keys_entry(new_key("p256").public_pem)], mutate_digest=mutate_digest
            )
        ],
        action=action,
        failure_policy=failure_policy,
    )


@dataclass
class AdmissionEnv:
    client: FlaskClient
    policy_path: Path
    monkeypatch: pytest.MonkeyPatch

    def post(self, path: str, doc: Any, **kwargs: Any) -> Any:
        return self.client.post(path, json=doc, **kwargs)


@pytest.fixture
def admission_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adm_images: AdmissionImages
) -> Iterator[Callable[..., AdmissionEnv]]:
    """Configure the process for a set of policies and give a functions-framework test client."""

    def make(*policies: dict[str, Any], extra_env: dict[str, str] | None = None) -> AdmissionEnv:
        path = tmp_path / f"policies-{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(dump(*policies))
        monkeypatch.setenv("SIGWARD_POLICY", str(path))
        monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", f"{adm_images.host}")
        monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
        monkeypatch.delenv("SIGWARD_ADMISSION_TOKEN", raising=False)
        monkeypatch.delenv("SIGWARD_DEADLINE_SECONDS", raising=False)
        monkeypatch.setenv("SIGWARD_STORE", "memory:")
        for key, value in (extra_env or {}).items():
            monkeypatch.setenv(key, value)
        wiring.reset()
        app = functions_framework.create_app("admission", str(REPO_ROOT / "functions" / "main.py"))  # type: ignore[no-untyped-call]
        return AdmissionEnv(client=app.test_client(), policy_path=path, monkeypatch=monkeypatch)

    yield make
    wiring.reset()

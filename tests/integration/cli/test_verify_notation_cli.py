"""``type: Notary`` through ``sigward verify`` and the real docker-registry (no referrers API: the ``sha256-<hex>``
tag-schema index is read): the Notary Project's own e2e layouts with their expected outcomes, and envelopes made by
sigward's signer (JWS and COSE) with a negative twin per check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.notation import make_ca, push_layout, sign_pushed
from tests.support.policies import cluster_policy, dump
from tests.support.registry import LocalRegistry
from tests.support.vectors import require_vectors

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]
TARGET = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"


def notary_policy(host: str, cert_pem: str, *, attestations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    iv: dict[str, Any] = {
        "type": "Notary",
        "imageReferences": [f"{host}/*"],
        "attestors": [{"count": 1, "entries": [{"certificates": {"cert": cert_pem}}]}],
    }
    if attestations:
        iv["attestations"] = attestations
    return cluster_policy("notary", [iv])


def verify(registry: LocalRegistry, policy_doc: dict[str, Any], image: str, tmp: Path) -> tuple[int, dict[str, Any]]:
    path = tmp / f"p{len(list(tmp.iterdir()))}.yaml"
    path.write_text(dump(policy_doc))
    env = {**os.environ, "SIGWARD_INSECURE_REGISTRIES": registry.host, "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "verify", "--policy", str(path), "--json", image],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.stdout, proc.stderr
    (row,) = json.loads(proc.stdout)["results"]
    return proc.returncode, row


# layout, trust store cert, expected verdict, text the message must contain (notation-go's wording)
E2E_CASES = [
    ("e2e-valid-signature", "e2e.crt", "pass", ""),
    ("e2e-valid-signature", "new_e2e.crt", "fail", "does not contain any trusted certificate"),
    ("e2e-valid-multiple-signatures", "e2e.crt", "pass", ""),
    ("e2e-expired-signature", "e2e.crt", "fail", 'digital signature has expired on "Tue, 27 Jun 2023 05:21:21'),
    ("e2e-invalid-signature", "e2e.crt", "fail", "is not supported"),
    ("e2e-with-expired-cert", "expired_e2e.crt", "fail", "authenticTimestamp validation failed"),
    ("e2e", "e2e.crt", "fail", "make sure the artifact was signed successfully"),
]


@pytest.mark.parametrize(("layout", "cert", "verdict", "text"), E2E_CASES)
def test_notation_e2e_vectors(
    registry: LocalRegistry, tmp_path: Path, layout: str, cert: str, verdict: str, text: str
) -> None:
    base = require_vectors("notation", "notation-e2e")
    repo = f"notation/{layout}"
    push_layout(registry, repo, base / "oci_layout" / layout)
    policy = notary_policy(registry.host, (base / "localkeys" / cert).read_text())
    code, row = verify(registry, policy, f"{registry.host}/{repo}:v1", tmp_path)
    assert row["verdict"] == verdict, row["message"]
    assert text in row["message"]
    assert code == (0 if verdict == "pass" else 1)
    if verdict == "pass":
        assert row["digest"] == TARGET


@pytest.mark.parametrize("envelope_format", ["jws", "cose"])
def test_own_signer_end_to_end_with_negative_twins(
    registry: LocalRegistry, tmp_path: Path, envelope_format: str
) -> None:
    ca, other = make_ca(ec_key=envelope_format == "cose"), make_ca("other")
    ok = registry.push_image(f"own/{envelope_format}/ok", tag="v1")
    sign_pushed(registry, f"own/{envelope_format}/ok", ok, ca, envelope_format=envelope_format)
    image = f"{registry.host}/own/{envelope_format}/ok:v1"
    code, row = verify(registry, notary_policy(registry.host, ca.root_pem), image, tmp_path)
    assert (code, row["verdict"], row["digest"]) == (0, "pass", ok), row["message"]
    # untrusted root
    code, row = verify(registry, notary_policy(registry.host, other.root_pem), image, tmp_path)
    assert row["verdict"] == "fail" and "does not contain any trusted certificate" in row["message"]

    def twin(name: str, **kwargs: Any) -> dict[str, Any]:
        repo = f"own/{envelope_format}/{name}"
        digest = registry.push_image(repo, tag="v1")
        signer = kwargs.pop("ca", ca)
        sign_pushed(registry, repo, digest, signer, envelope_format=envelope_format, **kwargs)
        return verify(registry, notary_policy(registry.host, ca.root_pem), f"{registry.host}/{repo}:v1", tmp_path)[1]

    assert "signature is invalid" in twin("tampered", tamper=True)["message"]
    replay = twin("replay", subject_digest="sha256:" + "0" * 64)
    assert replay["verdict"] == "fail" and "targetArtifact" in replay["message"]
    expired = twin("expired", expiry=datetime.now(UTC) - timedelta(seconds=5))
    assert expired["verdict"] == "fail" and "digital signature has expired" in expired["message"]
    server = make_ca(leaf_eku=ExtendedKeyUsageOID.SERVER_AUTH)
    wrong_eku = twin("servereku", ca=server)  # (its own root is not trusted either; the EKU rule comes first)
    assert wrong_eku["verdict"] == "fail" and "ServerAuth" in wrong_eku["message"]
    unsigned = registry.push_image(f"own/{envelope_format}/unsigned", tag="v1")
    assert unsigned
    _, row = verify(
        registry,
        notary_policy(registry.host, ca.root_pem),
        f"{registry.host}/own/{envelope_format}/unsigned:v1",
        tmp_path,
    )
    assert row["verdict"] == "fail" and "make sure the artifact was signed successfully" in row["message"]

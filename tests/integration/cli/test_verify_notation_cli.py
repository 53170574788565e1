"""``type: Notary`` through ``sigward verify`` and the real docker-registry (no referrers API: the ``sha256-<hex>``
tag-schema index is read): the Notary Project's own e2e layouts with their expected outcomes, and envelopes made by
sigward's signer (JWS and COSE) with a negative twin per check."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from sigward import cli
from tests.support.notation import (
    TestCA,
    make_ca,
    push_layout,
    push_notary_attestation,
    sign_pushed,
    write_signing_files,
)
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


@pytest.fixture(autouse=True)
def _registry_env(registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")


@pytest.fixture(scope="module")
def cas() -> dict[str, TestCA]:
    """Keys are the slow part: one set per module (RSA for JWS, P-256 for COSE, an untrusted one, a server EKU)."""
    return {
        "jws": make_ca(),
        "cose": make_ca(ec_key=True),
        "other": make_ca("other"),
        "server": make_ca(leaf_eku=ExtendedKeyUsageOID.SERVER_AUTH),
    }


def _policy_file(policy_doc: dict[str, Any], tmp: Path) -> Path:
    path = tmp / f"p{len(list(tmp.iterdir()))}.yaml"
    path.write_text(dump(policy_doc))
    return path


def verify(registry: LocalRegistry, policy_doc: dict[str, Any], image: str, tmp: Path) -> tuple[int, dict[str, Any]]:
    """``sigward verify --json`` in-process (sigward.cli.run)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(["verify", "--policy", str(_policy_file(policy_doc, tmp)), "--json", image], out=out, err=err)
    assert out.getvalue(), err.getvalue()
    (row,) = json.loads(out.getvalue())["results"]
    return code, row


def verify_subprocess(policy_doc: dict[str, Any], image: str, tmp: Path) -> tuple[int, dict[str, Any]]:
    """The same through a fresh interpreter (``python -m sigward.cli``): the console entry point as users run it."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sigward.cli",
            "verify",
            "--policy",
            str(_policy_file(policy_doc, tmp)),
            "--json",
            image,
        ],
        cwd=REPO,
        env=dict(os.environ),
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


def test_valid_vector_through_the_console_entry_point(registry: LocalRegistry, tmp_path: Path) -> None:
    """One case through a fresh interpreter; the rest run in-process."""
    base = require_vectors("notation", "notation-e2e")
    push_layout(registry, "notation/subprocess", base / "oci_layout" / "e2e-valid-signature")
    policy = notary_policy(registry.host, (base / "localkeys" / "e2e.crt").read_text())
    code, row = verify_subprocess(policy, f"{registry.host}/notation/subprocess:v1", tmp_path)
    assert (code, row["verdict"], row["digest"]) == (0, "pass", TARGET), row["message"]
    code, row = verify_subprocess(
        notary_policy(registry.host, (base / "localkeys" / "new_e2e.crt").read_text()),
        f"{registry.host}/notation/subprocess:v1",
        tmp_path,
    )
    assert (code, row["verdict"]) == (1, "fail")


@pytest.mark.parametrize("envelope_format", ["jws", "cose"])
def test_own_signer_end_to_end_with_negative_twins(
    registry: LocalRegistry, tmp_path: Path, envelope_format: str, cas: dict[str, TestCA]
) -> None:
    ca, other = cas[envelope_format], cas["other"]
    ok = registry.push_image(f"own/{envelope_format}/ok", tag="v1")
    sign_pushed(registry, f"own/{envelope_format}/ok", ok, ca, envelope_format=envelope_format)
    image = f"{registry.host}/own/{envelope_format}/ok:v1"
    code, row = verify(registry, notary_policy(registry.host, ca.root_pem), image, tmp_path)
    assert (code, row["verdict"], row["digest"]) == (0, "pass", ok), row["message"]
    # untrusted root
    code, row = verify(registry, notary_policy(registry.host, other.root_pem), image, tmp_path)
    assert (code, row["verdict"]) == (1, "fail") and "does not contain any trusted certificate" in row["message"]

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
    wrong_eku = twin("servereku", ca=cas["server"])  # (its own root is not trusted either; the EKU rule comes first)
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


# -- Notary attestations: referrers of the attestation type, each signed with Notation, read by conditions ----------

SBOM_TYPE = "application/vnd.cyclonedx+json"
VULN_TYPE = "application/sarif+json"


def _attestations(artifact_type: str, condition_value: str) -> list[dict[str, Any]]:
    return [
        {
            "type": artifact_type,
            "attestors": [],  # filled by _att_policy
            "conditions": [{"all": [{"key": "{{ bomFormat }}", "operator": "Equals", "value": condition_value}]}],
        }
    ]


def _att_policy(host: str, ca: TestCA, artifact_type: str, value: str) -> dict[str, Any]:
    atts = _attestations(artifact_type, value)
    atts[0]["attestors"] = [{"count": 1, "entries": [{"certificates": {"cert": ca.root_pem}}]}]
    return notary_policy(host, ca.root_pem, attestations=atts)


# name, pushed artifactType, signer ("cose" = trusted | "other" | None), policy type, condition value, verdict, text
ATTESTATION_CASES = [
    ("pass", SBOM_TYPE, "cose", SBOM_TYPE, "CycloneDX", "pass", ""),
    ("condition-false", SBOM_TYPE, "cose", SBOM_TYPE, "SPDX", "fail", "bomFormat"),
    ("wrong-type", VULN_TYPE, "cose", SBOM_TYPE, "CycloneDX", "fail", "no matching attestations"),
    ("unsigned-attestation", SBOM_TYPE, None, SBOM_TYPE, "CycloneDX", "fail", "make sure the artifact was signed"),
    ("untrusted-attestation", SBOM_TYPE, "other", SBOM_TYPE, "CycloneDX", "fail", "trusted certificate"),
]


@pytest.mark.parametrize(
    ("name", "pushed_type", "signer", "policy_type", "value", "verdict", "text"), ATTESTATION_CASES
)
def test_notary_attestations(
    registry: LocalRegistry,
    tmp_path: Path,
    cas: dict[str, TestCA],
    name: str,
    pushed_type: str,
    signer: str | None,
    policy_type: str,
    value: str,
    verdict: str,
    text: str,
) -> None:
    ca = cas["cose"]
    repo = f"att/{name}"
    digest = registry.push_image(repo, tag="v1")
    sign_pushed(registry, repo, digest, ca, envelope_format="cose")
    push_notary_attestation(
        registry,
        repo,
        digest,
        pushed_type,
        {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []},
        cas[signer] if signer else None,
        envelope_format="jws",
    )
    code, row = verify(
        registry, _att_policy(registry.host, ca, policy_type, value), f"{registry.host}/{repo}:v1", tmp_path
    )
    assert row["verdict"] == verdict, row["message"]
    assert text in row["message"]
    assert code == (0 if verdict == "pass" else 1)


# -- sigward sign --notation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("envelope_format", ["jws", "cose"])
def test_sign_notation_cli_then_verify(
    registry: LocalRegistry, tmp_path: Path, envelope_format: str, cas: dict[str, TestCA]
) -> None:
    ca = cas[envelope_format]
    key, chain = write_signing_files(ca, tmp_path)
    repo = f"signcli/{envelope_format}"
    digest = registry.push_image(repo, tag="v1")
    image = f"{registry.host}/{repo}:v1"
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(
        ["sign", "--notation", envelope_format, "--key", str(key), "--cert-chain", str(chain), "--json", image],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    result = json.loads(out.getvalue())
    assert (result["digest"], result["envelope"], result["fallback_index"]) == (digest, envelope_format, True)
    code, row = verify(registry, notary_policy(registry.host, ca.root_pem), image, tmp_path)
    assert (code, row["verdict"], row["digest"]) == (0, "pass", digest), row["message"]
    code, row = verify(registry, notary_policy(registry.host, cas["other"].root_pem), image, tmp_path)
    assert (code, row["verdict"]) == (1, "fail")


def test_sign_notation_cli_refuses_bad_input(registry: LocalRegistry, tmp_path: Path, cas: dict[str, TestCA]) -> None:
    key, chain = write_signing_files(cas["jws"], tmp_path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    _, other_chain = write_signing_files(cas["other"], other_dir)
    registry.push_image("signcli/bad", tag="v1")
    image = f"{registry.host}/signcli/bad:v1"
    cases = [
        (["--notation", "jws", "--key", str(key)], "--notation needs --cert-chain"),
        (["--key", str(key), "--cert-chain", str(chain)], "--cert-chain is for Notation signatures"),
        (["--notation", "jws", "--key", str(key), "--cert-chain", str(other_chain)], "is not for the key"),
        (["--notation", "jws", "--key", "awskms:///alias/x", "--cert-chain", str(chain)], "local PEM key only"),
        (["--notation", "jws", "--key", str(key), "--cert-chain", str(tmp_path / "none.pem")], "not a readable file"),
        (["--notation", "jws", "--key", str(key), "--cert-chain", str(key)], "cannot parse PEM"),
    ]
    for args, text in cases:
        out, err = io.StringIO(), io.StringIO()
        code = cli.run(["sign", *args, image], out=out, err=err)
        assert code == 2, (args, out.getvalue(), err.getvalue())
        assert text in err.getvalue(), (args, err.getvalue())
    # nothing was published for the refused requests
    code, row = verify(registry, notary_policy(registry.host, cas["jws"].root_pem), image, tmp_path)
    assert row["verdict"] == "fail" and "make sure the artifact was signed successfully" in row["message"]

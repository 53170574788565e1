"""A keyless SLSA provenance attestation made by real third-party signing code, verified by sigward.

Real parts: sigstore-js's CLI (``@sigstore/cli``) creates the bundle — ephemeral key, Fulcio certificate request
with an OIDC identity token, DSSE signature over the in-toto statement, Rekor ``intoto`` entry, RFC 3161 timestamp —
against ``@sigstore/mock``'s own Fulcio, Rekor and TSA implementations served over HTTP on loopback; the same CLI
attaches the bundle to the image as an OCI 1.1 referrer in the real Debian docker-registry (tag-schema fallback:
distribution 2.8 has no referrers API). sigward then reads it back through the registry, with only a trusted root
built from the mock services' public material, as ``sigward verify`` (a process) and as the admission function
(functions-framework's test client). The mock services are stopped before any verification: the bundle must verify
offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import requests

from sigward import wiring
from tests.support.admission import decode_patch, pod, pod_request, review
from tests.support.policies import cluster_policy, dump
from tests.support.registry import HTPASSWD_PASSWORD, HTPASSWD_USER, OCI_INDEX, LocalRegistry
from tests.support.sigstore_js import (
    SLSA_PROVENANCE_V1,
    MockSigstore,
    NpmUnavailable,
    attach,
    attest,
    ensure_installed,
    identity_token,
    slsa_provenance_statement,
    trusted_root,
)

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]

ISSUER = "https://token.example.test"
SUBJECT = "https://github.example.test/acme/app/.github/workflows/release.yml@refs/heads/main"
BUILD_TYPE = "https://ci.example.test/container-build/v1"
BUILDER_ID = "https://ci.example.test/builders/hosted"
IMAGE_REPO = "sigstore-js/app"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass(frozen=True)
class Attested:
    image: str
    digest: str
    referrer: str
    bundle: dict[str, Any]
    statement: bytes
    trusted_root: Path
    docker_config: Path  # a DOCKER_CONFIG directory with the registry's credentials
    rekor_url: str
    rekor_key_der: bytes
    registry: LocalRegistry


@pytest.fixture(scope="session")
def sigstore_js_prefix() -> Path:
    """The pinned @sigstore/cli and @sigstore/mock, installed once into the npm cache directory."""
    try:
        return ensure_installed()
    except NpmUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def attested(
    sigstore_js_prefix: Path, auth_registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Attested]:
    workdir = tmp_path_factory.mktemp("sigstore-js")
    # sigstore-js's registry client needs an auth challenge (it fails on a registry without auth), so the
    # image lives in the htpasswd registry; sigward reads it with the same credentials from a docker config.
    digest = auth_registry.push_image(IMAGE_REPO, tag="v1")
    image = f"{auth_registry.host}/{IMAGE_REPO}:v1"
    statement = slsa_provenance_statement(
        subject_name=f"{auth_registry.host}/{IMAGE_REPO}", digest=digest, build_type=BUILD_TYPE, builder_id=BUILDER_ID
    )
    statement_path = workdir / "provenance.intoto.json"
    statement_path.write_bytes(statement)
    bundle_path = workdir / "provenance.sigstore.json"
    with MockSigstore(sigstore_js_prefix, workdir / "mock-sigstore.log") as services:
        token = identity_token(issuer=ISSUER, subject=SUBJECT)
        raw = attest(sigstore_js_prefix, services, statement_path, bundle_path, token=token, tsa=True)
        referrer = attach(sigstore_js_prefix, image, bundle_path, username=HTPASSWD_USER, password=HTPASSWD_PASSWORD)
        root_path = workdir / "trusted_root.json"
        root_path.write_text(json.dumps(trusted_root(services), indent=2))
        rekor_url, rekor_key = services.rekor_url, services.rekor_key_der
    config_dir = workdir / "docker-config"
    config_dir.mkdir()
    pair = base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": pair}}}))
    yield Attested(
        image=image,
        digest=digest,
        referrer=referrer,
        bundle=json.loads(raw),
        statement=statement,
        trusted_root=root_path,
        docker_config=config_dir,
        rekor_url=rekor_url,
        rekor_key_der=rekor_key,
        registry=auth_registry,
    )


def provenance_policy(
    name: str,
    attested: Attested,
    *,
    subject: str = SUBJECT,
    issuer: str = ISSUER,
    build_type: str = BUILD_TYPE,
    verification_type: str | None = None,
) -> dict[str, Any]:
    """Kyverno: require a keyless SLSA v1 provenance attestation by ``subject``/``issuer`` whose buildType is
    ``build_type``."""
    iv: dict[str, Any] = {
        "imageReferences": [f"{attested.registry.host}/sigstore-js/*"],
        "attestations": [
            {
                "type": SLSA_PROVENANCE_V1,
                "attestors": [
                    {
                        "entries": [
                            {"keyless": {"subject": subject, "issuer": issuer, "rekor": {"url": attested.rekor_url}}}
                        ]
                    }
                ],
                "conditions": [
                    {"all": [{"key": "{{ buildDefinition.buildType }}", "operator": "Equals", "value": build_type}]}
                ],
            }
        ],
    }
    if verification_type is not None:
        iv["type"] = verification_type
    return cluster_policy(name, [iv], rule="require-provenance")


WRONG_SUBJECT = "https://github.example.test/acme/app/.github/workflows/other.yml@refs/heads/main"
WRONG_ISSUER = "https://token.other.example.test"
WRONG_BUILD_TYPE = "https://ci.example.test/unreviewed-build/v1"


def failing_policies(attested: Attested) -> dict[str, tuple[dict[str, Any], str]]:
    """name → (policy, a regular expression its verdict's message must match)."""
    # The CLI names the image as given (…:v1), admission by the digest it resolved (…@sha256:…).
    image = re.escape(f"{attested.registry.host}/{IMAGE_REPO}") + r"(?::v1|@sha256:[0-9a-f]{64})"
    return {
        "wrong-subject": (
            provenance_policy("wrong-subject", attested, subject=WRONG_SUBJECT),
            re.escape(f"subject mismatch: expected {WRONG_SUBJECT}, received {SUBJECT}"),
        ),
        "wrong-issuer": (
            provenance_policy("wrong-issuer", attested, issuer=WRONG_ISSUER),
            re.escape(f"issuer mismatch: expected {WRONG_ISSUER}, received {ISSUER}"),
        ),
        "wrong-build-type": (
            provenance_policy("wrong-build-type", attested, build_type=WRONG_BUILD_TYPE),
            f"attestation checks failed for {image} and predicate {re.escape(SLSA_PROVENANCE_V1)}: condition failed",
        ),
    }


def sigward_verify(
    attested: Attested, policies: list[dict[str, Any]], tmp: Path, *, mock_root: bool = True
) -> tuple[int, dict[str, Any]]:
    """``sigward verify --json`` as a process; its rows by policy name. ``mock_root=False``: the default
    (public-good) trusted root instead of the mock services' one."""
    path = tmp / f"policies-{len(list(tmp.iterdir()))}.yaml"
    path.write_text(dump(*policies))
    env = {k: v for k, v in os.environ.items() if k != "SIGWARD_TRUSTED_ROOT"}
    env.update(
        {
            "SIGWARD_INSECURE_REGISTRIES": attested.registry.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
            "DOCKER_CONFIG": str(attested.docker_config),
        }
    )
    if mock_root:
        env["SIGWARD_TRUSTED_ROOT"] = str(attested.trusted_root)
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "verify", "--policy", str(path), "--json", attested.image],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout, proc.stderr
    rows = {row["policy"]: row for row in json.loads(proc.stdout)["results"]}
    return proc.returncode, rows


def test_sigstore_js_made_a_keyless_bundle_and_attached_it_as_a_referrer(attested: Attested) -> None:
    """What the third-party code produced (so a change in it shows up here, not as a puzzling verdict)."""
    bundle = attested.bundle
    assert bundle["mediaType"] == BUNDLE_V03
    material = bundle["verificationMaterial"]
    assert "certificate" in material  # keyless: a Fulcio leaf, no public key hint
    (entry,) = material["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "intoto", "version": "0.0.2"}
    assert base64.b64decode(entry["logId"]["keyId"]) == hashlib.sha256(attested.rekor_key_der).digest()
    assert len(material["timestampVerificationData"]["rfc3161Timestamps"]) == 1
    assert json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"])) == json.loads(attested.statement)

    # the referrers tag-schema index sigstore-js maintained in the registry
    tag = attested.digest.replace(":", "-")
    with requests.Session() as session:
        session.trust_env = False
        resp = session.get(
            f"{attested.registry.url}/v2/{IMAGE_REPO}/manifests/{tag}",
            headers={"Accept": OCI_INDEX},
            auth=(HTPASSWD_USER, HTPASSWD_PASSWORD),
            timeout=10,
        )
    assert resp.status_code == 200, resp.text
    listed = {m["digest"]: m for m in resp.json()["manifests"]}
    assert listed[attested.referrer]["artifactType"] == BUNDLE_V03


@pytest.mark.parametrize("verification_type", [None, "SigstoreBundle"])
def test_sigward_verify_passes(attested: Attested, tmp_path: Path, verification_type: str | None) -> None:
    policy = provenance_policy("provenance", attested, verification_type=verification_type)
    code, rows = sigward_verify(attested, [policy], tmp_path)
    row = rows["provenance"]
    assert (code, row["verdict"]) == (0, "pass"), row["message"]
    assert row["message"] == f"verified image attestations for {attested.image}"
    assert row["digest"] == attested.digest


def test_sigward_verify_fails_on_identity_and_condition_mismatches(attested: Attested, tmp_path: Path) -> None:
    cases = failing_policies(attested)
    code, rows = sigward_verify(attested, [policy for policy, _ in cases.values()], tmp_path)
    assert code == 1
    for name, (_, expected) in cases.items():
        assert rows[name]["verdict"] == "fail", (name, rows[name])
        assert re.search(expected, rows[name]["message"]), (name, rows[name]["message"])


def test_the_public_good_root_does_not_trust_the_mock_services(attested: Attested, tmp_path: Path) -> None:
    """The pass above is owed to the trusted root built from the mock services, nothing else."""
    code, rows = sigward_verify(attested, [provenance_policy("provenance", attested)], tmp_path, mock_root=False)
    row = rows["provenance"]
    assert (code, row["verdict"]) == (1, "fail"), row
    assert "which the trusted root does not list" in row["message"], row["message"]


def test_admission_allows_and_denies(attested: Attested, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGWARD_STORE", "memory:")
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", attested.registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    monkeypatch.setenv("SIGWARD_TRUSTED_ROOT", str(attested.trusted_root))
    monkeypatch.setenv("DOCKER_CONFIG", str(attested.docker_config))
    monkeypatch.delenv("SIGWARD_ADMISSION_TOKEN", raising=False)
    monkeypatch.delenv("SIGWARD_DEADLINE_SECONDS", raising=False)

    def admit(policy: dict[str, Any]) -> dict[str, Any]:
        """The AdmissionReview answer for a Pod running the image, under ``policy`` alone."""
        path = tmp_path / f"{policy['metadata']['name']}.yaml"
        path.write_text(dump(policy))
        monkeypatch.setenv("SIGWARD_POLICY", str(path))
        wiring.reset()
        app = functions_framework.create_app("admission", str(REPO / "functions" / "main.py"))  # type: ignore[no-untyped-call]
        # /mutate: the tag is verified and pinned to its digest (the validate path wants digests already)
        body: dict[str, Any] = (
            app.test_client().post("/mutate", json=review(pod_request(pod(attested.image)))).get_json()
        )
        return body

    try:
        body = admit(provenance_policy("provenance", attested))
        assert body["response"]["allowed"] is True, body
        assert decode_patch(body) == [
            {"op": "replace", "path": "/spec/containers/0/image", "value": f"{attested.image}@{attested.digest}"}
        ]
        for name, (policy, expected) in failing_policies(attested).items():
            response = admit(policy)["response"]
            assert response["allowed"] is False, (name, response)
            assert re.search(expected, response["status"]["message"]), (name, response["status"]["message"])
    finally:
        wiring.reset()

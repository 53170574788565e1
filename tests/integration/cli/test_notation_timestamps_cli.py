"""``sigward sign --notation … --tsa-url`` against the local RFC 3161 TSA served over HTTP, then ``sigward verify``
through the real docker-registry with ``certificates.ctlog.tsaCertChain`` as the Notary ``tsa`` store: a signing
certificate that has expired since still verifies with a trusted countersignature, and each twin fails."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from sigward import cli
from tests.support.notation import TestCA, make_ca, write_signing_files
from tests.support.policies import cluster_policy, dump
from tests.support.registry import LocalRegistry
from tests.support.tsa import LocalTSA, make_tsa
from tests.support.tsa_server import TSAServer

pytestmark = pytest.mark.registry
SIGNED_AT = datetime.now(UTC) - timedelta(hours=3)  # when the (since expired) certificate was still valid


@pytest.fixture(autouse=True)
def _registry_env(registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")


@pytest.fixture(scope="module")
def expired() -> TestCA:
    """Leaf valid from a day ago until an hour ago: expired at verification time."""
    return make_ca("tsa-cli", ec_key=True, leaf_not_after=datetime.now(UTC) - timedelta(hours=1))


@pytest.fixture(scope="module")
def tsa() -> LocalTSA:
    return make_tsa(7)


@pytest.fixture
def tsa_server(tsa: LocalTSA) -> Iterator[TSAServer]:
    with TSAServer(tsa, gen_time=lambda: SIGNED_AT) as server:
        yield server


def _pem(cert: Any) -> str:
    return str(cert.public_bytes(serialization.Encoding.PEM).decode())


def policy(host: str, ca: TestCA, tsa_root: LocalTSA | None) -> dict[str, Any]:
    certificates: dict[str, Any] = {"cert": ca.root_pem}
    if tsa_root is not None:
        certificates["ctlog"] = {"tsaCertChain": _pem(tsa_root.root)}
    iv = {
        "type": "Notary",
        "imageReferences": [f"{host}/*"],
        "attestors": [{"count": 1, "entries": [{"certificates": certificates}]}],
    }
    return cluster_policy("notary-tsa", [iv])


def sign(image: str, ca: TestCA, tmp: Path, *extra: str, envelope: str = "jws") -> tuple[int, str, str]:
    key, chain = write_signing_files(ca, tmp)
    out, err = io.StringIO(), io.StringIO()
    args = ["sign", "--notation", envelope, "--key", str(key), "--cert-chain", str(chain), "--json", *extra, image]
    code = cli.run(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def verify(policy_doc: dict[str, Any], image: str, tmp: Path) -> tuple[int, dict[str, Any]]:
    path = tmp / f"p{len(list(tmp.glob('p*.yaml')))}.yaml"
    path.write_text(dump(policy_doc))
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(["verify", "--policy", str(path), "--json", image], out=out, err=err)
    assert out.getvalue(), err.getvalue()
    (row,) = json.loads(out.getvalue())["results"]
    return code, row


@pytest.mark.parametrize("envelope", ["jws", "cose"])
def test_expired_certificate_with_a_trusted_timestamp_verifies_and_twins_fail(
    registry: LocalRegistry, tmp_path: Path, expired: TestCA, tsa: LocalTSA, tsa_server: TSAServer, envelope: str
) -> None:
    repo = f"tsa/{envelope}"
    digest = registry.push_image(repo, tag="v1")
    image = f"{registry.host}/{repo}:v1"
    code, out, err = sign(image, expired, tmp_path, "--tsa-url", tsa_server.url, envelope=envelope)
    assert code == 0, err
    assert json.loads(out)["timestamped"] is True and tsa_server.requests == 1
    code, row = verify(policy(registry.host, expired, tsa), image, tmp_path)
    assert (code, row["verdict"], row["digest"]) == (0, "pass", digest), row["message"]
    # no tsa store (Kyverno's default): the certificate is judged now, and it has expired
    code, row = verify(policy(registry.host, expired, None), image, tmp_path)
    assert (code, row["verdict"]) == (1, "fail")
    assert "authenticTimestamp validation failed: verification time is after certificate" in row["message"]
    # a TSA the policy does not trust
    code, row = verify(policy(registry.host, expired, make_tsa(8)), image, tmp_path)
    assert (code, row["verdict"]) == (1, "fail")
    assert "failed to verify the timestamp countersignature" in row["message"]


def test_expired_certificate_without_a_timestamp_fails(
    registry: LocalRegistry, tmp_path: Path, expired: TestCA, tsa: LocalTSA
) -> None:
    registry.push_image("tsa/none", tag="v1")
    image = f"{registry.host}/tsa/none:v1"
    assert sign(image, expired, tmp_path)[0] == 0
    code, row = verify(policy(registry.host, expired, tsa), image, tmp_path)
    assert (code, row["verdict"]) == (1, "fail")
    assert "no timestamp countersignature was found in the signature envelope" in row["message"]


def test_timestamp_after_the_certificate_expired_fails(
    registry: LocalRegistry, tmp_path: Path, expired: TestCA, tsa: LocalTSA
) -> None:
    registry.push_image("tsa/late", tag="v1")
    image = f"{registry.host}/tsa/late:v1"
    with TSAServer(tsa) as late:  # genTime = now, after the leaf's notAfter
        assert sign(image, expired, tmp_path, "--tsa-url", late.url)[0] == 0
    code, row = verify(policy(registry.host, expired, tsa), image, tmp_path)
    assert (code, row["verdict"]) == (1, "fail")
    assert "timestamp can be after certificate" in row["message"]


def test_unexpired_certificate_needs_no_timestamp(registry: LocalRegistry, tmp_path: Path, tsa: LocalTSA) -> None:
    """afterCertExpiry: what Kyverno accepts (chain valid now, no countersignature) still passes with a tsa store."""
    ca = make_ca("tsa-valid", ec_key=True)
    digest = registry.push_image("tsa/valid", tag="v1")
    image = f"{registry.host}/tsa/valid:v1"
    assert sign(image, ca, tmp_path)[0] == 0
    code, row = verify(policy(registry.host, ca, tsa), image, tmp_path)
    assert (code, row["verdict"], row["digest"]) == (0, "pass", digest), row["message"]


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("wrong-imprint", "timestamps other bytes than the signature"),
        ("wrong-nonce", "nonce is not the request's"),
        ("http-500", "HTTP 500"),
        ("garbage", "not an RFC 3161 timestamp response"),
    ],
)
def test_sign_refuses_a_bad_tsa_answer_and_publishes_nothing(
    registry: LocalRegistry, tmp_path: Path, expired: TestCA, tsa: LocalTSA, mode: str, fragment: str
) -> None:
    repo = f"tsa/bad-{mode}"
    registry.push_image(repo, tag="v1")
    image = f"{registry.host}/{repo}:v1"
    with TSAServer(tsa, mode=mode, gen_time=lambda: SIGNED_AT) as bad:
        code, _, err = sign(image, expired, tmp_path, "--tsa-url", bad.url)
    assert code != 0 and fragment in err, err
    code, row = verify(policy(registry.host, expired, tsa), image, tmp_path)
    assert row["verdict"] == "fail" and "make sure the artifact was signed successfully" in row["message"]


def test_tsa_url_input_errors(registry: LocalRegistry, tmp_path: Path, expired: TestCA) -> None:
    registry.push_image("tsa/input", tag="v1")
    image = f"{registry.host}/tsa/input:v1"
    code, _, err = sign(image, expired, tmp_path, "--tsa-url", "ftp://127.0.0.1/tsa")
    assert code == 2 and "expected an http(s) URL" in err
    key, _ = write_signing_files(expired, tmp_path)
    out, err_io = io.StringIO(), io.StringIO()
    assert cli.run(["sign", "--key", str(key), "--tsa-url", "http://127.0.0.1:1/", image], out=out, err=err_io) == 2
    assert "--tsa-url is for Notation signatures" in err_io.getvalue()

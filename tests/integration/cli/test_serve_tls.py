"""``sigward serve --tls-cert --tls-key``: a real TLS client verifies the served certificate, a rotated certificate
is served to new connections without a restart, a broken rotation keeps the previous one, and bad flags or files
exit 2 before anything is bound."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_ca(cn: str) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Ca(key, cert)


def issue(ca: Ca, cert_path: Path, key_path: Path) -> int:
    """A serving certificate for 127.0.0.1 signed by ``ca``, written as the kubelet would (new files, then rename)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("sigward.sigward.svc"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("sigward.sigward.svc"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for path, data in ((key_path, key_pem), (cert_path, cert.public_bytes(serialization.Encoding.PEM))):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return serial


def _env(tmp_path: Path) -> dict[str, str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        dump(cluster_policy("tls", [key_verification(["ghcr.io/*"], [keys_entry(new_key().public_pem)])]))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGWARD_")}
    env.update(
        {"SIGWARD_POLICY": str(policy), "SIGWARD_STORE": "memory:", "SIGWARD_TUF_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    )
    return env


@dataclass
class Tls:
    port: int
    cert: Path
    key: Path
    log: Path


def _client(ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    return ctx


def served_serial(port: int, ca_pem: bytes) -> int:
    ctx = _client(ca_pem)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def healthz(port: int, ca_pem: bytes) -> dict[str, object]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=_client(ca_pem), timeout=5)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        assert resp.status == 200
        return dict(json.loads(resp.read()))
    finally:
        conn.close()


CA = new_ca("sigward test CA")


@pytest.fixture
def tls_serve(tmp_path: Path) -> Iterator[tuple[Tls, int, subprocess.Popen[bytes]]]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    serial = issue(CA, cert, key)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sigward.cli",
                "serve",
                "--port",
                str(port),
                "--tls-cert",
                str(cert),
                "--tls-key",
                str(key),
            ],
            cwd=REPO,
            env=_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                served_serial(port, CA.pem)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield Tls(port, cert, key, log), serial, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def _wait_for_serial(port: int, want: int) -> int:
    deadline = time.monotonic() + 10
    seen = served_serial(port, CA.pem)
    while seen != want and time.monotonic() < deadline:
        time.sleep(0.3)
        seen = served_serial(port, CA.pem)
    return seen


def test_tls_serve_and_rotation(tls_serve: tuple[Tls, int, subprocess.Popen[bytes]]) -> None:
    tls, first, _ = tls_serve
    assert served_serial(tls.port, CA.pem) == first
    assert healthz(tls.port, CA.pem)["status"] == "ok"
    # plain HTTP on the TLS port gets no answer
    with socket.create_connection(("127.0.0.1", tls.port), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b'"status"' not in raw.recv(4096)
    # a client trusting another CA refuses the server
    with pytest.raises(ssl.SSLCertVerificationError):
        served_serial(tls.port, new_ca("someone else").pem)

    time.sleep(1.1)  # a rotation in the same second could keep the same mtime on coarse filesystems
    second = issue(CA, tls.cert, tls.key)
    assert _wait_for_serial(tls.port, second) == second
    assert healthz(tls.port, CA.pem)["status"] == "ok"
    assert "TLS certificate reloaded" in tls.log.read_text()
    assert "PRIVATE KEY" not in tls.log.read_text()


def test_broken_rotation_keeps_the_previous_certificate(tls_serve: tuple[Tls, int, subprocess.Popen[bytes]]) -> None:
    tls, first, proc = tls_serve
    other_key = tls.key.with_name("other.key")
    other_cert = tls.cert.with_name("other.crt")
    issue(CA, other_cert, other_key)
    time.sleep(1.1)
    os.replace(other_key, tls.key)  # a key that does not match the served certificate
    time.sleep(1.5)
    assert served_serial(tls.port, CA.pem) == first
    assert proc.poll() is None
    assert "rotated TLS certificate not loaded" in tls.log.read_text()
    # the matching certificate arrives: served from then on
    os.replace(other_cert, tls.cert)
    fixed = x509.load_pem_x509_certificate(tls.cert.read_bytes()).serial_number
    assert _wait_for_serial(tls.port, fixed) == fixed


@pytest.mark.parametrize("case", ["cert-only", "key-only", "missing-file", "mismatched", "garbage"])
def test_bad_tls_configuration_exits_2(tmp_path: Path, case: str) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    issue(CA, cert, key)
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    needle = str(cert)
    if case == "cert-only":
        args, needle = ["--tls-cert", str(cert)], "give both"
    elif case == "key-only":
        args, needle = ["--tls-key", str(key)], "give both"
    elif case == "missing-file":
        args[1], needle = str(tmp_path / "absent.crt"), "absent.crt: no such file"
    elif case == "mismatched":
        issue(CA, tmp_path / "o.crt", tmp_path / "o.key")
        args[3] = str(tmp_path / "o.key")
    else:
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "serve", "--port", str(free_port()), *args],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr and "PRIVATE KEY" not in proc.stderr

"""A real ``moto_server`` (moto's stand-alone AWS emulator, the ``moto[server]`` console script) on a free loopback
port, in its own process group, recording every request it receives; plus the environment that points boto3 at it.

boto3 reaches it exactly as it reaches AWS: through ``AWS_ENDPOINT_URL_KMS`` / ``AWS_ENDPOINT_URL_STS`` (the SDK's
own endpoint resolution), or through ``https://HOST:PORT`` when started with a TLS certificate (``awskms://HOST:PORT/``
URIs, trusted via ``AWS_CA_BUNDLE``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from tests.support.netutil import free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
# Dummy static keys moto accepts (it checks no signatures); not credentials.
ACCESS_KEY_ID = "AKIASIGWARDTESTKEY01"
SECRET_ACCESS_KEY = "sigward-test-secret-not-a-credential"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sigward-verifier"
# Every variable that could give boto3 credentials, a region, a profile or an endpoint from the machine's own setup.
AMBIENT_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL_STS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CA_BUNDLE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


def _moto_server_command() -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "moto.server"]


@dataclass(frozen=True)
class Recorded:
    """One request moto received (from its recorder)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> str:
        """``TrentService.GetPublicKey`` for KMS (JSON protocol), ``AssumeRoleWithWebIdentity`` for STS (query)."""
        target = self.headers.get("X-Amz-Target") or self.headers.get("x-amz-target")
        if target:
            return target
        return self.form.get("Action", "")

    @property
    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8", "replace"))
        return {k: v[0] for k, v in parsed.items()}

    @property
    def access_key_id(self) -> str:
        auth = self.headers.get("Authorization") or self.headers.get("authorization") or ""
        marker = "Credential="
        if marker not in auth:
            return ""
        return auth.split(marker, 1)[1].split("/", 1)[0]


class MotoServer:
    """``moto_server`` on ``127.0.0.1:<free port>``; ``start()`` waits until it answers, ``close()`` stops it."""

    def __init__(self, workdir: Path, *, tls: tuple[Path, Path] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.port = 0
        self.recording = self.workdir / "recording.jsonl"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.workdir / "moto.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def verify(self) -> str | bool:
        """How a client trusts this server: its self-signed certificate when it serves TLS."""
        return str(self.tls[0]) if self.tls else True

    def start(self, timeout: float = 20.0) -> None:
        self.port = free_port()
        command = [*_moto_server_command(), "-H", "127.0.0.1", "-p", str(self.port)]
        if self.tls is not None:
            command += ["-c", str(self.tls[0]), "-k", str(self.tls[1])]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"MOTO_ENABLE_RECORDING": "1", "MOTO_RECORDER_FILEPATH": str(self.recording)})
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        end = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}: {self._log.read_text()[-2000:]}")
            try:
                resp = requests.get(f"{self.url}/moto-api/data.json", timeout=1, verify=self.verify)
                if resp.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > end:
                self.close()
                raise TimeoutError(f"moto_server did not answer within {timeout} s")
            time.sleep(0.05)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def reset_recording(self) -> None:
        requests.post(f"{self.url}/moto-api/recorder/reset-recording", timeout=5, verify=self.verify).raise_for_status()

    def recorded(self) -> list[Recorded]:
        if not self.recording.exists():
            return []
        out = []
        for line in self.recording.read_text().splitlines():
            if not line.strip():
                continue
            entry: dict[str, Any] = json.loads(line)
            body = entry.get("body") or ""
            raw = base64.b64decode(body) if entry.get("body_encoded") else str(body).encode()
            out.append(
                Recorded(
                    method=str(entry.get("method", "")),
                    url=str(entry.get("url", "")),
                    headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
                    body=raw,
                )
            )
        return out

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clear_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials, region, profile or endpoint from the machine; no instance metadata lookups."""
    for name in AMBIENT_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def point_at_moto(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    server: MotoServer,
    *,
    static_keys: bool = True,
    region: str | None = REGION,
) -> None:
    """The environment a deployment would have, aimed at ``server`` through the SDK's endpoint variables."""
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", server.url)
    if region:
        monkeypatch.setenv("AWS_REGION", region)
    if static_keys:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)


def kms_admin(server: MotoServer, region: str = REGION) -> Any:
    """A boto3 KMS client for setting keys up (not the code under test)."""
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "kms",
        region_name=region,
        endpoint_url=server.url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        verify=server.verify,
    )


def create_signing_key(admin: Any, spec: str, *, alias: str = "", usage: str = "SIGN_VERIFY") -> dict[str, str]:
    """Create a key (and optionally point ``alias/NAME`` at it); returns {"id", "arn", "alias"}."""
    meta = admin.create_key(KeySpec=spec, KeyUsage=usage, Description=f"sigward test {spec}")["KeyMetadata"]
    if alias:
        with contextlib.suppress(admin.exceptions.NotFoundException):
            admin.delete_alias(AliasName=alias)
        admin.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return {"id": str(meta["KeyId"]), "arn": str(meta["Arn"]), "alias": alias}


def self_signed_tls(workdir: Path, host_ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed server certificate for ``host_ip`` (its own CA: trust it with ``AWS_CA_BUNDLE``)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigward test kms endpoint")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host_ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    workdir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = workdir / "kms-endpoint.pem", workdir / "kms-endpoint.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


# -- pytest fixtures (imported by tests/integration/kms/conftest.py) ---------------------------------------------


@pytest.fixture(scope="session")
def aws_moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One ``moto_server`` for the session (tests that stop a server start their own)."""
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def aws_moto_admin(aws_moto_server: MotoServer) -> Any:
    return kms_admin(aws_moto_server)


@pytest.fixture(scope="session")
def aws_moto_keys(aws_moto_admin: Any) -> dict[str, dict[str, str]]:
    """ECC_NIST_P256, RSA_2048 and RSA_3072 signing keys, each with an alias ``alias/sigward-<spec>``."""
    return {
        spec: create_signing_key(aws_moto_admin, spec, alias=f"alias/sigward-{spec.lower().replace('_', '-')}")
        for spec in ("ECC_NIST_P256", "RSA_2048", "RSA_3072")
    }


@pytest.fixture
def aws_kms_env(aws_moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MotoServer]:
    """The process environment aimed at the session's moto (static dummy keys, AWS_REGION, endpoint variables);
    the awskms backend forgotten before and after."""
    from sigward.kms import backends

    point_at_moto(monkeypatch, tmp_path, aws_moto_server)
    backends.reset()
    yield aws_moto_server
    backends.reset()

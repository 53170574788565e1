"""HTTPS through the guarded connections: the socket goes to the vetted address, while SNI and certificate
verification still use the registry's host name; the CA bundle comes from the config or REQUESTS_CA_BUNDLE."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError, VerificationFailure
from sigward.references import Repository
from sigward.registry import CredentialStore, RegistryClient, RegistryConfig
from tests.support.httpservers import Reply, ScriptedServer, Seen
from tests.support.registry import sha256_digest

INDEX_MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
).encode()


@dataclass(frozen=True)
class Pki:
    ca_path: Path
    server: ssl.SSLContext


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA and a server certificate valid for ``localhost`` only (not for 127.0.0.1)."""
    workdir = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("sigward test CA"))
        .issuer_name(_name("sigward test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = workdir / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path = workdir / "server.pem"
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path)
    return Pki(ca_path=ca_path, server=context)


@pytest.fixture
def https_server(pki: Pki) -> Iterator[ScriptedServer]:
    def handler(seen: Seen) -> Reply:
        return Reply(200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, INDEX_MANIFEST)

    with ScriptedServer(handler, tls=pki.server) as server:
        yield server


def fetch(server: ScriptedServer, host: str, config: RegistryConfig) -> str:
    with RegistryClient(config, credentials=CredentialStore.empty()) as client:
        return client.get_manifest(Repository(host, "app"), "v1", deadline=Deadline.after(10)).digest


def test_https_with_configured_ca_verifies_the_host_name(pki: Pki, https_server: ScriptedServer) -> None:
    host = f"localhost:{https_server.port}"
    config = RegistryConfig(private_registries=frozenset({"localhost"}), ca_bundle=str(pki.ca_path))
    assert fetch(https_server, host, config) == sha256_digest(INDEX_MANIFEST)
    [seen] = https_server.requests_seen()
    assert seen.headers["host"] == host


def test_certificate_for_another_name_is_refused(pki: Pki, https_server: ScriptedServer) -> None:
    """Same server, same vetted address, but asked for as 127.0.0.1: the certificate (localhost only) fails."""
    config = RegistryConfig(private_registries=frozenset({"127.0.0.1"}), ca_bundle=str(pki.ca_path))
    with pytest.raises(ExternalServiceError, match="TLS") as err:
        fetch(https_server, f"127.0.0.1:{https_server.port}", config)
    assert not isinstance(err.value, VerificationFailure)


def test_unknown_ca_is_refused(https_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    config = RegistryConfig(private_registries=frozenset({"localhost"}))
    with pytest.raises(ExternalServiceError, match="TLS"):
        fetch(https_server, f"localhost:{https_server.port}", config)


def test_requests_ca_bundle_is_honoured(
    pki: Pki, https_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca_path))
    for config in (
        RegistryConfig.from_env({"SIGWARD_PRIVATE_REGISTRIES": "localhost", "REQUESTS_CA_BUNDLE": str(pki.ca_path)}),
        RegistryConfig(private_registries=frozenset({"localhost"})),
    ):
        assert fetch(https_server, f"localhost:{https_server.port}", config) == sha256_digest(INDEX_MANIFEST)


def test_https_host_is_never_downgraded_to_http(https_server: ScriptedServer, pki: Pki) -> None:
    """A registry not in SIGWARD_INSECURE_REGISTRIES is spoken to over TLS even when it redirects to http."""

    def redirecting(seen: Seen) -> Reply:
        return Reply(302, {"Location": f"http://localhost:{https_server.port}/v2/app/manifests/v1"})

    with ScriptedServer(redirecting, tls=pki.server) as server:
        config = RegistryConfig(private_registries=frozenset({"localhost"}), ca_bundle=str(pki.ca_path))
        with pytest.raises(VerificationFailure, match="plain HTTP"):
            fetch(server, f"localhost:{server.port}", config)


def test_ca_bundle_is_loaded_once_for_every_connection(pki: Pki, https_server: ScriptedServer, tmp_path: Path) -> None:
    """The bundle is read when the client is made (one TLS context for all its connections, not a file load per
    connection): removing the file afterwards changes nothing, and the host name is still checked."""
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(pki.ca_path.read_bytes())
    config = RegistryConfig(private_registries=frozenset({"localhost", "127.0.0.1"}), ca_bundle=str(bundle))
    with RegistryClient(config, credentials=CredentialStore.empty()) as client:
        bundle.unlink()
        repo = Repository(f"localhost:{https_server.port}", "app")
        got = client.get_manifest(repo, "v1", deadline=Deadline.after(10))
        assert got.digest == sha256_digest(INDEX_MANIFEST)
        with pytest.raises(ExternalServiceError, match="TLS"):
            client.get_manifest(Repository(f"127.0.0.1:{https_server.port}", "app"), "v1", deadline=Deadline.after(10))
        assert client.stats.connections == 2


def test_unreadable_ca_bundle_fails_https_only_and_as_a_sigward_error(
    https_server: ScriptedServer, tmp_path: Path
) -> None:
    """A bundle that cannot be read does not stop the client from being made (plain-HTTP registries still work);
    an HTTPS request then fails as an outage of that registry, never with a stray OSError or an unverified answer."""
    config = RegistryConfig(private_registries=frozenset({"localhost"}), ca_bundle=str(tmp_path / "missing.pem"))
    with pytest.raises(ExternalServiceError) as err:
        fetch(https_server, f"localhost:{https_server.port}", config)
    assert not isinstance(err.value, VerificationFailure)
    assert https_server.requests_seen() == []

"""Real third-party Sigstore signing code for end-to-end tests: sigstore-js's CLI (``@sigstore/cli``: ``sigstore
attest``, ``sigstore attach``) against ``@sigstore/mock``'s Fulcio, Rekor and timestamp authority served over HTTP on
loopback by ``sigstore_mock_server.mjs``.

The npm packages are installed once into a cache directory outside the repository (``$SIGWARD_NPM_CACHE``, else
``~/.cache/sigward-npm``), under a file lock and a marker, so parallel and later sessions reuse them. Nothing here
knows sigward: the bundle comes out of sigstore-js, the referrer is pushed by sigstore-js, and the trusted root is
built from the mock services' public keys and certificates only.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# Exact versions (the newest on npm when this was written). Both declare engines node ^22.22.2 || ^24.15 || >=26
# but run unchanged on Node 20 (checked with 20.20.2); the install passes --engine-strict=false for that.
SIGSTORE_CLI_VERSION = "0.10.3"
SIGSTORE_MOCK_VERSION = "0.13.0"
PACKAGES = {"@sigstore/cli": SIGSTORE_CLI_VERSION, "@sigstore/mock": SIGSTORE_MOCK_VERSION}

SERVER_SCRIPT = Path(__file__).with_name("sigstore_mock_server.mjs")
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
INTOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"

NPM_INSTALL_TIMEOUT_SECONDS = 600.0
SERVER_START_TIMEOUT_SECONDS = 30.0
CLI_TIMEOUT_SECONDS = 120.0

# npm's codes for "the registry could not be reached" (npm prints `npm error code <CODE>` and, for these, a
# `npm error network …` line). Anything else is a real failure, not a reason to skip.
_NETWORK_CODES = frozenset(
    {
        "ENOTFOUND",
        "EAI_AGAIN",
        "ECONNREFUSED",
        "ECONNRESET",
        "ETIMEDOUT",
        "ESOCKETTIMEDOUT",
        "EHOSTUNREACH",
        "ENETUNREACH",
        "ENETDOWN",
        "EPROTO",
        "CERT_HAS_EXPIRED",
        "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
        "SELF_SIGNED_CERT_IN_CHAIN",
        "E502",
        "E503",
        "E504",
    }
)


class NpmUnavailable(RuntimeError):
    """npm could not reach its registry: the one reason the end-to-end test may skip."""


class SigstoreJsError(RuntimeError):
    pass


# -- installing the npm packages


def npm_cache_root(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get("SIGWARD_NPM_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "sigward-npm"


def install_prefix(environ: Mapping[str, str] | None = None) -> Path:
    """The npm ``--prefix`` for the pinned versions (a new directory when a version changes)."""
    tag = f"sigstore-cli-{SIGSTORE_CLI_VERSION}+mock-{SIGSTORE_MOCK_VERSION}"
    return npm_cache_root(environ) / tag


def _marker(prefix: Path) -> Path:
    return prefix / ".sigward-installed.json"


def _installed_version(prefix: Path, package: str) -> str:
    try:
        doc = json.loads((prefix / "node_modules" / package / "package.json").read_text())
    except (OSError, ValueError):
        return ""
    return str(doc.get("version", ""))


def _is_installed(prefix: Path) -> bool:
    try:
        marker = json.loads(_marker(prefix).read_text())
    except (OSError, ValueError):
        return False
    return (
        marker == PACKAGES
        and all(_installed_version(prefix, p) == v for p, v in PACKAGES.items())
        and cli_binary(prefix).exists()
    )


def cli_binary(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "sigstore"


def _npm_failure(stdout: str, stderr: str, registry: str) -> Exception:
    """NpmUnavailable when npm says it could not reach the registry, else SigstoreJsError; both with npm's own
    error code and its one-line explanation (not the stack trace)."""
    text = f"{stdout}\n{stderr}"
    code_match = re.search(r"npm (?:error|ERR!) code (\S+)", text) or re.search(r"npm (?:error|ERR!) errno (\S+)", text)
    code = code_match.group(1) if code_match else ""
    network = re.search(r"npm (?:error|ERR!) network (.+)", text)
    explained = network or re.search(r"npm (?:error|ERR!) .*?((?:FetchError|Error): .+)", text)
    errors = [line.strip() for line in text.splitlines() if re.match(r"npm (error|ERR!)", line.strip())]
    reason = (explained.group(1).strip() if explained else "; ".join(errors[:3]))[:400]
    if code in _NETWORK_CODES or network is not None:
        return NpmUnavailable(f"npm cannot reach the registry {registry} ({code or 'network error'}): {reason}")
    return SigstoreJsError(f"npm install failed ({code or 'no error code'}): {reason or text[-600:]}")


def ensure_installed(environ: Mapping[str, str] | None = None) -> Path:
    """Install the pinned ``@sigstore/cli`` and ``@sigstore/mock`` (once: a marker records a finished install;
    a file lock keeps concurrent sessions from installing twice). Returns the npm prefix.

    Raises :class:`NpmUnavailable` when npm cannot reach its registry, :class:`SigstoreJsError` otherwise."""
    env = dict(os.environ if environ is None else environ)
    node, npm = shutil.which("node", path=env.get("PATH")), shutil.which("npm", path=env.get("PATH"))
    if node is None or npm is None:
        raise SigstoreJsError("node and npm are needed for the sigstore-js end-to-end test (Node 20+ with npm)")
    prefix = install_prefix(env)
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix.parent / f".{prefix.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_installed(prefix):
            return prefix
        _marker(prefix).unlink(missing_ok=True)
        registry = subprocess.run(
            [npm, "config", "get", "registry"], capture_output=True, text=True, env=env, timeout=60, check=False
        ).stdout.strip()
        command = [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--save-exact",
            "--ignore-scripts",  # neither package nor any dependency needs an install script
            "--engine-strict=false",
            # a flaky network gets two retries; an unreachable registry is reported within seconds, not minutes
            "--fetch-timeout=60000",
            "--fetch-retries=2",
            "--fetch-retry-mintimeout=2000",
            "--fetch-retry-maxtimeout=10000",
            *(f"{name}@{version}" for name, version in PACKAGES.items()),
        ]
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=NPM_INSTALL_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            raise SigstoreJsError(f"npm install did not finish within {NPM_INSTALL_TIMEOUT_SECONDS:.0f} s") from None
        if proc.returncode != 0:
            raise _npm_failure(proc.stdout, proc.stderr, registry or "(npm's default registry)")
        wrong = {p: _installed_version(prefix, p) for p, v in PACKAGES.items() if _installed_version(prefix, p) != v}
        if wrong or not cli_binary(prefix).exists():
            raise SigstoreJsError(f"npm install left unexpected versions {wrong} in {prefix}")
        _marker(prefix).write_text(json.dumps(PACKAGES))
        return prefix


def node_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for sigstore-js processes: no proxies (everything is on loopback) and no ambient CI
    identity (GitHub Actions / Buildkite token sources would compete with SIGSTORE_ID_TOKEN)."""
    dropped = {
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "BUILDKITE",
        "SIGSTORE_ID_TOKEN",
        "OIDC_REDIRECT_URL",
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in dropped and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


# -- the mock services


@dataclass(frozen=True)
class MockServices:
    fulcio_url: str
    rekor_url: str
    tsa_url: str
    fulcio_root_der: bytes
    ctlog_key_der: bytes
    ctlog_id: bytes
    rekor_key_der: bytes
    tsa_chain_der: tuple[bytes, ...]  # signing certificate first, root last
    started: datetime


class MockSigstore:
    """``sigstore_mock_server.mjs`` as a process (its own process group), with the services' URLs and keys."""

    def __init__(self, prefix: Path, log_path: Path) -> None:
        self.prefix = prefix
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self.services: MockServices | None = None

    def __enter__(self) -> MockServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> MockServices:
        node = shutil.which("node")
        if node is None:
            raise SigstoreJsError("node not found")
        started = datetime.now(UTC)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [node, str(SERVER_SCRIPT), str(self.prefix)],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=node_environment(),
                start_new_session=True,
            )
        line = self._first_line(self._proc)
        try:
            info = json.loads(line)
        except ValueError:
            self.close()
            raise SigstoreJsError(f"mock Sigstore services did not start: {line!r}; log: {self.log_tail()}") from None
        self.services = MockServices(
            fulcio_url=info["fulcioUrl"],
            rekor_url=info["rekorUrl"],
            tsa_url=info["tsaUrl"],
            fulcio_root_der=base64.b64decode(info["fulcioRoot"]),
            ctlog_key_der=base64.b64decode(info["ctlogPublicKey"]),
            ctlog_id=base64.b64decode(info["ctlogId"]),
            rekor_key_der=base64.b64decode(info["rekorPublicKey"]),
            tsa_chain_der=tuple(base64.b64decode(c) for c in info["tsaChain"]),
            started=started,
        )
        return self.services

    def _first_line(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        box: list[bytes] = []
        reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else b""))
        reader.daemon = True
        reader.start()
        reader.join(SERVER_START_TIMEOUT_SECONDS)
        if not box or not box[0]:
            self.close()
            raise SigstoreJsError(
                f"mock Sigstore services printed nothing within {SERVER_START_TIMEOUT_SECONDS:.0f} s: {self.log_tail()}"
            )
        return box[0].decode("utf-8", "replace").strip()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        if proc.stdout is not None:
            proc.stdout.close()


# -- trust material, identity token, statement


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name_attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def trusted_root(services: MockServices, *, valid_from: datetime | None = None) -> dict[str, Any]:
    """A Sigstore trusted root naming the mock services: the Fulcio CA (its self-signed root; the mock issues
    leaves directly from it), the CT log whose SCTs Fulcio embeds, the Rekor log and the TSA chain. Log IDs are
    computed here (SHA-256 of the DER SubjectPublicKeyInfo), not taken from the mock. Every ``validFor`` starts
    ``valid_from`` (default: five minutes before the services started) and is open-ended."""
    start = _iso(valid_from or services.started - timedelta(minutes=5))
    fulcio_root = x509.load_der_x509_certificate(services.fulcio_root_der)
    tsa_certs = [x509.load_der_x509_certificate(der) for der in services.tsa_chain_der]

    def log(url: str, key_der: bytes) -> dict[str, Any]:
        return {
            "baseUrl": url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(key_der),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": start},
            },
            "logId": {"keyId": _b64(hashlib.sha256(key_der).digest())},
        }

    def authority(url: str, certs: list[x509.Certificate], ders: list[bytes]) -> dict[str, Any]:
        return {
            "subject": {
                "organization": _name_attribute(certs[-1], x509.NameOID.ORGANIZATION_NAME),
                "commonName": _name_attribute(certs[-1], x509.NameOID.COMMON_NAME),
            },
            "uri": url,
            "certChain": {"certificates": [{"rawBytes": _b64(der)} for der in ders]},
            "validFor": {"start": start},
        }

    return {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [log(services.rekor_url, services.rekor_key_der)],
        "certificateAuthorities": [authority(services.fulcio_url, [fulcio_root], [services.fulcio_root_der])],
        # the mock CT log has no URL of its own: it lives inside the mock Fulcio
        "ctlogs": [log(services.fulcio_url, services.ctlog_key_der)],
        "timestampAuthorities": [authority(services.tsa_url, tsa_certs, list(services.tsa_chain_der))],
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def identity_token(*, issuer: str, subject: str, audience: str = "sigstore", lifetime: int = 600) -> str:
    """An ES256 OIDC identity token with ``iss``/``sub``/``aud``. The mock Fulcio decodes it without checking
    the signature (its README: "does NOT need to be signed"); it is signed anyway, with a throwaway key, so it
    has the shape a real provider's token has."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    header = {"alg": "ES256", "typ": "JWT", "kid": "sigward-test"}
    claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": now, "nbf": now, "exp": now + lifetime}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def slsa_provenance_statement(*, subject_name: str, digest: str, build_type: str, builder_id: str) -> bytes:
    """An in-toto v1 statement with a SLSA provenance v1 predicate about one image digest."""
    algorithm, _, hex_value = digest.partition(":")
    statement = {
        "_type": INTOTO_STATEMENT_V1,
        "subject": [{"name": subject_name, "digest": {algorithm: hex_value}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": {
                    "workflow": {"ref": "refs/heads/main", "repository": "https://git.example.test/acme/app"}
                },
                "internalParameters": {"runner": "sigward-test"},
                "resolvedDependencies": [
                    {"uri": "git+https://git.example.test/acme/app@refs/heads/main", "digest": {"gitCommit": "0" * 40}}
                ],
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {
                    "invocationId": "https://ci.example.test/acme/app/runs/1",
                    "startedOn": _iso(datetime.now(UTC)),
                },
            },
        },
    }
    return json.dumps(statement, indent=2).encode()


# -- the CLI


def run_cli(prefix: Path, args: list[str], *, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cli_binary(prefix)), *args],
        capture_output=True,
        text=True,
        env=node_environment(env),
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def attest(
    prefix: Path, services: MockServices, statement: Path, output: Path, *, token: str, tsa: bool = True
) -> bytes:
    """``sigstore attest``: Fulcio certificate for ``token``'s identity, DSSE signature over ``statement``, Rekor
    entry (intoto 0.0.2, the CLI's choice) and, with ``tsa``, an RFC 3161 timestamp. Returns the bundle JSON.

    The identity token reaches the CLI the way it does in CI: ``CI=true`` makes it use its CI identity providers,
    of which ``SIGSTORE_ID_TOKEN`` is the generic one (the other would open a browser for an OAuth flow)."""
    args = [
        "attest",
        str(statement),
        "--fulcio-url",
        services.fulcio_url,
        "--rekor-url",
        services.rekor_url,
        "--output-file",
        str(output),
        "--timeout",
        "30",
    ]
    if tsa:
        args += ["--tsa-server-url", services.tsa_url]
    proc = run_cli(prefix, args, env={"CI": "true", "SIGSTORE_ID_TOKEN": token})
    if proc.returncode != 0 or not output.exists():
        raise SigstoreJsError(f"sigstore attest failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return output.read_bytes()


def attach(prefix: Path, image: str, bundle: Path, *, username: str, password: str) -> str:
    """``sigstore attach``: push the bundle as an OCI 1.1 referrer of ``image`` (sigstore-js speaks plain HTTP to
    127.0.0.1/localhost registries, and falls back to the ``sha256-<hex>`` referrers index when the registry has no
    referrers API). Returns the referrer manifest digest it reports."""
    proc = run_cli(prefix, ["attach", "--attestation", str(bundle), image, "-u", username, "-p", password])
    match = re.search(r"Artifact attached to image:\s*(sha256:[0-9a-f]{64})", proc.stderr + proc.stdout)
    if proc.returncode != 0 or match is None:
        raise SigstoreJsError(f"sigstore attach failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return match.group(1)

"""A real CNCF distribution registry (Debian's ``docker-registry``) for integration tests, and pushing to it.

:class:`LocalRegistry` runs ``docker-registry serve`` on a free loopback port with its storage in a temporary
directory, optionally behind htpasswd (Basic) or token (Bearer, see :mod:`tests.support.tokenserver`) auth.
Pushes use plain ``requests`` (not sigward's client), so a client bug cannot hide itself in the fixtures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from sigward.registry import RegistryConfig
from tests.support.authfront import SameOriginFront
from tests.support.netutil import free_port
from tests.support.tokenserver import TokenServer

REGISTRY_BINARY = os.environ.get("SIGWARD_TEST_REGISTRY_BINARY", "/usr/bin/docker-registry")
# The registry starts in well under a second; allow for a loaded CI machine.
START_TIMEOUT_SECONDS = 20.0

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# A bcrypt (cost 4, the minimum) hash of HTPASSWD_PASSWORD, made once with crypt(3); distribution's htpasswd
# only accepts bcrypt, and keeping the hash here spares the tests a bcrypt dependency.
HTPASSWD_USER = "sigward"
HTPASSWD_PASSWORD = "correct horse battery"
HTPASSWD_HASH = "$2b$04$tulwYergxOjm6cBWD9bn3uQ3WS1GxWcQxUA1jPkjkJJN.Er2.xFr2"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Pushed:
    """A manifest pushed by the fixture: enough to reference it from an index."""

    digest: str
    media_type: str
    size: int
    raw: bytes

    def descriptor(self, platform: Mapping[str, str] | None = None) -> dict[str, Any]:
        desc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if platform:
            desc["platform"] = dict(platform)
        return desc


def local_config(*servers: Any, private: Sequence[str] = ("127.0.0.1",)) -> RegistryConfig:
    """Client settings that reach the given servers (anything with ``.host``) over plain HTTP on loopback."""
    return RegistryConfig(
        insecure_registries=frozenset(s.host for s in servers),
        private_registries=frozenset(private),
        connect_timeout=2.0,
        read_timeout=5.0,
    )


class RegistryError(RuntimeError):
    pass


class LocalRegistry:
    """One ``docker-registry serve`` process; ``start()``/``stop()`` may be repeated (same port and data)."""

    def __init__(
        self,
        workdir: Path,
        *,
        auth: str = "none",
        token_server: TokenServer | None = None,
        host_ip: str = "127.0.0.1",
        notifications: list[dict[str, Any]] | None = None,
        realm: str = "",
    ) -> None:
        """Token auth: the registry process listens on a private port behind a same-origin front that also serves
        ``/token`` (forwarded to ``token_server``), so the realm is the registry's own origin unless ``realm``
        names another URL (a foreign realm, for the tests that credentials never reach one)."""
        self.notifications = notifications
        if auth not in ("none", "htpasswd", "token"):
            raise ValueError(f"unknown auth {auth!r}")
        if auth == "token" and token_server is None:
            raise ValueError("token auth needs a token server")
        self.workdir = workdir
        self.auth = auth
        self.token_server = token_server
        self.host_ip = host_ip
        self.port = free_port(host_ip)
        # Token auth: the registry itself listens here, behind the front on ``port``.
        self.backend_port = free_port(host_ip) if auth == "token" else self.port
        self.realm = realm
        self._front: SameOriginFront | None = None
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._session = requests.Session()
        self._session.trust_env = False
        self.pushed: dict[str, Pushed] = {}
        self._write_config()

    # -- process

    @property
    def host(self) -> str:
        return f"{self.host_ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}, "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"{self.host_ip}:{self.backend_port}",
                "headers": {"X-Content-Type-Options": ["nosniff"]},
                # Upload locations relative to the request, so they stay on the front's origin.
                "relativeurls": True,
            },
        }
        if self.auth == "htpasswd":
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{HTPASSWD_USER}:{HTPASSWD_HASH}\n")
            config["auth"] = {"htpasswd": {"realm": "sigward-test", "path": str(htpasswd)}}
        elif self.auth == "token":
            assert self.token_server is not None
            config["auth"] = self.token_server.registry_auth_config()
            config["auth"]["token"]["realm"] = self.realm or f"{self.url}/token"
        if self.notifications:
            # distribution's notification endpoints: how a real registry reports pushes to a webhook
            config["notifications"] = {"endpoints": self.notifications}
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self) -> None:
        if self.running:
            return
        binary = shutil.which(REGISTRY_BINARY) or REGISTRY_BINARY
        if not Path(binary).exists():
            raise RegistryError(
                f"{REGISTRY_BINARY} not found: install Debian's docker-registry (apt-get install -y docker-registry)"
            )
        if self.auth == "token" and self._front is None:
            assert self.token_server is not None
            self._front = SameOriginFront(
                self.host_ip, self.port, f"{self.host_ip}:{self.backend_port}", self.token_server.host, ("/token",)
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        end = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self._proc.poll() is not None:
                raise RegistryError(f"docker-registry exited at start: {self.log_tail()}")
            try:
                resp = self._session.get(f"{self.url}/v2/", timeout=1)
                if resp.status_code in (200, 401):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > end:
                self.stop()
                raise RegistryError(f"docker-registry did not answer within {START_TIMEOUT_SECONDS} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the registry's process group and wait for it (a stopped registry refuses connections)."""
        proc, self._proc = self._proc, None
        front, self._front = self._front, None
        if front is not None:
            front.close()
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.stop()
        self._session.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- pushing

    def _push_headers(self, repo: str) -> dict[str, str]:
        if self.auth == "htpasswd":
            pair = base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        if self.auth == "token":
            assert self.token_server is not None
            user = next(iter(self.token_server.users), "")
            token = self.token_server.issue(user, [f"repository:{repo}:pull,push"])
            return {"Authorization": f"Bearer {token}"}
        return {}

    def _check(self, resp: requests.Response, what: str, *expected: int) -> requests.Response:
        if resp.status_code not in expected:
            raise RegistryError(f"{what}: HTTP {resp.status_code} {resp.text[:500]}")
        return resp

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload a blob (POST then PUT, the protocol every registry supports); returns its digest."""
        digest = sha256_digest(data)
        headers = self._push_headers(repo)
        start = self._check(
            self._session.post(f"{self.url}/v2/{repo}/blobs/uploads/", headers=headers, timeout=10),
            f"start upload to {repo}",
            202,
        )
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        self._check(
            self._session.put(
                f"{location}{sep}digest={digest}",
                data=data,
                headers={**headers, "Content-Type": "application/octet-stream"},
                timeout=10,
            ),
            f"finish upload of {digest} to {repo}",
            201,
        )
        return digest

    def push_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        """PUT a manifest (by tag or digest) exactly as given; returns the digest the registry reports."""
        resp = self._check(
            self._session.put(
                f"{self.url}/v2/{repo}/manifests/{reference}",
                data=raw,
                headers={**self._push_headers(repo), "Content-Type": media_type},
                timeout=10,
            ),
            f"push manifest {reference} to {repo}",
            201,
        )
        digest = resp.headers.get("Docker-Content-Digest", sha256_digest(raw))
        if digest != sha256_digest(raw):
            raise RegistryError(f"registry reported {digest} for a manifest whose sha256 is {sha256_digest(raw)}")
        self.pushed[digest] = Pushed(digest=digest, media_type=media_type, size=len(raw), raw=raw)
        return digest

    def push_image(
        self,
        repo: str,
        tag: str | None = "latest",
        *,
        layers: Sequence[bytes] | None = None,
        config: bytes | None = None,
        docker: bool = False,
        annotations: Mapping[str, str] | None = None,
        layer_media_type: str | None = None,
        layer_annotations: Sequence[Mapping[str, str]] | None = None,
    ) -> str:
        """Push a tiny image (random layer and config unless given); OCI media types unless ``docker``.

        With ``tag=None`` the manifest is pushed by digest only. Returns the manifest digest.
        """
        if layers is None:
            layers = [os.urandom(64)]
        if config is None:
            config = canonical_json(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "created": "2024-01-01T00:00:00Z",
                    "nonce": os.urandom(8).hex(),
                }
            )
        layer_type = layer_media_type or (DOCKER_LAYER if docker else OCI_LAYER)
        layer_descs = []
        for i, layer in enumerate(layers):
            desc: dict[str, Any] = {
                "mediaType": layer_type,
                "digest": self.push_blob(repo, layer),
                "size": len(layer),
            }
            if layer_annotations is not None and i < len(layer_annotations):
                desc["annotations"] = dict(layer_annotations[i])
            layer_descs.append(desc)
        media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": self.push_blob(repo, config),
                "size": len(config),
            },
            "layers": layer_descs,
        }
        if annotations:
            manifest["annotations"] = dict(annotations)
        raw = json.dumps(manifest, indent=3).encode()
        digest = sha256_digest(raw)
        return self.push_manifest(repo, tag if tag is not None else digest, raw, media_type)

    def push_index(
        self,
        repo: str,
        tag: str | None = "latest",
        *,
        manifests: Sequence[str] | None = None,
        docker: bool = False,
        platforms: Sequence[Mapping[str, str]] | None = None,
    ) -> str:
        """Push a multi-platform index over ``manifests`` (pushed digests; two new images by default)."""
        if manifests is None:
            manifests = [self.push_image(repo, None, docker=docker) for _ in range(2)]
        if platforms is None:
            arches = ["amd64", "arm64", "s390x", "ppc64le"]
            platforms = [{"os": "linux", "architecture": arches[i % len(arches)]} for i in range(len(manifests))]
        media_type = DOCKER_LIST if docker else OCI_INDEX
        index = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                self.pushed[d].descriptor(platforms[i] if i < len(platforms) else None) for i, d in enumerate(manifests)
            ],
        }
        raw = json.dumps(index, indent=2).encode()
        digest = sha256_digest(raw)
        return self.push_manifest(repo, tag if tag is not None else digest, raw, media_type)

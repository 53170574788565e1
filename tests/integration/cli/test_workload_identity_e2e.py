"""End to end with NO docker config (DOCKER_CONFIG is an empty directory): a signed image in a credential-protected
registry (real docker-registry, token auth) is verified by ``sigward verify`` (a process), by the admission function
and by a push delivery (both through ``sigward serve``), with registry credentials from the google provider only
(real google-auth against a metadata-server stand-in). The same rule restricted to ``providers: [amazon]`` fails
(decided), never sends the Google token, not even to resolve the tag; the token never appears in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from sigward.store.sqlite import SqliteStore
from tests.support.admission import pod, pod_request, review
from tests.support.gce_metadata import AMBIENT_GOOGLE_VARIABLES, AccessTokenMetadata
from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import OCI_MANIFEST, LocalRegistry
from tests.support.serve import REPO, Served
from tests.support.signing import attach_signatures, new_key, signed_layer
from tests.support.tokenserver import TokenServer

pytestmark = pytest.mark.registry
GOOGLE_TOKEN = "ya29.sigward-e2e-access-token-0123456789"
PUSH_SECRET = "push-secret-e2e-0123456789"
KEY = new_key("p256")


@dataclass
class Stack:
    registry: LocalRegistry
    tokens: TokenServer
    metadata: AccessTokenMetadata
    env: dict[str, str]
    workdir: Path
    digest: str

    @property
    def image(self) -> str:
        return f"{self.registry.host}/wi/app:v1"

    def policy(self, providers: list[str] | None) -> Path:
        iv = key_verification([f"{self.registry.host}/*"], [keys_entry(KEY.public_pem)])
        if providers is not None:
            iv["imageRegistryCredentials"] = {"providers": providers}
        path = self.workdir / f"policy-{'-'.join(providers or ['process'])}.yaml"
        path.write_text(dump(cluster_policy("require-signed", [iv])))
        return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("wi-e2e")
    (workdir / "tokens").mkdir()
    (workdir / "empty-docker-config").mkdir()
    (workdir / "home").mkdir()
    tokens = TokenServer(workdir / "tokens", users={"pusher": "pusher-password-unknown-to-clients"})
    tokens.users["oauth2accesstoken"] = GOOGLE_TOKEN  # what Google's token realm would accept
    metadata = AccessTokenMetadata(token=GOOGLE_TOKEN)
    registry = LocalRegistry(workdir / "registry", auth="token", token_server=tokens)
    registry.start()
    digest = registry.push_image("wi/app", tag="v1")
    attach_signatures(registry, "wi/app", digest, [signed_layer(KEY, image_digest=digest)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGWARD_", "AWS_", "AZURE_", "GITHUB_"))}
    for name in AMBIENT_GOOGLE_VARIABLES:
        env.pop(name, None)
    env.update(metadata.environment(workdir / "home"))
    env.update(
        {
            "DOCKER_CONFIG": str(workdir / "empty-docker-config"),
            "SIGWARD_INSECURE_REGISTRIES": registry.host,
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
            "SIGWARD_REGISTRY_PROVIDERS": f"{registry.host}=google",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        }
    )
    try:
        yield Stack(registry, tokens, metadata, env, workdir, digest)
    finally:
        registry.close()
        metadata.close()
        tokens.close()


def _google_token_requests(stack: Stack) -> int:
    return sum(1 for r in stack.tokens.seen() if r.user == "oauth2accesstoken")


@pytest.mark.parametrize(("providers", "exit_code"), [(None, 0), (["google"], 0), (["amazon"], 1)])
def test_sigward_verify_process(stack: Stack, providers: list[str] | None, exit_code: int) -> None:
    stack.tokens.clear()
    policy = str(stack.policy(providers))
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "verify", "--json", "--policy", policy, stack.image],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == exit_code, proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["verdict"] == ("pass" if exit_code == 0 else "fail")
    if exit_code == 0:
        assert _google_token_requests(stack) >= 1
    else:
        # The tag was not resolved with the excluded provider either: no request carried any credential.
        assert not any(r.had_authorization for r in stack.tokens.seen())
        assert "anonymously" in result["message"]
    assert GOOGLE_TOKEN not in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def served(stack: Stack) -> Iterator[dict[str, Served]]:
    out: dict[str, Served] = {}
    try:
        for name, providers in (("google", None), ("amazon", ["amazon"])):
            workdir = stack.workdir / f"serve-{name}"
            workdir.mkdir()
            env = {
                **stack.env,
                "SIGWARD_POLICY": str(stack.policy(providers)),
                "SIGWARD_STORE": f"sqlite:///{workdir / 'verdicts.db'}",
                "SIGWARD_PUSH_SECRET": PUSH_SECRET,
                "SIGWARD_PUSH_GRACE_SECONDS": "0",
            }
            server = Served(workdir, env, port=free_port())
            server.env = env  # exactly this environment (Served merges os.environ otherwise)
            server.start()
            out[name] = server
        yield out
    finally:
        for server in out.values():
            server.stop()


@pytest.mark.parametrize(("name", "allowed"), [("google", True), ("amazon", False)])
def test_admission_through_serve(stack: Stack, served: dict[str, Served], name: str, allowed: bool) -> None:
    stack.tokens.clear()
    doc = review(pod_request(pod(stack.image)))
    resp = requests.post(f"{served[name].url}/admission/mutate", json=doc, timeout=60)
    assert resp.status_code == 200, resp.text
    answer = resp.json()["response"]
    assert answer["allowed"] is allowed, answer
    if not allowed:
        assert "anonymously" in answer["status"]["message"]
        assert not any(r.had_authorization for r in stack.tokens.seen())
    assert GOOGLE_TOKEN not in resp.text
    assert GOOGLE_TOKEN not in served[name].log()


def _wait_for_verdict(db: Path, digest: str, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        store = SqliteStore(str(db))
        try:
            seen = [v.verdict for v in store.for_digest(digest)]
        finally:
            store.close()
        if seen:
            return seen
        time.sleep(0.2)
    return seen


@pytest.mark.parametrize(("name", "verdict"), [("google", "pass"), ("amazon", "fail")])
def test_push_delivery_through_serve(stack: Stack, served: dict[str, Served], name: str, verdict: str) -> None:
    target = {
        "mediaType": OCI_MANIFEST,
        "digest": stack.digest,
        "repository": "wi/app",
        "url": f"http://{stack.registry.host}/v2/wi/app/manifests/{stack.digest}",
        "tag": "v1",
    }
    body = json.dumps({"events": [{"id": f"wi-{name}", "action": "push", "target": target}]})
    resp = requests.post(
        f"{served[name].url}/push/webhook",
        data=body,
        headers={
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
            "Authorization": f"Bearer {PUSH_SECRET}",
        },
        timeout=60,
    )
    assert resp.status_code in (200, 202), resp.text
    db = served[name].workdir / "verdicts.db"
    assert _wait_for_verdict(db, stack.digest) == [verdict], served[name].log()
    assert GOOGLE_TOKEN not in resp.text + served[name].log()

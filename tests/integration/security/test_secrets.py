"""Credentials stay where they belong: never on a redirect to another host, never in a log line, an answer, or the
CLI's output — while authentication fails in every way it can (wrong password, refused token, rejected identity
token, KMS access denied, wrong admission token or push secret).

Logs are captured from sigward's own stream (``sigward.logs``) and from the standard ``logging`` module at INFO (what a
deployment might enable); subprocess output is captured whole. Each secret is searched for as written, base64-encoded
(as a Basic header carries it) and URL-encoded.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from sigward import logs
from sigward.admission.http import handle_admission
from sigward.cli import run
from sigward.kms import backends
from sigward.push.http import handle_push_webhook
from sigward.push.service import PushService
from sigward.registry import CredentialStore, RegistryClient, RegistryConfig
from sigward.store.memory import MemoryStore
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource
from tests.support.admission import pod, pod_request, review
from tests.support.faults import FaultProxy, admission, is_blob, is_image_manifest
from tests.support.httpservers import Reply, ScriptedServer, Seen, forward
from tests.support.moto import REGION, clear_ambient_aws
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import HTPASSWD_PASSWORD, HTPASSWD_USER, OCI_MANIFEST, LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer
from tests.support.tokenserver import TOKEN_PASSWORD, TOKEN_USER, TokenServer

pytestmark = pytest.mark.registry

REPO_ROOT = Path(__file__).resolve().parents[3]
KEY = new_key("p256", slot=72)
WRONG_PASSWORD = "wr0ng-Passw0rd-7f3a9c"
IDENTITY_TOKEN = "identity-token-e1d2c3b4a5"
ADMISSION_TOKEN = "admission-token-5a6b7c8d9e0f1a2b"
PUSH_SECRET = "push-secret-0f1e2d3c4b5a"
AWS_SECRET = "aws-secret-key-9z8y7x6w5v4u3t2s1r"
AWS_SESSION = "aws-session-token-FQoGZXIvYXdzEJr"


def encodings(secret: str) -> list[str]:
    forms = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
    for user in (HTPASSWD_USER, TOKEN_USER, "<token>", "u"):
        forms.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return sorted(forms)


def assert_absent(secrets: list[str], *texts: str) -> None:
    joined = "\n".join(texts)
    assert joined.strip(), "nothing was captured: the test would prove nothing"
    for secret in secrets:
        for form in encodings(secret):
            assert form not in joined, f"secret {secret!r} appears (as {form!r})"


@pytest.fixture
def std_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO)
    yield caplog


def auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def policy_for(*patterns: str, entries: list[dict[str, Any]] | None = None, failure: str = "Fail") -> Any:
    return cluster_policy(
        "require-signed",
        [key_verification(list(patterns), entries or [keys_entry(KEY.public_pem)], mutate_digest=False)],
        failure_policy=failure,
    )


@pytest.fixture(scope="module")
def auth_image(auth_registry: LocalRegistry) -> tuple[str, bytes]:
    """A signed image in the htpasswd registry; returns its repository and its signature payload."""
    digest = auth_registry.push_image("secrets/app", tag="v1")
    layer = signed_layer(KEY, image_digest=digest)
    attach_signatures(auth_registry, "secrets/app", digest, [layer])
    return "secrets/app", layer.payload


# -- redirects ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("storage_ip", ["127.0.0.2", "127.0.0.1"], ids=["other-host", "same-ip-other-port"])
def test_redirected_downloads_never_carry_credentials(
    auth_registry: LocalRegistry,
    auth_image: tuple[str, bytes],
    docker_config: Callable[[dict[str, Any]], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    storage_ip: str,
) -> None:
    """``sigward verify`` with registry credentials from DOCKER_CONFIG: the registry redirects signature downloads to
    a storage host (another address, or the same address on another port — another origin all the same), which
    serves them without ever seeing the Authorization header; the image still verifies."""
    repo, payload = auth_image
    from tests.support.registry import sha256_digest

    blobs = {sha256_digest(payload): payload}

    def serve_blob(seen: Seen) -> Reply:
        name = seen.path.split("?", 1)[0].rsplit("/", 1)[-1]
        return Reply(200, {"Content-Type": "application/octet-stream"}, blobs[name]) if name in blobs else Reply(404)

    with ScriptedServer(serve_blob, host=storage_ip) as storage, FaultProxy(auth_registry.url) as proxy:

        def redirect(seen: Seen) -> Reply | None:
            if is_blob(seen) and seen.method == "GET" and "authorization" in seen.headers:
                real = forward(auth_registry.url, seen)  # the registry still decides access
                if real.status != 200:
                    return real
                return Reply(307, {"Location": f"http://{storage.host}/bucket/{seen.path.rsplit('/', 1)[-1]}?sig=x"})
            return None

        proxy.fault = redirect
        docker_config({"auths": {proxy.host: auth_entry(HTPASSWD_USER, HTPASSWD_PASSWORD)}})
        monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", f"{proxy.host},{storage.host}")
        monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1,127.0.0.2")
        policy = tmp_path / "policy.yaml"
        policy.write_text(dump(policy_for(f"{proxy.host}/*")))
        out, err = io.StringIO(), io.StringIO()
        code = run(["verify", "--json", "--policy", str(policy), f"{proxy.host}/{repo}:v1"], out=out, err=err)
        stored = storage.requests_seen()
        proxied = proxy.seen()
    assert code == 0, (out.getvalue(), err.getvalue())
    assert json.loads(out.getvalue())["results"][0]["verdict"] == "pass"
    assert stored, "the signature was not downloaded from storage: the redirect was not exercised"
    assert all("authorization" not in s.headers for s in stored), [s.headers for s in stored]
    assert any(s.headers.get("authorization", "").startswith("Basic ") for s in proxied if is_blob(s))
    assert_absent([HTPASSWD_PASSWORD], out.getvalue(), err.getvalue())


# -- admission token ---------------------------------------------------------------------------------------------------


def test_admission_token_never_in_logs_or_answers(registry: LocalRegistry, std_logs: pytest.LogCaptureFixture) -> None:
    digest = registry.push_image("secrets/plain", tag="v1")
    attach_signatures(registry, "secrets/plain", digest, [signed_layer(KEY, image_digest=digest)])
    image = f"{registry.host}/secrets/plain:v1"
    near_miss = ADMISSION_TOKEN[:-1] + "X"
    env = {"SIGWARD_ADMISSION_TOKEN": ADMISSION_TOKEN}
    bodies: list[str] = []
    with admission(policy_for(f"{registry.host}/*"), insecure=[registry.host]) as adm:
        body = json.dumps(review(pod_request(pod(image)))).encode()
        attempts: list[tuple[str, dict[str, str], int]] = [
            (f"/{ADMISSION_TOKEN}/mutate", {}, 200),
            ("/mutate", {"Authorization": f"Bearer {ADMISSION_TOKEN}"}, 200),
            (f"/{near_miss}/mutate", {}, 401),
            ("/validate", {"Authorization": f"Bearer {near_miss}"}, 401),
            (f"/{ADMISSION_TOKEN}/{near_miss}/validate", {"Authorization": f"Basic {near_miss}"}, 200),
            (f"/{ADMISSION_TOKEN}/mutate", {}, 400),  # malformed body, after authentication
        ]
        for path, headers, status in attempts:
            resp = handle_admission(
                method="POST",
                path=path,
                headers=headers,
                body=body if status != 400 else b"{" + ADMISSION_TOKEN.encode(),
                service=lambda: adm.service,
                environ=env,
            )
            assert resp.status == status, (path, resp.body)
            bodies.append(resp.body.decode())
        sigward_log = adm.log.getvalue()
    assert "admission decision" in sigward_log and "refused" in sigward_log
    assert_absent([ADMISSION_TOKEN, near_miss], sigward_log, std_logs.text, *bodies)


# -- registry credentials ----------------------------------------------------------------------------------------------


def test_registry_password_never_in_logs_or_answers(
    auth_registry: LocalRegistry, auth_image: tuple[str, bytes], tmp_path: Path, std_logs: pytest.LogCaptureFixture
) -> None:
    repo, _ = auth_image
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {auth_registry.host: auth_entry(HTPASSWD_USER, WRONG_PASSWORD)}}))
    with admission(
        policy_for(f"{auth_registry.host}/*", failure="Ignore"),
        insecure=[auth_registry.host],
        credentials=CredentialStore(config),
    ) as adm:
        response, _ = adm.decide(f"{auth_registry.host}/{repo}:v1")
        sigward_log = adm.log.getvalue()
    # a refused password is a decided failure (Kyverno treats 401/403 so): denied even under Ignore
    assert response["allowed"] is False
    assert "with the credentials configured" in response["status"]["message"]
    assert_absent([WRONG_PASSWORD], sigward_log, std_logs.text, json.dumps(response))


@pytest.fixture
def proxied_token_registry(token_server: TokenServer, tmp_path: Path) -> Iterator[tuple[LocalRegistry, FaultProxy]]:
    """A token-auth registry reached through a fault proxy whose origin is also the realm's (credentials go only
    to a realm on the registry's own origin)."""
    reg = LocalRegistry(tmp_path / "proxied-registry", auth="token", token_server=token_server)
    with FaultProxy(reg.url) as proxy:
        reg.realm = f"http://{proxy.host}/token"
        reg._write_config()
        reg.start()
        try:
            yield reg, proxy
        finally:
            reg.close()


def test_bearer_and_identity_tokens_never_in_logs_or_answers(
    proxied_token_registry: tuple[LocalRegistry, FaultProxy], tmp_path: Path, std_logs: pytest.LogCaptureFixture
) -> None:
    """A token the token server issued, refused by the registry (a proxy answers 403 to it); and an identity
    (refresh) token the token server rejects. Neither token, nor the password behind the first, is ever shown."""
    token_registry, proxy = proxied_token_registry
    assert token_registry.token_server is not None
    digest = token_registry.push_image("secrets/bearer", tag="v1")
    attach_signatures(token_registry, "secrets/bearer", digest, [signed_layer(KEY, image_digest=digest)])
    token_host = token_registry.token_server.host
    texts: list[str] = []

    def refuse_tokens(seen: Seen) -> Reply | None:
        if is_image_manifest(seen) and seen.headers.get("authorization", "").startswith("Bearer "):
            return Reply(403, {"Content-Type": "application/json"}, b'{"errors":[{"code":"DENIED"}]}')
        return None

    proxy.fault = refuse_tokens
    image = f"{proxy.host}/secrets/bearer:v1"
    for entry in (auth_entry(TOKEN_USER, TOKEN_PASSWORD), {"identitytoken": IDENTITY_TOKEN}):
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"auths": {proxy.host: entry}}))
        with admission(
            policy_for(f"{proxy.host}/*"),
            insecure=[proxy.host, token_host],
            credentials=CredentialStore(config),
        ) as adm:
            response, _ = adm.decide(image)
            texts += [adm.log.getvalue(), json.dumps(response)]
        assert response["allowed"] is False
        assert "denied" in response["status"]["message"] or "refused" in response["status"]["message"]
    issued = [
        s.headers["authorization"][len("Bearer ") :]
        for s in proxy.seen()
        if s.headers.get("authorization", "").startswith("Bearer ")
    ]
    assert issued, "no token was ever issued: the refused-token case was not exercised"
    assert_absent([*set(issued), TOKEN_PASSWORD, IDENTITY_TOKEN], std_logs.text, *texts)


# -- push secret -------------------------------------------------------------------------------------------------------


def test_push_secret_never_in_logs_or_answers(registry: LocalRegistry, std_logs: pytest.LogCaptureFixture) -> None:
    from sigward.policy.loader import load_policy_text

    digest = registry.push_image("secrets/pushed", tag="v1")
    target = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "repository": "secrets/pushed",
        "url": f"http://{registry.host}/v2/secrets/pushed/manifests/{digest}",
        "tag": "v1",
    }
    body = json.dumps({"events": [{"id": "secret-1", "action": "push", "target": target}]}).encode()
    store = MemoryStore()
    store.available = False  # the authenticated delivery fails too: its error path is logged as well
    policies = load_policy_text(dump(policy_for(f"{registry.host}/*")), "p.yaml").policies
    config = RegistryConfig(insecure_registries=frozenset({registry.host}), private_registries=frozenset({"127.0.0.1"}))
    near_miss = PUSH_SECRET[:-1] + "Z"
    import hashlib
    import hmac

    wrong_hmac = hmac.new(near_miss.encode(), body, hashlib.sha256).hexdigest()
    attempts = [
        ({"Authorization": f"Bearer {PUSH_SECRET}"}, 503),
        ({"X-Sigward-Secret": PUSH_SECRET}, 503),
        ({"Authorization": near_miss}, 401),
        ({"X-Sigward-Secret": f"{near_miss}"}, 401),
        ({"X-Hub-Signature-256": f"sha256={wrong_hmac}"}, 401),
        ({"Authorization": f"Bearer {near_miss}", "X-Sigward-Secret": near_miss}, 401),
    ]
    captured = io.StringIO()
    logs.set_stream(captured)
    answers = []
    try:
        with RegistryClient(config, credentials=CredentialStore.empty()) as client:
            service = PushService(
                policies=lambda: policies, verifier=Verifier(source=RegistrySignatureSource(client)), store=store
            )
            for headers, status in attempts:
                resp = handle_push_webhook(
                    method="POST",
                    headers={"Content-Type": "application/vnd.docker.distribution.events.v1+json", **headers},
                    body=body,
                    service=lambda: service,
                    environ={"SIGWARD_PUSH_SECRET": PUSH_SECRET},
                )
                assert resp.status == status, (headers, resp.body)
                answers.append(resp.body.decode())
    finally:
        logs.set_stream(None)
    assert "not authenticated" in captured.getvalue()
    assert_absent([PUSH_SECRET, near_miss, wrong_hmac], captured.getvalue(), std_logs.text, *answers)


# -- KMS credentials ---------------------------------------------------------------------------------------------------


def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    clear_ambient_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASIGWARDSECRETS01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_SESSION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", endpoint)
    backends.reset()


def _kms_error(seen: Seen) -> Reply:
    """AccessDenied for GetPublicKey (as AWS words it), with the request's own credential scope echoed back."""
    scope = seen.headers.get("authorization", "")[:120]
    body = {
        "__type": "AccessDeniedException",
        "message": f"User is not authorized to perform: kms:GetPublicKey ({scope})",
    }
    return Reply(400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body).encode())


def test_kms_credentials_never_in_logs_or_answers(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, std_logs: pytest.LogCaptureFixture
) -> None:
    digest = registry.push_image("secrets/kms", tag="v1")
    attach_signatures(registry, "secrets/kms", digest, [signed_layer(KEY, image_digest=digest)])
    entry = {"keys": {"kms": "awskms:///alias/secrets", "rekor": {"ignoreTlog": True}}}
    texts: list[str] = []
    with ScriptedServer(_kms_error) as kms:
        _aws_env(monkeypatch, tmp_path, kms.url)
        try:
            with admission(policy_for(f"{registry.host}/*", entries=[entry]), insecure=[registry.host]) as adm:
                response, _ = adm.decide(f"{registry.host}/secrets/kms:v1")
                texts += [adm.log.getvalue(), json.dumps(response)]
        finally:
            backends.reset()
        seen = kms.requests_seen()
    assert seen and seen[0].headers.get("x-amz-security-token") == AWS_SESSION  # the credentials were in use
    assert response["allowed"] is False
    assert "kms:GetPublicKey" in response["status"]["message"]
    assert_absent([AWS_SECRET, AWS_SESSION], std_logs.text, *texts)


# -- the CLI -----------------------------------------------------------------------------------------------------------


def test_cli_output_holds_no_secrets(
    registry: LocalRegistry, auth_registry: LocalRegistry, auth_image: tuple[str, bytes], tmp_path: Path
) -> None:
    """``sigward verify`` as a process, failing on a wrong registry password and on a KMS that denies access."""
    repo, _ = auth_image
    digest = registry.push_image("secrets/cli", tag="v1")
    attach_signatures(registry, "secrets/cli", digest, [signed_layer(KEY, image_digest=digest)])
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: auth_entry(HTPASSWD_USER, WRONG_PASSWORD)}})
    )
    kms_entry = {"keys": {"kms": "awskms:///alias/secrets", "rekor": {"ignoreTlog": True}}}
    policy = cluster_policy(
        "require-signed",
        [
            key_verification([f"{auth_registry.host}/*"], [keys_entry(KEY.public_pem)], mutate_digest=False),
            key_verification([f"{registry.host}/*"], [kms_entry], mutate_digest=False),
        ],
    )
    (tmp_path / "policy.yaml").write_text(dump(policy))
    with ScriptedServer(_kms_error) as kms:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGWARD_", "DOCKER_"))}
        env.update(
            {
                "DOCKER_CONFIG": str(docker),
                "SIGWARD_INSECURE_REGISTRIES": f"{auth_registry.host},{registry.host}",
                "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1",
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "AKIASIGWARDSECRETS01",
                "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                "AWS_SESSION_TOKEN": AWS_SESSION,
                "AWS_ENDPOINT_URL_KMS": kms.url,
                "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "sigward.cli",
                "verify",
                "--policy",
                str(tmp_path / "policy.yaml"),
                f"{auth_registry.host}/{repo}:v1",
                f"{registry.host}/secrets/cli:v1",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout.count("FAIL") == 2, proc.stdout
    assert "Traceback" not in proc.stderr
    assert_absent([WRONG_PASSWORD, AWS_SECRET, AWS_SESSION], proc.stdout, proc.stderr)

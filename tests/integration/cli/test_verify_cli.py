"""`sigward verify` as a process against the real local registry: signatures made by the tests, every verdict
and exit code of the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer, tampered

pytestmark = pytest.mark.registry


@dataclass(frozen=True)
class Images:
    host: str
    signed: str
    unsigned: str
    other_key: str
    replayed: str
    tampered: str
    rsa: str
    ed25519: str
    one_good: str
    separate_repo: str
    digests: dict[str, str]


@pytest.fixture(scope="module")
def images(registry: LocalRegistry) -> Images:
    host = registry.host
    key, other = new_key("p256"), new_key("p256", slot=1)
    digests: dict[str, str] = {}

    def image(repo: str, tag: str = "v1") -> tuple[str, str]:
        digest = registry.push_image(repo, tag=tag)
        ref = f"{host}/{repo}:{tag}"
        digests[ref] = digest
        return ref, digest

    signed, d_signed = image("cli/signed")
    attach_signatures(registry, "cli/signed", d_signed, [signed_layer(key, image_digest=d_signed)])
    unsigned, _ = image("cli/unsigned")
    other_key, d_other = image("cli/other-key")
    attach_signatures(registry, "cli/other-key", d_other, [signed_layer(other, image_digest=d_other)])
    replayed, d_replayed = image("cli/replayed")
    # The signed image's signature, copied verbatim next to another image.
    attach_signatures(registry, "cli/replayed", d_replayed, [signed_layer(key, image_digest=d_signed)])
    tamper, d_tamper = image("cli/tampered")
    good = signed_layer(key, image_digest=d_tamper)
    attach_signatures(
        registry,
        "cli/tampered",
        d_tamper,
        [tampered(good, good.payload.replace(b'"optional":null', b'"optional":{}'))],
    )
    rsa, d_rsa = image("cli/rsa")
    attach_signatures(registry, "cli/rsa", d_rsa, [signed_layer(new_key("rsa2048"), image_digest=d_rsa)])
    ed, d_ed = image("cli/ed25519")
    attach_signatures(registry, "cli/ed25519", d_ed, [signed_layer(new_key("ed25519"), image_digest=d_ed)])
    one_good, d_one = image("cli/one-good")
    attach_signatures(
        registry,
        "cli/one-good",
        d_one,
        [signed_layer(other, image_digest=d_one), signed_layer(key, image_digest=d_one)],
    )
    separate, d_sep = image("cli/separate")
    attach_signatures(registry, "cli/signatures", d_sep, [signed_layer(key, image_digest=d_sep)])
    return Images(
        host=host,
        signed=signed,
        unsigned=unsigned,
        other_key=other_key,
        replayed=replayed,
        tampered=tamper,
        rsa=rsa,
        ed25519=ed,
        one_good=one_good,
        separate_repo=separate,
        digests=digests,
    )


@pytest.fixture(scope="module")
def policy_file(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Path:
    host = images.host
    key = new_key("p256").public_pem
    docs = [
        cluster_policy(
            "require-signed",
            [
                key_verification([f"{host}/cli/*"], [keys_entry(key)]),
            ],
        ),
        cluster_policy(
            "rsa-and-ed25519",
            [
                key_verification([f"{host}/cli/rsa:*"], [keys_entry(new_key("rsa2048").public_pem)]),
                key_verification([f"{host}/cli/ed25519:*"], [keys_entry(new_key("ed25519").public_pem)]),
            ],
            rule="other-algorithms",
        ),
        cluster_policy(
            "separate-signatures",
            [key_verification([f"{host}/cli/separate:*"], [keys_entry(key)], repository=f"{host}/cli/signatures")],
            rule="signatures-elsewhere",
        ),
    ]
    path = tmp_path_factory.mktemp("policies") / "policies.yaml"
    path.write_text(dump(*docs))
    return path


def cli_env(images: Images) -> dict[str, str]:
    env = dict(os.environ)
    env["SIGWARD_INSECURE_REGISTRIES"] = f"{images.host},127.0.0.1:9"
    env["SIGWARD_PRIVATE_REGISTRIES"] = "127.0.0.1"
    env.pop("SIGWARD_POLICY", None)
    return env


def sigward(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigward.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )


def results_of(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    doc = json.loads(proc.stdout)
    assert set(doc) == {"results"}
    results: list[dict[str, Any]] = doc["results"]
    for r in results:
        assert set(r) == {"image", "digest", "verdict", "policy", "rule", "message"}
    return results


@pytest.fixture(scope="module")
def all_results(images: Images, policy_file: Path) -> Iterator[dict[str, list[dict[str, Any]]]]:
    refs = [
        images.signed,
        images.unsigned,
        images.other_key,
        images.replayed,
        images.tampered,
        images.rsa,
        images.ed25519,
        images.one_good,
        images.separate_repo,
    ]
    proc = sigward(["verify", "--policy", str(policy_file), "--json", *refs], cli_env(images))
    assert proc.returncode == 1, proc.stderr
    by_image: dict[str, list[dict[str, Any]]] = {}
    for r in results_of(proc):
        by_image.setdefault(r["image"], []).append(r)
    yield by_image


@pytest.mark.parametrize(
    ("attr", "verdict", "message"),
    [
        ("signed", "pass", "verified image signatures for"),
        ("unsigned", "fail", ".attestors[0].entries[0].keys: no signatures found"),
        (
            "other_key",
            "fail",
            "no matching signatures: invalid signature when validating ASN.1 encoded signature",
        ),
        ("replayed", "fail", "invalid or missing digest in claim"),
        ("tampered", "fail", "invalid signature"),
        ("one_good", "pass", "verified image signatures for"),
    ],
)
def test_require_signed_policy(
    images: Images, all_results: dict[str, list[dict[str, Any]]], attr: str, verdict: str, message: str
) -> None:
    image = getattr(images, attr)
    rows = [r for r in all_results[image] if r["policy"] == "require-signed"]
    assert len(rows) == 1
    (row,) = rows
    assert row["verdict"] == verdict, row["message"]
    assert message in row["message"]
    assert row["rule"] == "verify-signature"
    if verdict == "pass":
        assert row["digest"] == images.digests[image]
    if verdict == "fail":
        assert row["message"].startswith(f"failed to verify image {image}: ")


def test_rsa_and_ed25519_keys(images: Images, all_results: dict[str, list[dict[str, Any]]]) -> None:
    for image in (images.rsa, images.ed25519):
        rows = {r["policy"]: r for r in all_results[image]}
        assert rows["rsa-and-ed25519"]["verdict"] == "pass", rows["rsa-and-ed25519"]["message"]
        # the same images are not signed with the P-256 key of the catch-all policy
        assert rows["require-signed"]["verdict"] == "fail"


def test_signatures_in_a_separate_repository(images: Images, all_results: dict[str, list[dict[str, Any]]]) -> None:
    rows = {r["policy"]: r for r in all_results[images.separate_repo]}
    assert rows["separate-signatures"]["verdict"] == "pass", rows["separate-signatures"]["message"]
    # the catch-all policy looks next to the image, where there is nothing
    assert "no signatures found" in rows["require-signed"]["message"]


def test_exit_zero_when_all_pass_and_human_output(images: Images, policy_file: Path) -> None:
    proc = sigward(["verify", "--policy", str(policy_file), images.signed, images.one_good], cli_env(images))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("PASS ") for line in lines)
    assert "require-signed/verify-signature" in lines[0]


def test_unmatched_image_is_skipped_with_exit_zero(images: Images, policy_file: Path) -> None:
    proc = sigward(["verify", "--policy", str(policy_file), "--json", "docker.io/library/nginx:1"], cli_env(images))
    assert proc.returncode == 0, proc.stderr
    (row,) = results_of(proc)
    assert row["verdict"] == "skip"
    assert row["image"] == "docker.io/library/nginx:1"


def test_registry_down_is_an_infrastructure_error(images: Images, tmp_path: Path) -> None:
    down = "127.0.0.1:9/app/x:v1"  # discard port: nothing listens
    path = tmp_path / "p.yaml"
    path.write_text(
        dump(cluster_policy("down", [key_verification(["127.0.0.1:9/*"], [keys_entry(new_key().public_pem)])]))
    )
    proc = sigward(["verify", "--policy", str(path), "--json", down], cli_env(images))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (row,) = results_of(proc)
    assert row["verdict"] == "error"


def test_failure_outranks_infrastructure_error(images: Images, tmp_path: Path, policy_file: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        dump(cluster_policy("down", [key_verification(["127.0.0.1:9/*"], [keys_entry(new_key().public_pem)])]))
    )
    proc = sigward(
        [
            "verify",
            "--policy",
            str(path),
            "--policy",
            str(policy_file),
            "127.0.0.1:9/app/x:v1",
            images.unsigned,
        ],
        cli_env(images),
    )
    assert proc.returncode == 1


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["verify", "--policy", "{policy}", "Not/A:Valid Image"], "invalid image reference"),
        (["verify", "--policy", "/nonexistent/policy.yaml", "nginx"], "/nonexistent/policy.yaml"),
        (["verify", "nginx"], "no policy given"),
        (["verify", "--policy", "{bad_policy}", "nginx"], "spec.rules[0].verifyImages[0]"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_two(images: Images, policy_file: Path, tmp_path: Path, args: list[str], stderr: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: bad}\n"
        "spec:\n  validationFailureAction: Enforce\n"
        "  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n"
        "    - imageReferences: ['*']\n      attestors: [{entries: [{keys: {publicKeys: x, bogus: 1}}]}]\n"
    )
    argv = [a.format(policy=policy_file, bad_policy=bad) for a in args]
    proc = sigward(argv, cli_env(images))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert stderr in proc.stderr
    assert "Traceback" not in proc.stderr


def test_policy_from_environment(images: Images, policy_file: Path) -> None:
    env = cli_env(images)
    env["SIGWARD_POLICY"] = f"/nonexistent-dir-is-reported:{policy_file}"
    proc = sigward(["verify", images.signed], env)
    # a missing path in SIGWARD_POLICY is a configuration error, not silently skipped
    assert proc.returncode == 2
    env["SIGWARD_POLICY"] = str(policy_file.parent)
    proc = sigward(["verify", images.signed], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr

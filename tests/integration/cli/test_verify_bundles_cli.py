"""cosign v3's default format through `sigward verify`: a managed-key Sigstore bundle (DSSE of the
`https://sigstore.dev/cosign/sign/v1` statement) attached as an OCI 1.1 referrer in the real registry (tag-schema
fallback, as distribution 2.8 has no referrers API)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import dsse_bundle, encode, push_bundle_referrer, statement
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import new_key

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[3]
KEY = new_key("p256", slot=50)


def verify(registry: LocalRegistry, policy_doc: dict[str, Any], image: str, tmp: Path) -> tuple[int, dict[str, Any]]:
    path = tmp / f"p{len(list(tmp.iterdir()))}.yaml"
    path.write_text(dump(policy_doc))
    env = {**os.environ, "SIGWARD_INSECURE_REGISTRIES": registry.host, "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "sigward.cli", "verify", "--policy", str(path), "--json", image],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    (row,) = json.loads(proc.stdout)["results"]
    return proc.returncode, row


@pytest.mark.parametrize("kind", ["Cosign", "SigstoreBundle"])
def test_cosign_v3_key_bundle_as_referrer(registry: LocalRegistry, tmp_path: Path, kind: str) -> None:
    digest = registry.push_image(f"v3/{kind.lower()}", tag="v1")
    bundle = encode(dsse_bundle(KEY, statement(digest)))
    push_bundle_referrer(registry, f"v3/{kind.lower()}", digest, bundle)
    image = f"{registry.host}/v3/{kind.lower()}:v1"
    iv = key_verification([f"{registry.host}/*"], [keys_entry(KEY.public_pem)])
    iv["type"] = kind
    code, row = verify(registry, cluster_policy("v3", [iv]), image, tmp_path)
    assert code == 0 and row["verdict"] == "pass", row["message"]
    other = key_verification([f"{registry.host}/*"], [keys_entry(new_key("p256", slot=51).public_pem)])
    other["type"] = kind
    code, row = verify(registry, cluster_policy("v3", [other]), image, tmp_path)
    assert code == 1 and row["verdict"] == "fail"


def test_bundle_for_another_image_does_not_count(registry: LocalRegistry, tmp_path: Path) -> None:
    digest = registry.push_image("v3/replay", tag="v1")
    other = registry.push_image("v3/replay", tag="v2")
    # a valid bundle about v2's digest, attached to v1
    push_bundle_referrer(registry, "v3/replay", digest, encode(dsse_bundle(KEY, statement(other))))
    iv = key_verification([f"{registry.host}/*"], [keys_entry(KEY.public_pem)])
    code, row = verify(registry, cluster_policy("v3", [iv]), f"{registry.host}/v3/replay:v1", tmp_path)
    assert code == 1 and row["verdict"] == "fail"
    assert "does not name the image digest" in row["message"] or "subject" in row["message"]

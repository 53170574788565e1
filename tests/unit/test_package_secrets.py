"""``package`` bundles the policy files as written, so a Secret manifest beside the policies must hold public
material only: one carrying a private key or password is refused by name (issue 15), a public one is bundled."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigward.errors import BadRequestError
from sigward.package import archive_entries
from tests.support.kubeapi import secret
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key

POLICY = cluster_policy("p", [key_verification(["ghcr.io/*"], [keys_entry("k8s://sigs/cosign")])])


@pytest.mark.parametrize(
    ("data", "refused"),
    [
        ({"cosign.pub": new_key().public_pem}, False),
        ({"cosign.pub": new_key().public_pem, "cosign.key": "encrypted", "cosign.password": "pw"}, True),
        ({"key.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, True),
    ],
)
def test_private_material_is_never_bundled(tmp_path: Path, data: dict[str, str], refused: bool) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(dump(POLICY, secret("sigs", "cosign", data)))
    if refused:
        with pytest.raises(BadRequestError, match=r"refusing to bundle Secrets .*sigs/cosign") as err:
            archive_entries([str(path)])
        assert "encrypted" not in err.value.message and "AAAA" not in err.value.message
    else:
        entries, _ = archive_entries([str(path)])
        assert "policies/policy.yaml" in entries

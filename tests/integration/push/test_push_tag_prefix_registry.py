"""A prefixed cosign signature push (IVPOL ``cosign.source.tagPrefix``) re-verifies its subject, end to end: the real
docker-registry notifies `sigward serve`'s push webhook. An image pushed unsigned is recorded failing; its signature
pushed under the policy's prefix (``team-sha256-<hex>.sig``) makes the push handler verify the image again, which
passes. Negative twins: the same signature under a prefix no policy reads is an ordinary image push (verified as
itself, failing) and leaves its would-be subject failing; so is one signed by another key under the right prefix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.netutil import free_port
from tests.support.policies import dump
from tests.support.pushstack import push_env, sigward_notification, stored, wait_for_verdict
from tests.support.registry import LocalRegistry
from tests.support.serve import Served
from tests.support.signing import SigningKey, attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
SECRET = "prefix-push-secret-17"
KEY = new_key("p256", slot=77)
OTHER_KEY = new_key("p256", slot=78)
PREFIX = "team-"


@dataclass
class Stack:
    registry: LocalRegistry
    served: Served
    db: Path

    def verdicts(self, digest: str, want: str) -> list[str]:
        return [v.verdict for v in wait_for_verdict(self.db, digest, want, timeout=30)]


def image_policy(host: str) -> str:
    return dump(
        {
            "apiVersion": "policies.kyverno.io/v1",
            "kind": "ImageValidatingPolicy",
            "metadata": {"name": "team-prefixed"},
            "spec": {
                "matchImageReferences": [{"glob": f"{host}/prefixed/*"}],
                "attestors": [
                    {
                        "name": "team",
                        "cosign": {
                            "key": {"data": KEY.public_pem},
                            "ctlog": {"insecureIgnoreTlog": True},
                            "source": {"tagPrefix": PREFIX},
                        },
                    }
                ],
                "validations": [
                    {
                        "expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.team]) > 0)",
                        "message": "not signed by the team key under team-",
                    }
                ],
            },
        }
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("push-prefix")
    serve_port = free_port()
    registry = LocalRegistry(workdir / "registry", notifications=[sigward_notification(serve_port, SECRET)])
    policy = workdir / "policy.yaml"
    policy.write_text(image_policy(registry.host))
    db = workdir / "verdicts.db"
    env = push_env(policy=policy, db=db, secret=SECRET, registry_host=registry.host)
    served = Served(workdir, env, port=serve_port)
    served.start()
    registry.start()
    try:
        yield Stack(registry, served, db)
    finally:
        registry.close()
        served.stop()


def unsigned_image(stack: Stack, repo: str) -> str:
    """Push an image and wait until its push was recorded failing (grace 0: no signature yet)."""
    digest = stack.registry.push_image(repo, tag="v1")
    assert stack.verdicts(digest, "fail") == ["fail"], stack.served.log()
    return digest


def test_prefixed_signature_push_reverifies_its_subject(stack: Stack) -> None:
    repo = "prefixed/good"
    subject = unsigned_image(stack, repo)
    sig = attach_signatures(stack.registry, repo, subject, [signed_layer(KEY, image_digest=subject)], tag_prefix=PREFIX)
    assert "pass" in stack.verdicts(subject, "pass"), stack.served.log()
    # the signature manifest was handled as a signature, never verified as an image of its own
    assert stored(stack.db, sig) == []


def drain(stack: Stack, case: str) -> None:
    """distribution delivers one endpoint's events in order: once an image pushed now is recorded, every earlier
    event was handled."""
    unsigned_image(stack, f"prefixed/drain-{case}")


@pytest.mark.parametrize(
    ("case", "prefix", "key"),
    [("unknown-prefix", "other-", KEY), ("no-prefix", "", KEY), ("another-key", PREFIX, OTHER_KEY)],
)
def test_signature_the_policy_does_not_accept_leaves_the_image_failing(
    stack: Stack, case: str, prefix: str, key: SigningKey
) -> None:
    repo = f"prefixed/{case}"
    subject = unsigned_image(stack, repo)
    sig = attach_signatures(stack.registry, repo, subject, [signed_layer(key, image_digest=subject)], tag_prefix=prefix)
    drain(stack, case)
    assert [v.verdict for v in stored(stack.db, subject)] == ["fail"], stack.served.log()
    # a prefix no policy reads is an ordinary tag: its manifest is verified as an image of its own (and fails);
    # the unprefixed and the right prefix are signature pushes, about the subject only
    own = [v.verdict for v in stored(stack.db, sig)]
    assert own == (["fail"] if prefix == "other-" else []), stack.served.log()

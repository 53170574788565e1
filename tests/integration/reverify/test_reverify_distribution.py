"""Pending pushes end to end on CNCF distribution's serial notifications: the real docker-registry notifies
`sigward serve`; an image pushed before its signature is recorded `pending` and acknowledged, so the pushes behind
it keep flowing; `POST /reverify` settles pending digests — pass once the signature is there, `unsigned` (with a
finding in the answer) once the grace period has ended."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.netutil import free_port
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.pushstack import push_env, sigward_notification, stored, wait_for_verdict
from tests.support.registry import LocalRegistry
from tests.support.serve import Served
from tests.support.signing import attach_signatures, new_key, signed_layer

pytestmark = pytest.mark.registry
SECRET = "distribution-reverify-secret-7"
KEY = new_key("p256", slot=74)
PENDING_GRACE = 4.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, Served, Path]]:
    workdir = tmp_path_factory.mktemp("reverify-e2e")
    serve_port = free_port()
    registry = LocalRegistry(
        workdir / "registry",
        notifications=[sigward_notification(serve_port, SECRET)],
    )
    policy = workdir / "policy.yaml"
    policy.write_text(
        dump(cluster_policy("require-signed", [key_verification([f"{registry.host}/*"], [keys_entry(KEY.public_pem)])]))
    )
    db = workdir / "verdicts.db"
    served = Served(
        workdir,
        push_env(
            policy=policy,
            db=db,
            secret=SECRET,
            registry_host=registry.host,
            grace="600",  # a push without signature is pending, not redelivered
            extra={
                "SIGWARD_PENDING_GRACE_SECONDS": str(PENDING_GRACE),
                "SIGWARD_REVERIFY_SECONDS": "20",
                "SIGWARD_TUF_OFFLINE": "1",
            },
        ),
        port=serve_port,
    )
    served.start()
    registry.start()
    try:
        yield registry, served, db
    finally:
        registry.close()
        served.stop()


def verdicts(db: Path, digest: str) -> list[str]:
    return [v.verdict for v in stored(db, digest)]


def wait_for(db: Path, digest: str, verdict: str, timeout: float = 30.0) -> list[str]:
    return [v.verdict for v in wait_for_verdict(db, digest, verdict, timeout)]


def test_pending_pushes_do_not_block_the_queue_and_settle_at_reverify(
    stack: tuple[LocalRegistry, Served, Path],
) -> None:
    registry, served, db = stack
    late = registry.push_image("rv/late", tag="v1")  # its signature comes much later
    assert wait_for(db, late, "pending") == ["pending"], served.log()
    never = registry.push_image("rv/never", tag="v1")  # never signed
    assert wait_for(db, never, "pending") == ["pending"], served.log()
    # the queue keeps flowing behind the pending pushes: a signed image pushed next is verified at once
    signed = registry.push_image("rv/signed", tag="v1")
    attach_signatures(registry, "rv/signed", signed, [signed_layer(KEY, image_digest=signed)])
    assert "pass" in wait_for(db, signed, "pass", timeout=30), served.log()

    attach_signatures(registry, "rv/late", late, [signed_layer(KEY, image_digest=late)])
    # its signature's push settles it at once (distribution notifies before linking the tag: the event's digest
    # is read instead, see sigward.registry.hints), before any re-verification
    assert wait_for(db, late, "pass", timeout=30) == ["pass"], served.log()
    time.sleep(PENDING_GRACE + 0.5)
    resp = requests.post(f"{served.url}/reverify", timeout=60)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert [(f["digest"], f["before"], f["after"], f["reason"]) for f in report["flipped"]] == [
        (never, "pending", "unsigned", "NO_SIGNATURES")
    ]
    assert wait_for(db, late, "pass", timeout=1) == ["pass"]
    assert verdicts(db, never) == ["unsigned"]
    again = requests.post(f"{served.url}/reverify", timeout=60).json()
    assert again["flipped"] == [] and again["updated"] == 0  # idempotent: nothing left to settle
    assert requests.put(f"{served.url}/reverify", timeout=5).status_code in (405, 404)

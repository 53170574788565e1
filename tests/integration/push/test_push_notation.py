"""``type: Notary`` at push, end to end on CNCF distribution's shape: the real docker-registry notifies `sigward
serve`'s push_webhook; the image push is recorded (unsigned, grace 0), then the pushed Notation signature (an OCI
referrer manifest pushed by digest, plus the ``sha256-<hex>`` tag-schema index) makes sigward re-verify its SUBJECT
and record the new verdict in the SQLite store. Negative twins: a signature by an untrusted root, a tampered one,
and no signature at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netutil import free_port
from tests.support.notation import TestCA, make_ca, sign_pushed
from tests.support.policies import cluster_policy, dump
from tests.support.pushstack import push_env, sigward_notification, wait_for_verdict
from tests.support.registry import LocalRegistry
from tests.support.serve import Served

pytestmark = pytest.mark.registry
SECRET = "notation-push-secret-7"
TRUSTED = make_ca("push trusted", ec_key=True)
OTHER = make_ca("push other", ec_key=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, Path]]:
    workdir = tmp_path_factory.mktemp("push-notation")
    serve_port = free_port()
    registry = LocalRegistry(
        workdir / "registry",
        notifications=[sigward_notification(serve_port, SECRET)],
    )
    policy = workdir / "policy.yaml"
    iv = {
        "type": "Notary",
        "imageReferences": [f"{registry.host}/notary/*"],
        "attestors": [{"count": 1, "entries": [{"certificates": {"cert": TRUSTED.root_pem}}]}],
    }
    policy.write_text(dump(cluster_policy("notary-push", [iv])))
    db = workdir / "verdicts.db"
    served = Served(
        workdir,
        push_env(policy=policy, db=db, secret=SECRET, registry_host=registry.host),
        port=serve_port,
    )
    served.start()
    registry.start()
    try:
        yield registry, db
    finally:
        registry.close()
        served.stop()


def verdicts(db: Path, digest: str, want: str, timeout: float = 30.0) -> list[tuple[str, str]]:
    """(verdict, message) rows stored for ``digest``, polled until one is ``want`` or the timeout."""
    return [(v.verdict, v.message) for v in wait_for_verdict(db, digest, want, timeout)]


# case, signer, sign_pushed options, verdict the signature push must lead to, text of its message
CASES: list[tuple[str, TestCA | None, dict[str, object], str, str]] = [
    ("jws", TRUSTED, {"envelope_format": "jws"}, "pass", ""),
    ("cose", TRUSTED, {"envelope_format": "cose"}, "pass", ""),
    ("untrusted", OTHER, {}, "fail", "does not contain any trusted certificate"),
    ("tampered", TRUSTED, {"tamper": True}, "fail", "signature is invalid"),
    ("unsigned", None, {}, "unsigned", "make sure the artifact was signed successfully"),
]


@pytest.mark.parametrize(("case", "signer", "options", "verdict", "text"), CASES)
def test_pushed_notation_signature_reverifies_its_subject(
    stack: tuple[LocalRegistry, Path],
    case: str,
    signer: TestCA | None,
    options: dict[str, object],
    verdict: str,
    text: str,
) -> None:
    registry, db = stack
    repo = f"notary/{case}"
    digest = registry.push_image(repo, tag="v1")
    # the image alone: no signature yet (grace 0 records it at once)
    assert "unsigned" in [v for v, _ in verdicts(db, digest, "unsigned")]
    if signer is not None:
        sign_pushed(registry, repo, digest, signer, **options)  # type: ignore[arg-type]
    rows = verdicts(db, digest, verdict)
    matching = [message for v, message in rows if v == verdict]
    assert matching, rows
    assert text in matching[-1]
    if verdict != "pass":
        assert "pass" not in [v for v, _ in rows]

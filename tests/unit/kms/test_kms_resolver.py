"""The KMS key resolver with a scripted backend: one fetch per key (cache, single flight), TTL, one re-fetch
after a failed verification (rotation) at most every MIN_REFRESH_INTERVAL_SECONDS, errors kept in their class."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sigward.deadline import Deadline
from sigward.errors import ExternalServiceError, NotFoundError
from sigward.kms import backends, resolver
from sigward.kms.base import KmsPublicKey
from sigward.kms.resolver import KeyResolver
from sigward.policy.kms_uri import KmsKeyRef
from sigward.policy.loader import load_policy_text
from sigward.verify.cosign import SignatureLayer
from sigward.verify.engine import Verifier
from sigward.verify.keys import load_public_key_pem
from sigward.verify.results import Verdict
from tests.support.memory import MemorySignatureSource
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import SigningKey, new_key, signed_layer

URI = "awskms:///alias/cosign"
DIGEST = "sha256:" + "d" * 64
IMAGE = "registry.test/app:v1"


class ScriptedKms:
    scheme = "awskms"

    def __init__(self, key: SigningKey, delay: float = 0.0) -> None:
        self.key = key
        self.delay = delay
        self.fetches = 0
        self.error: Exception | None = None
        self.lock = threading.Lock()

    def public_key(self, ref: KmsKeyRef, *, timeout: float) -> KmsPublicKey:
        time.sleep(self.delay)
        with self.lock:
            self.fetches += 1
        if self.error is not None:
            raise self.error
        return KmsPublicKey(key=load_public_key_pem(self.key.public_pem), hash_name="sha256", version="1")

    def sign(self, ref: KmsKeyRef, payload: bytes, *, timeout: float) -> bytes:
        return self.key.sign(payload)


@pytest.fixture
def kms() -> Iterator[ScriptedKms]:
    fake = ScriptedKms(new_key("p256", slot=20))
    backends.set_backend("awskms", fake)  # type: ignore[arg-type]
    yield fake
    backends.set_backend("awskms", None)


def verify(res: KeyResolver, signer: SigningKey) -> tuple[Verdict, str]:
    source = MemorySignatureSource()
    source.add_image(IMAGE, DIGEST)
    layer = signed_layer(signer, image_digest=DIGEST)
    source.add_signatures(
        "registry.test/app",
        DIGEST,
        (SignatureLayer(media_type=layer.media_type, payload=layer.payload, annotations=dict(layer.annotations)),),
    )
    policies = load_policy_text(
        dump(cluster_policy("p", [key_verification(["registry.test/*"], [keys_entry(URI)])])), "p.yaml"
    ).policies
    (result,) = Verifier(source=source, keys=res).verify_images([IMAGE], policies, deadline=Deadline.after(5))
    return result.verdict, result.message


def test_verifies_with_the_kms_key_and_caches_it(kms: ScriptedKms) -> None:
    res = KeyResolver()
    assert verify(res, kms.key)[0] == Verdict.PASS
    assert verify(res, kms.key)[0] == Verdict.PASS
    assert kms.fetches == 1


def test_concurrent_first_uses_share_one_fetch(kms: ScriptedKms) -> None:
    kms.delay = 0.2
    res = KeyResolver()
    from sigward.policy.models import StaticKeyAttestor

    keys = StaticKeyAttestor(public_keys=URI)
    threads = [
        threading.Thread(target=res.verifier, args=(keys,), kwargs={"deadline": Deadline.after(5)}) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kms.fetches == 1


def test_ttl_expiry_refetches(kms: ScriptedKms) -> None:
    res = KeyResolver(ttl=0.05)
    verify(res, kms.key)
    time.sleep(0.1)
    verify(res, kms.key)
    assert kms.fetches == 2


def test_rotation_refetches_once(kms: ScriptedKms, monkeypatch: pytest.MonkeyPatch) -> None:
    res = KeyResolver()
    assert verify(res, kms.key)[0] == Verdict.PASS
    kms.key = new_key("p256", slot=21)  # rotated: new signatures are made by another key version
    # within the minimum interval no re-fetch happens: the cached key fails
    assert verify(res, kms.key)[0] == Verdict.FAIL
    assert kms.fetches == 1
    monkeypatch.setattr(resolver, "MIN_REFRESH_INTERVAL_SECONDS", 0.0)
    assert verify(res, kms.key)[0] == Verdict.PASS
    assert kms.fetches == 2
    # a signature by a key the KMS never had still fails after the single re-fetch
    verdict, message = verify(res, new_key("p256", slot=22))
    assert verdict == Verdict.FAIL and "no matching signatures" in message
    assert kms.fetches == 3


def test_errors_keep_their_class(kms: ScriptedKms) -> None:
    kms.error = NotFoundError(f"AWS KMS key {URI} not found")
    verdict, message = verify(KeyResolver(), kms.key)
    assert verdict == Verdict.FAIL and "not found" in message
    kms.error = ExternalServiceError("AWS KMS unreachable")
    verdict, message = verify(KeyResolver(), kms.key)
    assert verdict == Verdict.ERROR and "unreachable" in message

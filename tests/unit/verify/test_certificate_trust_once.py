"""Regression (issue 13 item 1): ``CertificateTrust`` was rebuilt for every layer and every bundle -- PEM roots and
chains parsed, identity patterns compiled again. It is now built once per (attestor entry, trusted-root fingerprint)
and shared by both formats; a new root, another entry or a malformed entry never gets a stale or cached object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sigward.errors import VerificationFailure
from sigward.policy.models import CertificateAttestor, KeylessAttestor
from sigward.verify import certificates
from sigward.verify.bundles import verify_bundle_attestations
from sigward.verify.certificates import MAX_CACHED_TRUSTS, certificate_trust
from sigward.verify.keyless import verify_attestations_keyless
from tests.support.fulcio import TEST_EMAIL, TEST_ISSUER, make_fulcio, pems, trusted_root
from tests.unit.verify.test_format_parity import DIGEST, PREDICATE, as_bundle, as_layer, material, root


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the real builds (keyless_trust / certificates_trust) behind certificate_trust."""
    certificates._trust_cache.clear()
    seen: list[str] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen.append(name)
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(certificates, "keyless_trust", spy("keyless", certificates.keyless_trust))
    monkeypatch.setattr(certificates, "certificates_trust", spy("certificates", certificates.certificates_trust))
    return seen


def keyless() -> KeylessAttestor:
    return KeylessAttestor(subject=TEST_EMAIL, issuer=TEST_ISSUER)


def test_certificate_trust_rebuilt_per_call_is_built_once_for_both_formats(builds: list[str]) -> None:
    attestor, trusted = keyless(), root()
    layers = [as_layer(material()) for _ in range(3)]
    bundles = [as_bundle(material()) for _ in range(3)]
    assert verify_attestations_keyless(layers, image_digest=DIGEST, keyless=attestor, trusted_root=trusted)
    assert verify_bundle_attestations(
        bundles, image_digest=DIGEST, predicate_type=PREDICATE, keyless=attestor, trusted_root=trusted
    )
    assert builds == ["keyless"]  # six artifacts, two formats, one trust object
    assert certificate_trust(attestor, trusted) is certificate_trust(attestor, root())  # same fingerprint


@pytest.mark.parametrize(
    ("name", "second"),
    [
        ("other-root", lambda a: (a, trusted_root(make_fulcio(slot=7)))),  # a rotated root: its own trust
        ("equal-but-other-entry", lambda a: (keyless(), root())),  # another entry object: never the first's
    ],
)
def test_certificate_trust_is_not_shared_across_roots_or_entries(
    builds: list[str], name: str, second: Callable[[KeylessAttestor], tuple[KeylessAttestor, Any]]
) -> None:
    attestor = keyless()
    first = certificate_trust(attestor, root())
    other_attestor, other_root = second(attestor)
    again = certificate_trust(other_attestor, other_root)
    assert again is not first
    assert again.trusted_root.fingerprint == other_root.fingerprint
    assert builds == ["keyless", "keyless"]


def test_certificate_trust_malformed_entry_fails_every_time(builds: list[str]) -> None:
    bad = CertificateAttestor(cert_chain="-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    for _ in range(2):
        with pytest.raises(VerificationFailure):
            certificate_trust(bad, root())
    assert builds == ["certificates", "certificates"]
    with pytest.raises(VerificationFailure, match="cert or certChain required"):
        certificate_trust(CertificateAttestor(), root())


def test_certificate_trust_cache_is_bounded(builds: list[str]) -> None:
    trusted = root()
    chain = pems(make_fulcio(slot=6).chain)
    entries = [CertificateAttestor(cert_chain=chain) for _ in range(MAX_CACHED_TRUSTS + 5)]
    for entry in entries:
        certificate_trust(entry, trusted)
    assert len(certificates._trust_cache) == MAX_CACHED_TRUSTS
    certificate_trust(entries[0], trusted)  # evicted first: built again, not served from another entry
    assert len(builds) == MAX_CACHED_TRUSTS + 6
    certificate_trust(entries[-1], trusted)  # most recent: still cached
    assert len(builds) == MAX_CACHED_TRUSTS + 6

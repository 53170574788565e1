"""Chain building and SCT checks of ``sigward.verify.x509chain`` over certificates made by the test Fulcio: each case
asserts the verdict and the reason."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from sigward.errors import FailureKind, VerificationFailure
from sigward.verify.keys import key_id, load_public_key_der
from sigward.verify.trust import LogKey
from sigward.verify.x509chain import (
    MAX_INTERMEDIATES,
    embedded_scts,
    load_certificate_pem,
    load_certificates_pem,
    verify_chain,
    verify_embedded_sct,
)
from tests.support.fulcio import (
    CA_NOT_BEFORE,
    SIGNING_TIME,
    FulcioCA,
    ca_certificate,
    issue_leaf,
    make_fulcio,
    pem,
    pems,
)
from tests.support.signing import SigningKey, new_key

AT = SIGNING_TIME


def fulcio() -> FulcioCA:
    return make_fulcio()


def signer() -> SigningKey:
    return new_key("p256", slot=1)


def log_key(key: SigningKey, **kw: object) -> LogKey:
    loaded = load_public_key_der(key.public_der)
    return LogKey(log_id=key_id(loaded), key=loaded, **kw)  # type: ignore[arg-type]


def test_leaf_chains_through_intermediate_to_root() -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer())
    path = verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT)
    assert [c.subject for c in path] == [leaf.subject, ca.intermediate.subject, ca.root.subject]


def test_intermediates_in_any_order_with_unrelated_certificates() -> None:
    ca, other = fulcio(), make_fulcio(1)
    leaf = issue_leaf(ca, signer())
    path = verify_chain(leaf, roots=[other.root, ca.root], intermediates=[other.root, ca.root, ca.intermediate], at=AT)
    assert path[-1] == ca.root and len(path) == 3


def test_leaf_issued_directly_by_root() -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer(), issued_by=(ca.root, ca.root_key))
    assert verify_chain(leaf, roots=[ca.root], at=AT) == (leaf, ca.root)


def test_intermediate_as_trust_anchor_ends_the_path() -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer())
    assert verify_chain(leaf, roots=[ca.intermediate], at=AT) == (leaf, ca.intermediate)


def test_unknown_root() -> None:
    ca, other = fulcio(), make_fulcio(1)
    leaf = issue_leaf(ca, signer())
    with pytest.raises(VerificationFailure, match="certificate signed by unknown authority") as err:
        verify_chain(leaf, roots=[other.root], intermediates=[ca.intermediate], at=AT)
    assert "test-fulcio-root-0" in err.value.message


def test_chain_ending_at_an_untrusted_self_signed_root() -> None:
    ca, other = fulcio(), make_fulcio(1)
    leaf = issue_leaf(ca, signer())
    with pytest.raises(VerificationFailure, match=r"test-fulcio-root-0.* is not a trusted root"):
        verify_chain(leaf, roots=[other.root], intermediates=[ca.intermediate, ca.root], at=AT)


def test_no_roots_at_all() -> None:
    ca = fulcio()
    with pytest.raises(VerificationFailure, match="no trusted root certificates"):
        verify_chain(issue_leaf(ca, signer()), roots=[], at=AT)


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (timedelta(minutes=11), "certificate expired before observed time: 2024-05-01T12:09:30Z is before"),
        (timedelta(minutes=-1), "certificate was issued after observed time"),
    ],
)
def test_leaf_validity_at_the_given_time(offset: timedelta, message: str) -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer())
    assert verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT + timedelta(minutes=9))
    with pytest.raises(VerificationFailure, match=message):
        verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT + offset)


def test_expired_intermediate() -> None:
    ca = fulcio()
    old = ca_certificate(
        "old-intermediate",
        ca.intermediate_key,
        issuer=(ca.root, ca.root_key),
        not_before=CA_NOT_BEFORE,
        not_after=SIGNING_TIME - timedelta(days=1),
    )
    leaf = issue_leaf(ca, signer(), issued_by=(old, ca.intermediate_key))
    with pytest.raises(VerificationFailure, match="issuing CA certificate expired before observed time"):
        verify_chain(leaf, roots=[ca.root], intermediates=[old], at=AT)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ca": None}, "has no basicConstraints: not a CA"),
        ({"ca": False}, r"is not a CA \(basicConstraints CA:FALSE\)"),
        ({"key_cert_sign": False}, "keyUsage does not allow certificate signing"),
        ({"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "extendedKeyUsage without codeSigning"),
        (
            {
                "extra": [
                    (
                        x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.test")], excluded_subtrees=None),
                        True,
                    )
                ]
            },
            "unhandled critical extension nameConstraints",
        ),
    ],
)
def test_intermediate_must_be_a_sane_ca(kwargs: dict[str, object], message: str) -> None:
    ca = fulcio()
    bad = ca_certificate("bad-intermediate", ca.intermediate_key, issuer=(ca.root, ca.root_key), **kwargs)  # type: ignore[arg-type]
    leaf = issue_leaf(ca, signer(), issued_by=(bad, ca.intermediate_key))
    with pytest.raises(VerificationFailure, match=message):
        verify_chain(leaf, roots=[ca.root], intermediates=[bad], at=AT)


def test_trust_anchor_without_basic_constraints_is_refused() -> None:
    root_key = new_key("p256", slot=40)
    root = ca_certificate("no-bc-root", root_key, ca=None)
    leaf = issue_leaf(fulcio(), signer(), issued_by=(root, root_key))
    with pytest.raises(VerificationFailure, match=r"trusted root .*no-bc-root.* has no basicConstraints"):
        verify_chain(leaf, roots=[root], at=AT)


def test_path_length_constraint() -> None:
    ca = fulcio()
    # ca.intermediate has pathLen 0: it may not issue another CA that then issues the leaf.
    sub_key = new_key("p256", slot=41)
    sub = ca_certificate("sub-intermediate", sub_key, issuer=(ca.intermediate, ca.intermediate_key))
    leaf = issue_leaf(ca, signer(), issued_by=(sub, sub_key))
    with pytest.raises(VerificationFailure, match="path length constraint 0 exceeded"):
        verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate, sub], at=AT)


@pytest.mark.parametrize(
    ("eku", "ok"),
    [
        ((ExtendedKeyUsageOID.CODE_SIGNING,), True),
        (None, True),  # no EKU extension: accepted, as Go does (the PKI vector's leaf has none)
        ((ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,), True),
        ((ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH), False),
    ],
)
def test_leaf_extended_key_usage(eku: tuple[x509.ObjectIdentifier, ...] | None, ok: bool) -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer(), eku=eku)
    if ok:
        assert len(verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT)) == 3
    else:
        with pytest.raises(VerificationFailure, match="extendedKeyUsage without codeSigning"):
            verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT)
        # the same chain without the code-signing requirement (a pinned certificate used as a key) passes
        assert verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT, require_code_signing=False)


def test_leaf_key_usage_must_allow_digital_signature() -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer(), digital_signature=False)
    with pytest.raises(VerificationFailure, match="keyUsage does not allow digitalSignature"):
        verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT)


def test_leaf_with_unhandled_critical_extension() -> None:
    ca = fulcio()
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    leaf = issue_leaf(ca, signer(), extra=[(odd, True)])
    with pytest.raises(VerificationFailure, match=re.escape("unhandled critical extension 1.3.6.1.4.1.99999.1")):
        verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT)


@pytest.mark.parametrize("kind", ["ed25519", "rsa2048", "p521"])
def test_other_ca_algorithms(kind: str) -> None:
    root_key = new_key(kind, slot=42)  # type: ignore[arg-type]
    inter_key = new_key(kind, slot=43)  # type: ignore[arg-type]
    root = ca_certificate(f"{kind}-root", root_key)
    inter = ca_certificate(f"{kind}-intermediate", inter_key, issuer=(root, root_key))
    leaf = issue_leaf(fulcio(), new_key(kind, slot=44), issued_by=(inter, inter_key))  # type: ignore[arg-type]
    assert verify_chain(leaf, roots=[root], intermediates=[inter], at=AT) == (leaf, inter, root)


def test_same_named_impostor_intermediate_is_skipped_and_alone_fails() -> None:
    ca = fulcio()
    impostor = ca_certificate(
        "test-fulcio-intermediate-0", new_key("p256", slot=45), issuer=(ca.root, ca.root_key), path_length=0
    )
    leaf = issue_leaf(ca, signer())
    assert verify_chain(leaf, roots=[ca.root], intermediates=[impostor, ca.intermediate], at=AT)[1] == ca.intermediate
    with pytest.raises(VerificationFailure, match="does not verify with the key of"):
        verify_chain(leaf, roots=[ca.root], intermediates=[impostor], at=AT)


def long_chain(intermediates: int) -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate]:
    root_key = new_key("p256", slot=50)
    root = ca_certificate("long-root", root_key)
    issuer, issuer_key, chain = root, root_key, []
    for i in range(intermediates):
        key = new_key("p256", slot=51 + i)
        cert = ca_certificate(f"long-intermediate-{i}", key, issuer=(issuer, issuer_key))
        chain.append(cert)
        issuer, issuer_key = cert, key
    leaf = issue_leaf(fulcio(), signer(), issued_by=(issuer, issuer_key))
    return leaf, chain, root


def test_ten_intermediates_are_accepted_eleven_are_not() -> None:
    leaf, chain, root = long_chain(MAX_INTERMEDIATES + 1)
    with pytest.raises(VerificationFailure, match="longer than 10 intermediates"):
        verify_chain(leaf, roots=[root], intermediates=chain, at=AT)
    # the same material as a PEM bundle (11 intermediates + root) is refused before parsing, as Kyverno does
    with pytest.raises(VerificationFailure, match=r"certificate chain too long \(12\), maximum allowed is 11"):
        load_certificates_pem(pems([*chain, root]), what="certificates.certChain")
    leaf10, chain10, root10 = long_chain(MAX_INTERMEDIATES)
    assert len(verify_chain(leaf10, roots=[root10], intermediates=chain10, at=AT)) == 12


def test_pem_loading() -> None:
    ca = fulcio()
    wrapped = base64.b64encode(pem(ca.root).encode()).decode()
    assert load_certificate_pem(wrapped, what="cert") == ca.root
    assert load_certificates_pem(ca.chain_pem, what="chain") == ca.chain
    with pytest.raises(VerificationFailure, match="cert: no PEM certificate found"):
        load_certificate_pem("not a certificate!", what="cert")
    with pytest.raises(VerificationFailure, match="cannot parse PEM certificates"):
        load_certificate_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", what="cert")


# --- SCT


def path_of(leaf: x509.Certificate, ca: FulcioCA) -> tuple[x509.Certificate, ...]:
    return verify_chain(leaf, roots=[ca.root], intermediates=[ca.intermediate], at=AT)


def test_embedded_sct_verifies_with_the_ct_log_key() -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer())
    assert len(embedded_scts(leaf)) == 1
    stamp = verify_embedded_sct(path_of(leaf, ca), logs=[log_key(ca.ct_log)])
    assert stamp == leaf.not_valid_before_utc + timedelta(seconds=1)


def test_sct_of_an_unknown_log() -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer(), sct_log=new_key("p256", slot=46))
    with pytest.raises(VerificationFailure, match="ctfe public key not found for embedded SCT"):
        verify_embedded_sct(path_of(leaf, ca), logs=[log_key(ca.ct_log)])


def test_sct_forged_under_a_trusted_log_id() -> None:
    ca = fulcio()
    trusted_id = bytes.fromhex(key_id(load_public_key_der(ca.ct_log.public_der)))
    leaf = issue_leaf(ca, signer(), sct_log=new_key("p256", slot=46), sct_log_id=trusted_id)
    with pytest.raises(VerificationFailure, match="error verifying embedded SCT: invalid signature"):
        verify_embedded_sct(path_of(leaf, ca), logs=[log_key(ca.ct_log)])


def test_sct_bound_to_the_issuer_key() -> None:
    """The SCT signs sha256(issuer SPKI): the same leaf presented under another issuer key does not verify."""
    ca = fulcio()
    leaf = issue_leaf(ca, signer())
    other_issuer = ca_certificate("other", new_key("p256", slot=47))
    with pytest.raises(VerificationFailure, match="error verifying embedded SCT"):
        verify_embedded_sct((leaf, other_issuer), logs=[log_key(ca.ct_log)])


def test_sct_requirements() -> None:
    ca = fulcio()
    plain = issue_leaf(ca, signer(), with_sct=False)
    with pytest.raises(VerificationFailure, match="does not include required embedded SCT") as missing:
        verify_embedded_sct(path_of(plain, ca), logs=[log_key(ca.ct_log)])
    assert missing.value.kind is FailureKind.SCT_ENTRIES  # the missed threshold, typed (Kyverno's IVPOL wording)
    leaf = issue_leaf(ca, signer())
    with pytest.raises(VerificationFailure, match="at least a certificate and its issuer") as short:
        verify_embedded_sct((leaf,), logs=[log_key(ca.ct_log)])
    assert short.value.kind is FailureKind.NOT_SATISFIED
    with pytest.raises(VerificationFailure, match="none of the CTFE keys"):
        verify_embedded_sct(path_of(leaf, ca), logs=[])
    expired_log = log_key(ca.ct_log, valid_until=SIGNING_TIME - timedelta(days=1))
    with pytest.raises(VerificationFailure, match="CT log key was not valid at the SCT's time"):
        verify_embedded_sct(path_of(leaf, ca), logs=[expired_log])


def test_sct_list_parses_as_cryptography_sct_extension() -> None:
    ca = fulcio()
    leaf = issue_leaf(ca, signer())
    reloaded = x509.load_der_x509_certificate(leaf.public_bytes(serialization.Encoding.DER))
    (sct,) = embedded_scts(reloaded)
    assert sct.log_id.hex() == key_id(load_public_key_der(ca.ct_log.public_der))

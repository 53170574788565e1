"""Transparency-log entries bound to what they vouch for (``sigward.verify.rekor``): for every entry kind a cosign
``.sig`` or ``.att`` layer can carry -- hashedrekord 0.0.1, rekord 0.0.1, intoto 0.0.1 / 0.0.2, dsse 0.0.1 -- a valid
entry passes and an entry whose signature, key/certificate or hash differs fails, with a key (``keys`` attestor) and
with a Fulcio certificate (``keyless`` attestor). Every entry here carries a valid SET by the trusted test Rekor key:
what is refused is the *binding*, never the log's signature. No 2021-era ``rekord`` data exists in the shared
vectors, so those entries are minted with the test Rekor key."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import rfc8785
from cryptography import x509

from sigward.errors import VerificationFailure
from sigward.policy.models import KeylessAttestor
from sigward.verify.attestations import verify_attestation_layer_with_key
from sigward.verify.cosign import (
    ANNOTATION_BUNDLE,
    ANNOTATION_CERTIFICATE,
    ANNOTATION_CHAIN,
    ANNOTATION_SIGNATURE,
    SignatureLayer,
    TlogOptions,
    verify_layer_with_key,
)
from sigward.verify.dsse import DSSE_MEDIA_TYPE, pae, parse_envelope
from sigward.verify.keyless import verify_attestation_keyless, verify_layer_keyless
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem
from sigward.verify.rekor import EntryMismatch, EntryMismatchError, Signer, check_envelope_entry, check_signature_entry
from sigward.verify.simplesigning import make_payload
from sigward.verify.trust import logs_from_pem_keys
from tests.support.fulcio import (
    INTEGRATED_TIME,
    TEST_EMAIL,
    TEST_ISSUER,
    issue_leaf,
    make_fulcio,
    pem,
    pems,
    trusted_root,
)
from tests.support.signing import SigningKey, in_toto_statement, new_key

DIGEST = "sha256:" + "c" * 64
SIGNER_SLOT = 70
OTHER_SLOT = 71
FULCIO = make_fulcio()
SIGNER = new_key("p256", slot=SIGNER_SLOT)
OTHER = new_key("p256", slot=OTHER_SLOT)
LEAF = issue_leaf(FULCIO, SIGNER)
OTHER_LEAF = issue_leaf(FULCIO, OTHER, emails=("mallory@example.test",))
SAME_KEY_OTHER_LEAF = issue_leaf(FULCIO, SIGNER, emails=("alice-too@example.test",))
ROOT = trusted_root(FULCIO)
TLOG = TlogOptions(required=True, logs=logs_from_pem_keys([FULCIO.rekor.public_pem]))
KEYLESS = KeylessAttestor.model_validate({"subject": TEST_EMAIL, "issuer": TEST_ISSUER})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha256(data: bytes) -> dict[str, str]:
    return {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}


def set_annotation(body: Mapping[str, Any], log: SigningKey = FULCIO.rekor) -> str:
    """A ``dev.sigstore.cosign/bundle`` annotation: a valid SET by ``log`` over ``body``."""
    signed: dict[str, str | int] = {
        "body": b64(json.dumps(body).encode()),
        "integratedTime": INTEGRATED_TIME,
        "logID": hashlib.sha256(log.public_der).hexdigest(),
        "logIndex": 3,
    }
    return json.dumps({"SignedEntryTimestamp": b64(log.sign(rfc8785.dumps(signed))), "Payload": signed})


# -- entry bodies, as Rekor stores them


def hashedrekord(payload: bytes, signature: bytes, signer_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": sha256(payload)},
            "signature": {"content": b64(signature), "publicKey": {"content": b64(signer_pem)}},
        },
    }


def rekord(payload: bytes, signature: bytes, signer_pem: bytes, *, fmt: str = "x509") -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "rekord",
        "spec": {
            "data": {"hash": sha256(payload)},
            "signature": {"format": fmt, "content": b64(signature), "publicKey": {"content": b64(signer_pem)}},
        },
    }


@dataclass(frozen=True)
class Att:
    """A DSSE envelope as a ``.att`` layer holds it (raw bytes) with its parts."""

    raw: bytes
    payload: bytes
    signature: bytes


def att(key: SigningKey, payload: bytes) -> Att:
    signature = key.sign(pae("application/vnd.in-toto+json", payload))
    raw = json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": b64(payload),
            "signatures": [{"keyid": "", "sig": b64(signature)}],
        }
    ).encode()
    return Att(raw=raw, payload=payload, signature=signature)


def intoto_v1(a: Att, signer_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "intoto",
        "spec": {"content": {"hash": sha256(a.raw), "payloadHash": sha256(a.payload)}, "publicKey": b64(signer_pem)},
    }


def intoto_v2(a: Att, signer_pem: bytes) -> dict[str, Any]:
    envelope = {
        "payloadType": "application/vnd.in-toto+json",
        # Rekor stores the envelope's base64 signature base64-encoded once more.
        "signatures": [{"sig": b64(b64(a.signature).encode()), "publicKey": b64(signer_pem)}],
    }
    return {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {"content": {"envelope": envelope, "hash": sha256(a.raw), "payloadHash": sha256(a.payload)}},
    }


def dsse_v1(a: Att, signer_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": sha256(a.raw),
            "payloadHash": sha256(a.payload),
            "signatures": [{"signature": b64(a.signature), "verifier": b64(signer_pem)}],
        },
    }


# -- the table: (entry kind, what differs) -> the reason it must fail (None: it verifies)

SIG_KINDS: Mapping[str, Callable[[bytes, bytes, bytes], dict[str, Any]]] = {
    "hashedrekord-0.0.1": hashedrekord,
    "rekord-0.0.1": rekord,
}
ATT_KINDS: Mapping[str, Callable[[Att, bytes], dict[str, Any]]] = {
    "intoto-0.0.1": intoto_v1,
    "intoto-0.0.2": intoto_v2,
    "dsse-0.0.1": dsse_v1,
}
# Which reason each kind gives when the logged signature differs: intoto 0.0.1 logs the envelope's hash instead.
SIGNATURE_REASON = {"intoto-0.0.1": EntryMismatch.ENVELOPE_HASH, "intoto-0.0.2": EntryMismatch.SIGNATURES}
SIGNATURE_REASON |= {"dsse-0.0.1": EntryMismatch.SIGNATURES}
SIGNATURE_REASON |= dict.fromkeys(SIG_KINDS, EntryMismatch.SIGNATURE)
HASH_REASON = dict.fromkeys(SIG_KINDS, EntryMismatch.HASH) | dict.fromkeys(ATT_KINDS, EntryMismatch.PAYLOAD_HASH)

MUTATIONS = ("valid", "signature", "key", "hash")
FLAVOURS = ("key", "certificate")


def expected(kind: str, mutation: str, flavour: str) -> EntryMismatch | None:
    return {
        "valid": None,
        "signature": SIGNATURE_REASON[kind],
        "key": EntryMismatch.SIGNER,
        "hash": HASH_REASON[kind],
    }[mutation]


def signer_pem(flavour: str, mutation: str) -> bytes:
    if flavour == "key":
        return (OTHER if mutation == "key" else SIGNER).public_pem.encode()
    return pem(OTHER_LEAF if mutation == "key" else LEAF).encode()


def sig_layer(kind: str, mutation: str, flavour: str) -> SignatureLayer:
    payload = make_payload(docker_reference="example.test/app", manifest_digest=DIGEST)
    signature = SIGNER.sign(payload)
    logged_sig = SIGNER.sign(payload) if mutation == "signature" else signature  # ECDSA: a second, other signature
    logged_payload = payload + b" " if mutation == "hash" else payload
    body = SIG_KINDS[kind](logged_payload, logged_sig, signer_pem(flavour, mutation))
    annotations = {ANNOTATION_SIGNATURE: b64(signature), ANNOTATION_BUNDLE: set_annotation(body)}
    if flavour == "certificate":
        annotations |= {ANNOTATION_CERTIFICATE: pem(LEAF), ANNOTATION_CHAIN: pems(FULCIO.chain)}
    return SignatureLayer(
        media_type="application/vnd.dev.cosign.simplesigning.v1+json", payload=payload, annotations=annotations
    )


def statement_bytes(predicate: Any = None) -> bytes:
    return json.dumps(in_toto_statement(DIGEST, "https://example.test/p", predicate or {"ok": True})).encode()


def att_layer(
    kind: str, mutation: str, flavour: str, *, logged: Att | None = None, pem_override: bytes = b""
) -> SignatureLayer:
    mine = att(SIGNER, statement_bytes())
    if logged is None:
        logged = mine
        if mutation == "signature":
            logged = att(SIGNER, mine.payload)  # the same signer and payload, another signature
        elif mutation == "hash":
            logged = Att(raw=mine.raw, payload=statement_bytes({"ok": False}), signature=mine.signature)
    body = ATT_KINDS[kind](logged, pem_override or signer_pem(flavour, mutation))
    annotations = {ANNOTATION_SIGNATURE: "", ANNOTATION_BUNDLE: set_annotation(body)}
    if flavour == "certificate":
        annotations |= {ANNOTATION_CERTIFICATE: pem(LEAF), ANNOTATION_CHAIN: pems(FULCIO.chain)}
    return SignatureLayer(media_type=DSSE_MEDIA_TYPE, payload=mine.raw, annotations=annotations)


def verify(layer: SignatureLayer, flavour: str) -> None:
    is_att = layer.media_type == DSSE_MEDIA_TYPE
    if flavour == "key":
        verifier = PublicKeyVerifier(key=load_public_key_pem(SIGNER.public_pem))
        if is_att:
            verify_attestation_layer_with_key(layer, image_digest=DIGEST, verifier=verifier, tlog=TLOG)
        else:
            verify_layer_with_key(layer, image_digest=DIGEST, verifier=verifier, annotations={}, tlog=TLOG)
    elif is_att:
        verify_attestation_keyless(layer, image_digest=DIGEST, keyless=KEYLESS, trusted_root=ROOT)
    else:
        verify_layer_keyless(layer, image_digest=DIGEST, keyless=KEYLESS, annotations={}, trusted_root=ROOT)


ROWS = [(k, m, f) for k in (*SIG_KINDS, *ATT_KINDS) for m in MUTATIONS for f in FLAVOURS]


@pytest.mark.parametrize(("kind", "mutation", "flavour"), ROWS, ids=["-".join(r) for r in ROWS])
def test_entry_binding(kind: str, mutation: str, flavour: str) -> None:
    build = sig_layer if kind in SIG_KINDS else att_layer
    layer = build(kind, mutation, flavour)
    reason = expected(kind, mutation, flavour)
    if reason is None:
        verify(layer, flavour)
        return
    with pytest.raises(EntryMismatchError) as info:
        verify(layer, flavour)
    assert info.value.reason is reason


@pytest.mark.parametrize("kind", [*SIG_KINDS, *ATT_KINDS])
def test_certificate_entry_must_name_the_very_certificate(kind: str) -> None:
    """Another certificate over the same key (another identity) is not the certificate that verified."""
    other_cert = pem(SAME_KEY_OTHER_LEAF).encode()
    if kind in SIG_KINDS:
        payload = make_payload(docker_reference="example.test/app", manifest_digest=DIGEST)
        signature = SIGNER.sign(payload)
        body = SIG_KINDS[kind](payload, signature, other_cert)
        layer = SignatureLayer(
            media_type="application/vnd.dev.cosign.simplesigning.v1+json",
            payload=payload,
            annotations={
                ANNOTATION_SIGNATURE: b64(signature),
                ANNOTATION_BUNDLE: set_annotation(body),
                ANNOTATION_CERTIFICATE: pem(LEAF),
                ANNOTATION_CHAIN: pems(FULCIO.chain),
            },
        )
    else:
        layer = att_layer(kind, "valid", "certificate", pem_override=other_cert)
    with pytest.raises(EntryMismatchError) as info:
        verify(layer, "certificate")
    assert info.value.reason is EntryMismatch.SIGNER


@pytest.mark.parametrize("kind", list(ATT_KINDS))
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_regression_att_layer_replays_rekor_entry_of_another_signer(kind: str, flavour: str) -> None:
    """The bug: an ``.att`` layer's Rekor entry was checked only for the payload hash, so the log entry of *another
    signer's* signature over the same statement vouched for a signature the log never saw."""
    mine = att(SIGNER, statement_bytes())
    theirs = att(OTHER, mine.payload)  # same payload, another signer: a genuine, valid log entry of theirs
    their_pem = (OTHER.public_pem.encode()) if flavour == "key" else pem(OTHER_LEAF).encode()
    layer = att_layer(kind, "valid", flavour, logged=theirs, pem_override=their_pem)
    with pytest.raises(VerificationFailure, match="transparency log entry"):
        verify(layer, flavour)
    # ... and with the signer's own key named, their signature still does not vouch for ours.
    own_pem = SIGNER.public_pem.encode() if flavour == "key" else pem(LEAF).encode()
    layer = att_layer(kind, "valid", flavour, logged=theirs, pem_override=own_pem)
    with pytest.raises(EntryMismatchError) as info:
        verify(layer, flavour)
    assert info.value.reason in (EntryMismatch.SIGNATURES, EntryMismatch.ENVELOPE_HASH)


# -- rekord specifics and malformed bodies, on the pure check


PAYLOAD = b'{"critical":{}}'
SIGNATURE = SIGNER.sign(PAYLOAD)
KEY_SIGNER = Signer(load_public_key_pem(SIGNER.public_pem))


def with_data(body: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {**body, "spec": {**body["spec"], "data": data}}


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        (
            "rekord-content-instead-of-hash",
            with_data(rekord(PAYLOAD, SIGNATURE, SIGNER.public_pem.encode()), {"content": b64(PAYLOAD)}),
            None,
        ),
        (
            "rekord-content-of-other-data",
            with_data(rekord(PAYLOAD, SIGNATURE, SIGNER.public_pem.encode()), {"content": b64(b"other")}),
            EntryMismatch.HASH,
        ),
        (
            "rekord-no-hash-no-content",
            with_data(rekord(PAYLOAD, SIGNATURE, SIGNER.public_pem.encode()), {}),
            EntryMismatch.NO_HASH,
        ),
        ("rekord-pgp-format", rekord(PAYLOAD, SIGNATURE, SIGNER.public_pem.encode(), fmt="pgp"), EntryMismatch.FORMAT),
        (
            "rekord-sha512-hash",
            with_data(
                rekord(PAYLOAD, SIGNATURE, SIGNER.public_pem.encode()),
                {"hash": {"algorithm": "sha512", "value": hashlib.sha512(PAYLOAD).hexdigest()}},
            ),
            None,
        ),
        (
            "hashedrekord-md5-hash",
            with_data(
                hashedrekord(PAYLOAD, SIGNATURE, SIGNER.public_pem.encode()),
                {"hash": {"algorithm": "md5", "value": hashlib.md5(PAYLOAD).hexdigest()}},
            ),
            EntryMismatch.NO_HASH,
        ),
        (
            "hashedrekord-no-public-key",
            {
                **hashedrekord(PAYLOAD, SIGNATURE, b""),
                "spec": {"data": {"hash": sha256(PAYLOAD)}, "signature": {"content": b64(SIGNATURE)}},
            },
            EntryMismatch.MALFORMED,
        ),
        ("hashedrekord-garbage-key", hashedrekord(PAYLOAD, SIGNATURE, b"not a key"), EntryMismatch.SIGNER),
        (
            "intoto-kind-for-a-signature",
            {"kind": "intoto", "apiVersion": "0.0.1", "spec": {}},
            EntryMismatch.UNSUPPORTED_KIND,
        ),
        (
            "hashedrekord-unknown-version",
            {**hashedrekord(PAYLOAD, SIGNATURE, SIGNER.public_pem.encode()), "apiVersion": "0.0.9"},
            EntryMismatch.UNSUPPORTED_KIND,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_signature_entry_details(name: str, body: dict[str, Any], reason: EntryMismatch | None) -> None:
    if reason is None:
        check_signature_entry(body, payload=PAYLOAD, signature=SIGNATURE, signer=KEY_SIGNER)
        return
    with pytest.raises(EntryMismatchError) as info:
        check_signature_entry(body, payload=PAYLOAD, signature=SIGNATURE, signer=KEY_SIGNER)
    assert info.value.reason is reason


def test_envelope_entry_kinds_that_cannot_log_an_attestation() -> None:
    a = att(SIGNER, statement_bytes())
    envelope = parse_envelope(a.raw)
    for body in (hashedrekord(a.payload, a.signature, SIGNER.public_pem.encode()), {"kind": "dsse"}):
        with pytest.raises(EntryMismatchError) as info:
            check_envelope_entry(body, envelope=envelope, raw_envelope=a.raw, signer=KEY_SIGNER)
        assert info.value.reason is EntryMismatch.UNSUPPORTED_KIND
    # intoto 0.0.1 logs only the envelope's hash: without the envelope as logged it cannot be checked.
    with pytest.raises(EntryMismatchError) as info:
        check_envelope_entry(intoto_v1(a, SIGNER.public_pem.encode()), envelope=envelope, signer=KEY_SIGNER)
    assert info.value.reason is EntryMismatch.UNSUPPORTED_KIND
    # An entry naming no signature at all is refused, never vacuously accepted.
    empty = dsse_v1(a, SIGNER.public_pem.encode())
    empty["spec"]["signatures"] = []
    with pytest.raises(EntryMismatchError) as info:
        check_envelope_entry(empty, envelope=envelope, raw_envelope=a.raw, signer=KEY_SIGNER)
    assert info.value.reason is EntryMismatch.SIGNATURES


def test_signer_matching() -> None:
    key = load_public_key_pem(SIGNER.public_pem)
    cert_signer = Signer(key, certificate=LEAF)
    assert cert_signer.matches_pem(pem(LEAF).encode())
    assert not cert_signer.matches_pem(pem(SAME_KEY_OTHER_LEAF).encode())
    assert not cert_signer.matches_pem(SIGNER.public_pem.encode())  # a certificate signer needs its certificate
    key_signer = Signer(key)
    assert key_signer.matches_pem(SIGNER.public_pem.encode())
    assert key_signer.matches_pem(pem(SAME_KEY_OTHER_LEAF).encode())  # a certificate holding the very key
    assert not key_signer.matches_pem(OTHER.public_pem.encode())
    assert not key_signer.matches_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert isinstance(LEAF, x509.Certificate)

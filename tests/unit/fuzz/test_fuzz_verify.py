"""Fuzzing the parsers that read signature material from registries: DSSE envelopes and in-toto statements,
simple-signing payloads, Rekor bundle annotations, Sigstore bundles, PEM certificates, trusted roots.

Everything here arrives from a registry (or a proxy in front of one) and is hostile until verified: the only
acceptable outcomes are a parsed value or sigward's own error — a stray ``RecursionError`` or ``OverflowError``
escapes the per-layer error handling, so one hostile layer would sink the valid layers next to it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import example, given
from hypothesis import strategies as st

from sigward.errors import ConfigurationError, SigwardError, VerificationFailure
from sigward.policy.models import KeylessAttestor
from sigward.verify.bundles import BundleLayer, parse_bundle, verify_bundle
from sigward.verify.cosign import ANNOTATION_CERTIFICATE, SignatureLayer
from sigward.verify.dsse import Envelope, check_subject, parse_envelope, parse_statement
from sigward.verify.keyless import verify_signatures_keyless
from sigward.verify.keys import PublicKeyVerifier, load_public_key_pem
from sigward.verify.rekor import verify_set
from sigward.verify.simplesigning import check_payload, make_payload, parse_payload
from sigward.verify.trust import _public_good_bytes, logs_from_pem_keys, parse_trusted_root
from sigward.verify.x509chain import load_certificates_pem
from tests.support import bundles as bundle_support
from tests.support.fulcio import TEST_EMAIL, TEST_ISSUER, cert_layer, issue_leaf, make_fulcio, pems
from tests.support.fulcio import trusted_root as fulcio_root
from tests.support.fuzzing import SETTINGS, byte_mutations, dumps, json_values, mutations, only_ours
from tests.support.signing import dsse_envelope, in_toto_statement, new_key, rekor_bundle, signed_layer

DIGEST = "sha256:" + "d" * 64
OTHER_DIGEST = "sha256:" + "e" * 64
KEY = new_key("p256", slot=61)
LOG_KEY = new_key("p256", slot=62)
LOGS = logs_from_pem_keys([LOG_KEY.public_pem])
# Deeper than Python's recursion limit: json raises RecursionError, not ValueError.
DEEP = b"[" * 100_000 + b"]" * 100_000

STATEMENT = in_toto_statement(DIGEST, "https://slsa.dev/provenance/v1", {"builder": {"id": "ci"}})
ENVELOPE = json.loads(dsse_envelope(KEY, json.dumps(STATEMENT).encode()))
LAYER = signed_layer(KEY, image_digest=DIGEST)
REKOR = json.loads(
    rekor_bundle(
        LOG_KEY,
        payload=LAYER.payload,
        signature_b64=LAYER.annotations["dev.cosignproject.cosign/signature"],
        signer_public_pem=KEY.public_pem,
    )
)
PAYLOAD = json.loads(make_payload(docker_reference="registry.test/app", manifest_digest=DIGEST, annotations={"a": "b"}))
BUNDLE = bundle_support.dsse_bundle(KEY, bundle_support.statement(DIGEST))
MESSAGE_BUNDLE = bundle_support.message_bundle(KEY, bytes.fromhex("d" * 64))
PEM_CHAIN = pems([make_fulcio(slot=9).intermediate, make_fulcio(slot=9).root])
PUBLIC_GOOD = json.loads(_public_good_bytes())


# -- DSSE / in-toto ----------------------------------------------------------------------------------------------------


def _statement_of(envelope: Envelope) -> None:
    statement = parse_statement(envelope)
    assert statement.predicate_type and statement.subjects
    try:
        check_subject(statement, image_digest=DIGEST)
    except VerificationFailure:
        assert not statement.names_digest(DIGEST)


@SETTINGS
@given(raw=st.binary(max_size=300) | json_values.map(dumps) | mutations(ENVELOPE).map(dumps))
def test_dsse_envelope_parse(raw: bytes) -> None:
    envelope = only_ours(lambda: parse_envelope(raw))
    if envelope is not None:
        assert isinstance(envelope.payload, bytes) and envelope.signatures


# Regression test (was a strict xfail until fixed in da1389d): parse_statement tests `doc.get('_type') not in
# STATEMENT_TYPES` (a frozenset); a list or object _type raises TypeError (unhashable) instead of VerificationFailure
@SETTINGS
@given(
    payload=st.binary(max_size=300) | json_values.map(dumps) | mutations(STATEMENT).map(dumps),
    payload_type=st.sampled_from(["application/vnd.in-toto+json", "text/plain", ""]),
)
@example(payload=dumps({**STATEMENT, "_type": []}), payload_type="application/vnd.in-toto+json")
def test_in_toto_statement_parse(payload: bytes, payload_type: str) -> None:
    only_ours(lambda: _statement_of(Envelope(payload_type=payload_type, payload=payload, signatures=(b"s",))))


@SETTINGS
@given(subjects=mutations(STATEMENT["subject"]))
def test_statement_about_another_image_never_names_it(subjects: Any) -> None:
    """A statement counts only for a digest one of its subjects names, however the subjects are damaged."""
    doc = {**STATEMENT, "subject": subjects}
    envelope = Envelope(payload_type="application/vnd.in-toto+json", payload=dumps(doc), signatures=(b"s",))
    statement = only_ours(lambda: parse_statement(envelope))
    if statement is None:
        return
    named = {f"{a}:{h}".lower() for s in statement.subjects for a, h in s.digests.items()}
    assert statement.names_digest(OTHER_DIGEST) is (OTHER_DIGEST in named)


# -- simple signing ----------------------------------------------------------------------------------------------------


@SETTINGS
@given(raw=st.binary(max_size=300) | json_values.map(dumps) | mutations(PAYLOAD).map(dumps))
def test_simple_signing_payload_parse(raw: bytes) -> None:
    payload = only_ours(lambda: parse_payload(raw))
    if payload is None:
        return
    try:
        check_payload(payload, image_digest=DIGEST)
    except VerificationFailure:
        return
    assert payload.manifest_digest == DIGEST  # a payload about another digest never passes


# -- Rekor bundle annotation -------------------------------------------------------------------------------------------


# Regression test for the verify_set crashes of test_rekor_bundle_annotation_hostile_values (fixed in da1389d).
@SETTINGS
@given(raw=st.binary(max_size=300) | json_values.map(dumps) | mutations(REKOR).map(dumps))
@example(raw=json.dumps(REKOR).encode())
@example(raw=json.dumps({**REKOR, "Payload": {**REKOR["Payload"], "integratedTime": 10**17}}).encode())
def test_rekor_bundle_annotation_parse(raw: bytes) -> None:
    entry = only_ours(lambda: verify_set(raw, logs=LOGS))
    if entry is not None:
        assert entry.body["kind"] == "hashedrekord"


def _rekor_with(**payload: Any) -> bytes:
    doc = json.loads(json.dumps(REKOR))
    doc["Payload"].update(payload)
    return dumps(doc)


# Regression test (was a strict xfail until fixed in da1389d): verify_set parses hostile annotation JSON and fields
# before checking the SET: a deeply nested document raises RecursionError (only ValueError is caught), an
# integratedTime outside JSON's safe integer range raises rfc8785.IntegerDomainError, and one that is in range but
# beyond year 9999 raises ValueError from datetime.fromtimestamp
@pytest.mark.parametrize(
    "raw",
    [DEEP, _rekor_with(integratedTime=10**17), _rekor_with(integratedTime=2**52), _rekor_with(logIndex=-(10**17))],
    ids=["deep", "time-beyond-2^53", "time-beyond-year-9999", "index-beyond-2^53"],
)
def test_rekor_bundle_annotation_hostile_values(raw: bytes) -> None:
    with pytest.raises(VerificationFailure):
        verify_set(raw, logs=LOGS)


# Regression test (was a strict xfail until fixed in da1389d): json.loads of hostile blobs catches ValueError but not
# RecursionError in dsse.parse_envelope, dsse.parse_statement and simplesigning.parse_payload (and
# trust.parse_trusted_root)
@pytest.mark.parametrize("parser", ["dsse-envelope", "in-toto-statement", "simple-signing", "trusted-root"])
def test_deeply_nested_json_is_refused(parser: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "dsse-envelope": lambda: parse_envelope(DEEP),
        "in-toto-statement": lambda: parse_statement(Envelope("application/vnd.in-toto+json", DEEP, (b"s",))),
        "simple-signing": lambda: parse_payload(DEEP),
        "trusted-root": lambda: parse_trusted_root(DEEP, source="fuzz"),
    }
    with pytest.raises(SigwardError):
        calls[parser]()


# -- Sigstore bundles --------------------------------------------------------------------------------------------------


@SETTINGS
@given(raw=st.binary(max_size=300) | json_values.map(dumps) | mutations(BUNDLE).map(dumps))
@example(raw=DEEP)
def test_sigstore_bundle_parse(raw: bytes) -> None:
    only_ours(lambda: parse_bundle(raw))


# Regression test (was a strict xfail until fixed in da1389d): parse_bundle looks up
# messageSignature.messageDigest.algorithm in a dict (_HASH_NAMES.get) without checking it is a string; a list raises
# TypeError out of the per-bundle loop of verify_bundle_signatures
@SETTINGS
@given(doc=mutations(BUNDLE) | mutations(MESSAGE_BUNDLE))
@example(
    doc={
        **MESSAGE_BUNDLE,
        "messageSignature": {
            **MESSAGE_BUNDLE["messageSignature"],
            "messageDigest": {**MESSAGE_BUNDLE["messageSignature"]["messageDigest"], "algorithm": []},
        },
    }
)
def test_sigstore_bundle_verification_of_mutated_bundles(doc: Any) -> None:
    """Through the whole managed-key verification: a damaged bundle is a VerificationFailure, never a crash, and a
    bundle only ever verifies for the digest it was made for."""
    verifier = PublicKeyVerifier(key=load_public_key_pem(KEY.public_pem))
    root = parse_trusted_root(bundle_support.trusted_root(), source="fuzz")
    layer = BundleLayer(raw=dumps(doc))
    for digest in (DIGEST, OTHER_DIGEST):
        result = only_ours(
            lambda d=digest: verify_bundle(  # type: ignore[misc]
                layer,
                image_digest=d,
                key=verifier,
                keyless=None,
                certificates=None,
                trusted_root=root,
                ignore_tlog=True,
            )
        )
        if digest == OTHER_DIGEST:
            assert result is None, "a bundle about one image verified for another"


# -- PEM certificates and trusted roots --------------------------------------------------------------------------------


def _with_invalid_version(cert: x509.Certificate) -> bytes:
    """The certificate's DER with its version field (``[0] INTEGER 2`` = v3) changed to 18: not X.509 at all."""
    raw = cert.public_bytes(serialization.Encoding.DER)
    at = raw.index(bytes.fromhex("a003020102"))
    return raw[: at + 4] + b"\x12" + raw[at + 5 :]


def _pem_of(der: bytes) -> str:
    return "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + "-----END CERTIFICATE-----\n"


BAD_VERSION_DER = _with_invalid_version(make_fulcio(slot=9).intermediate)
# cryptography raises x509.InvalidVersion (an Exception, not a ValueError) for a certificate whose version is not
# v1-v3; x509chain.load_certificates_pem and bundles._certificate caught only ValueError, so a hostile certificate
# annotation or bundle certificate escaped as a crash (was a strict xfail until fixed in da1389d).


# Regression test for the x509.InvalidVersion crash described above (fixed in da1389d).
@SETTINGS
@given(
    text=st.text(max_size=200)
    | byte_mutations(PEM_CHAIN.encode()).map(lambda b: b.decode("utf-8", "replace"))
    | st.integers(min_value=0, max_value=20).map(
        lambda n: "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n" * n
    )
)
@example(text=_pem_of(BAD_VERSION_DER))
def test_certificate_pem_loading(text: str) -> None:
    certs = only_ours(lambda: load_certificates_pem(text, what="fuzz"))
    if certs is not None:
        assert 1 <= len(certs) <= 11


# Regression test for the x509.InvalidVersion crash described above (fixed in da1389d).
@pytest.mark.parametrize("where", ["pem", "bundle"])
def test_certificate_with_an_invalid_version_is_refused(where: str) -> None:
    if where == "pem":
        with pytest.raises(VerificationFailure):
            load_certificates_pem(_pem_of(BAD_VERSION_DER), what="certificate annotation")
        return
    doc = {**BUNDLE, "verificationMaterial": {"certificate": {"rawBytes": base64.b64encode(BAD_VERSION_DER).decode()}}}
    with pytest.raises(VerificationFailure):
        parse_bundle(dumps(doc))


# Regression test for the x509.InvalidVersion crash described above (fixed in da1389d).
def test_a_hostile_keyless_layer_does_not_sink_a_valid_one() -> None:
    """Keyless signatures: a layer whose certificate annotation is not X.509 next to a valid layer — the valid one
    verifies, the hostile one is a reason in the list, not an exception out of the loop."""
    fulcio = make_fulcio()
    signer = new_key("p256", slot=60)
    valid = cert_layer(signer, issue_leaf(fulcio, signer), image_digest=DIGEST, chain=fulcio.chain, rekor=fulcio.rekor)
    hostile = SignatureLayer(
        media_type=valid.media_type,
        payload=valid.payload,
        annotations={**valid.annotations, ANNOTATION_CERTIFICATE: _pem_of(_with_invalid_version(fulcio.intermediate))},
    )
    keyless = KeylessAttestor.model_validate({"subject": TEST_EMAIL, "issuer": TEST_ISSUER})
    results = verify_signatures_keyless(
        [hostile, valid], image_digest=DIGEST, keyless=keyless, annotations={}, trusted_root=fulcio_root(fulcio)
    )
    assert [r.layer for r in results] == [valid]


@SETTINGS
@given(doc=mutations(PUBLIC_GOOD) | json_values)
def test_trusted_root_parse(doc: Any) -> None:
    only_ours(lambda: parse_trusted_root(dumps(doc), source="fuzz"))


def test_unmutated_seeds_are_valid() -> None:
    """The seeds the mutations start from verify, so mutations explore the paths past the first checks."""
    assert parse_envelope(dumps(ENVELOPE)).payload_type == "application/vnd.in-toto+json"
    check_payload(parse_payload(dumps(PAYLOAD)), image_digest=DIGEST)
    assert verify_set(dumps(REKOR), logs=LOGS).integrated_time == 1_700_000_000
    assert parse_bundle(dumps(BUNDLE)) is not None
    assert len(load_certificates_pem(PEM_CHAIN, what="seed")) == 2
    assert parse_trusted_root(dumps(PUBLIC_GOOD), source="seed").tlogs
    with pytest.raises(ConfigurationError):
        parse_trusted_root(b"{}", source="seed")
    assert base64.b64decode(ENVELOPE["payload"]) == json.dumps(STATEMENT).encode()

"""Key-based checks of cosign ``.att`` layers (DSSE envelopes of in-toto statements): pure functions.

A layer's statement counts only when, in this order: the layer is a DSSE envelope, a signature verifies over its
PAE with the key, the payload is an in-toto statement, a subject names this image's digest, and (unless
``ignoreTlog``) its Rekor entry is valid and logs this very envelope (payload and signatures) by this key. Errors
are reported in cosign's words.
"""

from __future__ import annotations

from collections.abc import Sequence

from sigward.errors import VerificationFailure, no_attestations_found
from sigward.verify.cosign import SignatureLayer, TlogOptions, check_key_timestamp, collect_verified
from sigward.verify.dsse import (
    DSSE_MEDIA_TYPE,
    Statement,
    check_subject,
    parse_envelope,
    parse_statement,
    verify_envelope,
)
from sigward.verify.keys import PublicKeyVerifier
from sigward.verify.rekor import Signer, check_envelope_entry, verify_set
from sigward.verify.trust import CertificateAuthority


def verify_attestation_layer_with_key(
    layer: SignatureLayer,
    *,
    image_digest: str,
    verifier: PublicKeyVerifier,
    tlog: TlogOptions,
    tsa: Sequence[CertificateAuthority] = (),
) -> Statement:
    if layer.media_type != DSSE_MEDIA_TYPE:
        raise VerificationFailure(f"layer media type {layer.media_type!r} is not a DSSE envelope")
    envelope = parse_envelope(layer.payload)
    verify_envelope(envelope, verifier)
    statement = parse_statement(envelope)
    check_subject(statement, image_digest=image_digest)
    check_key_timestamp(layer, timestamped=layer.payload, tsa=tsa)  # cosign timestamps the whole envelope
    if tlog.required:
        if not layer.bundle:
            raise VerificationFailure(
                "attestation has no Rekor bundle (set rekor.ignoreTlog: true to verify without the transparency log)"
            )
        entry = verify_set(layer.bundle, logs=tlog.logs)
        check_envelope_entry(entry.body, envelope=envelope, raw_envelope=layer.payload, signer=Signer(verifier.key))
    return statement


def verify_attestations_with_key(
    layers: Sequence[SignatureLayer],
    *,
    image_digest: str,
    verifier: PublicKeyVerifier,
    tlog: TlogOptions,
    tsa: Sequence[CertificateAuthority] = (),
) -> tuple[Statement, ...]:
    """Every statement whose layer verifies; "no matching attestations: …" (cosign's error) when none does."""
    return collect_verified(
        layers,
        lambda layer: verify_attestation_layer_with_key(
            layer, image_digest=image_digest, verifier=verifier, tlog=tlog, tsa=tsa
        ),
        empty=no_attestations_found,
        prefix="no matching attestations: ",
    )

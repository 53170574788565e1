"""Key-based checks of legacy cosign ``.sig`` layers: pure functions over bytes, keys and trust material.

A layer counts as a matching signature only when, in this order: its media type is simple signing, its signature
verifies over the exact payload bytes with the key, the payload is a cosign signature of *this* image digest, the
transparency-log entry (unless ``ignoreTlog``) is valid and about this very signature, and the required annotations
match. Each check that fails is reported in cosign's words.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sigward.errors import VerificationFailure, no_signatures_found
from sigward.verify.keys import PublicKeyVerifier
from sigward.verify.rekor import Signer, TlogOptions, check_signature_entry, verify_set
from sigward.verify.simplesigning import (
    SIMPLESIGNING_MEDIA_TYPE,
    SimpleSigningPayload,
    annotations_match,
    check_payload,
    parse_payload,
)
from sigward.verify.timestamps import verify_timestamps
from sigward.verify.trust import CertificateAuthority

__all__ = ["TlogOptions"]  # re-exported: callers build it with the layer checks of this module

ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANNOTATION_CHAIN = "dev.sigstore.cosign/chain"
ANNOTATION_BUNDLE = "dev.sigstore.cosign/bundle"
ANNOTATION_RFC3161 = "dev.sigstore.cosign/rfc3161timestamp"
# A signature is at most a few hundred bytes (RSA-4096: 512); its base64 annotation past this is garbage.
MAX_SIGNATURE_B64 = 8 * 1024


_T = TypeVar("_T")


@dataclass(frozen=True)
class SignatureLayer:
    """One layer of a ``.sig`` manifest: the payload blob and the layer's annotations."""

    media_type: str
    payload: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)
    digest: str = ""

    @property
    def signature_b64(self) -> str:
        return self.annotations.get(ANNOTATION_SIGNATURE, "")

    @property
    def certificate(self) -> str:
        return self.annotations.get(ANNOTATION_CERTIFICATE, "")

    @property
    def chain(self) -> str:
        return self.annotations.get(ANNOTATION_CHAIN, "")

    @property
    def bundle(self) -> str:
        return self.annotations.get(ANNOTATION_BUNDLE, "")


@dataclass(frozen=True)
class VerifiedSignature:
    layer: SignatureLayer
    payload: SimpleSigningPayload
    integrated_time: int | None = None


def decode_signature(layer: SignatureLayer) -> bytes:
    value = layer.signature_b64
    if not value:
        raise VerificationFailure("signature annotation missing")
    if len(value) > MAX_SIGNATURE_B64:
        raise VerificationFailure("signature annotation too large")
    try:
        # Go's StdEncoding skips line breaks; signatures wrapped at 76 columns exist in the wild.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailure("signature annotation is not base64") from None


def layer_timestamps(layer: SignatureLayer) -> tuple[bytes, ...]:
    """The RFC 3161 token of cosign's ``dev.sigstore.cosign/rfc3161timestamp`` annotation
    (``{"SignedRFC3161TimeStamp": "<base64 DER>"}``), if any."""
    text = layer.annotations.get(ANNOTATION_RFC3161, "")
    if not text.strip():
        return ()
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise VerificationFailure("rfc3161timestamp annotation is not JSON") from None
    value = doc.get("SignedRFC3161TimeStamp") if isinstance(doc, dict) else None
    if not isinstance(value, str):
        raise VerificationFailure("rfc3161timestamp annotation has no SignedRFC3161TimeStamp")
    try:
        return (base64.b64decode(value, validate=True),)
    except (binascii.Error, ValueError):
        raise VerificationFailure("rfc3161timestamp annotation is not base64") from None


def check_key_timestamp(layer: SignatureLayer, *, timestamped: bytes, tsa: Sequence[CertificateAuthority]) -> None:
    """cosign's RFC 3161 rule for key-signed layers (Kyverno passes ``keys.ctlog.tsaCertChain`` to cosign as its
    TSA roots): a layer without a timestamp is judged on its key and log alone; a layer carrying one needs it to
    verify over the timestamped bytes with the policy's TSA chain; with no chain in the policy it cannot, and the
    layer does not count ("no TSA root certificate(s) provided"). The token check is :func:`verify_timestamps`."""
    tokens = layer_timestamps(layer)
    if not tokens:
        return
    if not tsa:
        raise VerificationFailure(
            "unable to verify RFC3161 timestamp bundle: no TSA root certificate(s) provided to verify timestamp "
            "(set keys.ctlog.tsaCertChain)"
        )
    check = verify_timestamps(tokens, signature=timestamped, authorities=tsa)
    if not check.times:
        raise VerificationFailure("unable to verify RFC3161 timestamp bundle: " + "; ".join(check.problems))


def verify_layer_with_key(
    layer: SignatureLayer,
    *,
    image_digest: str,
    verifier: PublicKeyVerifier,
    annotations: Mapping[str, str],
    tlog: TlogOptions,
    tsa: Sequence[CertificateAuthority] = (),
) -> VerifiedSignature:
    if layer.media_type != SIMPLESIGNING_MEDIA_TYPE:
        raise VerificationFailure(f"layer media type {layer.media_type!r} is not a cosign simple signing payload")
    signature = decode_signature(layer)
    verifier.verify(signature, layer.payload)
    payload = parse_payload(layer.payload)
    check_payload(payload, image_digest=image_digest)
    check_key_timestamp(layer, timestamped=signature, tsa=tsa)
    integrated_time: int | None = None
    if tlog.required:
        if not layer.bundle:
            raise VerificationFailure(
                "signature has no Rekor bundle (set rekor.ignoreTlog: true to verify without the transparency log)"
            )
        entry = verify_set(layer.bundle, logs=tlog.logs)
        check_signature_entry(entry.body, payload=layer.payload, signature=signature, signer=Signer(verifier.key))
        integrated_time = entry.integrated_time
    if annotations and not annotations_match(payload, annotations):
        raise VerificationFailure("missing or incorrect annotation")
    return VerifiedSignature(layer=layer, payload=payload, integrated_time=integrated_time)


def verify_signatures_with_key(
    layers: Sequence[SignatureLayer],
    *,
    image_digest: str,
    verifier: PublicKeyVerifier,
    annotations: Mapping[str, str],
    tlog: TlogOptions,
    tsa: Sequence[CertificateAuthority] = (),
) -> tuple[VerifiedSignature, ...]:
    """Every layer that verifies; raise "no matching signatures: …" (cosign's error) when none does."""
    return collect_verified(
        layers,
        lambda layer: verify_layer_with_key(
            layer, image_digest=image_digest, verifier=verifier, annotations=annotations, tlog=tlog, tsa=tsa
        ),
        empty=no_signatures_found,
        prefix="no matching signatures: ",
    )


def collect_verified(
    layers: Sequence[SignatureLayer],
    check: Callable[[SignatureLayer], _T],
    *,
    empty: Callable[[], VerificationFailure],
    prefix: str,
) -> tuple[_T, ...]:
    """cosign's plural rule, for every legacy layer check: every layer that verifies; ``empty()`` when there is no
    layer at all; else ``prefix`` with each distinct reason when none verifies."""
    if not layers:
        raise empty()
    verified: list[_T] = []
    errors: list[str] = []
    for layer in layers:
        try:
            verified.append(check(layer))
        except VerificationFailure as exc:
            if exc.message not in errors:
                errors.append(exc.message)
    if not verified:
        raise VerificationFailure(prefix + "; ".join(errors))
    return tuple(verified)

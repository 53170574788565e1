"""Sigstore bundles (v0.1–v0.3): the format cosign v3 signs into by default and attaches to images as OCI 1.1
referrers. Pure functions over the bundle bytes, a key or an identity policy, and trust material.

Parsing is strict plain JSON (no protobuf model): every field this module reads is type- and size-checked with its
JSON path in the error, unknown fields are ignored as protobuf JSON parsers ignore them, and no third-party model
decides what "present" means (proto3 leaves zero values out; sigstore-models refused a proof in a size-1 tree).

The checks are sigward's own, shared with legacy layers: the DSSE signature over PAE (or the message signature over
the artifact digest) with the policy's key or the certificate's key; each transparency-log entry — Merkle inclusion
proof (RFC 9162 §2.1.3.2) up to a checkpoint whose signed note verifies with the log's key, the inclusion promise
(SET) of Rekor v1 entries, and the logged body being this very signature, content and key (``hashedrekord``
0.0.1/0.0.2, ``dsse`` 0.0.1/0.0.2, ``intoto`` 0.0.2); RFC 3161 timestamps (:mod:`sigward.verify.timestamps`); and
for certificates :mod:`sigward.verify.certificates` (chain at every verified signing time, SCT, identity), exactly
as for a legacy ``.sig``/``.att`` layer. Time evidence: the log is required unless ``ignoreTlog`` or no log is
trusted (GitHub's TSA-only instance); a certificate bundle with neither a verified log time nor a verified timestamp
is refused (``ignoreTlog`` alone lets the current time stand in, as cosign does).

For an image, a DSSE bundle yields an in-toto statement whose subject must name the image digest; the predicate
``https://sigstore.dev/cosign/sign/v1`` makes it an image signature, anything else an attestation. A message
signature bundle attached to an image signs the image digest itself.

No sigstore-python code is used; ``rfc3161-client`` is imported lazily, only when a bundle carries timestamps.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Required, TypedDict, Unpack

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, utils

from sigward.errors import (
    ConfigurationError,
    FailureKind,
    VerificationFailure,
    evidence_kind,
    no_attestations_found,
    no_signatures_found,
)
from sigward.policy.models import DEFAULT_REKOR_URL
from sigward.verify.certificates import (
    CertificateTrust,
    certificate_trust,
    check_certificate,
    signing_certificate,
    signing_times,
)
from sigward.verify.cosign import TlogOptions
from sigward.verify.dsse import (
    Envelope,
    Statement,
    check_subject,
    pae,
    parse_envelope,
    parse_statement,
    verify_envelope,
)
from sigward.verify.encoding import decode_base64
from sigward.verify.identity import (
    IdentityMismatch,
    IdentityPolicy,
    certificate_identities,
    certificate_issuer,
)
from sigward.verify.keys import KeyLoadError, PublicKeyVerifier, spki_der
from sigward.verify.rekor import (
    Signer,
    check_envelope_entry,
    check_signature_entry,
    log_for_entry,
    tlog_options,
    verify_set,
)
from sigward.verify.timestamps import verify_timestamps
from sigward.verify.trust import (
    LogKey,
    TrustedRoot,
    log_id_for,
    parse_trusted_root,
    root_for_certificate,
)
from sigward.verify.x509chain import certificate_key, load_certificates_pem

if TYPE_CHECKING:
    from sigward.policy.models import CertificateAttestor, KeylessAttestor, Rekor

# -- media types and limits

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES: Mapping[str, tuple[int, int]] = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": (0, 1),
    "application/vnd.dev.sigstore.bundle+json;version=0.2": (0, 2),
    "application/vnd.dev.sigstore.bundle+json;version=0.3": (0, 3),
    BUNDLE_MEDIA_TYPE: (0, 3),
}
# cosign v3 signs images into an in-toto statement of this predicate type (``cosign sign`` with bundles).
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
# A bundle is the envelope (attestations can hold large SBOMs) plus a few KiB of verification material.
MAX_BUNDLE_BYTES = 16 * 1024 * 1024 + 256 * 1024
# Real bundles carry one log entry and at most a couple of timestamps (sigstore-go caps timestamps at 32).
MAX_TLOG_ENTRIES = 8
MAX_TIMESTAMPS = 32
MAX_CHAIN_CERTIFICATES = 11
# A Merkle path of a log with 2^64 leaves has 64 hashes; a checkpoint is a few lines.
MAX_PROOF_HASHES = 64
MAX_CHECKPOINT_BYTES = 64 * 1024
MAX_CHECKPOINT_SIGNATURES = 64

_HASH_NAMES = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}
_CRYPTO_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

# -- public data


@dataclass(frozen=True)
class BundleLayer:
    """One Sigstore bundle found for an image: the bundle JSON and where it came from.

    ``problem`` is set (and ``raw`` empty) when the referrer could not be used (too large, not about this image);
    verification then reports it as that bundle's error instead of silently dropping it.
    """

    raw: bytes = field(repr=False)
    manifest_digest: str = ""
    artifact_type: str = ""
    predicate_type: str = ""  # the referrer's ``dev.sigstore.bundle.predicateType`` annotation (unverified hint)
    problem: str = ""


@dataclass(frozen=True)
class BundleResult:
    """What a verified bundle vouches for."""

    statement: Statement | None  # the in-toto statement of a DSSE bundle; None for a message signature
    is_image_signature: bool  # cosign's sign/v1 statement, or a message signature over the image digest
    integrated_time: int | None  # earliest verified Rekor integrated time (None: Rekor v2, or tlog ignored)
    signer: str  # the certificate's first SAN, or the key's id (hex sha256 of its SPKI)
    issuer: str = ""  # the OIDC issuer of a certificate
    manifest_digest: str = ""  # the referrer manifest the bundle came from
    timestamps: tuple[datetime, ...] = ()  # verified signing times (integrated times and RFC 3161 times)


# -- parsing


@dataclass(frozen=True)
class _Proof:
    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class _Entry:
    log_index: int
    log_id: bytes
    kind: str
    version: str
    integrated_time: int | None
    promise: bytes | None
    proof: _Proof | None
    body: bytes

    @property
    def kind_version(self) -> str:
        return f"{self.kind}/{self.version}"


@dataclass(frozen=True)
class _MessageSignature:
    digest_algorithm: str  # sha256/sha384/sha512
    digest: bytes | None  # the (unauthenticated) digest hint, if the bundle carries one
    signature: bytes


Material = Literal["public_key", "certificate", "chain"]


@dataclass(frozen=True)
class _Bundle:
    version: tuple[int, int]
    material: Material
    certificates: tuple[x509.Certificate, ...]  # leaf first; empty for a public key
    entries: tuple[_Entry, ...]
    timestamps: tuple[bytes, ...]
    message: _MessageSignature | None
    envelope: Envelope | None

    @property
    def signature(self) -> bytes:
        """The signature timestamps are made over (the first DSSE signature, as sigstore clients do)."""
        if self.envelope is not None:
            return self.envelope.signatures[0]
        assert self.message is not None
        return self.message.signature

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]


def _fail(message: str) -> VerificationFailure:
    return VerificationFailure(f"invalid Sigstore bundle: {message}")


def _obj(value: Any, where: str, *, required: bool = True) -> Mapping[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(f"{where} must be an object")
    return value


def _b64(value: Any, where: str) -> bytes:
    """Protobuf JSON bytes: standard base64 (URL-safe accepted too, as protobuf parsers do)."""
    if not isinstance(value, str):
        raise _fail(f"{where} must be a base64 string")
    # Line breaks are ignored, as Go's decoder (protojson, so cosign and sigstore-go) ignores them.
    text = value.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    if re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        try:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            pass
    raise _fail(f"{where} is not valid base64")


def _uint(value: Any, where: str) -> int:
    """Protobuf JSON (u)int64: a decimal string or a JSON integer, never negative here. proto3 JSON leaves zero
    values out, so a missing number is 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _fail(f"{where} must be an integer")
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,20}", value):
        value = int(value)
    if not isinstance(value, int):
        raise _fail(f"{where} must be an integer")
    if value < 0 or value >= 2**63:
        raise _fail(f"{where} must be a non-negative 63-bit integer (got {value})")
    return value


def _certificate(value: Any, where: str) -> x509.Certificate:
    der = _b64(_obj(value, where).get("rawBytes"), f"{where}.rawBytes")
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:
        raise _fail(f"{where} is not a DER certificate ({exc})") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _parse_entry(value: Any, where: str, version: tuple[int, int]) -> _Entry:
    doc = _obj(value, where)
    kv = _obj(doc.get("kindVersion"), f"{where}.kindVersion")
    kind, kversion = kv.get("kind"), kv.get("version")
    if not isinstance(kind, str) or not isinstance(kversion, str) or not kind or not kversion:
        raise _fail(f"{where}.kindVersion needs kind and version")
    log_index = _uint(doc.get("logIndex"), f"{where}.logIndex")
    log_id = _b64(_obj(doc.get("logId"), f"{where}.logId").get("keyId"), f"{where}.logId.keyId")
    integrated = _uint(doc.get("integratedTime"), f"{where}.integratedTime")
    promise_doc = doc.get("inclusionPromise")
    promise = (
        _b64(_obj(promise_doc, f"{where}.inclusionPromise").get("signedEntryTimestamp"), f"{where}.inclusionPromise")
        if promise_doc is not None
        else None
    )
    proof: _Proof | None = None
    proof_doc = doc.get("inclusionProof")
    if proof_doc is not None:
        p = _obj(proof_doc, f"{where}.inclusionProof")
        hashes_doc = p.get("hashes", [])
        if not isinstance(hashes_doc, list) or len(hashes_doc) > MAX_PROOF_HASHES:
            raise _fail(f"{where}.inclusionProof.hashes must be a list of at most {MAX_PROOF_HASHES} hashes")
        checkpoint_doc = p.get("checkpoint")
        checkpoint = ""
        if checkpoint_doc is not None:
            envelope = _obj(checkpoint_doc, f"{where}.inclusionProof.checkpoint").get("envelope")
            if not isinstance(envelope, str) or len(envelope) > MAX_CHECKPOINT_BYTES:
                raise _fail(f"{where}.inclusionProof.checkpoint.envelope must be a string")
            checkpoint = envelope
        proof = _Proof(
            log_index=_uint(p.get("logIndex"), f"{where}.inclusionProof.logIndex"),
            tree_size=_uint(p.get("treeSize"), f"{where}.inclusionProof.treeSize"),
            root_hash=_b64(p.get("rootHash"), f"{where}.inclusionProof.rootHash"),
            hashes=tuple(_b64(h, f"{where}.inclusionProof.hashes[{i}]") for i, h in enumerate(hashes_doc)),
            checkpoint=checkpoint,
        )
    if version >= (0, 2) and (proof is None or not proof.checkpoint):
        raise _fail(f"{where}: a v0.{version[1]} bundle needs an inclusion proof with a checkpoint")
    if version == (0, 1) and promise is None:
        raise _fail(f"{where}: a v0.1 bundle needs an inclusion promise (signed entry timestamp)")
    body = _b64(doc.get("canonicalizedBody"), f"{where}.canonicalizedBody")
    return _Entry(
        log_index=log_index,
        log_id=log_id,
        kind=kind,
        version=kversion,
        integrated_time=integrated or None,
        promise=promise,
        proof=proof,
        body=body,
    )


def parse_bundle(raw: bytes) -> _Bundle:
    """Parse and check the structure of bundle JSON; raises :class:`VerificationFailure` saying what is wrong."""
    if len(raw) > MAX_BUNDLE_BYTES:
        raise _fail(f"larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _fail(f"not valid JSON ({type(exc).__name__})") from None
    doc = _obj(doc, "bundle")
    media_type = doc.get("mediaType")
    version = BUNDLE_MEDIA_TYPES.get(media_type) if isinstance(media_type, str) else None
    if version is None:
        shown = media_type[:100] if isinstance(media_type, str) else repr(media_type)[:100]
        raise _fail(f"unsupported bundle media type {shown!r}")
    vm = _obj(doc.get("verificationMaterial"), "verificationMaterial")
    material: Material
    certificates: tuple[x509.Certificate, ...] = ()
    present = [k for k in ("publicKey", "certificate", "x509CertificateChain") if vm.get(k) is not None]
    if len(present) != 1:
        raise _fail("verificationMaterial needs exactly one of publicKey, certificate, x509CertificateChain")
    if present[0] == "publicKey":
        _obj(vm["publicKey"], "verificationMaterial.publicKey")
        material = "public_key"
    elif present[0] == "certificate":
        if version < (0, 3):
            raise _fail(f"a v0.{version[1]} bundle carries certificates in x509CertificateChain")
        certificates = (_certificate(vm["certificate"], "verificationMaterial.certificate"),)
        material = "certificate"
    else:
        if version >= (0, 3):
            raise _fail("a v0.3 bundle must carry its certificate in certificate, not x509CertificateChain")
        chain = _obj(vm["x509CertificateChain"], "verificationMaterial.x509CertificateChain").get("certificates")
        if not isinstance(chain, list) or not chain:
            raise _fail("the certificate chain is empty")
        if len(chain) > MAX_CHAIN_CERTIFICATES:
            raise _fail(f"the certificate chain has more than {MAX_CHAIN_CERTIFICATES} certificates")
        certificates = tuple(
            _certificate(c, f"verificationMaterial.x509CertificateChain.certificates[{i}]") for i, c in enumerate(chain)
        )
        if _is_ca(certificates[0]):
            raise _fail("the first certificate of the chain is a CA, not a signing certificate")
        if any(_is_self_signed(c) for c in certificates[1:]):
            raise _fail("the certificate chain contains a root certificate (roots come from the trusted root)")
        material = "chain"
    entries_doc = vm.get("tlogEntries", [])
    if not isinstance(entries_doc, list) or len(entries_doc) > MAX_TLOG_ENTRIES:
        raise _fail(f"tlogEntries must be a list of at most {MAX_TLOG_ENTRIES} entries")
    entries = tuple(
        _parse_entry(e, f"verificationMaterial.tlogEntries[{i}]", version) for i, e in enumerate(entries_doc)
    )
    tsv = _obj(vm.get("timestampVerificationData"), "timestampVerificationData", required=False)
    ts_doc = tsv.get("rfc3161Timestamps", [])
    if not isinstance(ts_doc, list) or len(ts_doc) > MAX_TIMESTAMPS:
        raise _fail(f"rfc3161Timestamps must be a list of at most {MAX_TIMESTAMPS} timestamps")
    timestamps = tuple(
        _b64(_obj(t, f"rfc3161Timestamps[{i}]").get("signedTimestamp"), f"rfc3161Timestamps[{i}]")
        for i, t in enumerate(ts_doc)
    )
    if len(set(timestamps)) != len(timestamps):
        raise _fail("duplicate RFC 3161 timestamps")
    message: _MessageSignature | None = None
    envelope: Envelope | None = None
    if (doc.get("messageSignature") is None) == (doc.get("dsseEnvelope") is None):
        raise _fail("the content must be exactly one of messageSignature and dsseEnvelope")
    if doc.get("messageSignature") is not None:
        ms = _obj(doc["messageSignature"], "messageSignature")
        algorithm = "sha256"
        digest: bytes | None = None
        if ms.get("messageDigest") is not None:
            md = _obj(ms["messageDigest"], "messageSignature.messageDigest")
            algorithm = md.get("algorithm", "")
            name = _HASH_NAMES.get(algorithm) if isinstance(algorithm, str) else None
            if name is None:
                raise _fail(f"unsupported message digest algorithm {str(md.get('algorithm'))[:40]!r}")
            algorithm = name
            digest = _b64(md.get("digest"), "messageSignature.messageDigest.digest")
        message = _MessageSignature(
            digest_algorithm=algorithm,
            digest=digest,
            signature=_b64(ms.get("signature"), "messageSignature.signature"),
        )
    else:
        env_doc = _obj(doc["dsseEnvelope"], "dsseEnvelope")
        try:
            envelope = parse_envelope(env_doc)
        except VerificationFailure as exc:
            raise _fail(str(exc)) from None
    return _Bundle(
        version=version,
        material=material,
        certificates=certificates,
        entries=entries,
        timestamps=timestamps,
        message=message,
        envelope=envelope,
    )


# -- trust material


def _require_starts(doc: Mapping[str, Any], name: str, key: str | None, source: str) -> None:
    items = doc.get(name) or []
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        holder = item.get(key) if key and isinstance(item, Mapping) else item
        valid = holder.get("validFor") if isinstance(holder, Mapping) else None
        if not isinstance(valid, Mapping) or not valid.get("start"):
            path = f"{name}[{i}]{'.' + key if key else ''}.validFor.start"
            raise ConfigurationError(f"trusted root {source}: {path} is missing (a validity period needs its start)")


@lru_cache(maxsize=16)
def _checked_root_bytes(raw: bytes, source: str) -> None:
    """Validity periods must be closed at the start: a missing start is a malformed root, not an unbounded one."""
    doc = json.loads(raw)
    _require_starts(doc, "tlogs", "publicKey", source)
    _require_starts(doc, "ctlogs", "publicKey", source)
    _require_starts(doc, "certificateAuthorities", None, source)
    _require_starts(doc, "timestampAuthorities", None, source)


def check_trusted_root(root: TrustedRoot) -> None:
    """Refuse trust material that sigward's parser tolerates but bundle verification must not (missing starts)."""
    _checked_root_bytes(root.raw, root.source)


def _policy_certificates(text: str, what: str) -> tuple[x509.Certificate, ...]:
    """A policy's PEM certificates (x509chain's one loader), as trust-material configuration errors."""
    try:
        return load_certificates_pem(text, what=what)
    except VerificationFailure as exc:
        raise ConfigurationError(exc.message) from None


def _der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _authority(certs: Sequence[x509.Certificate], uri: str) -> dict[str, Any]:
    # Trusted roots list a chain leaf-most first; self-signed roots go last.
    ordered = [c for c in certs if not _is_self_signed(c)] + [c for c in certs if _is_self_signed(c)]

    def attribute(oid: x509.ObjectIdentifier) -> str:
        values = ordered[0].subject.get_attributes_for_oid(oid) if ordered else []
        return str(values[0].value) if values else ""

    return {
        "subject": {
            "organization": attribute(x509.NameOID.ORGANIZATION_NAME),
            "commonName": attribute(x509.NameOID.COMMON_NAME),
        },
        "uri": uri,
        "certChain": {"certificates": [{"rawBytes": _der_b64(c)} for c in ordered]},
        "validFor": {"start": "1970-01-01T00:00:00Z"},
    }


def _log_entry_doc(pem: str, url: str, what: str) -> dict[str, Any]:
    from sigward.verify.keys import load_public_key_pem

    try:
        key = load_public_key_pem(pem)
    except KeyLoadError as exc:
        raise ConfigurationError(f"{what}: {exc}") from None
    der = spki_der(key)
    log_id = bytes.fromhex(log_id_for(key, signed_note_origin=url))
    if isinstance(key, ed25519.Ed25519PublicKey):
        details = "PKIX_ED25519"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        bits = {"secp256r1": "P256_SHA_256", "secp384r1": "P384_SHA_384", "secp521r1": "P521_SHA_512"}
        details = f"PKIX_ECDSA_{bits[key.curve.name]}"
    else:
        size = key.key_size if key.key_size in (2048, 3072, 4096) else 4096
        details = f"PKIX_RSA_PKCS1V15_{size}_SHA256"
    return {
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": base64.b64encode(der).decode(),
            "keyDetails": details,
            "validFor": {"start": "1970-01-01T00:00:00Z"},
        },
        "logId": {"keyId": base64.b64encode(log_id).decode()},
    }


def trusted_root_with_overrides(
    base: TrustedRoot,
    *,
    fulcio_roots_pem: str = "",
    rekor_pubkey_pem: str = "",
    rekor_url: str = "",
    ctlog_pubkey_pem: str = "",
    tsa_chain_pem: str = "",
) -> TrustedRoot:
    """``base`` with a policy's own trust material in place of the matching parts, as Kyverno applies
    ``keyless.roots``, ``rekor.pubkey``, ``ctlog.pubkey`` and ``ctlog.tsaCertChain``. Unchanged when none is set."""
    if not (fulcio_roots_pem or rekor_pubkey_pem or ctlog_pubkey_pem or tsa_chain_pem):
        return base
    doc = json.loads(base.raw)
    if fulcio_roots_pem:
        certs = _policy_certificates(fulcio_roots_pem, "keyless.roots")
        doc["certificateAuthorities"] = [_authority(certs, "")] if certs else []
    if rekor_pubkey_pem:
        doc["tlogs"] = [_log_entry_doc(rekor_pubkey_pem, rekor_url or DEFAULT_REKOR_URL, "rekor.pubkey")]
    if ctlog_pubkey_pem:
        doc["ctlogs"] = [_log_entry_doc(ctlog_pubkey_pem, "", "ctlog.pubkey")]
    if tsa_chain_pem:
        certs = _policy_certificates(tsa_chain_pem, "ctlog.tsaCertChain")
        doc["timestampAuthorities"] = [_authority(certs, "")] if certs else []
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return parse_trusted_root(raw, source=f"{base.source} with policy overrides")


# -- transparency log


def _hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root_from_proof(leaf_hash: bytes, index: int, tree_size: int, path: Sequence[bytes]) -> bytes:
    """The root hash an RFC 9162 (§2.1.3.2) inclusion proof leads to; raises when the path cannot be one."""
    if not 0 <= index < tree_size:
        raise VerificationFailure(f"inclusion proof: leaf index {index} is outside a tree of size {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in path:
        if len(p) != 32:
            raise VerificationFailure("inclusion proof: a hash is not 32 bytes")
        if sn == 0:
            raise VerificationFailure("inclusion proof: more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = _hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationFailure("inclusion proof: fewer hashes than the tree has levels")
    return r


@dataclass(frozen=True)
class _Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    text: bytes  # the signed note text (ends with a newline)
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (name, key hint, signature)


_SIG_LINE = re.compile("\u2014 (\\S+) ([A-Za-z0-9+/]+={0,2})")


def parse_checkpoint(envelope: str) -> _Checkpoint:
    """A C2SP signed note holding a tlog checkpoint: origin, size, root hash, extension lines; signature lines."""
    if len(envelope) > MAX_CHECKPOINT_BYTES:
        raise VerificationFailure("checkpoint too large")
    split = envelope.find("\n\n")
    if split < 0:
        raise VerificationFailure("malformed checkpoint: no blank line between the note and its signatures")
    text, sig_block = envelope[: split + 1], envelope[split + 2 :]
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not all(lines[:3]):
        raise VerificationFailure("malformed checkpoint: needs origin, tree size and root hash lines")
    origin, size_text, hash_text = lines[0], lines[1], lines[2]
    if not re.fullmatch(r"[0-9]{1,20}", size_text) or (size_text.startswith("0") and size_text != "0"):
        raise VerificationFailure("malformed checkpoint: the tree size is not a decimal number")
    try:
        root_hash = base64.b64decode(hash_text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailure("malformed checkpoint: the root hash is not base64") from None
    if len(root_hash) != 32:
        raise VerificationFailure("malformed checkpoint: the root hash is not 32 bytes")
    if not sig_block or not sig_block.endswith("\n"):
        raise VerificationFailure("malformed checkpoint: no signature lines")
    signatures = []
    for line in sig_block[:-1].split("\n"):
        match = _SIG_LINE.fullmatch(line)
        if match is None:
            raise VerificationFailure("malformed checkpoint: a signature line is not '\u2014 <name> <base64>'")
        blob = base64.b64decode(match.group(2))
        if len(blob) < 5:
            raise VerificationFailure("malformed checkpoint: a signature is too short")
        signatures.append((match.group(1), blob[:4], blob[4:]))
        if len(signatures) > MAX_CHECKPOINT_SIGNATURES:
            raise VerificationFailure("malformed checkpoint: too many signature lines")
    return _Checkpoint(
        origin=origin, size=int(size_text), root_hash=root_hash, text=text.encode(), signatures=tuple(signatures)
    )


def _verify_checkpoint(proof: _Proof, log: LogKey, log_id: bytes) -> None:
    """The checkpoint must be signed by the log (key hint = first 4 bytes of its log ID) and commit to the
    proof's tree size and root hash. Signatures by other keys (witness cosignatures) are ignored."""
    checkpoint = parse_checkpoint(proof.checkpoint)
    candidates = [sig for name, hint, sig in checkpoint.signatures if hmac.compare_digest(hint, log_id[:4])]
    if not candidates:
        raise VerificationFailure(f"checkpoint carries no signature by the log {log_id.hex()[:16]}…")
    verifier = PublicKeyVerifier(key=log.key, source="transparency log")
    for signature in candidates:
        try:
            verifier.verify(signature, checkpoint.text)
        except VerificationFailure:
            continue
        break
    else:
        raise VerificationFailure("invalid checkpoint signature: not made by the transparency log's key")
    if checkpoint.size != proof.tree_size:
        raise VerificationFailure(
            f"checkpoint tree size {checkpoint.size} differs from the inclusion proof's {proof.tree_size}"
        )
    if not hmac.compare_digest(checkpoint.root_hash, proof.root_hash):
        raise VerificationFailure("checkpoint root hash differs from the inclusion proof's root hash")


@dataclass(frozen=True)
class _VerifiedEntry:
    entry: _Entry
    body: Mapping[str, Any]
    integrated_time: int | None  # only when the inclusion promise (SET) verified


def _verify_entry(entry: _Entry, logs: Sequence[LogKey]) -> _VerifiedEntry:
    log = log_for_entry(logs, entry.log_id)
    if entry.proof is not None:
        proof = entry.proof
        computed = merkle_root_from_proof(_hash_leaf(entry.body), proof.log_index, proof.tree_size, proof.hashes)
        if not hmac.compare_digest(computed, proof.root_hash):
            raise VerificationFailure("inclusion proof does not lead to its root hash: the entry is not in that tree")
        if proof.checkpoint:
            _verify_checkpoint(proof, log, entry.log_id)
    integrated: int | None = None
    if entry.promise is not None:
        if entry.integrated_time is None:
            raise VerificationFailure("inclusion promise without an integrated time")
        annotation = {
            "SignedEntryTimestamp": base64.b64encode(entry.promise).decode(),
            "Payload": {
                "body": base64.b64encode(entry.body).decode(),
                "integratedTime": entry.integrated_time,
                "logIndex": entry.log_index,
                "logID": entry.log_id.hex(),
            },
        }
        verify_set(json.dumps(annotation), logs=(log,))
        integrated = entry.integrated_time
    try:
        body = json.loads(entry.body)
    except (ValueError, RecursionError):
        raise VerificationFailure("transparency log entry body is not JSON") from None
    if not isinstance(body, Mapping):
        raise VerificationFailure("transparency log entry body is not an object")
    if body.get("kind") != entry.kind or body.get("apiVersion") != entry.version:
        raise VerificationFailure(
            f"transparency log entry body is {body.get('kind')!r}/{body.get('apiVersion')!r} "
            f"but the bundle says {entry.kind_version}"
        )
    return _VerifiedEntry(entry=entry, body=body, integrated_time=integrated)


# -- what a log entry must say about this bundle


def _matches_v2(signer: Signer, verifier: Any) -> bool:
    """A Rekor v2 entry's ``verifier``: the certificate's DER (or the key's SPKI) itself."""
    v = verifier if isinstance(verifier, Mapping) else {}
    if signer.certificate is not None:
        cert = v.get("x509Certificate")
        raw = _entry_b64(cert.get("rawBytes") if isinstance(cert, Mapping) else None, "verifier certificate")
        return raw == signer.certificate.public_bytes(serialization.Encoding.DER)
    pk = v.get("publicKey")
    raw = _entry_b64(pk.get("rawBytes") if isinstance(pk, Mapping) else None, "verifier public key")
    return raw == spki_der(signer.key)


def _entry_b64(value: Any, what: str) -> bytes:
    return decode_base64(
        value,
        missing=f"transparency log entry: {what} missing",
        invalid=f"transparency log entry: {what} is not base64",
    )


def _m(parent: Any, key: str) -> Mapping[str, Any]:
    value = parent.get(key) if isinstance(parent, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _v2_hash_name(value: Any) -> str:
    name = _HASH_NAMES.get(value) if isinstance(value, str) else None
    if name is None:
        raise VerificationFailure(f"transparency log entry: unsupported hash algorithm {str(value)[:40]!r}")
    return name


def _check_entry_content(
    verified: _VerifiedEntry, bundle: _Bundle, signer: Signer, message_digest: tuple[str, bytes] | None
) -> None:
    """The logged body must be this signature, over this content, by this key or certificate (else a valid
    entry about something else would vouch for the bundle)."""
    body, kv = verified.body, verified.entry.kind_version
    spec = _m(body, "spec")
    env = bundle.envelope
    if kv == "hashedrekord/0.0.1":
        if bundle.message is None or message_digest is None:
            raise VerificationFailure("a hashedrekord 0.0.1 entry cannot log a DSSE envelope")
        check_signature_entry(body, signature=bundle.message.signature, signer=signer, digest=message_digest)
    elif kv == "hashedrekord/0.0.2":
        inner = _m(spec, "hashedRekordV002")
        data = _m(inner, "data")
        algorithm = _v2_hash_name(data.get("algorithm"))
        logged_digest = _entry_b64(data.get("digest"), "digest")
        sig = _m(inner, "signature")
        if env is not None:
            if len(env.signatures) != 1:
                raise VerificationFailure("a hashedrekord entry can log a DSSE envelope with one signature only")
            expected = hashlib.new(algorithm, pae(env.payload_type, env.payload)).digest()
            signature = env.signatures[0]
        else:
            assert bundle.message is not None
            if message_digest is None or message_digest[0] != algorithm:
                raise VerificationFailure("transparency log entry hashes the artifact with another algorithm")
            expected, signature = message_digest[1], bundle.message.signature
        if not hmac.compare_digest(logged_digest, expected):
            raise VerificationFailure("transparency log entry digest does not match the signed content")
        if _entry_b64(sig.get("content"), "signature") != signature:
            raise VerificationFailure("transparency log entry signature does not match the bundle's signature")
        if not _matches_v2(signer, sig.get("verifier")):
            raise VerificationFailure("transparency log entry verifier does not match the signing key")
    elif kv in ("dsse/0.0.1", "intoto/0.0.2"):
        if env is None:
            raise VerificationFailure(f"a {kv.partition('/')[0]} entry cannot log a message signature")
        check_envelope_entry(body, envelope=env, signer=signer)
    elif kv == "dsse/0.0.2":
        if env is None:
            raise VerificationFailure("a dsse entry cannot log a message signature")
        inner = _m(spec, "dsseV002")
        payload_hash = _m(inner, "payloadHash")
        name = _v2_hash_name(payload_hash.get("algorithm"))
        if _entry_b64(payload_hash.get("digest"), "payload hash") != hashlib.new(name, env.payload).digest():
            raise VerificationFailure("transparency log entry payload hash does not match the bundle")
        logged: list[bytes] = []
        items = inner.get("signatures")
        for item in items if isinstance(items, list) else []:
            holder = item if isinstance(item, Mapping) else {}
            if not _matches_v2(signer, holder.get("verifier")):
                raise VerificationFailure("transparency log entry verifier does not match the signing key")
            logged.append(_entry_b64(holder.get("content"), "signature"))
        if not logged or sorted(logged) != sorted(env.signatures):
            raise VerificationFailure("transparency log entry signatures do not match the envelope's signatures")
    else:
        raise VerificationFailure(f"unsupported transparency log entry type {kv[:60]}")


# -- signatures made with a managed key


def _message_digest(bundle: _Bundle, image_digest: str | None, artifact: bytes | None) -> tuple[str, bytes] | None:
    """(algorithm, digest) of what a message signature must cover: the artifact, else the image digest."""
    if bundle.message is None:
        return None
    algorithm = bundle.message.digest_algorithm
    if artifact is not None:
        digest = hashlib.new(algorithm, artifact).digest()
        if image_digest is not None and hashlib.sha256(artifact).hexdigest() != image_digest.partition(":")[2]:
            raise VerificationFailure("the artifact is not the image being verified")
    elif image_digest is not None:
        image_algorithm, _, hex_value = image_digest.partition(":")
        if image_algorithm != algorithm:
            raise VerificationFailure(
                f"the bundle signs a {algorithm} digest but the image digest is {image_algorithm}"
            )
        try:
            digest = bytes.fromhex(hex_value)
        except ValueError:
            raise VerificationFailure(f"invalid image digest {image_digest[:100]!r}") from None
    else:
        raise VerificationFailure("a message signature bundle needs the artifact or image digest it signs")
    hint = bundle.message.digest
    if hint is not None and not hmac.compare_digest(hint, digest):
        raise VerificationFailure("the bundle's message digest does not match the artifact")
    return algorithm, digest


def _verify_message_with_key(
    verifier: PublicKeyVerifier, signature: bytes, digest: tuple[str, bytes], artifact: bytes | None
) -> None:
    key = verifier.key
    algorithm, value = digest
    prehashed = utils.Prehashed(_CRYPTO_HASHES[algorithm]())
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if artifact is None:
                raise VerificationFailure("an Ed25519 message signature can only be checked against the artifact")
            key.verify(signature, artifact)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, value, ec.ECDSA(prehashed))
        else:
            pad: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(_CRYPTO_HASHES[algorithm]()), salt_length=padding.PSS.AUTO)
                if verifier.rsa_padding == "pss"
                else padding.PKCS1v15()
            )
            key.verify(signature, value, pad, prehashed)
    except (InvalidSignature, ValueError):
        raise VerificationFailure(
            "invalid signature: the bundle's message signature does not verify with the key"
        ) from None


# -- identity: the one rule of sigward.verify.identity

KyvernoIdentityPolicy = IdentityPolicy


# -- the verification


def _layer(bundle: BundleLayer | bytes) -> BundleLayer:
    return bundle if isinstance(bundle, BundleLayer) else BundleLayer(raw=bundle)


def verify_bundle(
    bundle: BundleLayer | bytes,
    *,
    image_digest: str | None,
    artifact: bytes | None = None,
    key: PublicKeyVerifier | None = None,
    keyless: KeylessAttestor | None = None,
    certificates: CertificateAttestor | None = None,
    trusted_root: TrustedRoot,
    also_trusted: Sequence[TrustedRoot] = (),
    rekor: Rekor | None = None,
    ignore_tlog: bool = False,
    ignore_sct: bool = False,
) -> BundleResult:
    """Verify one Sigstore bundle with exactly one of ``key``, ``keyless`` or ``certificates``.

    ``image_digest`` (``sha256:…``): a DSSE statement's subject must name it, a message signature must sign it.
    ``artifact``: the same, for the artifact's own digest (blobs; conformance tests). ``rekor``: a ``keys``
    attestor's block (a certificate attestor's own is read from it); the log keys come from
    :func:`sigward.verify.rekor.tlog_options` for every attestor, as for legacy layers. ``ignore_tlog`` /
    ``ignore_sct`` add to what the attestor's ``rekor``/``ctlog`` say. Certificate bundles go through
    :mod:`sigward.verify.certificates` (the rules legacy layers use); time evidence is verified log entries and/or
    RFC 3161 timestamps. ``also_trusted``: further roots the policy allows; a certificate bundle is verified against
    the one among ``trusted_root`` and these whose CA issued its leaf (never any other). Raises
    :class:`VerificationFailure` naming the check that failed;
    :class:`ConfigurationError` for unusable trust material.
    """
    layer = _layer(bundle)
    if layer.problem:
        raise VerificationFailure(layer.problem)
    chosen = [x for x in (key, keyless, certificates) if x is not None]
    if len(chosen) != 1:
        raise VerificationFailure("bundle verification needs exactly one of a key, a keyless identity, certificates")
    parsed = parse_bundle(layer.raw)
    if key is not None and parsed.material != "public_key":
        raise VerificationFailure(
            "the bundle is signed with a certificate, but the policy verifies with a key (keys attestor)"
        )
    if key is None and parsed.material == "public_key":
        raise VerificationFailure(
            "the bundle is signed with a managed key (verification material publicKey), "
            "but the policy expects a certificate (keyless or certificates attestor)"
        )
    if key is None and also_trusted:  # narrow to the allowed root that issued the leaf
        trusted_root = root_for_certificate((trusted_root, *also_trusted), parsed.leaf) or trusted_root
    check_trusted_root(trusted_root)
    digest = _message_digest(parsed, image_digest, artifact)

    trust: CertificateTrust | None = None
    if key is not None:
        verifier = key
        tlog = tlog_options(rekor, trusted_root)
        authorities = trusted_root.timestamp_authorities
    else:
        attestor = keyless if keyless is not None else certificates
        assert attestor is not None
        trust = certificate_trust(attestor, trusted_root)
        if ignore_tlog and not trust.ignore_tlog:
            trust = replace(trust, tlog=TlogOptions(required=False), ignore_tlog=True)
        if ignore_sct:
            trust = replace(trust, ct=None)
        signing = signing_certificate(trust, parsed.leaf)
        verifier = PublicKeyVerifier(key=certificate_key(signing), source="certificate")
        tlog = trust.tlog
        authorities = trust.tsa
    tlog_required = tlog.required and not ignore_tlog
    signer = Signer(key=verifier.key, certificate=parsed.leaf if key is None else None)
    if parsed.envelope is not None:
        verify_envelope(parsed.envelope, verifier)
    else:
        assert parsed.message is not None and digest is not None
        _verify_message_with_key(verifier, parsed.message.signature, digest, artifact)

    # Transparency log entries (when the log is required), with the keys tlog_options chose; and timestamps.
    entries: list[_VerifiedEntry] = []
    if tlog_required:
        if not parsed.entries:
            raise VerificationFailure(
                "the bundle has no transparency log entry"
                + (" (set rekor.ignoreTlog: true to verify without the transparency log)" if key is not None else ""),
                kind=FailureKind.TLOG_ENTRIES,
            )
        for entry in parsed.entries:
            verified = _verify_entry(entry, tlog.logs)
            _check_entry_content(verified, parsed, signer, digest)
            entries.append(verified)
    stamps = verify_timestamps(parsed.timestamps, signature=parsed.signature, authorities=authorities)
    integrated = sorted(e.integrated_time for e in entries if e.integrated_time is not None)
    for verified in entries:
        if verified.integrated_time is None:
            log = log_for_entry(tlog.logs, verified.entry.log_id)
            for when in stamps.times:
                if not log.valid_at(when):
                    raise VerificationFailure("the transparency log's key was not valid at the timestamp's time")
    tlog_times = [datetime.fromtimestamp(t, tz=UTC) for t in integrated]

    issuer = ""
    times: tuple[datetime, ...]
    if trust is None:
        assert key is not None
        times = tuple(sorted([*tlog_times, *stamps.times]))
        if entries and not times:
            raise VerificationFailure(
                "no verified signing time: the log entry has no inclusion promise and no RFC 3161 timestamp verified"
                + "".join(f"; {e}" for e in stamps.problems)
            )
        signer_name = key.key_id
    else:
        signing_time = signing_times(trust, tlog_times=tlog_times, timestamps=stamps)
        checked = check_certificate(
            trust, carried=parsed.leaf, carried_chain=parsed.certificates[1:], times=signing_time
        )
        times = signing_time.times if signing_time.evidenced else ()
        identities = certificate_identities(checked.certificate)
        signer_name = identities[0] if identities else checked.certificate.subject.rfc4514_string()
        issuer = certificate_issuer(checked.certificate)

    statement: Statement | None = None
    if parsed.envelope is not None:
        statement = parse_statement(parsed.envelope)
        if image_digest is not None:
            check_subject(statement, image_digest=image_digest)
        if artifact is not None:
            check_subject(statement, image_digest=f"sha256:{hashlib.sha256(artifact).hexdigest()}")
        is_image_signature = statement.predicate_type == COSIGN_SIGN_PREDICATE
    else:
        is_image_signature = image_digest is not None
    return BundleResult(
        statement=statement,
        is_image_signature=is_image_signature,
        integrated_time=integrated[0] if integrated else None,
        signer=signer_name,
        issuer=issuer,
        manifest_digest=layer.manifest_digest,
        timestamps=times,
    )


class BundleOptions(TypedDict, total=False):
    """:func:`verify_bundle`'s keyword arguments, shared by the checks that verify several bundles."""

    image_digest: Required[str]
    trusted_root: Required[TrustedRoot]
    key: PublicKeyVerifier | None
    keyless: KeylessAttestor | None
    certificates: CertificateAttestor | None
    also_trusted: Sequence[TrustedRoot]
    rekor: Rekor | None
    ignore_tlog: bool
    ignore_sct: bool


def _note(errors: list[str], message: str) -> None:
    """cosign lists each distinct reason once, in the order met."""
    if message not in errors:
        errors.append(message)


def verified_bundles(
    bundles: Iterable[BundleLayer],
    errors: list[str],
    kinds: list[FailureKind],
    **options: Unpack[BundleOptions],
) -> Iterator[BundleResult]:
    """Each bundle that verifies, lazily and in order; each one that does not adds its reason to ``errors`` and its
    typed kind to ``kinds`` (what :func:`evidence_kind` reads when none verified)."""
    for layer in bundles:
        try:
            yield verify_bundle(layer, **options)
        except VerificationFailure as exc:
            kinds.append(exc.kind)
            _note(errors, exc.message)


def _not_a_signature(predicate_type: str) -> str:
    return f"an attestation ({predicate_type}), not an image signature"


def verify_bundle_signatures(
    bundles: Sequence[BundleLayer], **options: Unpack[BundleOptions]
) -> tuple[BundleResult, ...]:
    """Every bundle that is a verified *signature* of the image (cosign v3 ``sign``); "no matching signatures: …"
    with each bundle's reason when none is, "no signatures found" when there are no bundles."""
    if not bundles:
        raise no_signatures_found()
    results: list[BundleResult] = []
    errors: list[str] = []
    kinds: list[FailureKind] = []

    def candidate(layer: BundleLayer) -> bool:
        if layer.predicate_type and layer.predicate_type != COSIGN_SIGN_PREDICATE:
            _note(errors, _not_a_signature(layer.predicate_type))
            return False
        return True

    for result in verified_bundles(filter(candidate, bundles), errors, kinds, **options):
        if not result.is_image_signature:
            _note(errors, _not_a_signature(result.statement.predicate_type if result.statement is not None else "?"))
            continue
        results.append(result)
    if not results:
        raise VerificationFailure("no matching signatures: " + "; ".join(errors), kind=evidence_kind(kinds))
    return tuple(results)


def verify_bundle_attestations(
    bundles: Sequence[BundleLayer], *, predicate_type: str, **options: Unpack[BundleOptions]
) -> tuple[Statement, ...]:
    """The verified in-toto statements of ``predicate_type`` about the image; "no matching attestations: …"
    with each bundle's reason when there is none. The referrer's predicateType annotation only skips work early:
    the verified statement decides."""
    if not bundles:
        raise no_attestations_found()
    errors: list[str] = []
    kinds: list[FailureKind] = []
    candidates = (b for b in bundles if not b.predicate_type or b.predicate_type == predicate_type)
    statements = [
        result.statement
        for result in verified_bundles(candidates, errors, kinds, **options)
        if result.statement is not None and result.statement.predicate_type == predicate_type
    ]
    if not statements:
        if not errors:
            raise no_attestations_found(f"no attestations of type {predicate_type}")
        raise VerificationFailure("no matching attestations: " + "; ".join(errors), kind=evidence_kind(kinds))
    return tuple(statements)


__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "BUNDLE_MEDIA_TYPES",
    "COSIGN_SIGN_PREDICATE",
    "BundleLayer",
    "BundleOptions",
    "BundleResult",
    "IdentityMismatch",
    "KyvernoIdentityPolicy",
    "certificate_identities",
    "certificate_issuer",
    "check_trusted_root",
    "merkle_root_from_proof",
    "parse_bundle",
    "parse_checkpoint",
    "trusted_root_with_overrides",
    "verified_bundles",
    "verify_bundle",
    "verify_bundle_attestations",
    "verify_bundle_signatures",
]

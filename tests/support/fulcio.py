"""A Fulcio-like test CA made with ``cryptography``: root -> intermediate -> 10-minute leaf certificates carrying
SANs (email, URI, DNS, Fulcio otherName), the OIDC issuer extension (v1 raw string .1, v2 DER UTF8String .8), GitHub
workflow / CI extensions, and an embedded SCT signed by a test CT log key; plus a test Rekor key signing SETs over
``hashedrekord`` and ``intoto`` entries, cosign ``.sig``/``.att`` layers with certificate, chain and bundle
annotations, and a trusted root JSON naming all of it.

``cryptography`` cannot construct ``SignedCertificateTimestamp`` objects, so the SCT list extension is built here from
its RFC 6962 wire form and added as an ``UnrecognizedExtension`` (extnValue = OCTET STRING of the TLS-encoded
``SignedCertificateTimestampList``). The SCT signs the precertificate TBS, which is the final TBS without that
extension: the leaf is first built without it, its TBS taken, the SCT made over it, and the leaf rebuilt with the
same serial, validity and extensions plus the SCT list last -- ``tbs_precertificate_bytes`` of the result is then the
signed TBS (asserted).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from sigward.verify.cosign import ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, SignatureLayer
from sigward.verify.dsse import DSSE_MEDIA_TYPE
from sigward.verify.trust import TrustedRoot, parse_trusted_root
from tests.support.signing import PrivateKey, SigningKey, dsse_envelope, new_key, rekor_bundle, signed_layer

# Signing happens at a fixed time, never "now": the leaves live ten minutes around it.
SIGNING_TIME = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
INTEGRATED_TIME = int(SIGNING_TIME.timestamp()) + 30
LEAF_LIFETIME = timedelta(minutes=10)
CA_NOT_BEFORE = datetime(2023, 1, 1, tzinfo=UTC)
CA_NOT_AFTER = datetime(2033, 1, 1, tzinfo=UTC)
TEST_ISSUER = "https://oauth.example.test"
TEST_EMAIL = "alice@example.test"
FULCIO = "1.3.6.1.4.1.57264.1."
OID_ISSUER_V1 = FULCIO + "1"
OID_ISSUER_V2 = FULCIO + "8"
OID_OTHERNAME = FULCIO + "7"
GITHUB_WORKFLOW = {
    FULCIO + "2": "push",  # githubWorkflowTrigger
    FULCIO + "3": "0123456789abcdef0123456789abcdef01234567",  # githubWorkflowSha
    FULCIO + "4": "release",  # githubWorkflowName
    FULCIO + "5": "example/app",  # githubWorkflowRepository
    FULCIO + "6": "refs/tags/v1.0.0",  # githubWorkflowRef
    FULCIO + "9": "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.0.0",  # buildSignerURI
    FULCIO + "11": "github-hosted",  # runnerEnvironment
    FULCIO + "12": "https://github.com/example/app",  # sourceRepositoryURI
    FULCIO + "20": "push",  # buildTrigger
}
_RAW_OIDS = frozenset(FULCIO + str(n) for n in range(1, 7))


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigward.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


SignHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512


def _sign_hash(key: PrivateKey) -> SignHash | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp521r1":
        return hashes.SHA512()
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def der_utf8(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + der_length(len(raw)) + raw


def der_octet_string(raw: bytes) -> bytes:
    return b"\x04" + der_length(len(raw)) + raw


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def pems(certs: Sequence[x509.Certificate]) -> str:
    return "".join(pem(c) for c in certs)


def spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ca_certificate(
    subject: str,
    key: SigningKey,
    *,
    issuer: tuple[x509.Certificate, SigningKey] | None = None,
    ca: bool | None = True,
    path_length: int | None = None,
    not_before: datetime = CA_NOT_BEFORE,
    not_after: datetime = CA_NOT_AFTER,
    key_cert_sign: bool | None = True,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
    hash_algorithm: SignHash | None = None,
) -> x509.Certificate:
    """A CA certificate (self-signed without ``issuer``); ``ca=None`` leaves out basicConstraints, ``key_cert_sign``
    None leaves out keyUsage."""
    issuer_name = issuer[0].subject if issuer else name(subject)
    signer = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer_name)
        .public_key(key.private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.private.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.private.public_key()), critical=False
        )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if key_cert_sign is not None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signer.private, hash_algorithm or _sign_hash(signer.private))


@dataclass(frozen=True)
class FulcioCA:
    """root -> intermediate, a CT log key and a Rekor key."""

    root_key: SigningKey
    root: x509.Certificate
    intermediate_key: SigningKey
    intermediate: x509.Certificate
    ct_log: SigningKey
    rekor: SigningKey

    @property
    def chain(self) -> tuple[x509.Certificate, x509.Certificate]:
        return (self.intermediate, self.root)

    @property
    def chain_pem(self) -> str:
        return pems(self.chain)

    @property
    def root_pem(self) -> str:
        return pem(self.root)


@lru_cache(maxsize=8)
def make_fulcio(slot: int = 0) -> FulcioCA:
    """A CA with keys from ``new_key`` slots ``100 + 10*slot ...``: the same slot gives the same CA in a run."""
    base = 100 + 10 * slot
    root_key = new_key("p384", slot=base)
    intermediate_key = new_key("p256", slot=base + 1)
    root = ca_certificate(f"test-fulcio-root-{slot}", root_key)
    intermediate = ca_certificate(
        f"test-fulcio-intermediate-{slot}",
        intermediate_key,
        issuer=(root, root_key),
        path_length=0,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
    )
    return FulcioCA(
        root_key=root_key,
        root=root,
        intermediate_key=intermediate_key,
        intermediate=intermediate,
        ct_log=new_key("p256", slot=base + 2),
        rekor=new_key("p256", slot=base + 3),
    )


def sct_list_extension(
    log_key: SigningKey, *, tbs: bytes, issuer_spki: bytes, timestamp: datetime, log_id: bytes | None = None
) -> x509.UnrecognizedExtension:
    """The SCT list extension (RFC 6962 3.3) holding one v1 precertificate SCT signed by ``log_key``."""
    millis = (timestamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    the_log_id = log_id if log_id is not None else hashlib.sha256(log_key.public_der).digest()
    extensions = b""
    signed = (
        struct.pack("!BBQH", 0, 0, millis, 1)
        + hashlib.sha256(issuer_spki).digest()
        + struct.pack("!I", len(tbs))[1:]
        + tbs
        + struct.pack("!H", len(extensions))
        + extensions
    )
    signature = log_key.sign(signed)
    hash_alg, sig_alg = 4, (3 if isinstance(log_key.private, ec.EllipticCurvePrivateKey) else 1)  # sha256; ecdsa|rsa
    sct = (
        struct.pack("!B", 0)
        + the_log_id
        + struct.pack("!Q", millis)
        + struct.pack("!H", len(extensions))
        + extensions
        + struct.pack("!BBH", hash_alg, sig_alg, len(signature))
        + signature
    )
    serialized = struct.pack("!H", len(sct)) + sct
    tls_list = struct.pack("!H", len(serialized)) + serialized
    return x509.UnrecognizedExtension(ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, der_octet_string(tls_list))


def issue_leaf(
    fulcio: FulcioCA,
    signer: SigningKey,
    *,
    not_before: datetime = SIGNING_TIME - timedelta(seconds=30),
    lifetime: timedelta = LEAF_LIFETIME,
    emails: Sequence[str] = (TEST_EMAIL,),
    uris: Sequence[str] = (),
    dns: Sequence[str] = (),
    other_name: str | None = None,
    issuer: str | None = TEST_ISSUER,
    issuer_v1: bool = True,
    issuer_v2: bool = True,
    extensions: Mapping[str, str] | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CODE_SIGNING,),
    digital_signature: bool = True,
    sct_log: SigningKey | None = None,
    with_sct: bool = True,
    sct_log_id: bytes | None = None,
    issued_by: tuple[x509.Certificate, SigningKey] | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    """A Fulcio-shaped leaf: empty subject, critical SAN, keyUsage digitalSignature, EKU codeSigning, issuer
    extensions, the given (OID -> value) extensions, and an embedded SCT by ``sct_log`` (default: the CA's CT log)."""
    issuer_cert, issuer_key = issued_by if issued_by else (fulcio.intermediate, fulcio.intermediate_key)
    serial = x509.random_serial_number()
    general_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    general_names += [x509.RFC822Name(e) for e in emails]
    general_names += [x509.UniformResourceIdentifier(u) for u in uris]
    if other_name is not None:
        general_names.append(x509.OtherName(x509.ObjectIdentifier(OID_OTHERNAME), der_utf8(other_name)))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer_cert.subject)
        .public_key(signer.private.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=not digital_signature,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer.private.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.private.public_key()), critical=False
        )
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if general_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=True)
    values: dict[str, str] = {}
    if issuer is not None:
        if issuer_v1:
            values[OID_ISSUER_V1] = issuer
        if issuer_v2:
            values[OID_ISSUER_V2] = issuer
    values.update(extensions or {})
    for oid, value in values.items():
        raw = value.encode() if oid in _RAW_OIDS else der_utf8(value)
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), raw), critical=False)
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical=critical)
    algorithm = _sign_hash(issuer_key.private)
    if not with_sct:
        return builder.sign(issuer_key.private, algorithm)
    precert = builder.sign(issuer_key.private, algorithm)
    tbs = precert.tbs_certificate_bytes
    sct = sct_list_extension(
        sct_log or fulcio.ct_log,
        tbs=tbs,
        issuer_spki=spki(issuer_key.private),
        timestamp=not_before + timedelta(seconds=1),
        log_id=sct_log_id,
    )
    leaf = builder.add_extension(sct, critical=False).sign(issuer_key.private, algorithm)
    assert leaf.tbs_precertificate_bytes == tbs
    return leaf


# --- trusted root JSON


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _log(key: SigningKey, url: str, start: datetime, end: datetime | None) -> dict[str, Any]:
    valid: dict[str, str] = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if end is not None:
        valid["end"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": _b64(key.public_der), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": valid},
        "logId": {"keyId": _b64(hashlib.sha256(key.public_der).digest())},
    }


def trusted_root_json(
    fulcio: FulcioCA,
    *,
    cas: Sequence[Sequence[x509.Certificate]] | None = None,
    tlogs: Sequence[SigningKey] | None = None,
    ctlogs: Sequence[SigningKey] | None = None,
    log_valid_from: datetime = CA_NOT_BEFORE,
    log_valid_until: datetime | None = None,
) -> bytes:
    chains = cas if cas is not None else [fulcio.chain]
    doc = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            _log(k, "https://rekor.example.test", log_valid_from, log_valid_until) for k in (tlogs or [fulcio.rekor])
        ],
        "ctlogs": [
            _log(k, "https://ctfe.example.test", log_valid_from, log_valid_until) for k in (ctlogs or [fulcio.ct_log])
        ],
        "certificateAuthorities": [
            {
                "subject": {"organization": "sigward.test", "commonName": chain[-1].subject.rfc4514_string()},
                "uri": "https://fulcio.example.test",
                "certChain": {
                    "certificates": [{"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))} for c in chain]
                },
                "validFor": {"start": CA_NOT_BEFORE.strftime("%Y-%m-%dT%H:%M:%SZ")},
            }
            for chain in chains
        ],
        "timestampAuthorities": [],
    }
    return json.dumps(doc).encode()


def trusted_root(fulcio: FulcioCA, **kwargs: Any) -> TrustedRoot:
    return parse_trusted_root(trusted_root_json(fulcio, **kwargs), source="test trusted root")


# --- layers


def cert_layer(
    signer: SigningKey,
    leaf: x509.Certificate,
    *,
    image_digest: str,
    chain: Sequence[x509.Certificate] = (),
    rekor: SigningKey | None = None,
    integrated_time: int = INTEGRATED_TIME,
    payload: bytes | None = None,
    entry_certificate: x509.Certificate | None = None,
    annotations: Mapping[str, str] | None = None,
    hash_name: str = "sha256",
) -> SignatureLayer:
    """A ``.sig`` layer signed by ``signer`` with ``leaf`` in the certificate annotation, ``chain`` in the chain
    annotation and (with ``rekor``) a hashedrekord SET bundle naming ``entry_certificate`` (default: ``leaf``)."""
    signed = signed_layer(
        signer, image_digest=image_digest, payload=payload, annotations=annotations, hash_name=hash_name
    )
    ann = dict(signed.annotations)
    ann[ANNOTATION_CERTIFICATE] = pem(leaf)
    if chain:
        ann[ANNOTATION_CHAIN] = pems(chain)
    if rekor is not None:
        ann[ANNOTATION_BUNDLE] = rekor_bundle(
            rekor,
            payload=signed.payload,
            signature_b64=ann["dev.cosignproject.cosign/signature"],
            signer_public_pem=pem(entry_certificate or leaf),
            integrated_time=integrated_time,
        )
    return SignatureLayer(media_type=signed.media_type, payload=signed.payload, annotations=ann)


def intoto_bundle(
    rekor: SigningKey,
    *,
    envelope: bytes,
    payload: bytes,
    certificate: x509.Certificate,
    integrated_time: int = INTEGRATED_TIME,
    payload_hash: str | None = None,
    log_index: int = 7,
) -> str:
    """A cosign bundle annotation over an ``intoto`` v0.0.1 entry (envelope hash, payload hash, signer PEM)."""
    body = {
        "apiVersion": "0.0.1",
        "kind": "intoto",
        "spec": {
            "content": {
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope).hexdigest()},
                "payloadHash": {"algorithm": "sha256", "value": payload_hash or hashlib.sha256(payload).hexdigest()},
            },
            "publicKey": _b64(pem(certificate).encode()),
        },
    }
    signed: dict[str, str | int] = {
        "body": _b64(json.dumps(body).encode()),
        "integratedTime": integrated_time,
        "logID": hashlib.sha256(rekor.public_der).hexdigest(),
        "logIndex": log_index,
    }
    return json.dumps({"SignedEntryTimestamp": _b64(rekor.sign(rfc8785.dumps(signed))), "Payload": signed})


def cert_attestation_layer(
    signer: SigningKey,
    leaf: x509.Certificate,
    statement: Mapping[str, Any],
    *,
    chain: Sequence[x509.Certificate] = (),
    rekor: SigningKey | None = None,
    integrated_time: int = INTEGRATED_TIME,
    entry_certificate: x509.Certificate | None = None,
    entry_payload: bytes | None = None,
) -> SignatureLayer:
    """A cosign ``.att`` layer: DSSE envelope blob, certificate/chain annotations, an ``intoto`` bundle."""
    payload = json.dumps(statement).encode()
    envelope = dsse_envelope(signer, payload)
    ann = {
        "dev.cosignproject.cosign/signature": "",
        "predicateType": str(statement.get("predicateType", "")),
        ANNOTATION_CERTIFICATE: pem(leaf),
    }
    if chain:
        ann[ANNOTATION_CHAIN] = pems(chain)
    if rekor is not None:
        ann[ANNOTATION_BUNDLE] = intoto_bundle(
            rekor,
            envelope=envelope,
            payload=entry_payload if entry_payload is not None else payload,
            certificate=entry_certificate or leaf,
            integrated_time=integrated_time,
        )
    return SignatureLayer(media_type=DSSE_MEDIA_TYPE, payload=envelope, annotations=ann)

"""Sigstore trust material (``trusted_root.json``): transparency-log keys, CT-log keys, Fulcio CAs, TSAs.

A small parser of the documented JSON shape rather than sigstore-python's model, so admission's cold path does not
import the sigstore package (bundle verification does not use sigstore-python either).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sigward.errors import ConfigurationError

# The size cap and media type are defined once, with the policy layer's load-time shape check (the one place).
from sigward.policy.trustroots import MAX_TRUSTED_ROOT_BYTES, TRUSTED_ROOT_MEDIA_TYPE
from sigward.verify.encoding import decode_base64
from sigward.verify.keys import SupportedKey, key_id, load_public_key_der


@dataclass(frozen=True)
class LogKey:
    """A Rekor or CT log public key with the time range it was valid for."""

    log_id: str  # hex sha256 of the key's DER SPKI (Rekor's logID)
    key: SupportedKey
    base_url: str = ""
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def valid_at(self, when: datetime) -> bool:
        if self.valid_from is not None and when < self.valid_from:
            return False
        return not (self.valid_until is not None and when > self.valid_until)


@dataclass(frozen=True)
class CertificateAuthority:
    certificates: tuple[x509.Certificate, ...]  # leaf-most first, root last
    uri: str = ""
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class TrustedRoot:
    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    timestamp_authorities: tuple[CertificateAuthority, ...]
    source: str
    raw: bytes

    @cached_property
    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the exact trusted-root bytes: what anything cached on a verdict made under this root
        (verdict caches, stores) must include in its key, so a rotated root never serves a verdict of the old one."""
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"trusted root: {where} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"trusted root: {where} is not a timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _b64(value: Any, where: str) -> bytes:
    return decode_base64(
        value,
        missing=f"trusted root: {where} is missing",
        invalid=f"trusted root: {where} is not base64",
        error=ConfigurationError,
    )


def _entries(items: Any, name: str) -> list[tuple[str, Any]]:
    """A trusted root's optional list field as (YAML-style path, item) pairs; absent is empty, a non-list fails."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigurationError(f"trusted root: {name} is not a list")
    return [(f"{name}[{i}]", item) for i, item in enumerate(items)]


def _logs(items: Any, name: str) -> tuple[LogKey, ...]:
    out = []
    for where, item in _entries(items, name):
        if not isinstance(item, dict) or not isinstance(item.get("publicKey"), dict):
            raise ConfigurationError(f"trusted root: {where}.publicKey is missing")
        pk = item["publicKey"]
        try:
            key = load_public_key_der(_b64(pk.get("rawBytes"), f"{where}.publicKey.rawBytes"))
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ConfigurationError(f"trusted root: {where}.publicKey: {exc}") from exc
        valid = pk.get("validFor") if isinstance(pk.get("validFor"), dict) else {}
        log_id_obj = item.get("logId")
        if isinstance(log_id_obj, dict) and "keyId" in log_id_obj:
            log_id = _b64(log_id_obj["keyId"], f"{where}.logId.keyId").hex()
        else:
            log_id = key_id(key)
        out.append(
            LogKey(
                log_id=log_id,
                key=key,
                base_url=str(item.get("baseUrl", "")),
                valid_from=_time(valid.get("start"), f"{where}.publicKey.validFor.start"),
                valid_until=_time(valid.get("end"), f"{where}.publicKey.validFor.end"),
            )
        )
    return tuple(out)


def _authorities(items: Any, name: str) -> tuple[CertificateAuthority, ...]:
    out = []
    for where, item in _entries(items, name):
        chain = item.get("certChain") if isinstance(item, dict) else None
        certs_json = chain.get("certificates") if isinstance(chain, dict) else None
        if not isinstance(certs_json, list) or not certs_json:
            raise ConfigurationError(f"trusted root: {where}.certChain.certificates is missing")
        certs = []
        for j, c in enumerate(certs_json):
            der = _b64(c.get("rawBytes") if isinstance(c, dict) else None, f"{where}.certChain.certificates[{j}]")
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise ConfigurationError(f"trusted root: {where}.certChain.certificates[{j}]: {exc}") from exc
        valid = item.get("validFor") if isinstance(item.get("validFor"), dict) else {}
        out.append(
            CertificateAuthority(
                certificates=tuple(certs),
                uri=str(item.get("uri", "")),
                valid_from=_time(valid.get("start"), f"{where}.validFor.start"),
                valid_until=_time(valid.get("end"), f"{where}.validFor.end"),
            )
        )
    return tuple(out)


def parse_trusted_root(raw: bytes, *, source: str) -> TrustedRoot:
    if len(raw) > MAX_TRUSTED_ROOT_BYTES:
        raise ConfigurationError(f"trusted root {source}: larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"trusted root {source}: not JSON: {exc}") from None
    except RecursionError:
        raise ConfigurationError(f"trusted root {source}: JSON nested too deeply") from None
    if not isinstance(doc, Mapping):
        raise ConfigurationError(f"trusted root {source}: not a JSON object")
    media_type = doc.get("mediaType", "")
    if not isinstance(media_type, str) or not media_type.startswith(TRUSTED_ROOT_MEDIA_TYPE):
        raise ConfigurationError(f"trusted root {source}: mediaType {media_type!r} is not a Sigstore trusted root")
    try:
        return TrustedRoot(
            tlogs=_logs(doc.get("tlogs"), "tlogs"),
            ctlogs=_logs(doc.get("ctlogs"), "ctlogs"),
            certificate_authorities=_authorities(doc.get("certificateAuthorities"), "certificateAuthorities"),
            timestamp_authorities=_authorities(doc.get("timestampAuthorities"), "timestampAuthorities"),
            source=source,
            raw=raw,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (in {source})") from None


def parse_trusted_roots(raw: bytes, *, source: str) -> tuple[TrustedRoot, ...]:
    """One trusted root (a JSON object), or several: the JSON Lines ``gh attestation trusted-root`` prints (one root
    per line; public-good first, then GitHub's). Each line is checked as a whole root; a bad line is named."""
    if len(raw) > MAX_TRUSTED_ROOT_BYTES:
        raise ConfigurationError(f"trusted root {source}: larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) <= 1 or raw.lstrip()[:1] != b"{" or not lines[0].rstrip().endswith(b"}"):
        return (parse_trusted_root(raw, source=source),)
    try:
        json.loads(lines[0])
    except ValueError:  # a pretty-printed single root: its first line alone is not JSON
        return (parse_trusted_root(raw, source=source),)
    return tuple(parse_trusted_root(line, source=f"{source} line {n}") for n, line in enumerate(lines, 1))


def roots_from_inline(value: str | bytes, *, where: str) -> tuple[TrustedRoot, ...]:
    """Trusted roots written into a policy (ImageValidatingPolicy ``attestors[].cosign.trustedRoot.value``, or what
    its ``expression`` yields): sigstore-go trusted-root JSON or gh's JSONL, at most :data:`MAX_TRUSTED_ROOT_BYTES`
    (Kyverno's limit too). ``where`` names the policy field in every error; bundles then choose among these roots
    with :func:`root_for_certificate` (``also_trusted`` of verify_bundle), never beyond them."""
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    if not raw.strip():
        raise ConfigurationError(f"{where}: the trusted root is empty")
    if len(raw) > MAX_TRUSTED_ROOT_BYTES:
        raise ConfigurationError(f"{where}: the trusted root is larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    roots = parse_trusted_roots(raw, source=where)
    for root in roots:
        if not root.certificate_authorities and not root.tlogs and not root.timestamp_authorities:
            raise ConfigurationError(f"{root.source}: the trusted root lists no CA, transparency log or TSA")
    return roots


@lru_cache(maxsize=32)
def inline_trusted_roots(value: str, where: str) -> tuple[TrustedRoot, ...]:
    """:func:`roots_from_inline`, parsed once per distinct policy text (a policy's root is read on every check)."""
    return roots_from_inline(value, where=where)


def root_for_certificate(roots: Sequence[TrustedRoot], leaf: x509.Certificate) -> TrustedRoot | None:
    """The root among ``roots`` that has a certificate authority whose certificate issued ``leaf`` (by name and
    subject key identifier), as gh picks GitHub's or public-good's root per bundle. Selection only narrows: the
    chosen root still has to verify the whole chain, and a bundle never gets a root the caller did not offer."""
    for root in roots:
        for authority in root.certificate_authorities:
            if any(_issued(candidate, leaf) for candidate in authority.certificates):
                return root
    return None


def _issued(issuer: x509.Certificate, leaf: x509.Certificate) -> bool:
    if issuer.subject != leaf.issuer:
        return False
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return True  # names match and there is no key identifier to tell same-named CAs apart
    return aki is None or aki == ski


def load_github_trusted_root(environ: Mapping[str, str] | None = None) -> TrustedRoot:
    """GitHub's Sigstore instance: ``SIGWARD_GITHUB_TRUSTED_ROOT`` (a file: JSON, or gh's JSONL whose GitHub line is
    the one with no transparency logs) when set, else the root kept current over GitHub's TUF repository."""
    env = os.environ if environ is None else environ
    pinned = env.get("SIGWARD_GITHUB_TRUSTED_ROOT", "").strip()
    if pinned:
        return _github_from_file(pinned)
    from sigward.verify.tuf import github_holder

    return github_holder(env).current()


@lru_cache(maxsize=8)
def _github_from_file(path: str) -> TrustedRoot:
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read SIGWARD_GITHUB_TRUSTED_ROOT {path}: {exc.strerror}") from None
    roots = parse_trusted_roots(raw, source=path)
    if len(roots) == 1:
        return roots[0]
    github = [root for root in roots if not root.tlogs]
    if len(github) != 1:
        raise ConfigurationError(
            f"SIGWARD_GITHUB_TRUSTED_ROOT {path}: {len(roots)} roots, {len(github)} without transparency logs; "
            "expected exactly one (GitHub's instance has none)"
        )
    return github[0]


def _public_good_bytes() -> bytes:
    """The public-good production trusted root that sigstore-python ships (read as data, no import of sigstore)."""
    from sigward.verify.sigstore_private import BUNDLED_TRUSTED_ROOT, PUBLIC_GOOD_TUF_URL, bundled_file

    return bundled_file(PUBLIC_GOOD_TUF_URL, BUNDLED_TRUSTED_ROOT)


@lru_cache(maxsize=8)
def _load(path: str) -> TrustedRoot:
    if path == "public-good":
        return parse_trusted_root(_public_good_bytes(), source="public-good (sigstore-python)")
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read trusted root {path}: {exc.strerror}") from None
    return parse_trusted_root(raw, source=path)


def load_pinned_trusted_root(path: str) -> TrustedRoot:
    """A trusted root from a file (or ``public-good``: the one sigstore-python ships); parsed once per process."""
    return _load(path)


def load_trusted_root(path: str | None = None, *, environ: Mapping[str, str] | None = None) -> TrustedRoot:
    """``path``, else ``SIGWARD_TRUSTED_ROOT`` (pinned: never refreshed, no network), else the root kept current over
    TUF (:mod:`sigward.verify.tuf`; ``SIGWARD_TUF_*``). Cheap: call it for every verification, a refreshed root is
    swapped in atomically between calls."""
    env = os.environ if environ is None else environ
    pinned = path or env.get("SIGWARD_TRUSTED_ROOT")
    if pinned:
        return _load(pinned)
    from sigward.verify.tuf import default_holder

    return default_holder(env).current()


def log_id_for(key: SupportedKey, *, signed_note_origin: str = "") -> str:
    """A log's ID (hex): SHA-256 of the DER SPKI (RFC 6962 CT logs, Rekor v1), except for an Ed25519 key of a
    signed-note log (Rekor v2, ``signed_note_origin`` given): SHA-256(origin || "\n" || 0x01 || raw key)."""
    if signed_note_origin and isinstance(key, ed25519.Ed25519PublicKey):
        origin = urlsplit(signed_note_origin).netloc if "//" in signed_note_origin else signed_note_origin
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(origin.encode() + b"\n\x01" + raw).hexdigest()
    return key_id(key)


def logs_from_pem_keys(pems: Sequence[str], *, signed_note_origin: str = "") -> tuple[LogKey, ...]:
    """Log keys given in a policy (``rekor.pubkey`` / ``ctlog.pubkey``): valid at all times. ``signed_note_origin``
    (Rekor keys only: ``rekor.url``) names an Ed25519 log the way signed-note checkpoints do."""
    from sigward.verify.keys import load_public_key_pem, split_pem_public_keys

    out = []
    for text in pems:
        for pem in split_pem_public_keys(text) or (text,):
            key = load_public_key_pem(pem)
            out.append(
                LogKey(
                    log_id=log_id_for(key, signed_note_origin=signed_note_origin),
                    key=key,
                    base_url=signed_note_origin,
                )
            )
    return tuple(out)

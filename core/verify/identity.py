"""The one identity rule: who a signing certificate names, and whether a Kyverno ``keyless`` attestor accepts it.

Legacy ``.sig``/``.att`` layers (:mod:`sigward.verify.keyless`) and Sigstore bundles (:mod:`sigward.verify.bundles`,
through
sigstore-python's policy hook) both call this module, so the same signer under the same attestor gets the same
verdict whatever the signature format: ``subject``/``issuer`` (globs), ``subjectRegExp``/``issuerRegExp`` (RE2,
compiled by :func:`sigward.patterns.compile_re2`) and ``additionalExtensions`` (Fulcio extensions by OID or name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from sigward.errors import PolicyError, SigwardError, VerificationFailure
from sigward.patterns import CompiledPattern, compile_re2
from sigward.references import wildcard_match

if TYPE_CHECKING:
    from sigward.policy.models import KeylessAttestor


class IdentityMismatch(VerificationFailure):
    """The certificate is valid but names another signer than the attestor allows (or the rule is unusable)."""


FULCIO_ARC = "1.3.6.1.4.1.57264.1."
OID_ISSUER_V1 = FULCIO_ARC + "1"
OID_OTHERNAME_SAN = FULCIO_ARC + "7"
OID_ISSUER_V2 = FULCIO_ARC + "8"
# .1-.6 are raw string values (deprecated); .8 onwards are DER strings. Readable names as cosign (.1-.6, as
# Kyverno's additionalExtensions accepts them) and Fulcio (.8 onwards) spell them.
FULCIO_EXTENSION_NAMES: Mapping[str, str] = {
    FULCIO_ARC + "1": "oidcIssuer",
    FULCIO_ARC + "2": "githubWorkflowTrigger",
    FULCIO_ARC + "3": "githubWorkflowSha",
    FULCIO_ARC + "4": "githubWorkflowName",
    FULCIO_ARC + "5": "githubWorkflowRepository",
    FULCIO_ARC + "6": "githubWorkflowRef",
    FULCIO_ARC + "8": "issuer",
    FULCIO_ARC + "9": "buildSignerURI",
    FULCIO_ARC + "10": "buildSignerDigest",
    FULCIO_ARC + "11": "runnerEnvironment",
    FULCIO_ARC + "12": "sourceRepositoryURI",
    FULCIO_ARC + "13": "sourceRepositoryDigest",
    FULCIO_ARC + "14": "sourceRepositoryRef",
    FULCIO_ARC + "15": "sourceRepositoryIdentifier",
    FULCIO_ARC + "16": "sourceRepositoryOwnerURI",
    FULCIO_ARC + "17": "sourceRepositoryOwnerIdentifier",
    FULCIO_ARC + "18": "buildConfigURI",
    FULCIO_ARC + "19": "buildConfigDigest",
    FULCIO_ARC + "20": "buildTrigger",
    FULCIO_ARC + "21": "runInvocationURI",
    FULCIO_ARC + "22": "sourceRepositoryVisibilityAtSigning",
}
_RAW_VALUE_OIDS = frozenset(FULCIO_ARC + str(n) for n in range(1, 7))
_NAME_TO_OID = {name.lower(): oid for oid, name in FULCIO_EXTENSION_NAMES.items()}
_ISSUER_KEYS = frozenset({"oidcissuer", "issuer", OID_ISSUER_V1, OID_ISSUER_V2})
_DOTTED_OID = re.compile(r"^[0-2](\.\d+)+$")
# DER string types Go's asn1.Unmarshal accepts into a string: UTF8, Printable, T61, IA5, BMP is not.
_DER_STRING_TAGS = frozenset({0x0C, 0x13, 0x14, 0x16})


def _der_string(value: bytes) -> str | None:
    """A DER-encoded string (Fulcio's v2 extensions), or None when ``value`` is not exactly one."""
    if len(value) < 2 or value[0] not in _DER_STRING_TAGS:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            return None
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    if offset + length != len(value):
        return None
    try:
        return value[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class CertificateIdentity:
    """Who a certificate names: SANs in Go's order (DNS, email, IP, URI, Fulcio otherName), the OIDC issuer (v2
    extension .8, else v1 .1), and the values of its private extensions by dotted OID."""

    sans: tuple[str, ...]
    issuer: str
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def named_extensions(self) -> dict[str, str]:
        """Fulcio extensions by readable name (``githubWorkflowTrigger``, ``buildSignerURI``, ...)."""
        return {FULCIO_EXTENSION_NAMES[oid]: v for oid, v in self.extensions.items() if oid in FULCIO_EXTENSION_NAMES}

    def extension(self, key: str) -> str | None:
        """The value for an ``additionalExtensions`` key (a dotted OID or a readable name); None when absent.
        Raises for a key that is neither (Kyverno: "invalid certificate extension K")."""
        if key.lower() in _ISSUER_KEYS:
            return self.issuer or None
        oid = key if _DOTTED_OID.match(key) else _NAME_TO_OID.get(key.lower())
        if oid is None:
            raise IdentityMismatch(f"invalid certificate extension {key}")
        return self.extensions.get(oid)


def certificate_identity(cert: x509.Certificate) -> CertificateIdentity:
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        ext = None
    if ext is not None:
        names = ext.value
        assert isinstance(names, x509.SubjectAlternativeName)
        sans.extend(names.get_values_for_type(x509.DNSName))
        sans.extend(names.get_values_for_type(x509.RFC822Name))
        sans.extend(str(ip) for ip in names.get_values_for_type(x509.IPAddress))
        sans.extend(names.get_values_for_type(x509.UniformResourceIdentifier))
        for other in names.get_values_for_type(x509.OtherName):
            if other.type_id.dotted_string == OID_OTHERNAME_SAN:
                text = _der_string(other.value)
                if text is not None:
                    sans.append(text)
    values: dict[str, str] = {}
    for item in cert.extensions:
        if not isinstance(item.value, x509.UnrecognizedExtension):
            continue
        oid = item.oid.dotted_string
        raw = item.value.value
        if oid in _RAW_VALUE_OIDS:
            values[oid] = raw.decode("utf-8", errors="replace")
            continue
        text = _der_string(raw)
        if text is None and oid.startswith(FULCIO_ARC):
            raise IdentityMismatch(f"certificate extension {oid} is not a DER-encoded string")
        values[oid] = text if text is not None else raw.decode("utf-8", errors="replace")
    issuer_v1, issuer_v2 = values.get(OID_ISSUER_V1, ""), values.get(OID_ISSUER_V2, "")
    if issuer_v1 and issuer_v2 and issuer_v1 != issuer_v2:
        raise IdentityMismatch(f"certificate has conflicting OIDC issuers {issuer_v1!r} and {issuer_v2!r}")
    return CertificateIdentity(sans=tuple(sans), issuer=issuer_v2 or issuer_v1, extensions=values)


@lru_cache(maxsize=256)
def _pattern(pattern: str, what: str) -> CompiledPattern:
    """``keyless.subjectRegExp``/``issuerRegExp`` as RE2. A pattern RE2 refuses is refused at policy load; should
    one reach verification anyway, it fails closed with Kyverno's words ("invalid regexp for subject: P : why")."""
    try:
        return compile_re2(pattern, path=f"keyless.{what}RegExp")
    except PolicyError as exc:
        why = "; ".join(p.message for p in exc.problems) or exc.message
        raise IdentityMismatch(f"invalid regexp for {what}: {pattern} : {why}") from exc
    except SigwardError as exc:
        raise IdentityMismatch(f"invalid regexp for {what}: {pattern} : {exc.message}") from exc


def match_identity(
    identity: CertificateIdentity,
    *,
    subject: str = "",
    subject_regexp: str = "",
    issuer: str = "",
    issuer_regexp: str = "",
    extensions: Mapping[str, str] | None = None,
) -> None:
    """Kyverno's keyless matching: ``subject`` (glob) or ``subjectRegExp`` (unanchored RE2) against any SAN -- either
    matching suffices; ``issuer`` (glob) and ``issuerRegExp`` both against the OIDC issuer; every
    ``additionalExtensions`` value (glob) against the extension named by OID or readable name.

    Stricter than Kyverno on purpose: a certificate without SANs fails a subject constraint (Kyverno skips the check),
    and a missing extension fails even against ``*`` (Kyverno compares ``*`` with the empty string)."""
    if subject or subject_regexp:
        matched = bool(subject) and any(wildcard_match(subject, san) for san in identity.sans)
        if not matched and subject_regexp:
            regex = _pattern(subject_regexp, "subject")
            matched = any(regex.search(san) for san in identity.sans)
        if not matched:
            received = ", ".join(identity.sans) or "no subject alternative names"
            raise IdentityMismatch(f"subject mismatch: expected {subject or subject_regexp}, received {received}")
    if issuer and not wildcard_match(issuer, identity.issuer):
        raise IdentityMismatch(f"issuer mismatch: expected {issuer}, received {identity.issuer}")
    if issuer_regexp and not _pattern(issuer_regexp, "issuer").search(identity.issuer):
        raise IdentityMismatch(f"issuer mismatch: expected {issuer_regexp}, received {identity.issuer}")
    for key, expected in (extensions or {}).items():
        value = identity.extension(key)
        if value is None:
            raise IdentityMismatch(
                f"extension mismatch: expected {expected} for key {key}, received nothing (extension not present)"
            )
        if not wildcard_match(expected, value):
            raise IdentityMismatch(f"extension mismatch: expected {expected} for key {key}, received {value}")


def certificate_identities(cert: x509.Certificate) -> tuple[str, ...]:
    """Every SAN that can name a signer, in Go's order (DNS, email, IP, URI, Fulcio username otherName)."""
    return certificate_identity(cert).sans


def certificate_issuer(cert: x509.Certificate) -> str:
    """The OIDC issuer Fulcio recorded (v2 extension, else v1)."""
    return certificate_identity(cert).issuer


@dataclass(frozen=True)
class IdentityPolicy:
    """A ``keyless`` attestor's identity constraints as one value; ``verify(cert)`` is sigstore-python's
    ``VerificationPolicy`` hook, ``check(identity)`` the same rule on an identity already read."""

    subject: str = ""
    subject_regexp: str = ""
    issuer: str = ""
    issuer_regexp: str = ""
    extensions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_attestor(cls, attestor: KeylessAttestor) -> IdentityPolicy:
        return cls(
            subject=attestor.subject,
            subject_regexp=attestor.subject_reg_exp,
            issuer=attestor.issuer,
            issuer_regexp=attestor.issuer_reg_exp,
            extensions=dict(attestor.additional_extensions),
        )

    def check(self, identity: CertificateIdentity) -> None:
        match_identity(
            identity,
            subject=self.subject,
            subject_regexp=self.subject_regexp,
            issuer=self.issuer,
            issuer_regexp=self.issuer_regexp,
            extensions=self.extensions,
        )

    def verify(self, cert: x509.Certificate) -> None:
        self.check(certificate_identity(cert))

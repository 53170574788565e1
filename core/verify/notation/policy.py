"""``verifyImages[].type: Notary`` for one attestor entry: Kyverno's mapping of the entry onto notation-go (the
``certificates.cert`` and ``certificates.certChain`` PEMs become the ``ca`` trust store, ``certificates.ctlog.
tsaCertChain`` the ``tsa`` store; see :class:`~sigward.verify.notation.verify.NotationTrust`), and Notary
attestations as condition inputs.

Kyverno's ClusterPolicy verifier ignores ``tsaCertChain`` for Notary (only ImageValidatingPolicy's ``tsaCerts`` sets a
``tsa`` store, under notation-go's default ``verifyTimestamp: always``). sigward honours it with ``afterCertExpiry``:
a signature Kyverno accepts (chain valid now) still passes without a timestamp, and one whose certificate has since
expired passes only with a countersignature from a trusted TSA made while the chain was valid."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509

from sigward.deadline import Deadline
from sigward.errors import FailureKind, VerificationFailure
from sigward.policy.ivpol.models import NotaryTrust
from sigward.references import Repository
from sigward.verify.dsse import Statement
from sigward.verify.notation.discovery import NotationSource
from sigward.verify.notation.timestamp import VerifyTimestamp
from sigward.verify.notation.verify import NotationTrust, VerifiedNotation, verify_notation_signatures
from sigward.verify.trust import CertificateAuthority
from sigward.verify.x509chain import load_certificates_pem

if TYPE_CHECKING:
    from sigward.policy.models import Attestor


def notation_source(source: object) -> NotationSource:
    if not isinstance(source, NotationSource):
        raise VerificationFailure("type Notary needs a registry signature source; this one cannot list referrers")
    return source


def trust_for(entry: Attestor) -> NotationTrust:
    """Kyverno's ``combineCerts``: ``cert`` then ``certChain``, one ``ca`` store; an ImageValidatingPolicy's
    ``notary`` attestor (:class:`NotaryTrust`) keeps notation-go's ``verifyTimestamp: always``."""
    certs = entry.certificates
    if certs is None:
        return NotationTrust(ca=())
    loaded: list[x509.Certificate] = []
    if certs.cert.strip():
        loaded.extend(load_certificates_pem(certs.cert, what="certificates.cert"))
    if certs.cert_chain.strip():
        loaded.extend(load_certificates_pem(certs.cert_chain, what="certificates.certChain"))
    tsa_pem = certs.ctlog.tsa_cert_chain if certs.ctlog is not None else ""
    tsa = tsa_store(load_certificates_pem(tsa_pem, what="certificates.ctlog.tsaCertChain")) if tsa_pem.strip() else ()
    option = VerifyTimestamp.AFTER_CERT_EXPIRY
    if isinstance(certs, NotaryTrust):
        option = VerifyTimestamp(certs.verify_timestamp)
    return NotationTrust(ca=tuple(loaded), tsa=tsa, verify_timestamp=option)


def tsa_store(certs: Sequence[x509.Certificate]) -> tuple[CertificateAuthority, ...]:
    """A ``tsa`` trust store: roots only (each one an anchor, as notation-go's root pool; the TSA leaf comes from the
    token), or one TSA chain leaf first (as cosign reads ``tsaCertChain``)."""
    if all(c.issuer == c.subject for c in certs):
        return tuple(CertificateAuthority(certificates=(c,)) for c in certs)
    return (CertificateAuthority(certificates=tuple(certs)),)


def verify_notary_image(
    source: object,
    *,
    repo: Repository,
    signature_repo: Repository,
    digest: str,
    reference: str,
    entry: Attestor,
    now: datetime,
    deadline: Deadline,
) -> VerifiedNotation:
    notation = notation_source(source)
    trust = trust_for(entry)
    target = notation.notation_target(repo, digest, deadline=deadline)
    layers = notation.notation_signatures(signature_repo, digest, deadline=deadline)
    return verify_notation_signatures(layers, target=target, trust=trust, now=now, reference=reference)


def notary_statements(
    source: object,
    *,
    signature_repo: Repository,
    digest: str,
    reference: str,
    artifact_type: str,
    entry: Attestor,
    now: datetime,
    deadline: Deadline,
) -> tuple[Statement, ...]:
    """Every referrer of ``artifact_type`` must carry a verified Notation signature by the entry's certificates;
    its JSON layer becomes the statement whose predicate the conditions read (with ``type`` and ``mediaType``)."""
    notation = notation_source(source)
    trust = trust_for(entry)
    referrers = notation.notary_referrers(signature_repo, digest, artifact_type, deadline=deadline)
    if not referrers:
        raise VerificationFailure(
            f"no matching attestations found for image {reference} with type {artifact_type}",
            kind=FailureKind.NO_ATTESTATIONS,
        )
    out: list[Statement] = []
    for ref in referrers:
        if ref.problem:
            raise VerificationFailure(ref.problem)
        layers = notation.notation_signatures(signature_repo, ref.target.digest, deadline=deadline)
        verify_notation_signatures(
            layers, target=ref.target, trust=trust, now=now, reference=f"{reference} referrer {ref.target.digest}"
        )
        predicate = dict(ref.document) if isinstance(ref.document, dict) else {"data": ref.document}
        predicate.setdefault("type", artifact_type)
        predicate.setdefault("mediaType", ref.media_type)
        out.append(Statement(type="", predicate_type=artifact_type, subjects=(), predicate=predicate, raw=predicate))
    return tuple(out)

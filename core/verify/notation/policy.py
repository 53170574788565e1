"""``verifyImages[].type: Notary`` for one attestor entry: Kyverno's mapping of the entry onto notation-go (the
``certificates.cert`` and ``certificates.certChain`` PEMs become the ``ca`` trust store; see
:class:`~sigward.verify.notation.verify.NotationTrust`), and Notary attestations as condition inputs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509

from sigward.deadline import Deadline
from sigward.errors import FailureKind, VerificationFailure
from sigward.references import Repository
from sigward.verify.dsse import Statement
from sigward.verify.notation.discovery import NotationSource
from sigward.verify.notation.verify import NotationTrust, VerifiedNotation, verify_notation_signatures
from sigward.verify.x509chain import load_certificates_pem

if TYPE_CHECKING:
    from sigward.policy.models import Attestor


def notation_source(source: object) -> NotationSource:
    if not isinstance(source, NotationSource):
        raise VerificationFailure("type Notary needs a registry signature source; this one cannot list referrers")
    return source


def trust_for(entry: Attestor) -> NotationTrust:
    """Kyverno's ``combineCerts``: ``cert`` then ``certChain``, one ``ca`` store."""
    certs = entry.certificates
    if certs is None:
        return NotationTrust(ca=())
    loaded: list[x509.Certificate] = []
    if certs.cert.strip():
        loaded.extend(load_certificates_pem(certs.cert, what="certificates.cert"))
    if certs.cert_chain.strip():
        loaded.extend(load_certificates_pem(certs.cert_chain, what="certificates.certChain"))
    return NotationTrust(ca=tuple(loaded))


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

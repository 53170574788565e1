"""ImageValidatingPolicies at push time: a policy that selects the pushed image and reads nothing of the admission
request is evaluated as for a Pod running the image (:func:`sigward.verify.ivpol.evaluate_image`); its passing
signature and attestation checks are recorded in the verdict store under the keys admission looks up
(:mod:`sigward.admission.ivpol_cache`). A policy whose expressions read the request is reported "evaluated at admission
only" and records nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sigward.admission.ivpol_cache import CachedChecks
from sigward.cache import TTLCache
from sigward.deadline import Deadline
from sigward.policy.ivpol.load import ImagePolicy
from sigward.references import ImageReference
from sigward.store import VerdictStore
from sigward.verify.engine import Verifier
from sigward.verify.ivpol import evaluate_image, image_selected, reads_request
from sigward.verify.plan import VerdictKey
from sigward.verify.results import RuleVerdict, Verdict

ADMISSION_ONLY = "evaluated at admission only: its expressions read the admission request"
# One event's checks never exceed this many (a policy names a handful of attestors); bounds the throwaway cache.
_EVENT_CACHE_ENTRIES = 256


@dataclass(frozen=True)
class ImagePolicyResult:
    policy: str
    policy_hash: str
    verdict: Verdict
    message: str
    form: str


def selects(policies: Sequence[ImagePolicy], forms: Sequence[ImageReference]) -> bool:
    """Whether any IVPOL's ``matchImageReferences`` select one of the image's forms."""
    return any(image_selected(p, str(ref)) for p in policies for ref in forms)


def tag_prefixes(policies: Sequence[ImagePolicy], forms: Sequence[ImageReference]) -> frozenset[str]:
    """The ``cosign.source.tagPrefix`` values (never "") of the attestors of the IVPOLs selecting one of ``forms``
    (the pushed manifest's repository, where its subject lives too): the only prefixes under which a pushed
    ``<prefix>sha256-<hex>.sig``/``.att`` tag there counts as a signature push."""
    return frozenset(
        entry.signature_tag_prefix
        for policy in policies
        if selects((policy,), forms)
        for compiled in policy.attestors.values()
        for entry in compiled.attestors.entries
        if entry.signature_tag_prefix
    )


def evaluate_pushed(
    policies: Sequence[ImagePolicy],
    pinned: ImageReference,
    *,
    verifier: Verifier,
    store: VerdictStore,
    source: str,
    pass_ttl: float,
    deadline: Deadline,
) -> list[ImagePolicyResult]:
    """Each selecting IVPOL's verdict for the pushed image (digest form)."""
    image = str(pinned)
    selecting = [p for p in policies if image_selected(p, image)]
    out = [
        ImagePolicyResult(p.key, p.content_hash, Verdict.SKIP, ADMISSION_ONLY, image)
        for p in selecting
        if reads_request(p)
    ]
    decidable = [p for p in selecting if not reads_request(p)]
    if not decidable:
        return out
    checks = CachedChecks(
        verifier=verifier,
        cache=TTLCache[VerdictKey, RuleVerdict](max_entries=_EVENT_CACHE_ENTRIES, ttl=pass_ttl),
        store=store,
        pass_ttl=pass_ttl,
        source=source,
    )
    hashes = {p.key: p.content_hash for p in decidable}
    for verdict in evaluate_image(decidable, image, checks=checks, deadline=deadline):
        out.append(ImagePolicyResult(verdict.policy, hashes[verdict.policy], verdict.verdict, verdict.message, image))
    return out

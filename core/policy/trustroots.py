"""Which Sigstore trusted roots a policy allows: the ``sigward.dev/trusted-roots`` annotation (a sigward extension).

Kyverno's ClusterPolicy has no way to name a trusted root other than the public-good one it takes over TUF (its
SigstoreBundle path always does, whatever ``keyless.roots`` says), so bundles made on GitHub's own Sigstore instance
(private and internal repositories) cannot be verified by Kyverno from a ClusterPolicy. This annotation lets a policy
allow roots by name without pasting PEMs; a bundle is then verified against the allowed root whose CA issued its
leaf, and never against a root the policy did not name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sigward.policy.models import ImageVerification

TRUSTED_ROOTS_ANNOTATION = "sigward.dev/trusted-roots"


class RootName(StrEnum):
    """A trusted root a policy may allow by name."""

    PUBLIC_GOOD = "public-good"  # SIGWARD_TRUSTED_ROOT, else the public-good root kept current over TUF
    GITHUB = "github"  # SIGWARD_GITHUB_TRUSTED_ROOT, else GitHub's root kept current over tuf-repo.github.com


#: Without the annotation a policy means what it means in Kyverno: the public-good root only.
DEFAULT_ROOTS: tuple[RootName, ...] = (RootName.PUBLIC_GOOD,)

_WHERE = f'metadata.annotations["{TRUSTED_ROOTS_ANNOTATION}"]'


def parse_root_names(value: str) -> tuple[RootName, ...]:
    """``"public-good,github"`` → the names in the order written, each once. Raises ValueError naming the problem."""
    names: list[RootName] = []
    for part in value.split(","):
        text = part.strip()
        if not text:
            raise ValueError(f"empty root name in {value!r}")
        try:
            name = RootName(text)
        except ValueError:
            known = ", ".join(n.value for n in RootName)
            raise ValueError(f"unknown trusted root {text!r} (known: {known})") from None
        if name not in names:
            names.append(name)
    return tuple(names)


def allowed_root_names(annotations: Mapping[str, str]) -> tuple[RootName, ...]:
    """The roots a policy with these annotations allows (validated at load, so a loaded policy cannot raise)."""
    value = annotations.get(TRUSTED_ROOTS_ANNOTATION)
    return DEFAULT_ROOTS if value is None else parse_root_names(value)


def trusted_roots_problems(annotations: Mapping[str, str]) -> list[tuple[str, str]]:
    """Load-time problems of the annotation (fail closed: a typo must not fall back to some other root)."""
    value = annotations.get(TRUSTED_ROOTS_ANNOTATION)
    if value is None:
        return []
    try:
        parse_root_names(value)
    except ValueError as exc:
        return [(_WHERE, str(exc))]
    return []


def trusted_roots_notes(annotations: Mapping[str, str]) -> list[str]:
    """What ``check-policy`` says about the annotation: it is a sigward extension Kyverno ignores."""
    value = annotations.get(TRUSTED_ROOTS_ANNOTATION)
    if value is None:
        return []
    names = ", ".join(n.value for n in parse_root_names(value))
    return [
        f"{_WHERE}: sigward extension: signatures and Sigstore bundles verify against the allowed roots ({names}), "
        "each bundle against the one whose CA issued its certificate; Kyverno ignores this annotation and uses the "
        "public-good root only"
    ]


def bundle_root_notes(entries: Sequence[ImageVerification]) -> list[str]:
    """Policy-given roots on SigstoreBundle entries: sigward uses them, Kyverno's ClusterPolicy does not."""
    notes: list[str] = []
    for j, iv in enumerate(entries):
        if iv.type != "SigstoreBundle":
            continue
        for i, attestor_set in enumerate(iv.attestors):
            for k, entry in enumerate(attestor_set.entries):
                keyless = entry.keyless
                if keyless is None:
                    continue
                given = [
                    name
                    for name, present in (
                        ("keyless.roots", bool(keyless.roots)),
                        ("ctlog.tsaCertChain", bool(keyless.ctlog is not None and keyless.ctlog.tsa_cert_chain)),
                    )
                    if present
                ]
                if given:
                    notes.append(
                        f"verifyImages[{j}].attestors[{i}].entries[{k}]: {' and '.join(given)} with type "
                        "SigstoreBundle: sigward verifies bundles against these (e.g. GitHub's Fulcio and TSA chains "
                        "for private-repository attestations); Kyverno's ClusterPolicy SigstoreBundle path takes the "
                        "public-good TUF root instead, so Kyverno would refuse such bundles"
                    )
    return notes


# -- trusted roots written into a policy (ImageValidatingPolicy ``cosign.trustedRoot.value``) ---------------------

#: A trusted root is a few KiB; Kyverno caps a policy's ``trustedRoot`` at 1 MiB, and the same cap stops a wrong
#: file path (a disk image, /dev/zero) from being read whole.
MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
#: What a sigstore-go trusted root's ``mediaType`` starts with (``…trustedroot+json;version=0.1``/``0.2``).
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot"
_ROOT_LISTS = ("certificateAuthorities", "tlogs", "timestampAuthorities", "ctlogs")


def _documents(raw: bytes) -> list[object] | None:
    """One JSON document, or the JSON Lines ``gh attestation trusted-root`` prints; None when neither."""
    import json

    try:
        return [json.loads(raw)]
    except (ValueError, RecursionError):
        pass
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    try:
        return [json.loads(line) for line in lines]
    except (ValueError, RecursionError):
        return None


def inline_root_problems(value: str, where: str) -> list[tuple[str, str]]:
    """Load-time shape check of a trusted root written into a policy: size, well-formed JSON (or gh's JSONL), each
    document a Sigstore trusted root listing some CA, log or TSA. The certificates and keys inside are parsed by the
    verify layer (:func:`sigward.verify.trust.roots_from_inline`), which this layer must not import; a root that
    passes here but holds a broken certificate fails its checks there, closed, naming ``where``."""
    raw = value.encode("utf-8", "surrogatepass")
    if not raw.strip():
        return [(where, "the trusted root is empty")]
    if len(raw) > MAX_TRUSTED_ROOT_BYTES:
        return [(where, f"the trusted root is larger than {MAX_TRUSTED_ROOT_BYTES} bytes")]
    docs = _documents(raw)
    if docs is None:
        return [
            (
                where,
                "not JSON: expected a Sigstore trusted_root.json (or the JSON Lines of gh attestation trusted-root)",
            )
        ]
    problems: list[tuple[str, str]] = []
    for n, doc in enumerate(docs, 1):
        at = where if len(docs) == 1 else f"{where} line {n}"
        if not isinstance(doc, Mapping):
            problems.append((at, "not a JSON object"))
            continue
        media_type = doc.get("mediaType", "")
        if not isinstance(media_type, str) or not media_type.startswith(TRUSTED_ROOT_MEDIA_TYPE):
            problems.append((at, f"mediaType {str(media_type)[:80]!r} is not a Sigstore trusted root"))
            continue
        bad = [name for name in _ROOT_LISTS if doc.get(name) is not None and not isinstance(doc.get(name), list)]
        if bad:
            problems.append((at, f"{', '.join(bad)} must be lists"))
        elif not any(doc.get(name) for name in _ROOT_LISTS[:3]):
            problems.append((at, "the trusted root lists no CA, transparency log or TSA"))
    return problems

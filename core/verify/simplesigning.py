"""cosign's "simple signing" payload: the JSON document a ``.sig`` layer signs.

Verification happens over the exact blob bytes first; only then is it parsed here, and the parsed digest must equal
the digest of the image being admitted, or a signature of image A could be replayed onto image B.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sigward.errors import VerificationFailure

COSIGN_SIGNATURE_TYPE = "cosign container image signature"
SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
# cosign payloads are a few hundred bytes; annotations can add some. Anything larger is not a cosign payload.
MAX_PAYLOAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class SimpleSigningPayload:
    docker_reference: str
    manifest_digest: str
    type: str
    optional: Mapping[str, Any]


def parse_payload(raw: bytes) -> SimpleSigningPayload:
    """Parse a simple-signing payload, refusing anything that is not one."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise VerificationFailure(f"signature payload larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationFailure(f"error decoding the payload: {exc}") from None
    except RecursionError:
        raise VerificationFailure("error decoding the payload: nested too deeply") from None
    if not isinstance(doc, dict):
        raise VerificationFailure("error decoding the payload: not a JSON object")
    critical = doc.get("critical")
    if not isinstance(critical, dict):
        raise VerificationFailure("error decoding the payload: missing critical section")
    ptype = critical.get("type")
    identity = critical.get("identity") if isinstance(critical.get("identity"), dict) else {}
    image = critical.get("image") if isinstance(critical.get("image"), dict) else {}
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    reference = identity.get("docker-reference", "") if isinstance(identity, dict) else ""
    optional = doc.get("optional")
    if optional is None:
        optional = {}
    if not isinstance(optional, dict):
        raise VerificationFailure("error decoding the payload: optional is not an object")
    if not isinstance(ptype, str) or not isinstance(digest, str) or not isinstance(reference, str):
        raise VerificationFailure("error decoding the payload: critical.type or docker-manifest-digest missing")
    return SimpleSigningPayload(docker_reference=reference, manifest_digest=digest, type=ptype, optional=optional)


def check_payload(payload: SimpleSigningPayload, *, image_digest: str) -> None:
    """The claim checks cosign's ``SimpleClaimVerifier`` makes: the type, and the digest of *this* image."""
    if payload.type != COSIGN_SIGNATURE_TYPE:
        raise VerificationFailure(f"invalid payload type {payload.type!r}, expected {COSIGN_SIGNATURE_TYPE!r}")
    if payload.manifest_digest != image_digest:
        raise VerificationFailure(
            f"invalid or missing digest in claim: {payload.manifest_digest} (image digest is {image_digest})"
        )


def annotations_match(payload: SimpleSigningPayload, required: Mapping[str, str]) -> bool:
    """Exact match of every required annotation against the payload's ``optional`` map (cosign's rule)."""
    for key, value in required.items():
        have = payload.optional.get(key)
        if not isinstance(have, str) or have != value:
            return False
    return True


def make_payload(*, docker_reference: str, manifest_digest: str, annotations: Mapping[str, str] | None = None) -> bytes:
    """The exact bytes cosign writes (compact JSON, keys in cosign's order): used by ``sigward sign`` and tests."""
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": dict(annotations) if annotations else None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()

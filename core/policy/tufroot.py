"""Load-time checks of a TUF repository a policy names (ImageValidatingPolicy ``attestors[].cosign.tuf``): its
mirror URL and its bootstrap ``root.json``. The repository is read by :mod:`sigward.verify.tuf`; these checks live
here so the loader (which must not import the verify layer) and the ``SIGWARD_TUF_ROOT`` setting share one rule."""

from __future__ import annotations

from urllib.parse import urlsplit

# The public-good TUF repository: its root ships with sigward (sigstore-python's), so a policy naming it needs none.
PUBLIC_GOOD_MIRROR = "https://tuf-repo-cdn.sigstore.dev"
# A bootstrap TUF root.json is a few KiB; python-tuf's own limit for root metadata.
MAX_TUF_ROOT_BYTES = 512_000
# Plain http, and a private address at all, only to the machine itself (tests, a sidecar mirror): a policy must not
# make sigward fetch from an internal service (the network guard enforces the same when connecting).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def tuf_root_problem(raw: bytes) -> str | None:
    """Why ``raw`` cannot bootstrap a TUF client (size, not TUF metadata, not the root role), worded to follow its
    name (``"… is empty"``), or None."""
    if not raw.strip():
        return "is empty"
    if len(raw) > MAX_TUF_ROOT_BYTES:
        return f"is larger than {MAX_TUF_ROOT_BYTES} bytes"
    from tuf.api.metadata import Metadata

    try:
        md = Metadata.from_bytes(raw)
    except Exception as exc:  # python-tuf raises DeserializationError, ValueError, KeyError... for bad input
        return f"is not TUF root metadata: {type(exc).__name__}"
    if md.signed.type != "root":
        return f"is TUF {md.signed.type} metadata, not root"
    return None


def mirror_problem(url: str) -> str | None:
    """Why ``url`` cannot be a policy's TUF mirror, or None: https (http only to a loopback host), a host, no
    credentials, query or fragment."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        return "not a valid URL"
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return "plain http is only allowed to a loopback host; use https"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None

"""The shape every URL a policy may make sigward call must have (``apiCall.service``, the IVPOL ``http`` library),
whatever the operator allowlists: http(s), a host, no user info, no dot-segments (raw or percent-encoded) that could
walk out of an allowlisted path. One rule, read by the allowlist check at run time
(:class:`sigward.cluster.services.ServiceCaller`) and by the loader for URLs written literally in a policy."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def split_service_url(url: str) -> tuple[SplitResult | None, str]:
    """``url`` split, or None and why no allowlist could ever permit it."""
    try:
        split = urlsplit(url)
        _ = split.port  # a malformed port raises here
    except ValueError:
        return None, "not a valid URL"
    if split.scheme not in ("https", "http"):
        return None, "only http and https URLs can be called"
    if not split.hostname:
        return None, "the URL has no host"
    if split.username or split.password:
        return None, "the URL carries user info"
    segments = split.path.split("/")
    if any(seg in (".", "..") or "%2e" in seg.lower() or "%2f" in seg.lower() for seg in segments):
        return None, "the URL path has dot-segments or encoded separators"
    return split, ""


def shown_url(url: str) -> str:
    """``url`` as a message may quote it: scheme, host, port and path only. A URL a policy builds may carry user
    info or a query token (read from a ConfigMap, a variable), which must not reach an admission response or a log."""
    try:
        split = urlsplit(url)
        host = split.hostname or ""
        port = split.port
    except ValueError:
        return "(a malformed URL)"
    if ":" in host:
        host = f"[{host}]"
    hidden = " (user info, query and fragment not shown)" if split.username or split.password or split.query else ""
    return f"{split.scheme}://{host}{f':{port}' if port is not None else ''}{split.path}{hidden}"

"""The OCI distribution client sigward verifies with: resolve tags, fetch manifests and blobs, check bytes.

Every answer is treated as hostile: bodies are bounded, digests are recomputed over the exact bytes received
and compared with what was asked for, and status codes map to the error classes of :mod:`sigward.errors` so that
a decided "no" (404, 401/403, a digest mismatch) is never confused with "could not find out" (5xx, timeouts).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from sigward import logs
from sigward.deadline import Deadline
from sigward.errors import (
    AccessDeniedError,
    BadRequestError,
    ExternalServiceError,
    NotFoundError,
    VerificationFailure,
)
from sigward.references import ImageReference, Repository, validate_digest
from sigward.registry.auth import Authenticator, pull_scope, push_scope
from sigward.registry.config import RegistryConfig
from sigward.registry.credentials import CredentialStore
from sigward.registry.hints import NO_HINTS, TagHints, referrers_tag
from sigward.registry.models import (
    ACCEPT_HEADER,
    ACCEPTED_MEDIA_TYPES,
    MAX_DESCRIPTORS,
    OCI_INDEX,
    Descriptor,
    Manifest,
    base_content_type,
    compute_digest,
    digests_equal,
)
from sigward.registry.providers import ALL_PROVIDERS, CredentialProvider, CredentialSource, ProviderChain, ProviderName
from sigward.registry.transport import RequestStats, Response, Transport, origin

# distribution/reference's repository path grammar; checked again here because a Repository can be built by
# hand and its path goes into a URL.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
# host, host:port or [v6]:port, nothing that could smuggle a path, user info or query into the URL.
_REGISTRY_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
# The referrers API answers these when it is not implemented (distribution-spec "Listing Referrers"; 400 and 406
# come from registries that parse the path as a manifest reference); the client then reads the tag schema.
_REFERRERS_UNSUPPORTED = frozenset({400, 404, 405, 406})
# A paginated referrers answer is followed this many pages at most; the total is capped at MAX_DESCRIPTORS.
MAX_REFERRERS_PAGES = 8
# The query of a ``Link: <…>; rel="next"`` page: registries use n/last/artifactType, all URL-safe.
_LINK_QUERY_RE = re.compile(r"^[A-Za-z0-9._~%&=+:;,/-]{0,1024}$")
# ACR's exchange answer is one small JSON object with a JWT refresh token.
MAX_EXCHANGE_RESPONSE_BYTES = 256 * 1024


class RegistryClient:
    """A thread-safe registry client; share one per process so connections and tokens are reused."""

    def __init__(
        self,
        config: RegistryConfig | None = None,
        *,
        credentials: CredentialSource | None = None,
        providers: Mapping[ProviderName, CredentialProvider] | None = None,
        allow_push: bool = False,
    ) -> None:
        """``credentials``: the ``default`` provider (the docker config of ``$DOCKER_CONFIG`` unless given);
        ``providers``: replaces the built-in cloud providers (google, amazon, azure, github), for tests."""
        self.config = config if config is not None else RegistryConfig.from_env()
        self.stats = RequestStats()
        self._transport = Transport(self.config, self.stats)
        default = credentials if credentials is not None else CredentialStore.from_env()
        chosen = dict(providers) if providers is not None else self._cloud_providers()
        chosen[ProviderName.DEFAULT] = default
        self._chain = ProviderChain(providers=chosen, host_map=self.config.provider_map, selected=ALL_PROVIDERS)
        # Only `sigward sign` builds a pushing client; everything that verifies asks registries for pull tokens.
        self._allow_push = allow_push
        self._auth = Authenticator(self._transport, self._chain, allow_push=allow_push)
        self._owner = True
        self._views: dict[tuple[ProviderName, ...], RegistryClient] = {}
        self._views_lock = threading.Lock()
        self._tag_hints = NO_HINTS

    def _cloud_providers(self) -> dict[ProviderName, CredentialProvider]:
        from sigward.registry.providers.amazon import AmazonProvider
        from sigward.registry.providers.azure import AzureProvider
        from sigward.registry.providers.github import GithubProvider
        from sigward.registry.providers.google import GoogleProvider

        return {
            ProviderName.GOOGLE: GoogleProvider(),
            ProviderName.AMAZON: AmazonProvider(),
            ProviderName.AZURE: AzureProvider(self.post_form),
            ProviderName.GITHUB: GithubProvider(),
        }

    def with_providers(self, names: tuple[ProviderName, ...]) -> RegistryClient:
        """This client restricted to some credential providers (a rule's ``imageRegistryCredentials.providers``):
        same connections, token cache and providers, only the selected providers' credentials are sent."""
        if names == self._chain.selected:
            return self
        with self._views_lock:
            view = self._views.get(names)
            if view is None:
                view = copy.copy(self)
                view._chain = self._chain.narrowed(names)
                view._auth = self._auth.with_credentials(view._chain)
                view._owner = False
                view._views = {}
                self._views[names] = view
            return view

    def with_credentials_first(self, make: Callable[[CredentialSource], CredentialSource]) -> RegistryClient:
        """This client with ``make(its providers)`` as its credentials (a rule's ``imageRegistryCredentials.secrets``
        asked before its providers). Same connections and token cache (keys carry the credential identity); the
        caller keeps the view (one per rule selection)."""
        view = copy.copy(self)
        view._auth = self._auth.with_credentials(make(self._chain))
        view._owner = False
        view._views = {}
        view._views_lock = threading.Lock()
        return view

    def with_tag_hints(self, hints: TagHints) -> RegistryClient:
        """This client for one evaluation, reading a hinted tag's manifest by its digest while the registry still
        answers 404 for the tag (see :mod:`sigward.registry.hints`). Same connections, token cache and credentials;
        the view is never kept by its parent, so the hints end with the evaluation that holds it."""
        if not hints:
            return self
        view = copy.copy(self)
        view._tag_hints = hints
        view._owner = False
        view._views = {}  # provider views of this view carry its hints: never share them with the parent
        view._views_lock = threading.Lock()
        return view

    @property
    def providers(self) -> tuple[ProviderName, ...]:
        return self._chain.selected

    def post_form(self, registry: str, path: str, form: Mapping[str, str]) -> Mapping[str, Any]:
        """POST a form to the registry's own origin (ACR's ``/oauth2/exchange``) and return its JSON object."""
        registry = self._check_registry(registry)
        deadline = Deadline.after(self.config.connect_timeout + self.config.read_timeout)
        resp = self._transport.send(
            "POST",
            f"{self._base(registry)}{path}",
            deadline=deadline,
            kind="token",
            headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
            data=dict(form),
        )
        status = resp.status_code
        if status in (401, 403):
            self._transport.discard(resp)
            raise AccessDeniedError(f"{registry}{path} answered HTTP {status}")
        if status != 200:
            detail = self._transport.error_detail(resp, deadline)
            raise ExternalServiceError(f"{registry}{path} answered HTTP {status}{detail}")
        body = self._transport.read_body(resp, MAX_EXCHANGE_RESPONSE_BYTES, deadline, f"answer of {registry}{path}")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ExternalServiceError(f"{registry}{path} did not answer with JSON") from None
        if not isinstance(data, dict):
            raise ExternalServiceError(f"{registry}{path} did not answer with a JSON object")
        return data

    # -- public API

    def resolve(self, ref: ImageReference, *, deadline: Deadline) -> Descriptor:
        """The descriptor of what ``ref`` names: its digest as given, or what the tag points to now.

        A tag is resolved with HEAD (one small request); when the registry does not answer HEAD with a usable
        ``Docker-Content-Digest`` the manifest is fetched and hashed instead. A digest reference needs no
        request and its descriptor has an empty media type and size 0 (unknown).
        """
        repo = ref.repo
        if ref.digest:
            validate_digest(ref.digest)
            return Descriptor(media_type="", digest=ref.digest, size=0)
        tag = self._check_reference(ref.tag)
        what = f"manifest {tag}"
        resp = self._request(
            "HEAD", repo, f"manifests/{tag}", accept=ACCEPT_HEADER, deadline=deadline, kind="manifest.head"
        )
        status = resp.status_code
        if status == 200:
            descriptor = _descriptor_from_head(resp)
            self._transport.discard(resp)
            if descriptor is not None:
                return descriptor
        elif status in (401, 403, 404):
            self._raise_for_status(resp, repo, what, deadline)
        else:
            self._transport.discard(resp)
        manifest = self.get_manifest(repo, tag, deadline=deadline)
        return Descriptor(
            media_type=manifest.media_type,
            digest=manifest.digest,
            size=len(manifest.raw),
            annotations=manifest.annotations,
            artifact_type=manifest.artifact_type,
        )

    def get_manifest(self, repo: Repository, reference: str, *, deadline: Deadline) -> Manifest:
        """Fetch a manifest or index by tag or digest; its bytes are verified against the digest asked for.

        A tag that answers 404 but has a hint (:meth:`with_tag_hints`) is read by the hinted digest instead: the
        registry has stored the pushed manifest but not linked its tag yet. Only a 404 does this — a linked tag is
        the registry's current answer and wins over the event that preceded it."""
        reference = self._check_reference(reference)
        try:
            return self._get_manifest(repo, reference, deadline=deadline)
        except NotFoundError:
            hinted = self._tag_hints.digest_for(repo, reference) if ":" not in reference else None
            if hinted is None:
                raise
        logs.emit("INFO", "tag not linked yet; reading the manifest the push event named", tag=reference, digest=hinted)
        return self._get_manifest(repo, self._check_reference(hinted), deadline=deadline)

    def _get_manifest(self, repo: Repository, reference: str, *, deadline: Deadline) -> Manifest:
        by_digest = ":" in reference
        what = f"manifest {reference}"
        where = f"{repo}@{reference}" if by_digest else f"{repo}:{reference}"
        resp = self._request(
            "GET",
            repo,
            f"manifests/{reference}",
            accept=ACCEPT_HEADER,
            deadline=deadline,
            kind="manifest.get",
        )
        if resp.status_code != 200:
            self._raise_for_status(resp, repo, what, deadline)
        content_type = resp.headers.get("Content-Type", "")
        claimed = resp.headers.get("Docker-Content-Digest", "").strip()
        raw = self._transport.read_body(resp, self.config.max_manifest_bytes, deadline, f"manifest {where}")
        if by_digest:
            algorithm = reference.split(":", 1)[0]
            computed = compute_digest(raw, algorithm)
            if not digests_equal(computed, reference):
                raise VerificationFailure(
                    f"manifest digest mismatch for {where}: the registry sent content with digest {computed}"
                )
            digest = reference
        else:
            digest = compute_digest(raw)
            if claimed:
                self._check_claimed_digest(raw, claimed, where, sha256=digest)
        return Manifest.parse(raw, digest=digest, content_type=content_type, where=where)

    def get_blob(self, repo: Repository, digest: str, *, deadline: Deadline, max_bytes: int | None = None) -> bytes:
        """Fetch a blob (signature payload, attestation, bundle) and verify its digest; never decompressed."""
        self._check_digest(digest)
        limit = self.config.max_blob_bytes if max_bytes is None else max_bytes
        what = f"blob {digest}"
        resp = self._request("GET", repo, f"blobs/{digest}", accept="*/*", deadline=deadline, kind="blob")
        if resp.status_code != 200:
            self._raise_for_status(resp, repo, what, deadline)
        data = self._transport.read_body(resp, limit, deadline, f"{what} in {repo}")
        computed = compute_digest(data, digest.split(":", 1)[0])
        if not digests_equal(computed, digest):
            raise VerificationFailure(f"blob digest mismatch for {repo}@{digest}: the content has digest {computed}")
        return data

    def referrers(
        self, repo: Repository, digest: str, *, deadline: Deadline, artifact_type: str = ""
    ) -> tuple[Descriptor, ...]:
        """The manifests whose ``subject`` is ``digest`` (OCI 1.1 referrers), optionally of one ``artifact_type``.

        Asks the referrers API (``GET /v2/<name>/referrers/<digest>``); a registry without it (404, 400, 405, 406,
        or an answer that is not an OCI image index) is read through the referrers tag schema instead: the tag
        ``sha256-<hex>`` holding an index that clients maintain. No such tag means no referrers. The artifact
        type is filtered here too, as a registry may ignore the filter (and the tag schema has none).
        Descriptors come as listed (index order), bounded by ``MAX_DESCRIPTORS``.
        """
        digest = self._check_digest(digest)
        if len(artifact_type) > 255 or any(c.isspace() for c in artifact_type):
            raise BadRequestError(f"invalid artifact type {artifact_type[:100]!r}")
        query = f"?artifactType={quote(artifact_type, safe='')}" if artifact_type else ""
        found = self._referrers_api(repo, digest, query, deadline)
        if found is None:
            found = self._referrers_tag_schema(repo, digest, deadline)
        if artifact_type:
            found = tuple(d for d in found if d.artifact_type == artifact_type)
        return found

    def _referrers_api(
        self, repo: Repository, digest: str, query: str, deadline: Deadline
    ) -> tuple[Descriptor, ...] | None:
        """What the referrers API lists, or ``None`` when the registry does not implement it."""
        found: list[Descriptor] = []
        tail = f"referrers/{digest}{query}"
        where = f"{repo} referrers of {digest}"
        for page in range(MAX_REFERRERS_PAGES):
            resp = self._request("GET", repo, tail, accept=OCI_INDEX, deadline=deadline, kind="referrers")
            status = resp.status_code
            if status in (401, 403):
                self._raise_for_status(resp, repo, f"referrers of {digest}", deadline)
            if status in _REFERRERS_UNSUPPORTED and page == 0:
                self._transport.discard(resp)
                return None
            if status != 200:
                self._raise_for_status(resp, repo, f"referrers of {digest}", deadline)
            if base_content_type(resp.headers.get("Content-Type", "")) != OCI_INDEX:
                self._transport.discard(resp)
                if page == 0:
                    return None
                raise VerificationFailure(f"{where}: page {page + 1} is not an OCI image index")
            raw = self._transport.read_body(resp, self.config.max_manifest_bytes, deadline, where)
            next_tail = self._next_referrers_page(resp, repo, digest)
            try:
                index = Manifest.parse(raw, digest=compute_digest(raw), content_type=OCI_INDEX, where=where)
            except VerificationFailure:
                if page == 0:
                    return None  # not an index after all: treat as a registry without the API
                raise
            if not index.is_index:
                if page == 0:
                    return None
                raise VerificationFailure(f"{where}: page {page + 1} is not an OCI image index")
            found.extend(index.manifests)
            if next_tail is None or len(found) >= MAX_DESCRIPTORS:
                break
            tail = next_tail
        return tuple(found[:MAX_DESCRIPTORS])

    def _next_referrers_page(self, resp: Response, repo: Repository, digest: str) -> str | None:
        """The tail of the ``rel="next"`` page, only if it is this very listing on this registry."""
        link = resp.links.get("next", {}).get("url", "") if resp.headers.get("Link") else ""
        if not link:
            return None
        parts = urlsplit(link)
        path = f"/v2/{repo.api_repository}/referrers/{digest}"
        same_origin = not parts.netloc or parts.netloc.lower() == self._check_registry(repo.api_host)
        if not same_origin or parts.path != path or not _LINK_QUERY_RE.match(parts.query) or parts.fragment:
            raise VerificationFailure(f"{repo} referrers of {digest}: the registry sent an unusable next-page link")
        return f"referrers/{digest}?{parts.query}" if parts.query else f"referrers/{digest}"

    def _referrers_tag_schema(self, repo: Repository, digest: str, deadline: Deadline) -> tuple[Descriptor, ...]:
        """The index under the tag ``<alg>-<ref>`` (distribution-spec referrers tag schema: the algorithm, at most 32
        characters, and the hex digest, at most 64 — ``sha256-<hex>``); none = no referrers."""
        tag = referrers_tag(digest)
        try:
            index = self.get_manifest(repo, tag, deadline=deadline)
        except NotFoundError:
            return ()
        if index.media_type != OCI_INDEX:
            raise VerificationFailure(
                f"referrers tag {tag} in {repo} is a {index.media_type}, not an OCI image index of referrers"
            )
        return index.manifests

    def ping(self, registry: str, *, deadline: Deadline) -> None:
        """Check that ``registry`` speaks the distribution API v2 (``GET /v2/``: 200, or 401 before auth)."""
        registry = self._check_registry(registry)
        resp = self._transport.send("GET", f"{self._base(registry)}/v2/", deadline=deadline, kind="ping")
        status = resp.status_code
        version = resp.headers.get("Docker-Distribution-API-Version", "").strip()
        self._transport.discard(resp)
        if version and not version.lower().startswith("registry/2."):
            raise ExternalServiceError(f"{registry} speaks an unsupported registry API ({version[:32]})")
        if status not in (200, 401):
            raise ExternalServiceError(f"{registry} does not serve the registry API v2 (HTTP {status} for /v2/)")

    def close(self) -> None:
        if self._owner:  # a provider view shares its parent's connections
            self._transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals

    def _base(self, registry: str) -> str:
        scheme = "http" if self.config.is_insecure(registry) else "https"
        return f"{scheme}://{registry}"

    @staticmethod
    def _check_registry(registry: str) -> str:
        if not _REGISTRY_RE.match(registry):
            raise BadRequestError(f"invalid registry host {registry[:300]!r}")
        return registry.lower()

    @staticmethod
    def _check_digest(digest: str) -> str:
        return validate_digest(digest)

    @classmethod
    def _check_reference(cls, reference: str) -> str:
        if ":" in reference:
            return cls._check_digest(reference)
        if not _TAG_RE.match(reference):
            raise BadRequestError(f"invalid tag {reference[:200]!r}")
        return reference

    # -- pushing (sigward sign only)

    def push_blob(self, repo: Repository, data: bytes, *, deadline: Deadline) -> str:
        """Upload ``data`` as a blob (monolithic POST + PUT) unless the registry has it; returns its digest."""
        self._require_push()
        digest = compute_digest(data, "sha256")
        head = self._request("HEAD", repo, f"blobs/{digest}", accept="*/*", deadline=deadline, kind="blob", push=True)
        self._transport.discard(head)
        if head.status_code == 200:
            return digest
        started = self._request(
            "POST", repo, "blobs/uploads/", accept="*/*", deadline=deadline, kind="blob.upload", push=True
        )
        self._transport.discard(started)
        if started.status_code != 202 or not started.headers.get("Location"):
            self._raise_for_status(started, repo, "blob upload", deadline)
        location = urljoin(f"{self._base(self._check_registry(repo.api_host))}/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        resp = self._request_url(
            "PUT",
            repo,
            f"{location}{separator}digest={digest}",
            headers={"Content-Type": "application/octet-stream"},
            body=data,
            deadline=deadline,
            kind="blob.upload",
        )
        self._transport.discard(resp)
        if resp.status_code not in (201, 204):
            self._raise_for_status(resp, repo, "blob upload", deadline)
        return digest

    def push_manifest(
        self, repo: Repository, reference: str, raw: bytes, media_type: str, *, deadline: Deadline
    ) -> str:
        """PUT a manifest under a tag (or its digest); returns the manifest digest."""
        self._require_push()
        reference = self._check_reference(reference)
        digest = compute_digest(raw, "sha256")
        url = f"{self._base(self._check_registry(repo.api_host))}/v2/{repo.api_repository}/manifests/{reference}"
        resp = self._request_url(
            "PUT", repo, url, headers={"Content-Type": media_type}, body=raw, deadline=deadline, kind="manifest.put"
        )
        self._transport.discard(resp)
        if resp.status_code not in (200, 201):
            self._raise_for_status(resp, repo, f"manifest {reference}", deadline)
        return digest

    def _require_push(self) -> None:
        if not self._allow_push:
            raise BadRequestError("this registry client is read-only (made for verification, not signing)")

    def _request_url(
        self,
        method: str,
        repo: Repository,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes,
        deadline: Deadline,
        kind: str,
    ) -> Response:
        """A push request to a full URL (an upload Location); credentials only if it is the registry's origin."""
        registry = self._check_registry(repo.api_host)
        same_origin = origin(url) == origin(self._base(registry))
        scope = push_scope(repo.api_repository)
        authorization = self._auth.authorization_for(registry, scope, deadline) if same_origin else None
        resp = self._transport.send(
            method, url, deadline=deadline, kind=kind, headers=headers, authorization=authorization, data=body
        )
        if resp.status_code != 401 or not same_origin:
            return resp
        self._refuse_foreign_401(resp, url, registry)
        challenge = resp.headers.get("WWW-Authenticate", "")
        self._transport.discard(resp)
        authorization = self._auth.on_unauthorized(registry, challenge, scope, deadline, rejected=authorization)
        return self._transport.send(
            method, url, deadline=deadline, kind=kind, headers=headers, authorization=authorization, data=body
        )

    def _request(
        self,
        method: str,
        repo: Repository,
        tail: str,
        *,
        accept: str,
        deadline: Deadline,
        kind: str,
        push: bool = False,
    ) -> Response:
        """``method /v2/<repo>/<tail>``, anonymous (or with the known scheme) first, once more after a 401."""
        registry = self._check_registry(repo.api_host)
        name = repo.api_repository
        if not _REPOSITORY_RE.match(name) or len(name) > 255:
            raise BadRequestError(f"invalid repository name {name[:300]!r}")
        url = f"{self._base(registry)}/v2/{name}/{tail}"
        scope = push_scope(name) if push else pull_scope(name)
        headers = {"Accept": accept}
        authorization = self._auth.authorization_for(registry, scope, deadline)
        resp = self._transport.send(
            method, url, deadline=deadline, kind=kind, headers=headers, authorization=authorization
        )
        if resp.status_code != 401:
            return resp
        self._refuse_foreign_401(resp, url, registry)
        challenge = resp.headers.get("WWW-Authenticate", "")
        self._transport.discard(resp)
        if not challenge:
            raise AccessDeniedError(
                f"access to {repo} denied by {registry} (HTTP 401 without a WWW-Authenticate challenge)"
            )
        authorization = self._auth.on_unauthorized(registry, challenge, scope, deadline, rejected=authorization)
        return self._transport.send(
            method, url, deadline=deadline, kind=kind, headers=headers, authorization=authorization
        )

    def _refuse_foreign_401(self, resp: Response, url: str, registry: str) -> None:
        """A 401 after a redirect to another origin is that origin's challenge, not the registry's: answering it
        would send the registry's credentials to a host they do not belong to."""
        final = resp.url or url
        if origin(final) != origin(url):
            self._transport.discard(resp)
            raise AccessDeniedError(
                f"{registry} redirected to {urlsplit(final).netloc}, which asked for authentication: "
                f"the credentials of {registry} are not sent to another host"
            )

    def _raise_for_status(self, resp: Response, repo: Repository, what: str, deadline: Deadline) -> None:
        status = resp.status_code
        registry = repo.api_host
        if status == 404:
            self._transport.discard(resp)
            raise NotFoundError(f"{what} not found in {repo}")
        if status in (401, 403):
            self._transport.discard(resp)
            used = (
                f"with the credentials configured for {registry}"
                if self._auth.credentials_for(registry) is not None
                else f"anonymously (no credentials configured for {registry})"
            )
            if registry in self._auth.withheld:
                used += f"; its token realm is on another host, so the credentials of {registry} were not sent there"
            raise AccessDeniedError(f"access to {what} in {repo} denied (HTTP {status}) {used}")
        detail = self._transport.error_detail(resp, deadline)
        raise ExternalServiceError(f"{registry} answered HTTP {status} for {what} in {repo}{detail}")

    @staticmethod
    def _check_claimed_digest(raw: bytes, claimed: str, where: str, *, sha256: str) -> None:
        """``sha256``: the body's sha256 digest, already computed (the body is hashed once per algorithm)."""
        try:
            validate_digest(claimed)
        except BadRequestError:
            raise VerificationFailure(f"manifest {where}: the registry sent an invalid Docker-Content-Digest") from None
        algorithm = claimed.split(":", 1)[0]
        computed = sha256 if algorithm == "sha256" else compute_digest(raw, algorithm)
        if not digests_equal(computed, claimed):
            raise VerificationFailure(
                f"manifest digest mismatch for {where}: the registry claims {claimed} but the content is {computed}"
            )


def _descriptor_from_head(resp: Response) -> Descriptor | None:
    """What a HEAD answer tells, or ``None`` when it is not enough and the manifest must be fetched."""
    digest = resp.headers.get("Docker-Content-Digest", "").strip()
    media_type = base_content_type(resp.headers.get("Content-Type", ""))
    length = resp.headers.get("Content-Length", "").strip()
    if not digest or media_type not in ACCEPTED_MEDIA_TYPES:
        return None
    try:
        validate_digest(digest)
    except BadRequestError:
        return None
    size = int(length) if length.isdigit() else 0
    return Descriptor(media_type=media_type, digest=digest, size=size)

"""Fuzzing what registries and policies hand the registry layer: manifests, WWW-Authenticate challenges, token
answers and KMS key URIs. A hostile registry may send anything; sigward must answer with its own error."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sigward.deadline import Deadline
from sigward.errors import BadRequestError, ExternalServiceError, VerificationFailure
from sigward.policy.kms_uri import SCHEMES, parse_kms_uri
from sigward.registry import CredentialStore, RegistryConfig
from sigward.registry.auth import (
    MAX_TOKEN_LENGTH,
    Authenticator,
    ChallengeError,
    _parse_token_response,
    parse_www_authenticate,
    sanitize_scopes,
)
from sigward.registry.models import MAX_DESCRIPTORS, OCI_INDEX, OCI_MANIFEST, Manifest, compute_digest
from sigward.registry.transport import RequestStats, Transport
from tests.support.fuzzing import SETTINGS, byte_mutations, dumps, json_values, mutations, only_ours

DIGEST = "sha256:" + "a" * 64
VALID_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": OCI_MANIFEST,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 2},
    "layers": [
        {
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": "sha256:" + "b" * 64,
            "size": 250,
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="},
        }
    ],
    "subject": {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "c" * 64, "size": 10},
    "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
}
VALID_INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [{"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 7, "artifactType": "x/y"}],
}
content_types = st.sampled_from(
    [
        "",
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/json; charset=utf-8",
    ]
)


def _check_manifest(raw: bytes, content_type: str) -> None:
    try:
        manifest = Manifest.parse(raw, digest=compute_digest(raw), content_type=content_type, where="fuzz/app:v1")
    except VerificationFailure:
        return
    # Parsing validated every part: reading them later can never fail in the middle of a verification.
    assert manifest.is_index in (True, False)
    assert len(manifest.layers) <= MAX_DESCRIPTORS and len(manifest.manifests) <= MAX_DESCRIPTORS
    _ = (manifest.config, manifest.subject, manifest.annotations, manifest.artifact_type)


@SETTINGS
@given(raw=st.binary(max_size=300), content_type=content_types)
@example(raw=b"[" * 5000, content_type="")
@example(raw=b'{"schemaVersion": 2, "layers": [' + b"{}," * 5000 + b"{}]}", content_type=OCI_MANIFEST)
def test_manifest_parse_arbitrary_bytes(raw: bytes, content_type: str) -> None:
    _check_manifest(raw, content_type)


@SETTINGS
@given(doc=mutations(VALID_MANIFEST) | mutations(VALID_INDEX), content_type=content_types)
def test_manifest_parse_mutated(doc: Any, content_type: str) -> None:
    _check_manifest(dumps(doc), content_type)


@SETTINGS
@given(raw=byte_mutations(json.dumps(VALID_MANIFEST).encode()), content_type=content_types)
def test_manifest_parse_damaged_bytes(raw: bytes, content_type: str) -> None:
    _check_manifest(raw, content_type)


# -- WWW-Authenticate --------------------------------------------------------------------------------------------------

CHALLENGE_PARTS = [
    "Bearer",
    "Basic",
    "Negotiate",
    " ",
    ",",
    "=",
    '"',
    "\\",
    'realm="https://auth.example/token"',
    'realm="http://169.254.169.254/latest"',
    'realm="https://127.0.0.2:1/t"',
    'realm="ftp://x"',
    'service="registry"',
    'scope="repository:app:pull,push,delete *"',
    "error=insufficient_scope",
    "abc==",
]
challenges = st.one_of(
    st.lists(st.sampled_from(CHALLENGE_PARTS), max_size=10).map("".join),
    st.text(max_size=80),
)


@SETTINGS
@given(value=challenges)
@example(value='Bearer realm="' + "x" * 9000 + '"')
@example(value="Bearer " + ", ".join(f"p{i}=v" for i in range(40)))
def test_www_authenticate_parse_is_total(value: str) -> None:
    try:
        parsed = parse_www_authenticate(value)
    except ChallengeError:
        return
    for challenge in parsed:
        assert challenge.scheme == challenge.scheme.lower()
        assert all(k == k.lower() for k in challenge.params)


@SETTINGS
@given(scope=st.text(max_size=120), push=st.booleans())
def test_sanitized_scopes_never_ask_for_more_than_pull(scope: str, push: bool) -> None:
    default = "repository:app:pull"
    for item in sanitize_scopes(scope, default, allow_push=push):
        actions = item.rsplit(":", 1)[1]
        assert actions in ("pull", "pull,push") if push else actions == "pull"
        assert not re.search(r"\s", item)


class _OfflineTransport(Transport):
    """The real URL and address checks; nothing is ever sent (a token request fails as an outage)."""

    def send(self, method: str, url: str, **kwargs: Any) -> Any:
        raise ExternalServiceError("offline transport: nothing is sent in fuzz tests")


@SETTINGS
@given(value=challenges, rejected=st.none() | st.sampled_from(["Basic eDp5", "Bearer t"]))
def test_unauthorized_answers_become_sigward_errors(value: str, rejected: str | None) -> None:
    """Whatever challenge a registry sends after a 401, the client either has an Authorization to retry with or
    raises sigward's error (AccessDenied for unusable challenges, BlockedAddress for hostile realms)."""
    config = RegistryConfig(private_registries=frozenset({"127.0.0.1"}))
    auth = Authenticator(_OfflineTransport(config, RequestStats()), CredentialStore.empty())
    header = only_ours(
        lambda: auth.on_unauthorized(
            "registry.test", value, "repository:app:pull", Deadline.after(5), rejected=rejected
        )
    )
    assert header is None or header.startswith(("Bearer ", "Basic "))


@SETTINGS
@given(
    body=st.binary(max_size=200) | json_values.map(dumps) | mutations({"token": "abc", "expires_in": 300}).map(dumps)
)
@example(body=b'{"token": "abc", "expires_in": 1e400}')
@example(body=b'{"access_token": "a\\r\\nX-Injected: 1"}')
def test_token_answers_parse_to_a_usable_token_or_access_denied(body: bytes) -> None:
    result = only_ours(lambda: _parse_token_response(body, "auth.example"))
    if result is not None:
        token, seconds = result
        assert token and len(token) <= MAX_TOKEN_LENGTH
        assert all(0x21 <= ord(c) < 0x7F for c in token)
        assert seconds >= 60


# Regression test (was a strict xfail until fixed in da1389d): _parse_token_response does math.isnan()/float() on an
# int expires_in; an integer beyond float range (e.g. 400 digits) raises OverflowError out of the registry client
# instead of AccessDeniedError
def test_token_answer_with_a_huge_integer_lifetime() -> None:
    body = b'{"token": "abc", "expires_in": ' + b"9" * 400 + b"}"
    token, seconds = only_ours(lambda: _parse_token_response(body, "auth.example")) or ("", 0.0)
    assert token == "abc" and seconds >= 60


# -- KMS key URIs ------------------------------------------------------------------------------------------------------

kms_uris = st.one_of(
    st.builds(
        lambda scheme, rest: f"{scheme}://{rest}",
        st.sampled_from([*SCHEMES, "awskms:", "file", ""]),
        st.text(alphabet="abcAZ019-_./:%@ \n\tarnkmsaliasprojectslocationskeyRingscryptoKeys", max_size=90),
    ),
    st.sampled_from(
        [
            "awskms:///alias/x",
            "awskms://localhost:4566/alias/x",
            "awskms:///arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "azurekms://v.vault.azure.net/key/0123abcd",
            "hashivault://key",
        ]
    ).flatmap(lambda uri: byte_mutations(uri.encode()).map(lambda b: b.decode("utf-8", "replace"))),
    st.text(max_size=60),
)


@SETTINGS
@given(uri=kms_uris)
@example(uri="awskms://" + "a" * 2000 + "/alias/x")
def test_kms_uri_parse_is_total(uri: str) -> None:
    ref = only_ours(lambda: parse_kms_uri(uri))
    if ref is None:
        return
    assert ref.scheme in SCHEMES
    assert ref.key
    # The endpoint becomes https://ENDPOINT for the SDK: a host[:port] and nothing else (no path, no whitespace).
    assert ref.endpoint == "" or re.fullmatch(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?", ref.endpoint)
    assert re.fullmatch(r"[a-z0-9-]*", ref.region)


# Regression test (was a strict xfail until fixed in da1389d):
# sigward.policy.kms_uri._HOST ends in '$', which also matches
# before a trailing newline, so 'awskms://host\n/alias/x' parses with endpoint 'host\n' (use re.fullmatch or \Z)
@pytest.mark.parametrize("uri", ["awskms://kms.example\n/alias/x", "azurekms://v.vault.azure.net\n/key"])
def test_kms_endpoint_with_a_trailing_newline_is_refused(uri: str) -> None:
    with pytest.raises(BadRequestError):
        parse_kms_uri(uri)

"""Parsing KMS key URIs exactly as cosign (sigstore/sigstore ``pkg/signature/kms``) accepts them, with errors that
name the scheme and the part that is wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sigward.errors import BadRequestError

Scheme = Literal["awskms", "gcpkms", "azurekms", "hashivault"]
SCHEMES: tuple[Scheme, ...] = ("awskms", "gcpkms", "azurekms", "hashivault")
# No real key reference comes near this; bound the work a hostile policy string can cause.
MAX_URI_LENGTH = 1024

_AWS_UUID = r"m?r?k?-?[A-Fa-f0-9]{8}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{12}"
_AWS_ARN = r"arn:(?:aws|aws-cn|aws-us-gov):kms:(?P<region>[a-z0-9-]+):\d{12}:"
_AWS_KEY_ID = re.compile(rf"^(?P<id>{_AWS_UUID})$")
_AWS_KEY_ARN = re.compile(rf"^(?P<id>{_AWS_ARN}key/{_AWS_UUID})$")
_AWS_ALIAS = re.compile(r"^(?P<id>alias/[A-Za-z0-9:/_-]+)$")
_AWS_ALIAS_ARN = re.compile(rf"^(?P<id>{_AWS_ARN}alias/[A-Za-z0-9:/_-]+)$")
_GCP = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/keyRings/(?P<ring>[^/]+)"
    r"/cryptoKeys/(?P<key>[^/]+)(?:/(?:cryptoKeyVersions|versions)/(?P<version>[^/]+))?$"
)
_AZURE = re.compile(r"^(?P<vault>[^/]+)/(?P<key>[^/]+)(?:/(?P<version>[^/]+))?$")
_AZURE_KEY_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VAULT = re.compile(r"^[\w-]+$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")


@dataclass(frozen=True)
class KmsKeyRef:
    """A parsed key URI. ``key`` is what the backend's API calls the key (AWS key id/alias/ARN, GCP crypto key
    resource name, Key Vault key name, Vault transit key name)."""

    scheme: Scheme
    uri: str
    key: str
    endpoint: str = ""  # AWS: host[:port] of a custom endpoint; Azure: the vault host
    region: str = ""  # AWS: from the ARN
    version: str = ""  # GCP / Azure: a pinned key version

    @property
    def vault_url(self) -> str:
        return f"https://{self.endpoint}" if self.scheme == "azurekms" else ""

    def __str__(self) -> str:
        return self.uri


def is_kms_uri(value: str) -> bool:
    head = value.strip().split("://", 1)[0]
    return "://" in value and head in SCHEMES


def parse_kms_uri(uri: str) -> KmsKeyRef:
    text = uri.strip()
    if len(text) > MAX_URI_LENGTH:
        raise BadRequestError(f"KMS key reference longer than {MAX_URI_LENGTH} characters")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in SCHEMES:
        raise BadRequestError(
            f"unsupported key reference {text[:80]!r}: expected one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    if scheme == "awskms":
        return _aws(text, rest)
    if scheme == "gcpkms":
        return _gcp(text, rest)
    if scheme == "azurekms":
        return _azure(text, rest)
    return _vault(text, rest)


def _aws(uri: str, rest: str) -> KmsKeyRef:
    endpoint, slash, key = rest.partition("/")
    if not slash:
        raise BadRequestError(
            f"awskms: {uri!r} must be awskms://[ENDPOINT]/[ID|ALIAS|ARN] (the key part is missing; "
            "use awskms:/// for the ambient endpoint)"
        )
    if endpoint and not _HOST.fullmatch(endpoint):
        raise BadRequestError(f"awskms: endpoint {endpoint!r} in {uri!r} is not a host[:port]")
    for pattern in (_AWS_KEY_ID, _AWS_KEY_ARN, _AWS_ALIAS, _AWS_ALIAS_ARN):
        match = pattern.fullmatch(key)
        if match:
            region = match.groupdict().get("region") or ""
            return KmsKeyRef(scheme="awskms", uri=uri, key=match.group("id"), endpoint=endpoint, region=region)
    if key.startswith("arn:"):
        what = "ARN (expected arn:aws[-cn|-us-gov]:kms:REGION:ACCOUNT:key/UUID or :alias/NAME)"
    elif key.startswith("alias"):
        what = "alias (expected alias/NAME)"
    else:
        what = "key id (expected a key UUID, alias/NAME or a key or alias ARN)"
    raise BadRequestError(f"awskms: invalid {what}: {key!r} in {uri!r}")


def _gcp(uri: str, rest: str) -> KmsKeyRef:
    match = _GCP.fullmatch(rest)
    if not match:
        raise BadRequestError(
            f"gcpkms: {uri!r} must be gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]"
        )
    version = match.group("version") or ""
    if version and not version.isdigit():
        raise BadRequestError(f"gcpkms: key version {version!r} in {uri!r} is not a number")
    key = rest if not version else rest[: rest.rfind("/", 0, rest.rfind("/"))]
    return KmsKeyRef(scheme="gcpkms", uri=uri, key=key, version=version)


def _azure(uri: str, rest: str) -> KmsKeyRef:
    match = _AZURE.fullmatch(rest)
    if not match:
        raise BadRequestError(f"azurekms: {uri!r} must be azurekms://VAULT.vault.azure.net/KEY[/VERSION]")
    vault, key, version = match.group("vault"), match.group("key"), match.group("version") or ""
    if not _HOST.fullmatch(vault):
        raise BadRequestError(f"azurekms: vault host {vault!r} in {uri!r} is not a host name")
    if not _AZURE_KEY_NAME.fullmatch(key):
        raise BadRequestError(f"azurekms: key name {key!r} in {uri!r} may hold only letters, digits and dashes")
    if version and not re.fullmatch(r"[0-9A-Za-z]{1,64}", version):
        raise BadRequestError(f"azurekms: key version {version!r} in {uri!r} is not a Key Vault version id")
    return KmsKeyRef(scheme="azurekms", uri=uri, key=key, endpoint=vault, version=version)


def _vault(uri: str, rest: str) -> KmsKeyRef:
    if not _VAULT.fullmatch(rest):
        raise BadRequestError(
            f"hashivault: {uri!r} must be hashivault://KEY with a transit key name of letters, digits, '_' or '-'"
        )
    return KmsKeyRef(scheme="hashivault", uri=uri, key=rest)

"""KMS key URIs in cosign's grammar, with errors that name the scheme and the wrong part."""

from __future__ import annotations

import pytest

from sigward.errors import BadRequestError
from sigward.policy.kms_uri import is_kms_uri, parse_kms_uri

UUID = "1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = f"arn:aws:kms:us-east-2:111122223333:key/{UUID}"


@pytest.mark.parametrize(
    ("uri", "fields"),
    [
        (f"awskms:///{UUID}", {"scheme": "awskms", "key": UUID, "endpoint": "", "region": ""}),
        (f"awskms://localhost:4566/{UUID}", {"key": UUID, "endpoint": "localhost:4566"}),
        (f"awskms:///{ARN}", {"key": ARN, "region": "us-east-2"}),
        (f"awskms://localhost:4566/{ARN}", {"key": ARN, "endpoint": "localhost:4566", "region": "us-east-2"}),
        ("awskms:///alias/ExampleAlias", {"key": "alias/ExampleAlias", "region": ""}),
        (
            "awskms:///arn:aws:kms:eu-west-1:111122223333:alias/cosign",
            {"key": "arn:aws:kms:eu-west-1:111122223333:alias/cosign", "region": "eu-west-1"},
        ),
        (f"awskms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/{UUID}", {"region": "us-gov-west-1"}),
        (f"awskms:///arn:aws-cn:kms:cn-north-1:111122223333:key/{UUID}", {"region": "cn-north-1"}),
        (f"awskms:///mrk-{UUID.replace('-', '')}", {"key": f"mrk-{UUID.replace('-', '')}"}),
        (
            "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k",
            {"scheme": "gcpkms", "key": "projects/p/locations/global/keyRings/r/cryptoKeys/k", "version": ""},
        ),
        (
            "gcpkms://projects/p/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
            {"key": "projects/p/locations/us/keyRings/r/cryptoKeys/k", "version": "3"},
        ),
        ("gcpkms://projects/p/locations/us/keyRings/r/cryptoKeys/k/versions/12", {"version": "12"}),
        (
            "azurekms://myvault.vault.azure.net/cosign",
            {"scheme": "azurekms", "endpoint": "myvault.vault.azure.net", "key": "cosign", "version": ""},
        ),
        (
            "azurekms://myvault.vault.azure.net/cosign/0123456789abcdef0123456789abcdef",
            {"version": "0123456789abcdef0123456789abcdef"},
        ),
        ("azurekms://127.0.0.1:8443/cosign", {"endpoint": "127.0.0.1:8443"}),
        ("hashivault://cosign-key_1", {"scheme": "hashivault", "key": "cosign-key_1"}),
    ],
)
def test_valid(uri: str, fields: dict[str, str]) -> None:
    ref = parse_kms_uri(uri)
    for name, value in fields.items():
        assert getattr(ref, name) == value, name
    assert str(ref) == uri
    assert is_kms_uri(uri)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("awskms://alias/x", "awskms: invalid"),
        ("awskms://", "the key part is missing"),
        ("awskms:///not-a-key", "invalid key id"),
        ("awskms:///arn:aws:kms:us-east-1:12:key/x", "invalid ARN"),
        ("awskms:///alias/", "invalid alias"),
        ("awskms://bad host/alias/x", "endpoint"),
        ("gcpkms://projects/p/locations/l/keyRings/r", "gcpkms: "),
        ("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/x", "not a number"),
        ("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/extra", "gcpkms: "),
        ("azurekms://vault.vault.azure.net", "azurekms: "),
        ("azurekms://vault.vault.azure.net/bad_name", "key name"),
        ("azurekms://vault.vault.azure.net/k/v/extra", "azurekms: "),
        ("azurekms://va ult/k", "vault host"),
        ("hashivault://a/b", "hashivault: "),
        ("hashivault://", "hashivault: "),
        ("k8s://ns/secret", "unsupported key reference"),
        ("awskms:///alias/" + "x" * 2000, "longer than"),
    ],
)
def test_invalid(uri: str, message: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_kms_uri(uri)
    assert message in str(info.value)


def test_is_kms_uri() -> None:
    assert not is_kms_uri("-----BEGIN PUBLIC KEY-----")
    assert not is_kms_uri("k8s://ns/name")
    assert not is_kms_uri("https://example.com")

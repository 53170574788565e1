"""Push webhook sender authentication: each accepted credential, each way to fail, and no secret in any message."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from sigward.errors import ConfigurationError
from sigward.events import Unauthenticated, authenticate

SECRET = "correct horse battery staple"
BODY = b'{"action":"published","registry_package":{}}'


def _sig(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {SECRET}"},
        {"authorization": f"bearer   {SECRET}"},
        {"Authorization": SECRET},  # Harbor sends its configured value verbatim
        {"X-Sigward-Secret": SECRET},
        {"x-sigward-secret": f" {SECRET} "},
        {"X-Hub-Signature-256": _sig(BODY)},
        {"X-Hub-Signature-256": _sig(BODY).upper().replace("SHA256=", "sha256=")},
        # Behind an IAM-authenticated URL the platform owns Authorization; the secret travels in its own header.
        {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.id-token", "X-Sigward-Secret": SECRET},
    ],
)
def test_accepted_credentials(headers: dict[str, str]) -> None:
    authenticate(headers, BODY, secret=SECRET)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "push webhook: no credentials (send Authorization, X-Sigward-Secret or X-Hub-Signature-256)"),
        ({"Content-Type": "application/json"}, "push webhook: no credentials"),
        ({"Authorization": "Bearer wrong"}, "push webhook: Authorization does not carry the push secret"),
        ({"Authorization": f"Basic {SECRET}"}, "push webhook: Authorization does not carry the push secret"),
        ({"Authorization": f"Bearer {SECRET}x"}, "push webhook: Authorization does not carry the push secret"),
        ({"X-Sigward-Secret": SECRET[:-1]}, "push webhook: X-Sigward-Secret does not carry the push secret"),
        ({"X-Hub-Signature-256": _sig(BODY, "forged")}, "push webhook: X-Hub-Signature-256 does not match the body"),
        ({"X-Hub-Signature-256": _sig(BODY + b" ")}, "push webhook: X-Hub-Signature-256 does not match the body"),
        ({"X-Hub-Signature-256": _sig(BODY)[7:]}, "push webhook: X-Hub-Signature-256 does not match the body"),
        ({"X-Hub-Signature-256": "sha1=" + "0" * 40}, "push webhook: X-Hub-Signature-256 does not match the body"),
        (
            {"Authorization": "Bearer nope", "X-Hub-Signature-256": "sha256=00"},
            "push webhook: Authorization / X-Hub-Signature-256 does not carry the push secret",
        ),
    ],
)
def test_refused_credentials(headers: dict[str, str], message: str) -> None:
    with pytest.raises(Unauthenticated) as err:
        authenticate(headers, BODY, secret=SECRET)
    assert str(err.value).startswith(message)
    assert SECRET not in str(err.value)
    assert SECRET[:8] not in str(err.value)


def test_hmac_is_over_the_raw_body() -> None:
    original = b'{"a": 1}'
    reencoded = b'{"a":1}'
    authenticate({"X-Hub-Signature-256": _sig(original)}, original, secret=SECRET)
    with pytest.raises(Unauthenticated):
        authenticate({"X-Hub-Signature-256": _sig(original)}, reencoded, secret=SECRET)


def test_non_ascii_header_values_do_not_crash() -> None:
    with pytest.raises(Unauthenticated):
        authenticate({"Authorization": "Bearer \udcff\u00e9"}, BODY, secret=SECRET)
    authenticate({"X-Sigward-Secret": "pässwörd"}, BODY, secret="pässwörd")


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        authenticate({"Authorization": "Bearer "}, BODY, secret="")

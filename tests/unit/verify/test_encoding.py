"""The one base64 rule for fields of hostile documents (sigward.verify.encoding), and each caller's wording."""

from __future__ import annotations

import pytest

from sigward.errors import ConfigurationError, SigwardError, VerificationFailure
from sigward.verify.encoding import decode_base64

MISSING, INVALID = "x missing", "x is not base64"


@pytest.mark.parametrize(
    ("value", "any_alphabet", "expected"),
    [
        ("aGk=", False, b"hi"),
        ("aGk=", True, b"hi"),
        ("", False, b""),
        ("-_8", True, b"\xfb\xff"),  # URL-safe, unpadded: DSSE and Rekor documents carry it
        ("+/8=", True, b"\xfb\xff"),
    ],
)
def test_decodes(value: str, any_alphabet: bool, expected: bytes) -> None:
    assert decode_base64(value, any_alphabet=any_alphabet, missing=MISSING, invalid=INVALID) == expected


@pytest.mark.parametrize(
    ("value", "any_alphabet", "message"),
    [
        (None, False, "x missing"),
        (42, True, "x missing"),
        ({"a": 1}, False, "x missing"),
        ("-_8", False, "x is not base64"),  # URL-safe only when the caller accepts it
        ("aGk", False, "x is not base64"),  # unpadded standard: strict callers refuse it
        ("a b=", True, "x is not base64"),
        ("é===", True, "x is not base64"),  # non-ASCII str: ValueError inside, a verdict outside
        ("a", True, "x is not base64"),
    ],
)
def test_refuses_with_the_callers_words(value: object, any_alphabet: bool, message: str) -> None:
    with pytest.raises(VerificationFailure) as info:
        decode_base64(value, any_alphabet=any_alphabet, missing=MISSING, invalid=INVALID)
    assert info.value.message == message


def test_the_callers_error_type() -> None:
    with pytest.raises(ConfigurationError, match="x is not base64"):
        decode_base64("!!", error=ConfigurationError, missing=MISSING, invalid=INVALID)
    with pytest.raises(SigwardError) as info:
        decode_base64(None, error=ConfigurationError, missing=MISSING, invalid=INVALID)
    assert not isinstance(info.value, VerificationFailure)

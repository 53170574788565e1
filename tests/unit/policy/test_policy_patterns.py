"""Non-RE2 patterns are refused at policy load with their YAML path (issue 20 §1): keyless subjectRegExp/issuerRegExp
and literal patterns of regex_match/regex_replace_all in attestation conditions and validate.deny."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.errors import PolicyError
from sigward.policy.loader import load_policy_text
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry

PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n"
    "5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n"
    "-----END PUBLIC KEY-----\n"
)
KEYLESS_PATH = "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless"
COND_PATH = "spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0]"
DENY_PATH = "spec.rules[0].verifyImages[0].validate.deny.conditions.any[0]"

NON_RE2 = [
    (r"(a)\1", "backreferences"),
    (r"foo(?=bar)", "look-ahead"),
    (r"(?<=foo)bar", "look-behind"),
    (r"(?<!foo)bar", "look-behind"),
    (r"a++", "possessive"),
    (r"(?>a+)", "atomic groups"),
    (r"x\C", "any byte"),
]


def keyless_policy(field: str, pattern: str) -> dict[str, Any]:
    keyless = {
        "rekor": {"url": "https://rekor.sigstore.dev"},
        "issuer": "https://token.actions.githubusercontent.com",
        field: pattern,
    }
    return cluster_policy("p", [key_verification(["ghcr.io/org/*"], [{"keyless": keyless}])])


def condition_policy(key: str) -> dict[str, Any]:
    iv = key_verification(["ghcr.io/org/*"], [keys_entry(PEM)])
    iv["attestations"] = [
        {
            "type": "https://slsa.dev/provenance/v0.2",
            "conditions": [{"all": [{"key": key, "operator": "Equals", "value": True}]}],
        }
    ]
    return cluster_policy("p", [iv])


def deny_policy(key: str) -> dict[str, Any]:
    iv = key_verification(["ghcr.io/org/*"], [keys_entry(PEM)])
    iv["validate"] = {"deny": {"conditions": {"any": [{"key": key, "operator": "Equals", "value": True}]}}}
    return cluster_policy("p", [iv])


def problems_of(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as err:
        load_policy_text(dump(doc), "policy.yaml")
    return [(p.path, p.message) for p in err.value.problems]


@pytest.mark.parametrize(("pattern", "reason"), NON_RE2)
@pytest.mark.parametrize("field", ["subjectRegExp", "issuerRegExp"])
def test_keyless_regexp_refused_with_path(field: str, pattern: str, reason: str) -> None:
    problems = problems_of(keyless_policy(field, pattern))
    assert [path for path, _ in problems] == [f"{KEYLESS_PATH}.{field}"]
    assert reason in problems[0][1] and "RE2" in problems[0][1]


@pytest.mark.parametrize(("pattern", "reason"), NON_RE2)
def test_condition_regex_literal_refused_with_path(pattern: str, reason: str) -> None:
    problems = problems_of(condition_policy(f"{{{{ regex_match('{pattern}', builder.id) }}}}"))
    assert [path for path, _ in problems] == [f"{COND_PATH}.key"]
    assert reason in problems[0][1]


@pytest.mark.parametrize(("pattern", "reason"), NON_RE2)
def test_deny_regex_literal_refused_with_path(pattern: str, reason: str) -> None:
    problems = problems_of(deny_policy(f"{{{{ regex_replace_all('{pattern}', x, '') == '' }}}}"))
    assert [path for path, _ in problems] == [f"{DENY_PATH}.key"]
    assert reason in problems[0][1]


@pytest.mark.parametrize(
    "doc",
    [
        keyless_policy("subjectRegExp", r"^https://github\.com/org/.+@refs/tags/v[0-9]+$"),
        keyless_policy("issuerRegExp", r"(?i)^https://token\.actions\.githubusercontent\.com$"),
        condition_policy(r"{{ regex_match('^v[[:digit:]]+(?P<minor>\.[0-9]+)?\z', tag) }}"),
        condition_policy("{{ regex_match(pattern_from_attestation, tag) }}"),  # checked when evaluated
        deny_policy(r"{{ regex_match('(a+)+$', tag) }}"),  # pathological in Python, linear in RE2
    ],
)
def test_re2_patterns_load(doc: dict[str, Any]) -> None:
    policies = load_policy_text(dump(doc), "policy.yaml")
    assert policies

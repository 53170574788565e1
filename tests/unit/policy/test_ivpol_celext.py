"""The Kubernetes CEL libraries in the IVPOL environment (sigward.policy.ivpol.celext): each function's results and
its refusals (a CEL error naming the problem, never a wrong value), through the real compile + evaluate path."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.policy.ivpol.cel import CelError, compile_expression


def run(expression: str) -> Any:
    return compile_expression(expression, "spec.validations[0].expression", kind="image").evaluate(
        {
            "object": None,
            "oldObject": None,
            "request": {},
            "namespaceObject": None,
            "variables": {},
            "images": {},
            "attestors": {},
            "attestations": {},
            "image": {},
        }
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # lists
        ("[1, 2, 2, 3].isSorted()", True),
        ("[3, 1].isSorted()", False),
        ("['a', 'b'].isSorted()", True),
        ("[].isSorted()", True),
        ("[1, 2, 3].sum()", 6),
        ("[1.5, 2.0].sum()", 3.5),
        ("[].sum()", 0),
        ("[3, 1, 2].min()", 1),
        ("['b', 'a'].max()", "b"),
        # sets
        ("sets.contains([1, 2, 3], [3, 1])", True),
        ("sets.contains([1, 2], [4])", False),
        ("sets.equivalent([1, 2, 2], [2, 1])", True),
        ("sets.equivalent([1], [1, 2])", False),
        ("sets.intersects([1, 2], [2, 9])", True),
        ("sets.intersects([1, 2], [])", False),
        # regex (RE2)
        ("'abc 123 def 456'.find('[0-9]+')", "123"),
        ("'abc'.find('[0-9]+')", ""),
        ("'abc 123 def 456'.findAll('[0-9]+')", ["123", "456"]),
        ("'a1b2c3'.findAll('[0-9]', 2)", ["1", "2"]),
        # url
        ("url('https://user@example.com:8443/a%20b?x=1&x=2').getScheme()", "https"),
        ("url('https://example.com:8443/path').getHost()", "example.com:8443"),
        ("url('https://example.com:8443/path').getHostname()", "example.com"),
        ("url('https://example.com:8443/path').getPort()", "8443"),
        ("url('https://example.com/a%20b').getEscapedPath()", "/a%20b"),
        ("url('https://example.com/?x=1&x=2&y=z').getQuery()", {"x": ["1", "2"], "y": ["z"]}),
        ("url('/relative/path').getHost()", ""),
        ("isURL('https://example.com')", True),
        ("isURL('not a url')", False),
        # ip / cidr
        ("ip('10.0.0.1').family()", 4),
        ("ip('::1').family()", 6),
        ("ip('127.0.0.1').isLoopback()", True),
        ("ip('0.0.0.0').isUnspecified()", True),
        ("isIP('1.2.3.4')", True),
        ("isIP('1.2.3')", False),
        ("isIP('::ffff:1.2.3.4')", False),
        ("cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))", True),
        ("cidr('10.0.0.0/8').containsIP('11.1.2.3')", False),
        ("cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')", True),
        ("cidr('10.0.0.0/16').containsCIDR(cidr('10.0.0.0/8'))", False),
        ("cidr('10.0.0.0/8').containsIP('::1')", False),
        ("cidr('192.168.1.5/24').prefixLength()", 24),
        ("cidr('192.168.1.5/24').ip().family()", 4),
        ("cidr('192.168.1.5/24').masked().containsIP('192.168.1.200')", True),
        ("isCIDR('10.0.0.0/8')", True),
        ("isCIDR('10.0.0.0')", False),
        # quantity
        ("quantity('1Gi').compareTo(quantity('1G'))", 1),
        ("quantity('1000m').compareTo(quantity('1'))", 0),
        ("quantity('500Mi').isLessThan(quantity('1Gi'))", True),
        ("quantity('2').isGreaterThan(quantity('1500m'))", True),
        ("quantity('1.5').asApproximateFloat()", 1.5),
        ("quantity('1k').asInteger()", 1000),
        ("quantity('1e3').asInteger()", 1000),
        ("quantity('100m').isInteger()", False),
        ("quantity('-5').sign()", -1),
        ("quantity('1Gi').add(quantity('512Mi')).compareTo(quantity('1.5Gi'))", 0),
        ("quantity('1').add(2).asInteger()", 3),
        ("quantity('1').sub(quantity('250m')).asApproximateFloat()", 0.75),
        ("quantity('1').sub(3).sign()", -1),
        ("quantity('100m').add(quantity('100m')).isInteger()", False),
        # semver (Kubernetes' semver library)
        ("semver('1.2.3').major() == 1 && semver('1.2.3').minor() == 2 && semver('1.2.3').patch() == 3", True),
        ("isSemver('1.2.3-rc.1+build.5')", True),
        ("isSemver('v1.2')", False),
        ("isSemver('v1.2', true)", True),
        ("isSemver('01.2.3')", False),
        ("isSemver('1.2.3-01')", False),  # numeric prerelease identifiers have no leading zeros
        ("semver('v01.2', true).compareTo(semver('1.2.0'))", 0),
        ("semver('1.10.0').isGreaterThan(semver('1.9.9'))", True),
        ("semver('1.0.0-rc.1').isLessThan(semver('1.0.0'))", True),
        ("semver('1.0.0-alpha').isLessThan(semver('1.0.0-alpha.1'))", True),
        ("semver('1.0.0-alpha.beta').isGreaterThan(semver('1.0.0-alpha.1'))", True),
        ("semver('1.0.0-2').isLessThan(semver('1.0.0-10'))", True),
        ("semver('1.0.0+a').compareTo(semver('1.0.0+b'))", 0),  # build metadata does not count
        ("isQuantity('1Gi')", True),
        ("isQuantity('1 Gi')", False),
    ],
)
def test_kubernetes_library_function(expression: str, expected: Any) -> None:
    assert run(expression) == expected


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("[].min()", "min called on empty list"),
        ("['a', 1].isSorted()", "not comparable"),
        ("['a', 'b'].sum()", "must be numbers"),
        ("'abc'.find('(')", "find"),
        ("url('not a url')", "URL parse error"),
        ("ip('300.1.1.1')", "parse error"),
        ("cidr('10.0.0.0')", "parse error"),
        ("quantity('1 Gi')", "quantities must match"),
        ("quantity('100m').asInteger()", "cannot convert value to integer"),
        ("semver('1.2')", "could not parse '1.2' as semver"),
        ("semver('1.2.3').compareTo(quantity('1'))", "not a semver value"),
        ("quantity('1').compareTo(semver('1.2.3'))", "not a quantity value"),
        ("semver('1.2.3').add(1)", "not a quantity value"),
        ("quantity('1').major()", "not a semver value"),
        ("quantity('1E70').add(1)", "out of range"),
        ("url('https://a.example').family()", "not a ip value"),
        ("{'a': 1}.getHost()", "not a url value"),
    ],
)
def test_kubernetes_library_refusal(expression: str, error: str) -> None:
    with pytest.raises(CelError) as info:
        run(expression)
    assert info.value.message.startswith("spec.validations[0].expression: ")
    assert error in info.value.message, info.value.message

"""The Kubernetes CEL extension libraries Kyverno's expressions use (k8s.io/apiserver/pkg/cel/library), on Python's
stdlib, as far as cel-expr-python lets a function be registered.

What each value is: ``url()``, ``ip()``, ``cidr()`` and ``quantity()`` give a map tagged with the library's name
(cel-expr-python registers no opaque types), so their methods type-check only on maps and check the tag at run time;
a wrong value or input is a CEL error naming the function. Regular expressions are RE2 (as Kubernetes'), via
:func:`sigward.patterns.compile_re2`.

List ``indexOf``/``lastIndexOf`` share their names with cel-cpp's strings extension, and a name cannot be declared
twice in one declaration list: :func:`list_index_extension` is a separate extension registered after the strings
extension, which adds the list overloads to cel-cpp's string ones. The list functions return ``dyn`` (cel-go gives
the element type). ``compareTo``/``isLessThan``/``isGreaterThan`` serve both quantities
and semvers (one declaration per name): the value's tag picks the comparison, two different kinds are an error."""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from sigward.errors import SigwardError

# findAll's results when no limit is given: a regexp over a hostile 3 MiB request must not build a huge list.
MAX_FIND_ALL = 10_000
_TAG = "__cel_kind"


class ExtensionError(SigwardError):
    """A Kubernetes library function refused its input (becomes a CEL error)."""


# -- lists -------------------------------------------------------------------------------------------------------


def _comparable(values: Sequence[Any], fn: str) -> list[Any]:
    items = list(values)
    kinds = {type(v) if not isinstance(v, bool) else bool for v in items}
    if kinds - {int, float} and len(kinds) > 1:
        raise ExtensionError(f"{fn}: list elements are not comparable")
    return items


def is_sorted(values: Sequence[Any]) -> bool:
    items = _comparable(values, "isSorted")
    return all(a <= b for a, b in itertools.pairwise(items))


def list_sum(values: Sequence[Any]) -> Any:
    items = _comparable(values, "sum")
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in items):
        raise ExtensionError("sum: list elements must be numbers")
    return sum(items)


def list_min(values: Sequence[Any]) -> Any:
    items = _comparable(values, "min")
    if not items:
        raise ExtensionError("min called on empty list")
    return min(items)


def list_max(values: Sequence[Any]) -> Any:
    items = _comparable(values, "max")
    if not items:
        raise ExtensionError("max called on empty list")
    return max(items)


def cel_equal(a: Any, b: Any) -> bool:
    """CEL's heterogeneous equality on plain values: numbers compare by value (``1 == 1.0``), a bool equals only a
    bool (Python's ``True == 1`` is not CEL's), other kinds differ; lists and maps element-wise."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(cel_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(
            any(cel_equal(k, k2) and cel_equal(v, v2) for k2, v2 in b.items()) for k, v in a.items()
        )
    if type(a) is not type(b) and not (isinstance(a, (bytes, bytearray)) and isinstance(b, (bytes, bytearray))):
        return False
    return bool(a == b)


def _contains(values: Sequence[Any], item: Any) -> bool:
    return any(cel_equal(v, item) for v in values)


def list_index_of(values: Sequence[Any], item: Any) -> int:
    """``<list>.indexOf(x)``: the first index of an element equal to ``x``, or -1 (Kubernetes' lists library)."""
    return next((i for i, v in enumerate(values) if cel_equal(v, item)), -1)


def list_last_index_of(values: Sequence[Any], item: Any) -> int:
    """``<list>.lastIndexOf(x)``: the last index of an element equal to ``x``, or -1."""
    items = list(values)
    return next((i for i in range(len(items) - 1, -1, -1) if cel_equal(items[i], item)), -1)


# -- sets ----------------------------------------------------------------------------------------------------------


def sets_contains(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return all(_contains(a, x) for x in b)


def sets_equivalent(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return sets_contains(a, b) and sets_contains(b, a)


def sets_intersects(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return any(_contains(a, x) for x in b)


# -- regex -----------------------------------------------------------------------------------------------------------


def _regex(pattern: str, fn: str) -> Any:
    from sigward.patterns import PatternError, compile_re2

    try:
        return compile_re2(pattern, path=fn)
    except PatternError as exc:
        raise ExtensionError(f"{fn}: {exc.message}") from None


def find(text: str, pattern: str) -> str:
    """The first match of ``pattern`` in ``text``, or ``""``."""
    from sigward.patterns import go_text

    for m in _regex(pattern, "find").finditer(go_text(text)):
        return str(m.groups[0] or "")
    return ""


def find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    """Every match (at most ``limit``; negative = all, capped at :data:`MAX_FIND_ALL`)."""
    from sigward.patterns import go_text

    cap = MAX_FIND_ALL if limit < 0 else min(limit, MAX_FIND_ALL)
    out: list[str] = []
    for m in _regex(pattern, "findAll").finditer(go_text(text)):
        if len(out) >= cap:
            break
        out.append(str(m.groups[0] or ""))
    return out


# -- tagged values -----------------------------------------------------------------------------------------------


def _tagged(kind: str, **fields: Any) -> dict[str, Any]:
    return {_TAG: kind, **fields}


def _untag(value: Any, kind: str, fn: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get(_TAG) != kind:
        raise ExtensionError(f"{fn}: not a {kind} value")
    return value


def _is(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            parse(text)
        except ExtensionError:
            return False
        return True

    return check


# -- url -------------------------------------------------------------------------------------------------------------


def url(text: str) -> dict[str, Any]:
    """Kubernetes' ``url()``: an absolute URI or an absolute path (Go's ``url.ParseRequestURI``)."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ExtensionError(f"URL parse error during conversion from string: {exc}") from None
    if not (parts.scheme or text.startswith("/")) or any(c in text for c in " \t\n"):
        raise ExtensionError(f"URL parse error during conversion from string: invalid URI for request: {text[:200]}")
    host = parts.hostname or ""
    return _tagged(
        "url",
        scheme=parts.scheme,
        host=parts.netloc.rpartition("@")[2],
        hostname=host,
        port="" if port is None else str(port),
        path=parts.path,
        query=parts.query,
    )


def _url_getter(key: str) -> Callable[[Any], str]:
    return lambda value: str(_untag(value, "url", "url")[key])


def url_query(value: Any) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return {k: list(v) for k, v in parse_qs(_untag(value, "url", "getQuery")["query"]).items()}


# -- ip / cidr -------------------------------------------------------------------------------------------------------


def ip(text: str) -> dict[str, Any]:
    """Kubernetes' ``ip()``: IPv4 or IPv6, no zone, no IPv4-mapped IPv6."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ExtensionError(f"IP Address {text[:100]!r} parse error during conversion from string") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise ExtensionError("IPv4-mapped IPv6 address is not allowed")
    return _tagged("ip", value=str(addr))


def _addr(value: Any, fn: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, str):
        value = ip(value)
    return ipaddress.ip_address(_untag(value, "ip", fn)["value"])


def ip_family(value: Any) -> int:
    return _addr(value, "family").version


def ip_is_loopback(value: Any) -> bool:
    return _addr(value, "isLoopback").is_loopback


def ip_is_unspecified(value: Any) -> bool:
    return _addr(value, "isUnspecified").is_unspecified


def cidr(text: str) -> dict[str, Any]:
    """Kubernetes' ``cidr()``: an address and prefix length (host bits may be set, as Go's ParsePrefix)."""
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise ExtensionError(f"network address {text[:100]!r} parse error during conversion from string") from None
    if "/" not in text:
        raise ExtensionError(f"network address {text[:100]!r} parse error during conversion from string")
    return _tagged("cidr", value=str(iface))


def _net(value: Any, fn: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if isinstance(value, str):
        value = cidr(value)
    return ipaddress.ip_interface(_untag(value, "cidr", fn)["value"])


def cidr_contains_ip(value: Any, other: Any) -> bool:
    return _addr(other, "containsIP") in _net(value, "containsIP").network


def cidr_contains_cidr(value: Any, other: Any) -> bool:
    inner, outer = _net(other, "containsCIDR").network, _net(value, "containsCIDR").network
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def cidr_prefix_length(value: Any) -> int:
    return _net(value, "prefixLength").network.prefixlen


def cidr_ip(value: Any) -> dict[str, Any]:
    return _tagged("ip", value=str(_net(value, "ip").ip))


def cidr_masked(value: Any) -> dict[str, Any]:
    return _tagged("cidr", value=str(_net(value, "masked").network))


# -- quantity --------------------------------------------------------------------------------------------------------

_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?")
_SUFFIX = {
    "": Decimal(1),
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
# Longest quantity text read: Kubernetes' own parser refuses absurd magnitudes; this bounds Decimal work.
MAX_QUANTITY_CHARS = 64


def _quantity_value(text: str) -> Decimal:
    m = _QUANTITY.fullmatch(text) if len(text) <= MAX_QUANTITY_CHARS else None
    if m is None:
        raise ExtensionError(f"quantities must match the regular expression: {text[:100]!r} does not")
    number, suffix = m.group(1), m.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * (Decimal(10) ** int(suffix[1:]))
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, OverflowError):
        raise ExtensionError(f"quantity {text[:100]!r} is out of range") from None


def quantity(text: str) -> dict[str, Any]:
    _quantity_value(text)
    return _tagged("quantity", value=text)


def _q(value: Any, fn: str) -> Decimal:
    return _quantity_value(str(_untag(value, "quantity", fn)["value"]))


def quantity_compare(a: Any, b: Any) -> int:
    x, y = _q(a, "compareTo"), _q(b, "compareTo")
    return (x > y) - (x < y)


def _quantity_text(value: Decimal) -> dict[str, Any]:
    """A computed quantity as a tagged value whose text parses back (plain decimal, no exponent)."""
    text = format(value.normalize(), "f") if value != value.to_integral_value() else str(int(value))
    if len(text) > MAX_QUANTITY_CHARS:
        raise ExtensionError("quantity result is out of range")
    return _tagged("quantity", value=text)


def _operand(value: Any, fn: str) -> Decimal:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return _q(value, fn)


def quantity_add(a: Any, b: Any) -> dict[str, Any]:
    return _quantity_text(_q(a, "add") + _operand(b, "add"))


def quantity_sub(a: Any, b: Any) -> dict[str, Any]:
    return _quantity_text(_q(a, "sub") - _operand(b, "sub"))


# -- semver (k8s.io/apiserver/pkg/cel/library/semverlib.go: blang/semver, strict unless normalized) ---------------

_SEMVER = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
# Longest version text read (bounds the regex and the prerelease comparison).
MAX_SEMVER_CHARS = 256


def _normalize_semver(text: str) -> str:
    """Kubernetes' ``normalize``: drop a leading ``v``, fill missing minor/patch with 0, strip leading zeros."""
    text = text.removeprefix("v")
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+){0,2})([-+].*)?", text, re.S)
    if m is None:
        return text
    parts = [str(int(p)) for p in m.group(1).split(".")]
    return ".".join(parts + ["0"] * (3 - len(parts))) + (m.group(2) or "")


def _parse_semver(text: str, normalize: bool = False) -> tuple[int, int, int, tuple[str, ...]]:
    if normalize:
        text = _normalize_semver(text)
    m = _SEMVER.fullmatch(text) if len(text) <= MAX_SEMVER_CHARS else None
    if m is None:
        raise ExtensionError(f"could not parse {text[:100]!r} as semver")
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), pre


def semver(text: str, normalize: bool = False) -> dict[str, Any]:
    major, minor, patch, pre = _parse_semver(text, normalize)
    return _tagged("semver", major=major, minor=minor, patch=patch, pre=list(pre))


def is_semver(text: str, normalize: bool = False) -> bool:
    try:
        _parse_semver(text, normalize)
    except ExtensionError:
        return False
    return True


def _sv(value: Any, fn: str) -> tuple[int, int, int, tuple[str, ...]]:
    v = _untag(value, "semver", fn)
    return int(v["major"]), int(v["minor"]), int(v["patch"]), tuple(str(p) for p in v.get("pre") or ())


def _pre_key(pre: tuple[str, ...]) -> tuple[Any, ...]:
    """Semver 2.0 precedence: a release outranks its prereleases; numeric identifiers compare as numbers and rank
    below alphanumeric ones; a longer list of equal identifiers ranks higher."""
    if not pre:
        return (1,)
    return (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre))


def semver_compare(a: Any, b: Any) -> int:
    x, y = _sv(a, "compareTo"), _sv(b, "compareTo")
    kx, ky = (*x[:3], _pre_key(x[3])), (*y[:3], _pre_key(y[3]))
    return (kx > ky) - (kx < ky)


def _sv_part(name: str, value: Any) -> int:
    return int(_untag(value, "semver", name)[name])


def compare(a: Any, b: Any) -> int:
    """``compareTo`` of two quantities or two semvers (their tags say which)."""
    kind = a.get(_TAG) if isinstance(a, dict) else None
    return semver_compare(a, b) if kind == "semver" else quantity_compare(a, b)


def quantity_float(value: Any) -> float:
    return float(_q(value, "asApproximateFloat"))


def quantity_is_integer(value: Any) -> bool:
    v = _q(value, "isInteger")
    return v == v.to_integral_value() and abs(v) < 2**63


def quantity_integer(value: Any) -> int:
    v = _q(value, "asInteger")
    if v != v.to_integral_value() or abs(v) >= 2**63:
        raise ExtensionError("cannot convert value to integer")
    return int(v)


def quantity_sign(value: Any) -> int:
    v = _q(value, "sign")
    return (v > 0) - (v < 0)


# -- declarations ----------------------------------------------------------------------------------------------------


def declarations() -> list[Any]:
    """The function declarations to add to a cel-expr-python environment."""
    from cel_expr_python import cel

    t = cel.Type
    lst, obj = t.List(t.DYN), t.Map(t.STRING, t.DYN)

    def fn(name: str, *overloads: tuple[str, Any, list[Any], bool, Callable[..., Any]]) -> Any:
        return cel.FunctionDecl(
            name,
            [
                cel.Overload(oid, result, args, is_member=member, impl=_wrap(impl))
                for oid, result, args, member, impl in overloads
            ],
        )

    def member(name: str, oid: str, result: Any, args: list[Any], impl: Callable[..., Any]) -> Any:
        return fn(name, (oid, result, args, True, impl))

    def glob(name: str, oid: str, result: Any, args: list[Any], impl: Callable[..., Any]) -> Any:
        return fn(name, (oid, result, args, False, impl))

    return [
        member("isSorted", "k8s_list_is_sorted", t.BOOL, [lst], is_sorted),
        member("sum", "k8s_list_sum", t.DYN, [lst], list_sum),
        member("min", "k8s_list_min", t.DYN, [lst], list_min),
        member("max", "k8s_list_max", t.DYN, [lst], list_max),
        glob("sets.contains", "k8s_sets_contains", t.BOOL, [lst, lst], sets_contains),
        glob("sets.equivalent", "k8s_sets_equivalent", t.BOOL, [lst, lst], sets_equivalent),
        glob("sets.intersects", "k8s_sets_intersects", t.BOOL, [lst, lst], sets_intersects),
        member("find", "k8s_string_find", t.STRING, [t.STRING, t.STRING], find),
        fn(
            "findAll",
            ("k8s_string_find_all", t.List(t.STRING), [t.STRING, t.STRING], True, find_all),
            ("k8s_string_find_all_n", t.List(t.STRING), [t.STRING, t.STRING, t.INT], True, find_all),
        ),
        glob("url", "k8s_url", obj, [t.STRING], url),
        glob("isURL", "k8s_is_url", t.BOOL, [t.STRING], _is(url)),
        *(
            member(name, f"k8s_url_{key}", t.STRING, [obj], _url_getter(key))
            for name, key in (
                ("getScheme", "scheme"),
                ("getHost", "host"),
                ("getHostname", "hostname"),
                ("getPort", "port"),
                ("getEscapedPath", "path"),
            )
        ),
        member("getQuery", "k8s_url_query", t.Map(t.STRING, t.List(t.STRING)), [obj], url_query),
        fn(  # ip('1.2.3.4') and cidr(...).ip(): one declaration (a name is declared once)
            "ip",
            ("k8s_ip", obj, [t.STRING], False, ip),
            ("k8s_cidr_ip", obj, [obj], True, cidr_ip),
        ),
        glob("isIP", "k8s_is_ip", t.BOOL, [t.STRING], _is(ip)),
        member("family", "k8s_ip_family", t.INT, [obj], ip_family),
        member("isLoopback", "k8s_ip_is_loopback", t.BOOL, [obj], ip_is_loopback),
        member("isUnspecified", "k8s_ip_is_unspecified", t.BOOL, [obj], ip_is_unspecified),
        glob("cidr", "k8s_cidr", obj, [t.STRING], cidr),
        glob("isCIDR", "k8s_is_cidr", t.BOOL, [t.STRING], _is(cidr)),
        fn(
            "containsIP",
            ("k8s_cidr_contains_ip", t.BOOL, [obj, obj], True, cidr_contains_ip),
            ("k8s_cidr_contains_ip_string", t.BOOL, [obj, t.STRING], True, cidr_contains_ip),
        ),
        fn(
            "containsCIDR",
            ("k8s_cidr_contains_cidr", t.BOOL, [obj, obj], True, cidr_contains_cidr),
            ("k8s_cidr_contains_cidr_string", t.BOOL, [obj, t.STRING], True, cidr_contains_cidr),
        ),
        member("prefixLength", "k8s_cidr_prefix_length", t.INT, [obj], cidr_prefix_length),
        member("masked", "k8s_cidr_masked", obj, [obj], cidr_masked),
        glob("quantity", "k8s_quantity", obj, [t.STRING], quantity),
        glob("isQuantity", "k8s_is_quantity", t.BOOL, [t.STRING], _is(quantity)),
        member("compareTo", "k8s_compare", t.INT, [obj, obj], compare),
        member("isLessThan", "k8s_less", t.BOOL, [obj, obj], lambda a, b: compare(a, b) < 0),
        member("isGreaterThan", "k8s_greater", t.BOOL, [obj, obj], lambda a, b: compare(a, b) > 0),
        fn(
            "add",
            ("k8s_quantity_add", obj, [obj, obj], True, quantity_add),
            ("k8s_quantity_add_int", obj, [obj, t.INT], True, quantity_add),
        ),
        fn(
            "sub",
            ("k8s_quantity_sub", obj, [obj, obj], True, quantity_sub),
            ("k8s_quantity_sub_int", obj, [obj, t.INT], True, quantity_sub),
        ),
        fn(
            "semver",
            ("k8s_semver", obj, [t.STRING], False, semver),
            ("k8s_semver_normalize", obj, [t.STRING, t.BOOL], False, semver),
        ),
        fn(
            "isSemver",
            ("k8s_is_semver", t.BOOL, [t.STRING], False, is_semver),
            ("k8s_is_semver_normalize", t.BOOL, [t.STRING, t.BOOL], False, is_semver),
        ),
        *(
            member(name, f"k8s_semver_{name}", t.INT, [obj], functools.partial(_sv_part, name))
            for name in ("major", "minor", "patch")
        ),
        member("asApproximateFloat", "k8s_quantity_float", t.DOUBLE, [obj], quantity_float),
        member("isInteger", "k8s_quantity_is_integer", t.BOOL, [obj], quantity_is_integer),
        member("asInteger", "k8s_quantity_integer", t.INT, [obj], quantity_integer),
        member("sign", "k8s_quantity_sign", t.INT, [obj], quantity_sign),
    ]


def list_index_extension() -> Any:
    """List ``indexOf``/``lastIndexOf`` as a cel-expr-python extension: registered after cel-cpp's strings extension
    it adds these overloads to the string ones (in one declaration list the second ``indexOf`` is refused)."""
    from cel_expr_python import cel

    t = cel.Type
    lst = t.List(t.DYN)
    return cel.CelExtension(
        "sigward_k8s_list_index",
        [
            cel.FunctionDecl(
                "indexOf", [cel.Overload("k8s_list_index_of", t.INT, [lst, t.DYN], is_member=True, impl=list_index_of)]
            ),
            cel.FunctionDecl(
                "lastIndexOf",
                [cel.Overload("k8s_list_last_index_of", t.INT, [lst, t.DYN], is_member=True, impl=list_last_index_of)],
            ),
        ],
    )


def _wrap(impl: Callable[..., Any]) -> Callable[..., Any]:
    """A library function's refusal as a plain error text (no Python traceback types reach a message)."""

    def call(*args: Any) -> Any:
        try:
            return impl(*args)
        except ExtensionError as exc:
            raise ValueError(exc.message) from None

    return call

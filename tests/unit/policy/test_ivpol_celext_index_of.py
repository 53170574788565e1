"""``indexOf``/``lastIndexOf`` in the IVPOL environment: Kubernetes' lists library overloads (celext's
list_index_extension) beside cel-cpp's strings extension overloads, both working in one environment, through the real
compile + evaluate path (regression: the list overloads used to be missing because the names were already taken)."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.policy.ivpol.cel import CelError, compile_expression
from sigward.policy.ivpol.celext import cel_equal


def run(expression: str, obj: Any = None) -> Any:
    return compile_expression(expression, "spec.validations[0].expression", kind="request").evaluate(
        {"object": obj, "oldObject": None, "request": {}, "namespaceObject": None, "variables": {}}
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # strings (cel-cpp's strings extension; examples from cel-go's ext/strings docs)
        ("'hello mellow'.indexOf('')", 0),
        ("'hello mellow'.indexOf('ello')", 1),
        ("'hello mellow'.indexOf('jello')", -1),
        ("'hello mellow'.indexOf('', 2)", 2),
        ("'hello mellow'.indexOf('ello', 2)", 7),
        ("'hello mellow'.lastIndexOf('')", 12),
        ("'hello mellow'.lastIndexOf('ello')", 7),
        ("'hello mellow'.lastIndexOf('jello')", -1),
        ("'hello mellow'.lastIndexOf('ello', 6)", 1),
        ("'ありがとう'.indexOf('が')", 2),  # code points, not bytes
        ("'a€b€'.lastIndexOf('€')", 3),
        ("''.indexOf('a')", -1),
        # lists (Kubernetes' lists library docs and more)
        ("[1, 2, 3].indexOf(2)", 1),
        ("['a', 'b', 'b', 'c'].indexOf('b')", 1),
        ("[1.0].indexOf(1.1)", -1),
        ("[].indexOf('string')", -1),
        ("[1, 2, 2, 3].lastIndexOf(2)", 2),
        ("['a', 'b', 'b', 'c'].lastIndexOf('b')", 2),
        ("[1.0].lastIndexOf(1.1)", -1),
        ("[].lastIndexOf('string')", -1),
        ("['x', 'y'].indexOf('z')", -1),
        ("[1, 'a', true].indexOf(true)", 2),  # mixed element types
        ("[1, 'a', true].indexOf('a')", 1),
        ("[1].indexOf(true)", -1),  # a bool is not the int 1 (CEL equality, not Python's)
        ("[true].indexOf(1)", -1),
        ("[1.0, 2].indexOf(1)", 0),  # numbers compare by value
        ("[[1], [2]].indexOf([2])", 1),
        ("[{'a': 1}, {'a': 2}].lastIndexOf({'a': 1})", 0),
        ("[b'ab'].indexOf(b'ab')", 0),
        ("['ab'].indexOf(b'ab')", -1),
    ],
)
def test_index_of(expression: str, expected: Any) -> None:
    assert run(expression) == expected


@pytest.mark.parametrize(
    ("expression", "obj", "expected"),
    [
        # a dyn receiver (request data) dispatches to the string or the list overload at run time
        ("object.name.indexOf('b')", {"name": "abc"}, 1),
        ("object.names.indexOf('b')", {"names": ["a", "b"]}, 1),
        ("object.names.lastIndexOf('a')", {"names": ["a", "b", "a"]}, 2),
        ("object.spec.containers.map(c, c.image).indexOf('nginx')", {"spec": {"containers": [{"image": "nginx"}]}}, 0),
    ],
)
def test_index_of_on_request_data(expression: str, obj: Any, expected: Any) -> None:
    assert run(expression, obj) == expected


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("'hello mellow'.indexOf('ello', 20)", "index out of range"),
        ("'hello mellow'.indexOf('ello', -1)", "index out of range"),
        ("'hello mellow'.lastIndexOf('ello', -1)", "index out of range"),
        ("'abc'.lastIndexOf('a', 10)", "index out of range"),
    ],
)
def test_string_index_out_of_range_is_an_error(expression: str, error: str) -> None:
    with pytest.raises(CelError, match=error):
        run(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "[1, 2].indexOf(1, 0)",  # no offset overload on lists
        "1.indexOf(1)",
        "{'a': 1}.indexOf('a')",
    ],
)
def test_index_of_wrong_receiver_or_arity_fails_to_compile(expression: str) -> None:
    with pytest.raises(CelError, match=r"spec\.validations\[0\]"):
        run(expression)


def test_dyn_receiver_that_is_neither_string_nor_list_is_an_error() -> None:
    with pytest.raises(CelError, match=r"spec\.validations\[0\]"):
        run("object.n.indexOf('a')", {"n": 5})


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (0, False, False),
        ([1, True], [1, True], True),
        ([1], [1, 2], False),
        ({"a": [1]}, {"a": [1.0]}, True),
        ({"a": 1}, {"b": 1}, False),
        ("a", b"a", False),
        (None, None, True),
    ],
)
def test_cel_equal(a: Any, b: Any, equal: bool) -> None:
    assert cel_equal(a, b) is equal


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sets.contains([1, 2], [true])", False),  # regression: Python's `in` said True == 1
        ("sets.intersects([0], [false])", False),
        ("sets.equivalent([1.0, 2], [2, 1])", True),
    ],
)
def test_sets_use_cel_equality(expression: str, expected: bool) -> None:
    assert run(expression) is expected

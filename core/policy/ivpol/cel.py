"""The CEL environment of ImageValidatingPolicies, on Google's cel-cpp (``cel-expr-python``).

Why this engine (README "ImageValidatingPolicy"): it type-checks at compile time as cel-go does (Kyverno reports
type errors when a policy is applied; so does :func:`compile_expression`, with the YAML path), it has the optional
syntax (``?.``/``orValue``) and ``cel.bind`` that Kyverno's samples use, and evaluates in microseconds.

Kyverno's image functions are declared here once with implementations that call the :class:`ImageFunctions` of
the evaluation in progress (a context variable set by :func:`bound`): the verification itself lives in the
service layer (:mod:`sigward.verify.ivpol`), which this module must not import. A function that raises makes the
expression's result a CEL error; the exception is kept on the :class:`EvaluationState` so the caller can tell an
unreachable registry (failurePolicy) from a wrong policy.

Cluster lookups: Kyverno's ``resource`` library (``resource.Get``/``resource.List``, also spelled ``get``/``list``)
reads the cluster data service (:class:`sigward.cluster.data.ClusterData`: shipped manifests, then a live
connection); what it cannot serve is an infrastructure error (failurePolicy decides). Kyverno's ``imagedata.Get`` and
``image.GetMetadata`` read an image's manifest and config through the registry client. Kyverno's ``http`` library
(``http.Get(url[, headers])``, ``http.Post(url, body[, headers])``) calls only URLs the operator allowlisted for
``apiCall`` services (``SIGWARD_APICALL_SERVICES``, :mod:`sigward.cluster.services`: no redirects, size cap,
timeouts); ``http.Client`` (a custom CA) is not provided. ``globalContext.Get(name, projection)`` reads a
GlobalContextEntry's data (:mod:`sigward.cluster.globalcontext`; an entry not loaded reads as null, as in Kyverno).
Kubernetes' extension libraries: :mod:`sigward.policy.ivpol.celext` (lists, sets, regex, url, ip/cidr, quantity)
besides cel-cpp's strings/math/encoders/optional/bindings.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from sigward.errors import SigwardError

# Longest CEL expression accepted: bounds parse and check cost; Kyverno's samples are all under 1 KiB.
MAX_EXPRESSION_CHARS = 8 * 1024
# Calls to image functions (each may mean registry round trips) in one policy evaluation: a comprehension over a
# hostile resource's image list must not turn into unbounded network work. A Pod has at most a few dozen images.
MAX_IMAGE_FUNCTION_CALLS = 256
# Comprehension macros nested in one expression. cel-expr-python 0.1.3 does not expose cel-cpp's iteration
# budget, so the cost of an expression over request data (at most ~3 MiB) is bounded by refusing deep nesting:
# two levels keep it at most quadratic in the request's list sizes.
MAX_COMPREHENSION_NESTING = 2

# Variables of each expression kind (Kyverno's compiler.go): what is not declared is a type-check error.
_REQUEST_VARIABLES = ("object", "oldObject", "request", "namespaceObject", "variables")
# Library handles (Kyverno's ``resource``, ``imagedata``, ``http`` and ``globalContext`` variables): member functions
# check the receiver is the handle they belong to, since all are CEL maps and their ``Get`` overloads share a name.
RESOURCE_HANDLE = {"library": "resource"}
IMAGEDATA_HANDLE = {"library": "imagedata"}
HTTP_HANDLE = {"library": "http"}
GLOBALCONTEXT_HANDLE = {"library": "globalContext"}
LIBRARY_VALUES: Mapping[str, Mapping[str, str]] = {
    "resource": RESOURCE_HANDLE,
    "imagedata": IMAGEDATA_HANDLE,
    "http": HTTP_HANDLE,
    "globalContext": GLOBALCONTEXT_HANDLE,
}


class CelError(SigwardError):
    """A CEL expression failed to compile or evaluate."""


class ImageFunctions(Protocol):
    """What Kyverno's image functions do, supplied by the service layer for one evaluation."""

    def verify_image_signatures(self, image: str, attestors: Sequence[str]) -> int: ...

    def verify_attestation_signatures(self, image: str, attestation: str, attestors: Sequence[str]) -> int: ...

    def extract_payload(self, image: str, attestation: str) -> Any: ...

    def image_data(self, image: str) -> Any: ...

    def resource_get(self, api_version: str, resource: str, namespace: str, name: str) -> Any: ...

    def resource_list(self, api_version: str, resource: str, namespace: str) -> Any: ...

    def http_call(self, method: str, url: str, headers: Mapping[str, str], body: Any) -> Any: ...

    def global_context_get(self, name: str, projection: str) -> Any: ...


@dataclass
class EvaluationState:
    """One evaluation's functions, call budget and the first exception a function raised."""

    functions: ImageFunctions | None
    calls: int = 0
    exception: BaseException | None = None


_STATE: contextvars.ContextVar[EvaluationState | None] = contextvars.ContextVar("sigward_ivpol_cel", default=None)


@contextlib.contextmanager
def bound(functions: ImageFunctions | None) -> Iterator[EvaluationState]:
    """Run evaluations with ``functions`` behind Kyverno's image functions."""
    state = EvaluationState(functions)
    token = _STATE.set(state)
    try:
        yield state
    finally:
        _STATE.reset(token)


def _call(method: Callable[[ImageFunctions], Any]) -> Any:
    state = _STATE.get()
    if state is None or state.functions is None:
        raise CelError("image functions are not available in this expression")
    state.calls += 1
    if state.calls > MAX_IMAGE_FUNCTION_CALLS:
        raise CelError(f"more than {MAX_IMAGE_FUNCTION_CALLS} image function calls in one evaluation")
    try:
        return method(state.functions)
    except BaseException as exc:
        if state.exception is None:
            state.exception = exc
        raise


def _attestor_names(values: Any) -> list[str]:
    out: list[str] = []
    for value in values:
        name = value.get("name") if isinstance(value, Mapping) else None
        if not isinstance(name, str):
            raise CelError("attestors must be attestors.<name> values")
        out.append(name)
    return out


def _image_fields(text: str) -> dict[str, Any]:
    """``parseImageReference``/``image``: an image as a map the Image methods read (Kyverno's image library)."""
    from sigward.errors import BadRequestError
    from sigward.references import parse_image_reference

    try:
        ref = parse_image_reference(text)
    except BadRequestError as exc:
        raise CelError(f"invalid image reference: {exc.message}") from None
    return {
        "registry": ref.registry,
        "repository": ref.path,
        "tag": ref.tag,
        "digest": ref.digest,
        "identifier": ref.digest or ref.tag,
        "reference": ref.reference,
    }


def _handle(receiver: Any, handle: Mapping[str, str], what: str) -> None:
    if not isinstance(receiver, Mapping) or receiver.get("library") != handle["library"]:
        raise CelError(f"{what} is a function of the {handle['library']} library")


def _resource_get(receiver: Any, api_version: str, resource: str, namespace: str, name: str) -> Any:
    _handle(receiver, RESOURCE_HANDLE, "Get(apiVersion, resource, namespace, name)")
    return _call(lambda f: f.resource_get(api_version, resource, namespace, name))


def _resource_list(receiver: Any, api_version: str, resource: str, namespace: str) -> Any:
    _handle(receiver, RESOURCE_HANDLE, "List(apiVersion, resource, namespace)")
    return _call(lambda f: f.resource_list(api_version, resource, namespace))


def _global_context_get(receiver: Any, name: str, projection: str) -> Any:
    _handle(receiver, GLOBALCONTEXT_HANDLE, "Get(name, projection)")
    return _call(lambda f: f.global_context_get(name, projection))


def _imagedata_get(receiver: Any, image: str) -> Any:
    # ``imagedata.Get(image)`` and ``http.Get(url)`` share one overload (both receivers are string maps).
    if isinstance(receiver, Mapping) and receiver.get("library") == HTTP_HANDLE["library"]:
        return _http_get(receiver, image)
    _handle(receiver, IMAGEDATA_HANDLE, "Get(image)")
    return _call(lambda f: f.image_data(image))


def _http_get(receiver: Any, url: str, headers: Mapping[str, str] | None = None) -> Any:
    _handle(receiver, HTTP_HANDLE, "Get(url)")
    return _call(lambda f: f.http_call("GET", url, dict(headers or {}), None))


def _http_post(receiver: Any, url: str, body: Any, headers: Mapping[str, str] | None = None) -> Any:
    _handle(receiver, HTTP_HANDLE, "Post(url, body)")
    return _call(lambda f: f.http_call("POST", url, dict(headers or {}), body))


def _is_image(text: str) -> bool:
    try:
        _image_fields(text)
    except CelError:
        return False
    return True


@cache
def _environment(kind: str) -> Any:
    from cel_expr_python import cel

    t = cel.Type
    image_t = t.Map(t.STRING, t.DYN)

    def member(name: str, key: str) -> Any:
        return cel.FunctionDecl(
            name, [cel.Overload(f"image_{name}", t.DYN, [image_t], is_member=True, impl=lambda i: i.get(key, ""))]
        )

    functions = [
        cel.FunctionDecl(
            "parseImageReference", [cel.Overload("parse_image_reference", image_t, [t.STRING], impl=_image_fields)]
        ),
        cel.FunctionDecl("isImage", [cel.Overload("is_image_string", t.BOOL, [t.STRING], impl=_is_image)]),
        *(member(n, n) for n in ("registry", "repository", "identifier", "tag", "digest")),
        cel.FunctionDecl(
            "containsDigest",
            [
                cel.Overload(
                    "image_contains_digest", t.BOOL, [image_t], is_member=True, impl=lambda i: bool(i.get("digest"))
                )
            ],
        ),
    ]
    variables: dict[str, Any] = {"ref": t.STRING} if kind == "ref" else {}
    if kind in ("request", "image"):
        variables.update({name: t.DYN for name in _REQUEST_VARIABLES})
        variables["variables"] = t.Map(t.STRING, t.DYN)
        handle_t = t.Map(t.STRING, t.STRING)
        variables.update({name: handle_t for name in LIBRARY_VALUES})
        s = t.STRING
        functions += [
            cel.FunctionDecl(
                "Get",
                [
                    cel.Overload("resource_get", t.DYN, [handle_t, s, s, s, s], is_member=True, impl=_resource_get),
                    cel.Overload("imagedata_get", t.DYN, [handle_t, s], is_member=True, impl=_imagedata_get),
                    cel.Overload("http_get_headers", t.DYN, [handle_t, s, t.Map(s, s)], is_member=True, impl=_http_get),
                    cel.Overload(
                        "globalcontext_get", t.DYN, [handle_t, s, s], is_member=True, impl=_global_context_get
                    ),
                ],
            ),
            # Kyverno's globalcontext library declares both spellings (its tests use ``globalContext.get``), and so
            # does its resource library (kyverno/sdk extensions/cel/libs/resource, library version >= 1.18, used by
            # Kyverno's own context/configmap and context/resource tests): the same implementations under both names.
            # ``imagedata`` and ``http`` have only ``Get``.
            cel.FunctionDecl(
                "get",
                [
                    cel.Overload(
                        "globalcontext_get_lower", t.DYN, [handle_t, s, s], is_member=True, impl=_global_context_get
                    ),
                    cel.Overload(
                        "resource_get_camel", t.DYN, [handle_t, s, s, s, s], is_member=True, impl=_resource_get
                    ),
                ],
            ),
            # Post bodies are JSON objects: cel-expr-python 0.1.3 does not dispatch a Python function on a ``dyn``
            # argument at runtime, so the body is declared a map (Kyverno: any JSON value).
            cel.FunctionDecl(
                "Post",
                [
                    cel.Overload("http_post", t.DYN, [handle_t, s, t.Map(s, t.DYN)], is_member=True, impl=_http_post),
                    cel.Overload(
                        "http_post_headers",
                        t.DYN,
                        [handle_t, s, t.Map(s, t.DYN), t.Map(s, s)],
                        is_member=True,
                        impl=_http_post,
                    ),
                ],
            ),
            cel.FunctionDecl(
                "List",
                [cel.Overload("resource_list", t.DYN, [handle_t, s, s, s], is_member=True, impl=_resource_list)],
            ),
            cel.FunctionDecl(
                "list",
                [cel.Overload("resource_list_camel", t.DYN, [handle_t, s, s, s], is_member=True, impl=_resource_list)],
            ),
        ]
    if kind == "image":
        variables.update(
            {
                "images": t.Map(t.STRING, t.List(t.STRING)),
                "attestors": t.Map(t.STRING, t.DYN),
                "attestations": t.Map(t.STRING, t.STRING),
                "image": t.Map(t.STRING, t.DYN),
            }
        )
        functions += [
            cel.FunctionDecl(
                "verifyImageSignatures",
                [
                    cel.Overload(
                        "verify_image_signatures",
                        t.INT,
                        [t.STRING, t.List(t.DYN)],
                        impl=lambda i, a: _call(lambda f: f.verify_image_signatures(i, _attestor_names(a))),
                    )
                ],
            ),
            cel.FunctionDecl(
                "verifyAttestationSignatures",
                [
                    cel.Overload(
                        "verify_attestation_signatures",
                        t.INT,
                        [t.STRING, t.STRING, t.List(t.DYN)],
                        impl=lambda i, s, a: _call(lambda f: f.verify_attestation_signatures(i, s, _attestor_names(a))),
                    )
                ],
            ),
            cel.FunctionDecl(
                "extractPayload",
                [
                    cel.Overload(
                        "extract_payload",
                        t.DYN,
                        [t.STRING, t.STRING],
                        impl=lambda i, s: _call(lambda f: f.extract_payload(i, s)),
                    )
                ],
            ),
            cel.FunctionDecl(
                "getImageData",
                [cel.Overload("get_image_data", t.DYN, [t.STRING], impl=lambda i: _call(lambda f: f.image_data(i)))],
            ),
            cel.FunctionDecl(
                "GetMetadata",
                [
                    cel.Overload(
                        "image_get_metadata",
                        t.DYN,
                        [image_t, t.STRING],
                        is_member=True,
                        impl=lambda _ctx, i: _call(lambda f: f.image_data(i)),
                    )
                ],
            ),
        ]
    return environment(variables, functions)


def environment(
    variables: Mapping[str, Any], functions: Sequence[Any] = (), container: str = "", descriptor_pool: Any = None
) -> Any:
    """A cel-expr-python environment with the extension libraries of every sigward expression (cel-cpp's optional,
    bindings, strings, encoders and math; the Kubernetes libraries of :mod:`~sigward.policy.ivpol.celext`) plus
    ``variables`` and ``functions``. Kyverno's expression kinds use it, and so does the CEL conformance suite (which
    alone passes a ``container`` and a protobuf ``descriptor_pool`` with its test messages)."""
    from cel_expr_python import cel
    from cel_expr_python.ext import ext_bindings, ext_encoders, ext_math, ext_optional, ext_strings

    from sigward.policy.ivpol.celext import declarations, list_index_extension

    return cel.NewEnv(
        variables=dict(variables),
        extensions=[
            ext_optional.ExtOptional(),
            ext_bindings.ExtBindings(),
            ext_strings.ExtStrings(),
            ext_encoders.ExtEncoders(),
            ext_math.ExtMath(),
            list_index_extension(),  # after the strings extension: adds list overloads to its indexOf/lastIndexOf
        ],
        functions=[*functions, *declarations()],  # the Kubernetes CEL libraries Kyverno's expressions use
        container=container or None,
        descriptor_pool=descriptor_pool,
    )


@dataclass(frozen=True)
class Program:
    """A compiled expression; ``source`` is kept for messages and content hashes."""

    source: str
    path: str
    program: Any = field(repr=False, compare=False)

    def evaluate(self, data: Mapping[str, Any]) -> Any:
        """The plain Python result, or :class:`CelError` (a runtime error of the expression)."""
        return self.evaluate_value(data).plain_value()

    def evaluate_value(self, data: Mapping[str, Any]) -> Any:
        """The CEL value (its CEL type kept: ``uint`` vs ``int``), or :class:`CelError`."""
        from cel_expr_python import cel

        try:
            value = self.program.eval(data=dict(data))
        except RuntimeError as exc:
            raise CelError(f"{self.path}: {_short(str(exc))}") from None
        if value.type() == cel.Type.ERROR:
            raise CelError(f"{self.path}: {_short(str(value.value()))}")
        return value


def _short(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else "error"
    return text[:300]


def _nesting(source: str) -> int:
    """Comprehension macros nested in ``source``, by parenthesis depth at each macro call (strings ignored)."""
    depth, best, stack = 0, 0, []
    quote = ""
    i = 0
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            macro = _ends_with_macro(source[: i + 1])
            stack.append(macro)
            depth += macro
            best = max(best, depth)
        elif ch == ")" and stack:
            depth -= stack.pop()
        i += 1
    return best


def _ends_with_macro(prefix: str) -> bool:
    return re.search(r"\.\s*(map|filter|all|exists|exists_one|transformList|transformMap)\s*\($", prefix) is not None


def compile_expression(
    source: str, path: str, *, kind: str, want_bool: bool = False, want_string: bool = False
) -> Program:
    """Compile ``source`` for an expression of ``kind`` (``ref``: matchImageReferences; ``request``:
    matchConditions; ``image``: everything else); :class:`CelError` naming ``path`` and why. ``want_string``:
    attestor material (keys, certificates, subjects), which Kyverno converts to a Go string."""
    return compile_in(_environment(kind), source, path, want_bool=want_bool, want_string=want_string)


def compile_in(
    env: Any, source: str, path: str, *, want_bool: bool = False, want_string: bool = False, check: bool = True
) -> Program:
    """Compile ``source`` in ``env`` (from :func:`environment`) under sigward's limits; ``check=False`` skips
    type-checking (only the CEL conformance suite asks for that)."""
    from cel_expr_python import cel

    if len(source) > MAX_EXPRESSION_CHARS:
        raise CelError(f"{path}: expression longer than {MAX_EXPRESSION_CHARS} characters")
    if _nesting(source) > MAX_COMPREHENSION_NESTING:
        raise CelError(f"{path}: comprehensions nested deeper than {MAX_COMPREHENSION_NESTING} levels")
    try:
        program = env.compile(source, disable_check=not check)
    except RuntimeError as exc:
        text = str(exc)
        detail = " ".join(line.strip() for line in text.splitlines()[:1]).replace("INVALID_ARGUMENT: ", "")
        raise CelError(f"{path}: {detail}") from None
    if want_bool and program.return_type() not in (cel.Type.BOOL, cel.Type.DYN):
        raise CelError(f"{path}: must evaluate to a bool, not {program.return_type().name()}")
    if want_string and program.return_type() not in (cel.Type.STRING, cel.Type.DYN):
        raise CelError(f"{path}: must evaluate to a string, not {program.return_type().name()}")
    return Program(source=source, path=path, program=program)

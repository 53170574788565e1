"""Load Kyverno policies from YAML files and directories into :class:`~sigward.policy.models.Policy` objects.

A path is a file (one or more YAML documents, or JSON) or a directory (its ``*.yaml``/``*.yml``/``*.json`` files,
sorted by name, not recursive). Documents that are not Kyverno policies (Namespaces, ConfigMaps, empty documents)
and rules without ``verifyImages`` are skipped with a note, but a path that yields no verifyImages policy at all is
a problem: configuration that would enforce nothing fails closed instead of admitting everything. ``.json`` files
are read as JSON (JSON is YAML, but PyYAML refuses the tabs JSON may be indented with), and a YAML text that fails
to parse and has tabs is retried as JSON. Every document that is a policy must be valid: Kyverno's
validation (:mod:`sigward.policy.validation`) and sigward's capability table (:mod:`sigward.policy.capabilities`)
apply, and all problems of all files are reported together in one :class:`~sigward.errors.PolicyError`, each with
its YAML path.

YAML is read with a hardened safe loader: file size, aliases, nesting depth and the size of the document with
aliases expanded are capped (a "billion laughs" document is refused before anything walks it), duplicate
mapping keys are an error (which one wins is ambiguous), and timestamps stay strings (as they do for
Kubernetes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import rfc8785
import yaml
from pydantic import BaseModel, StrictInt, StrictStr, ValidationError
from pydantic import Field as PydanticField
from pydantic_core import ErrorDetails

from sigward.errors import PolicyError, PolicyProblem
from sigward.policy import capabilities as capabilities_module
from sigward.policy import globalcontext as global_context_module
from sigward.policy.capabilities import Capabilities
from sigward.policy.exceptions import (
    EXCEPTION_API_VERSIONS,
    EXCEPTION_KIND,
    ExceptionSpec,
    PolicyException,
    without_operations,
)
from sigward.policy.exceptions import spec_problems as exception_problems
from sigward.policy.globalcontext import GlobalContextEntry, GlobalContextEntrySpec, refresh_seconds
from sigward.policy.globalcontext import spec_problems as global_entry_problems
from sigward.policy.ivpol import exceptions as cel_exceptions
from sigward.policy.ivpol import load as ivpol_load
from sigward.policy.ivpol.load import ImagePolicy
from sigward.policy.models import ImageVerification, KyvernoModel, Policy, PolicySpec, Rule
from sigward.policy.support import global_references, unsupported
from sigward.policy.trustroots import bundle_root_notes, trusted_roots_notes
from sigward.policy.validation import (
    Problem,
    background_variable_problems,
    credential_notes,
    pattern_notes,
    validate_metadata,
    validate_spec,
)

# A policy file is a few KiB (the largest Kyverno samples, with PEM chains, are ~20 KiB); anything beyond this
# is not a policy and reading it whole would only cost memory.
MAX_POLICY_FILE_BYTES = 1024 * 1024
# YAML aliases per document. Policies rarely use any; a handful of anchors for shared attestors is plausible.
# Each alias can multiply the expanded size, so they are capped before the document is constructed.
MAX_YAML_ALIASES = 100
# Nesting depth of a document (aliases expanded). A ClusterPolicy is ~15 levels deep; deep nesting only serves
# to exhaust the stack of whatever walks the document (validation, canonical JSON).
MAX_YAML_DEPTH = 64
# Nodes of a document with every alias expanded: bounds what validation and hashing walk, whatever aliases do.
MAX_YAML_NODES = 100_000

SUPPORTED_API_VERSIONS = ("kyverno.io/v1", "kyverno.io/v2beta1")
GLOBAL_CONTEXT_KIND = global_context_module.KIND
GLOBAL_CONTEXT_API_VERSIONS = global_context_module.API_VERSIONS
POLICY_KINDS = ("ClusterPolicy", "Policy")
POLICY_ENV = "SIGWARD_POLICY"
POLICY_FILE_SUFFIXES = (".yaml", ".yml", ".json")
JSON_SUFFIX = ".json"

_IMAGE_VALIDATING_POLICY = (
    "is not supported yet: sigward verifies images with the verifyImages rules of ClusterPolicy/Policy "
    f"({' or '.join(SUPPORTED_API_VERSIONS)})"
)
# Kyverno kinds that would change what image verification decides: refused rather than skipped.
REFUSED_KYVERNO_KINDS: dict[str, str] = {
    "ImageVerificationPolicy": _IMAGE_VALIDATING_POLICY,
    "PolicyException": (
        "is not supported: sigward honours kyverno.io/v2 and v2beta1 PolicyExceptions (ClusterPolicy rules) and "
        "policies.kyverno.io ones (ImageValidatingPolicies) only"
    ),
}
_TOP_LEVEL_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
# Fields of kyverno.io/v1 that kyverno.io/v2beta1 removed (its CRD schema does not have them).
_V1_ONLY_IMAGE_VERIFICATION_FIELDS = (
    "image",
    "key",
    "roots",
    "subject",
    "issuer",
    "additional_extensions",
    "annotations",
    "cosign_oci11",
)
_V1_ONLY_MATCH_FIELDS = ("resources", "subjects", "roles", "cluster_roles")
_M = TypeVar("_M", bound=BaseModel)
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class PolicySet:
    """The policies found (only their verifyImages rules) and notes on what was skipped or converted."""

    policies: tuple[Policy, ...] = ()
    notes: tuple[str, ...] = ()
    exceptions: tuple[PolicyException, ...] = ()  # kyverno.io PolicyExceptions found beside the policies
    # ImageValidatingPolicies (policies.kyverno.io), evaluated by sigward.verify.ivpol.
    image_policies: tuple[ImagePolicy, ...] = ()
    # CEL PolicyExceptions (policies.kyverno.io) for the ImageValidatingPolicies, applied by sigward.verify.ivpol.
    cel_exceptions: tuple[cel_exceptions.CelPolicyException, ...] = ()
    # GlobalContextEntries (kyverno.io) shipped beside the policies: what globalReference / globalContext.Get read.
    global_context: tuple[GlobalContextEntry, ...] = ()

    def rules(self) -> Iterator[tuple[Policy, Rule]]:
        """Every (policy, verifyImages rule) pair, in load order."""
        for policy in self.policies:
            for rule in policy.spec.rules:
                yield policy, rule


def policy_paths_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The paths in ``SIGWARD_POLICY`` (several joined with ``:``); empty when unset."""
    value = (os.environ if environ is None else environ).get(POLICY_ENV, "")
    return tuple(p for p in value.split(":") if p.strip())


def load_policies(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    capabilities: Capabilities | None = None,
) -> PolicySet:
    """Load every policy under ``paths``; raise :class:`PolicyError` with all problems if any document is
    invalid."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    loader = _Loader(capabilities or capabilities_module.CURRENT)
    if not paths:
        loader.problem("", "", "no policy path given")
    for p in paths:
        path = Path(p)
        policies_before, problems_before = (
            loader.documents(),
            len(loader.problems),
        )
        if path.is_dir():
            try:
                files = sorted(f for f in path.iterdir() if f.suffix in POLICY_FILE_SUFFIXES and f.is_file())
            except OSError as exc:
                loader.problem(str(path), "", f"cannot list directory: {exc.strerror or exc}")
                continue
            if not files:
                loader.problem(str(path), "", "no *.yaml, *.yml or *.json files: a policy path must yield a policy")
                continue
            for f in files:
                loader.load_file(f)
        elif path.is_file():
            loader.load_file(path)
        elif path.exists():
            loader.problem(str(path), "", "not a regular file or directory")
        else:
            loader.problem(str(path), "", "no such file or directory")
        found = loader.documents()
        if found == policies_before and len(loader.problems) == problems_before:
            loader.problem(
                str(path),
                "",
                "yields no ClusterPolicy or Policy with verifyImages rules: refusing to run with nothing to enforce",
            )
    only_config = loader.exceptions or loader.cel_exceptions or loader.global_entries
    if paths and only_config and not loader.policies and not loader.image_policies and not loader.problems:
        # a path of PolicyExceptions (or GlobalContextEntries) alone is fine beside policy paths, but alone they
        # enforce nothing
        loader.problem(
            str(paths[0]), "", "only PolicyExceptions or GlobalContextEntries: refusing to run with nothing to enforce"
        )
    return loader.result()


def load_policy_text(text: str, source: str, *, capabilities: Capabilities | None = None) -> PolicySet:
    """Load the policies in one YAML text (e.g. stdin); ``source`` names it in notes and problems. Unlike a path,
    a text may hold no policy (callers decide whether that is an error)."""
    loader = _Loader(capabilities or capabilities_module.CURRENT)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_FILE_BYTES:
        loader.problem(source, "", f"larger than {MAX_POLICY_FILE_BYTES} bytes: not a policy file")
    else:
        loader.load_text(text, source)
    return loader.result()


# --- YAML


_RESOLVERS_WITHOUT_TIMESTAMPS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class YamlLimitError(yaml.YAMLError):
    """A document exceeds one of the loader's caps."""


class HardenedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with caps on aliases and depth, duplicate keys refused and timestamps kept as
    strings."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.yaml_implicit_resolvers = _RESOLVERS_WITHOUT_TIMESTAMPS
        self._aliases = 0
        self._depth = 0
        self._checked_mappings: set[int] = set()

    def compose_document(self) -> yaml.Node | None:
        self._aliases = 0
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise YamlLimitError(f"more than {MAX_YAML_ALIASES} YAML aliases in one document")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YamlLimitError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if id(node) not in self._checked_mappings:
            self._checked_mappings.add(id(node))
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expanded_size(root: yaml.Node) -> None:
    """Refuse a composed document whose alias-expanded form has more than :data:`MAX_YAML_NODES` nodes, is
    deeper than :data:`MAX_YAML_DEPTH`, or refers to itself. Iterative: the node graph may be deep."""
    memo: dict[int, tuple[int, int]] = {}  # id -> (expanded nodes, expanded depth)
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        nid = id(node)
        if finished:
            kids = [memo[id(c)] for c in _children(node)]
            size = 1 + sum(s for s, _ in kids)
            depth = 1 + max((d for _, d in kids), default=0)
            if size > MAX_YAML_NODES:
                raise YamlLimitError(f"more than {MAX_YAML_NODES} YAML nodes with aliases expanded")
            if depth > MAX_YAML_DEPTH:
                raise YamlLimitError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels with aliases expanded")
            memo[nid] = (size, depth)
            in_progress.discard(nid)
            continue
        if nid in memo:
            continue
        if nid in in_progress:
            raise YamlLimitError("recursive YAML alias")
        in_progress.add(nid)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in in_progress:
                raise YamlLimitError("recursive YAML alias")
            if id(child) not in memo:
                stack.append((child, False))


def iter_yaml_documents(text: str) -> Iterator[Any]:
    """``yaml.safe_load_all`` through :class:`HardenedSafeLoader`, checking each document before constructing
    it."""
    loader = HardenedSafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                yield None
                continue
            check_expanded_size(node)
            yield loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _check_json_size(document: Any) -> None:
    """The YAML caps for a JSON document: nesting depth and node count."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_YAML_NODES:
            raise YamlLimitError(f"more than {MAX_YAML_NODES} JSON values")
        if depth > MAX_YAML_DEPTH:
            raise YamlLimitError(f"JSON nested deeper than {MAX_YAML_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)


def parse_json_document(text: str) -> Any:
    """One JSON document, with duplicate keys, NaN/Infinity and the YAML loader's size caps refused; raises
    :class:`YamlLimitError` or :class:`ValueError` (``json.JSONDecodeError``)."""
    try:
        document = json.loads(text, object_pairs_hook=_json_object, parse_constant=_refuse_constant)
    except RecursionError:
        raise YamlLimitError(f"JSON nested deeper than {MAX_YAML_DEPTH} levels") from None
    _check_json_size(document)
    return document


def _json_error_message(exc: ValueError | YamlLimitError) -> str:
    if isinstance(exc, YamlLimitError):
        return f"refused: {exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    return f"invalid JSON: {exc}"


def _yaml_error_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, YamlLimitError):
        return f"refused: {exc}"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(x for x in (exc.context, exc.problem) if x) or "invalid YAML"
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"invalid YAML: {what}{where}"
    return f"invalid YAML: {exc}"


# --- documents


class ObjectMeta(KyvernoModel):
    """``metadata`` as a stored object has it; sigward uses name, namespace, labels and annotations."""

    name: StrictStr = ""
    generate_name: StrictStr = ""
    namespace: StrictStr = ""
    labels: Mapping[StrictStr, StrictStr] = PydanticField(default_factory=dict)
    annotations: Mapping[StrictStr, StrictStr] = PydanticField(default_factory=dict)
    uid: Any = None
    resource_version: Any = None
    generation: StrictInt | None = None
    creation_timestamp: Any = None
    deletion_timestamp: Any = None
    deletion_grace_period_seconds: Any = None
    owner_references: Any = None
    finalizers: Any = None
    managed_fields: Any = None
    self_link: Any = None


def yaml_path(prefix: str, loc: Sequence[int | str]) -> str:
    """``spec`` + ``("rules", 0, "verifyImages")`` -> ``spec.rules[0].verifyImages``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part}]"
    return out


def _error_message(err: ErrorDetails) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "literal_error":
        expected = str((err.get("ctx") or {}).get("expected", ""))
        shown = f'"{value}"' if isinstance(value, str) and len(value) <= 64 else "the value"
        return f"unsupported value {shown}: must be {expected}"
    if kind == "string_type":
        return "must be a string"
    if kind == "bool_type":
        return "must be a boolean (true or false)"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("tuple_type", "list_type"):
        return "must be a list"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return "must be a mapping"
    msg = err["msg"]
    return msg[:1].lower() + msg[1:]


def problems_from_validation_error(exc: ValidationError, prefix: str) -> list[Problem]:
    """Pydantic errors as (YAML path, short message); loc holds YAML (alias) names."""
    out: list[Problem] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden" and loc:
            out.append((yaml_path(prefix, loc[:-1]), f'unknown field "{loc[-1]}"'))
        elif err["type"] == "missing" and loc:
            out.append((yaml_path(prefix, loc[:-1]), f'missing required field "{loc[-1]}"'))
        elif loc and loc[-1] == "[key]":
            out.append((yaml_path(prefix, loc[:-2]), f"key {loc[-2]!r} must be a string"))
        else:
            out.append((yaml_path(prefix, loc), _error_message(err)))
    return out


def _validate(model: type[_M], raw: Any, prefix: str, problems: list[Problem]) -> _M | None:
    try:
        return model.model_validate(raw, by_alias=True, by_name=False)
    except ValidationError as exc:
        problems.extend(problems_from_validation_error(exc, prefix))
        return None


def _metadata_and_spec(
    document: Mapping[str, Any], spec_model: type[_M], problems: list[Problem]
) -> tuple[ObjectMeta | None, _M | None]:
    """The shape every Kyverno document shares (policies, ImageValidatingPolicies, PolicyExceptions): known top-level
    fields, valid metadata, a required ``spec`` of ``spec_model``; each problem with its path."""
    problems.extend(("", f'unknown field "{k}"') for k in document if k not in _TOP_LEVEL_FIELDS)
    meta = _validate(ObjectMeta, document.get("metadata") or {}, "metadata", problems)
    if document.get("spec") is None:
        problems.append(("", 'missing required field "spec"'))
        return meta, None
    return meta, _validate(spec_model, document["spec"], "spec", problems)


def content_hash(document: Any) -> str:
    """sha256 (hex) of the RFC 8785 canonical JSON of ``document``."""
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def _v1_only_fields(spec: PolicySpec) -> list[Problem]:
    """Fields kyverno.io/v2beta1's schema does not have (the single-image form, the legacy match form)."""
    out: list[Problem] = []
    for i, rule in enumerate(spec.rules):
        for block_name, block in (("match", rule.match), ("exclude", rule.exclude)):
            if block is None:
                continue
            for name in _V1_ONLY_MATCH_FIELDS:
                if name in block.model_fields_set:
                    alias = _alias_of(block, name)
                    out.append((f"spec.rules[{i}].{block_name}", f'unknown field "{alias}" in kyverno.io/v2beta1'))
        for j, iv in enumerate(rule.verify_images):
            for name in _V1_ONLY_IMAGE_VERIFICATION_FIELDS:
                if name in iv.model_fields_set:
                    alias = _alias_of(iv, name)
                    out.append(
                        (
                            f"spec.rules[{i}].verifyImages[{j}]",
                            f'unknown field "{alias}" in kyverno.io/v2beta1',
                        )
                    )
    return out


def _alias_of(model: BaseModel, name: str) -> str:
    info = type(model).model_fields[name]
    return info.alias or name


def _normalized_entry(iv: ImageVerification) -> ImageVerification:
    modern = iv.converted()
    if any(a.predicate_type and not a.type for a in modern.attestations):
        modern = modern.model_copy(
            update={
                "attestations": tuple(
                    a.model_copy(update={"type": a.predicate_type, "predicate_type": ""})
                    if a.predicate_type and not a.type
                    else a
                    for a in modern.attestations
                )
            }
        )
    return modern


@dataclass
class _Loader:
    capabilities: Capabilities
    policies: list[Policy] = field(default_factory=list)
    exceptions: list[PolicyException] = field(default_factory=list)
    image_policies: list[ImagePolicy] = field(default_factory=list)
    cel_exceptions: list[cel_exceptions.CelPolicyException] = field(default_factory=list)
    global_entries: list[GlobalContextEntry] = field(default_factory=list)
    # (source, YAML path, entry name) of every literal globalReference, checked once every document is read
    global_refs: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[PolicyProblem] = field(default_factory=list)
    _seen: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def problem(self, source: str, path: str, message: str) -> None:
        self.problems.append(PolicyProblem(source=source, path=path, message=message))

    def _claim(self, key: tuple[str, str, str], source: str, what: str) -> bool:
        """Names are unique per (kind, namespace, name) across all files: record ``source`` as the one defining
        ``key``, or report ``what`` as defined twice (the second definition is dropped, never merged)."""
        if key in self._seen:
            self.problem(source, "metadata.name", f"{what} is also defined in {self._seen[key]}")
            return False
        self._seen[key] = source
        return True

    def documents(self) -> int:
        return (
            len(self.policies)
            + len(self.image_policies)
            + len(self.exceptions)
            + len(self.cel_exceptions)
            + len(self.global_entries)
        )

    def result(self) -> PolicySet:
        defined = {e.name for e in self.global_entries}
        for source, path, name in self.global_refs:
            if name not in defined:
                # Kyverno fails such a rule at every evaluation ("failed to fetch entry key=NAME"): caught at load.
                self.problem(
                    source,
                    path,
                    f"GlobalContextEntry {name} is not defined: ship it (kyverno.io/v2beta1 GlobalContextEntry) in "
                    "the same files or directories as the policies",
                )
        if self.problems:
            raise PolicyError(self.problems)
        image_policies = tuple(
            replace(p, exceptions=tuple(e for e in self.cel_exceptions if e.refers_to(p.kind, p.name)))
            for p in self.image_policies
        )
        for exc in self.cel_exceptions:
            if not any(exc in p.exceptions for p in image_policies):
                # a typo in policyRefs exempts nothing: say so (the policy may be in another policy path)
                self.notes.append(f"{exc.source}: PolicyException {exc.key} names no loaded ImageValidatingPolicy")
        return PolicySet(
            policies=tuple(self.policies),
            notes=tuple(self.notes),
            image_policies=image_policies,
            exceptions=tuple(self.exceptions),
            cel_exceptions=tuple(self.cel_exceptions),
            global_context=tuple(self.global_entries),
        )

    def load_file(self, path: Path) -> None:
        source = str(path)
        try:
            if path.stat().st_size > MAX_POLICY_FILE_BYTES:
                self.problem(source, "", f"larger than {MAX_POLICY_FILE_BYTES} bytes: not a policy file")
                return
            with path.open("rb") as fh:
                data = fh.read(MAX_POLICY_FILE_BYTES + 1)
        except OSError as exc:
            self.problem(source, "", f"cannot read: {exc.strerror or exc}")
            return
        if len(data) > MAX_POLICY_FILE_BYTES:
            self.problem(source, "", f"larger than {MAX_POLICY_FILE_BYTES} bytes: not a policy file")
            return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.problem(source, "", "not UTF-8 text")
            return
        if path.suffix == JSON_SUFFIX:
            self.load_json(text, source)
        else:
            self.load_text(text, source)

    def load_json(self, text: str, source: str) -> None:
        try:
            document = parse_json_document(text)
        except (ValueError, YamlLimitError) as exc:
            self.problem(source, "", _json_error_message(exc))
            return
        self.load_document(document, f"{source}#doc1")

    def load_text(self, text: str, source: str) -> None:
        # Parsed whole before loading: a text that turns out to be tab-indented JSON is loaded once, as JSON.
        documents: list[Any] = []
        error: yaml.YAMLError | None = None
        try:
            for document in iter_yaml_documents(text):
                documents.append(document)
        except yaml.YAMLError as exc:
            error = exc
        if error is not None and "\t" in text and not isinstance(error, YamlLimitError):
            try:
                document = parse_json_document(text)
            except (ValueError, YamlLimitError):
                pass
            else:
                self.load_document(document, f"{source}#doc1")
                return
        for number, document in enumerate(documents, start=1):
            self.load_document(document, f"{source}#doc{number}")
        if error is not None:
            self.problem(f"{source}#doc{len(documents) + 1}", "", _yaml_error_message(error))

    def load_document(self, document: Any, source: str) -> None:
        if document is None:
            self.notes.append(f"{source}: empty document; skipped")
            return
        if not isinstance(document, dict):
            self.problem(source, "", "not a Kubernetes object: expected a mapping with apiVersion and kind")
            return
        api_version, kind = document.get("apiVersion"), document.get("kind")
        if not isinstance(api_version, str) or not api_version or not isinstance(kind, str) or not kind:
            self.problem(source, "", "not a Kubernetes object: apiVersion and kind (strings) are required")
            return
        group = api_version.rpartition("/")[0]
        items = document.get("items")
        if kind.endswith("List") and isinstance(items, list):
            for k, item in enumerate(items):
                self.load_document(item, f"{source}.items[{k}]")
            return
        kyverno = group == "kyverno.io" or group.endswith(".kyverno.io")
        if not kyverno:
            self.notes.append(f"{source}: {kind} is not a Kyverno policy; skipped")
        elif group == ivpol_load.API_GROUP and kind in ivpol_load.KINDS:
            self.load_image_policy(document, api_version, kind, source)
        elif kind in POLICY_KINDS:
            if api_version in SUPPORTED_API_VERSIONS:
                self.load_policy(document, api_version, kind, source)
            else:
                self.problem(
                    source,
                    "apiVersion",
                    f"{api_version} {kind} is not supported: use {' or '.join(SUPPORTED_API_VERSIONS)}",
                )
        elif kind == EXCEPTION_KIND and api_version in EXCEPTION_API_VERSIONS:
            self.load_exception(document, source)
        elif group == cel_exceptions.API_GROUP and kind == cel_exceptions.KIND:
            self.load_cel_exception(document, api_version, source)
        elif kind == GLOBAL_CONTEXT_KIND and api_version in GLOBAL_CONTEXT_API_VERSIONS:
            self.load_global_entry(document, source)
        elif kind in REFUSED_KYVERNO_KINDS:
            self.problem(source, "kind", f"{api_version} {kind} {REFUSED_KYVERNO_KINDS[kind]}")
        else:
            self.notes.append(f"{source}: {api_version} {kind} is not a ClusterPolicy or Policy; skipped")

    def load_exception(self, document: dict[str, Any], source: str) -> None:
        problems: list[Problem] = []
        meta, spec = _metadata_and_spec(document, ExceptionSpec, problems)
        if spec is not None:
            problems.extend(exception_problems(spec, user_roles=self.capabilities.user_roles))
        if meta is not None and not meta.name:
            problems.append(("metadata.name", "a PolicyException needs a name"))
        if problems or meta is None or spec is None:
            for path, message in problems:
                self.problem(source, path, message)
            return
        if not self._claim((EXCEPTION_KIND, meta.namespace, meta.name), source, f"PolicyException {meta.name}"):
            return
        if any(d.resources.operations for d in (*spec.match.any, *spec.match.all)):
            self.notes.append(f"{source}: PolicyException {meta.name}: match operations are ignored (as in Kyverno)")
        spec = spec.model_copy(update={"match": without_operations(spec.match)})
        self.exceptions.append(PolicyException(name=meta.name, namespace=meta.namespace, spec=spec, source=source))

    def load_cel_exception(self, document: dict[str, Any], api_version: str, source: str) -> None:
        """A CEL PolicyException (:mod:`sigward.policy.ivpol.exceptions`): conditions compiled once, here."""
        if api_version.rpartition("/")[2] not in cel_exceptions.API_VERSIONS:
            versions = ", ".join(f"{cel_exceptions.API_GROUP}/{v}" for v in cel_exceptions.API_VERSIONS)
            self.problem(source, "apiVersion", f"{api_version} PolicyException is not supported: use {versions}")
            return
        problems: list[Problem] = []
        meta, spec = _metadata_and_spec(document, cel_exceptions.CelExceptionSpec, problems)
        exception: cel_exceptions.CelPolicyException | None = None
        if meta is not None and spec is not None and not problems:
            namespace = meta.namespace
            if not namespace:
                # What `kubectl apply` without -n does: the namespaced object lands in `default`.
                namespace = "default"
                self.notes.append(
                    f"{source}: PolicyException {meta.name} has no metadata.namespace; its key is default/{meta.name} "
                    "(as kubectl apply without -n)"
                )
            exception, found, notes = cel_exceptions.build(
                api_version=api_version, name=meta.name, namespace=namespace, spec=spec, source=source
            )
            problems.extend(found)
            self.notes.extend(f"{source}: PolicyException {meta.name}: {note}" for note in notes)
        for path, message in problems:
            self.problem(source, path, message)
        if exception is None or problems:
            return
        key = (f"{cel_exceptions.API_GROUP}/{cel_exceptions.KIND}", exception.namespace, exception.name)
        if not self._claim(key, source, f"PolicyException {exception.key}"):
            return
        self.cel_exceptions.append(exception)

    def load_global_entry(self, document: dict[str, Any], source: str) -> None:
        """A GlobalContextEntry (cluster-scoped): Kyverno's validation, names unique across all files."""
        problems: list[Problem] = []
        meta, spec = _metadata_and_spec(document, GlobalContextEntrySpec, problems)
        if meta is not None and not meta.name:
            problems.append(("metadata.name", "a GlobalContextEntry needs a name"))
        if meta is not None and meta.namespace:
            problems.append(("metadata.namespace", "a GlobalContextEntry is cluster-scoped: remove the namespace"))
        if spec is not None and meta is not None:
            problems.extend(global_entry_problems(spec, meta.name))
        if problems or meta is None or spec is None:
            for path, message in problems:
                self.problem(source, path, message)
            return
        if not self._claim((GLOBAL_CONTEXT_KIND, "", meta.name), source, f"GlobalContextEntry {meta.name}"):
            return
        entry = GlobalContextEntry(name=meta.name, spec=spec, source=source, refresh_seconds=refresh_seconds(spec))
        self.global_entries.append(entry)

    def document_hash(self, document: dict[str, Any], source: str) -> str | None:
        """A policy document's content hash (its verdict-key identity), or None with the problem recorded."""
        try:
            return content_hash(document)
        except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
            self.problem(source, "", f"not representable as JSON: {exc}")
            return None

    def load_policy(self, document: dict[str, Any], api_version: str, kind: str, source: str) -> None:
        problems: list[Problem] = []
        digest = self.document_hash(document, source)
        if digest is None:
            return
        meta, spec = _metadata_and_spec(document, PolicySpec, problems)
        if spec is not None and api_version == "kyverno.io/v2beta1":
            problems.extend(_v1_only_fields(spec))
        if meta is not None and spec is not None and not problems:
            namespaced = kind == "Policy"
            problems.extend(validate_metadata(kind, meta.name, meta.namespace, meta.annotations))
            problems.extend(validate_spec(spec, namespaced=namespaced))
            problems.extend(background_variable_problems(document, spec))
            problems.extend(unsupported(spec, self.capabilities))
        if problems or meta is None or spec is None:
            for path, message in problems:
                self.problem(source, path, message)
            return
        self.global_refs.extend((source, path, name) for path, name in global_references(spec))
        self.add_policy(api_version, kind, meta, spec, source=source, digest=digest)

    def load_image_policy(self, document: dict[str, Any], api_version: str, kind: str, source: str) -> None:
        """An ImageValidatingPolicy: metadata and hashing as a ClusterPolicy, spec by :mod:`sigward.policy.ivpol`."""
        from sigward.policy.ivpol.models import ImageValidatingPolicySpec

        if api_version.rpartition("/")[2] not in ivpol_load.API_VERSIONS:
            versions = ", ".join(f"{ivpol_load.API_GROUP}/{v}" for v in ivpol_load.API_VERSIONS)
            self.problem(source, "apiVersion", f"{api_version} {kind} is not supported: use {versions}")
            return
        problems: list[Problem] = []
        digest = self.document_hash(document, source)
        if digest is None:
            return
        meta, spec = _metadata_and_spec(document, ImageValidatingPolicySpec, problems)
        policy: ImagePolicy | None = None
        if meta is not None and spec is not None and not problems:
            policy, found, notes = ivpol_load.build(
                api_version=api_version,
                kind=kind,
                name=meta.name,
                namespace=meta.namespace,
                spec=spec,
                source=source,
                digest=digest,
                capabilities=self.capabilities,
            )
            problems.extend(found)
            self.notes.extend(f"{source}: {kind} {meta.name}: {note}" for note in notes)
        for path, message in problems:
            self.problem(source, path, message)
        if policy is None or problems:
            return
        if not self._claim((kind, policy.namespace, policy.name), source, f"{kind} {policy.key}"):
            return
        self.image_policies.append(policy)

    def add_policy(
        self, api_version: str, kind: str, meta: ObjectMeta, spec: PolicySpec, *, source: str, digest: str
    ) -> None:
        if kind == "Policy" and not meta.namespace:
            # What `kubectl apply` without -n does: the namespaced object lands in `default`.
            self.notes.append(
                f"{source}: Policy {meta.name} has no metadata.namespace; it applies to namespace default "
                "(as kubectl apply without -n)"
            )
            meta = meta.model_copy(update={"namespace": "default"})
        where = f"{kind} {meta.namespace + '/' if meta.namespace else ''}{meta.name}"
        if not self._claim((kind, meta.namespace, meta.name), source, where):
            return
        rules: list[Rule] = []
        for rule in spec.rules:
            if not rule.verify_images:
                self.notes.append(f"{source}: policy {meta.name} rule {rule.name}: no verifyImages; skipped")
                continue
            for j, iv in enumerate(rule.verify_images):
                self.notes.extend(
                    f"{source}: policy {meta.name} rule {rule.name}: {note}"
                    for note in pattern_notes(iv.converted(), f"verifyImages[{j}]")
                    + credential_notes(iv, f"verifyImages[{j}]")
                )
                deprecated = iv.deprecated_fields()
                if deprecated:
                    self.notes.append(
                        f"{source}: policy {meta.name} rule {rule.name}: verifyImages[{j}] uses deprecated "
                        f"{', '.join(deprecated)}; converted to imageReferences and attestors"
                    )
            self.notes.extend(
                f"{source}: policy {meta.name} rule {rule.name}: {note}"
                for note in bundle_root_notes([iv.converted() for iv in rule.verify_images])
            )
            rules.append(
                rule.model_copy(update={"verify_images": tuple(_normalized_entry(iv) for iv in rule.verify_images)})
            )
        if not rules:
            self.notes.append(f"{source}: policy {meta.name}: no verifyImages rules; skipped")
            return
        self.notes.extend(f"{source}: policy {meta.name}: {note}" for note in trusted_roots_notes(meta.annotations))
        update: dict[str, Any] = {"rules": tuple(rules)}
        wc = spec.webhook_configuration
        if wc is not None and wc.failure_policy is not None and "failure_policy" not in spec.model_fields_set:
            update["failure_policy"] = wc.failure_policy
        if wc is not None and wc.timeout_seconds is not None and "webhook_timeout_seconds" not in spec.model_fields_set:
            update["webhook_timeout_seconds"] = wc.timeout_seconds
        self.policies.append(
            Policy(
                api_version=api_version,
                kind=kind,  # type: ignore[arg-type]  # checked against POLICY_KINDS
                name=meta.name,
                namespace=meta.namespace,
                annotations=dict(meta.annotations),
                labels=dict(meta.labels),
                spec=spec.model_copy(update=update),
                source=source,
                content_hash=digest,
            )
        )

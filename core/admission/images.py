"""Images in Kubernetes resources, found where Kyverno finds them (``pkg/utils/api/image.go``).

Pods: ``spec.{initContainers,containers,ephemeralContainers}[*].image`` and — stricter than Kyverno, which does not
look there — image volumes (``spec.volumes[*].image.reference``, KEP-4639: an OCI image mounted read-only, which a
Pod can execute from as well as a container image); the Pod controllers one or two templates deeper; any other kind
only through the rule's ``imageExtractors``, which replace the built-in extraction for that kind. Each image keeps
its JSON pointer so the mutate path patches exactly the field it verified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sigward.errors import BadRequestError
from sigward.references import ImageReference, parse_image_reference

CONTAINER_GROUPS = ("initContainers", "containers", "ephemeralContainers")
# Kubernetes image volumes: `volumes[*].image.reference` (pullPolicy beside it).
IMAGE_VOLUME_GROUP = "volumes"
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "DaemonSet": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
POD_CONTROLLERS = tuple(k for k in _POD_SPEC_PATHS if k != "Pod")
# A Pod with more containers than this is not a workload anybody wrote; bound the work one request can cause.
MAX_IMAGES_PER_RESOURCE = 256


class ExtractorConfig(Protocol):
    """The fields of a Kyverno ``imageExtractors`` entry (see sigward.policy.models.ImageExtractorConfig)."""

    @property
    def path(self) -> str: ...

    @property
    def value(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def jmes_path(self) -> str: ...


@dataclass(frozen=True)
class ResourceImage:
    group: str  # "containers", "initContainers", "ephemeralContainers" or the extractor's name
    key: str  # container name (built-in) or the extractor's key / the pointer
    pointer: str  # JSON pointer to the string holding the image
    image: str  # the string as written in the resource
    ref: ImageReference


@dataclass(frozen=True)
class _Extractor:
    fields: tuple[str, ...]
    key: str
    value: str
    name: str
    jmes_path: str


def _standard(prefix: tuple[str, ...]) -> tuple[_Extractor, ...]:
    containers = tuple(
        _Extractor(fields=(*prefix, group, "*"), key="name", value="image", name=group, jmes_path="")
        for group in CONTAINER_GROUPS
    )
    # The volume's name is one level up from `reference`; the JSON pointer identifies the image instead.
    volumes = _Extractor(
        fields=(*prefix, IMAGE_VOLUME_GROUP, "*", "image"), key="", value="reference", name="volumes", jmes_path=""
    )
    return (*containers, volumes)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _extractors(kind: str, configs: Mapping[str, Sequence[ExtractorConfig]]) -> tuple[_Extractor, ...]:
    custom = configs.get(kind)
    if custom is not None:
        out = []
        for c in custom:
            fields = [f.strip() for f in c.path.split("/") if f.strip()]
            value = c.value
            if not value:
                if not fields:
                    raise BadRequestError(f"imageExtractors[{kind}]: path {c.path!r} names no field")
                value = fields.pop()
            out.append(
                _Extractor(
                    fields=tuple(fields),
                    key=c.key,
                    value=value,
                    name=c.name or "custom",
                    jmes_path=c.jmes_path,
                )
            )
        return tuple(out)
    prefix = _POD_SPEC_PATHS.get(kind)
    return _standard(prefix) if prefix is not None else ()


def extract_images(
    resource: Mapping[str, Any],
    *,
    kind: str,
    extractors: Mapping[str, Sequence[ExtractorConfig]] | None = None,
    jmespath_search: Callable[[str, str], Any] | None = None,
) -> list[ResourceImage]:
    """Every image of ``resource`` in document order; raises :class:`BadRequestError` for an invalid image."""
    found: list[ResourceImage] = []
    for extractor in _extractors(kind, extractors or {}):
        _walk(resource, [], extractor, found, jmespath_search)
    return found


def _walk(
    obj: Any,
    path: list[str],
    ex: _Extractor,
    found: list[ResourceImage],
    search: Callable[[str, str], Any] | None,
    depth: int = 0,
) -> None:
    if obj is None:
        return
    fields = ex.fields[depth:]
    if fields and fields[0] == "*":
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                _walk(item, [*path, str(i)], ex, found, search, depth + 1)
        elif isinstance(obj, dict):
            for name, item in obj.items():
                _walk(item, [*path, str(name)], ex, found, search, depth + 1)
        else:
            raise BadRequestError(f"/{'/'.join(path)}: expected a list or map of containers")
        return
    if not isinstance(obj, dict):
        raise BadRequestError(f"/{'/'.join(path)}: expected an object")
    if fields:
        _walk(obj.get(fields[0]), [*path, fields[0]], ex, found, search, depth + 1)
        return
    pointer = "/" + "/".join(_escape(p) for p in [*path, ex.value])
    value = obj.get(ex.value)
    if not isinstance(value, str) or not value.strip():
        return
    key = pointer
    if ex.key:
        key_value = obj.get(ex.key)
        if not isinstance(key_value, str):
            raise BadRequestError(f"{pointer}: {ex.key!r} of this entry is missing")
        key = key_value
    if ex.jmes_path:
        if search is None:
            raise BadRequestError(f"{pointer}: jmesPath extractors need a JMESPath engine")
        result = search(ex.jmes_path, value)
        if not isinstance(result, str):
            raise BadRequestError(f"jmespath {ex.jmes_path} must produce a string, but produced {result!r}")
        value = result
    if len(found) >= MAX_IMAGES_PER_RESOURCE:
        raise BadRequestError(f"more than {MAX_IMAGES_PER_RESOURCE} images in one resource")
    try:
        ref = parse_image_reference(value)
    except BadRequestError as exc:
        raise BadRequestError(f"invalid image {value!r} at {pointer}: {exc}") from None
    found.append(ResourceImage(group=ex.name, key=key, pointer=pointer, image=value, ref=ref))

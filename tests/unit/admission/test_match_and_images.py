"""Rule matching (kinds, names, namespaces, selectors, operations, exclude, autogen) and image extraction."""

from __future__ import annotations

from typing import Any

import pytest

from sigward.admission.images import extract_images
from sigward.admission.match import request_info, rule_applies
from sigward.errors import BadRequestError
from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.signing import new_key


def policy(
    match: dict[str, Any], *, exclude: dict[str, Any] | None = None, annotations: dict[str, str] | None = None
) -> Policy:
    doc = cluster_policy("p", [key_verification(["*"], [keys_entry(new_key().public_pem)])])
    doc["spec"]["rules"][0]["match"] = match
    if exclude:
        doc["spec"]["rules"][0]["exclude"] = exclude
    if annotations:
        doc["metadata"]["annotations"] = annotations
    (loaded,) = load_policy_text(dump(doc), "p.yaml").policies
    return loaded


def info(
    kind: str = "Pod",
    *,
    ns: str = "default",
    name: str = "app",
    op: str = "CREATE",
    labels: dict[str, str] | None = None,
    sub: str = "",
    group: str = "",
) -> Any:
    obj = {"metadata": {"name": name, "namespace": ns, "labels": labels or {}}}
    return request_info(
        kind=kind, group=group, version="v1", sub_resource=sub, namespace=ns, name=name, operation=op, obj=obj
    )


PODS = {"any": [{"resources": {"kinds": ["Pod"]}}]}


@pytest.mark.parametrize(
    ("match", "request_kwargs", "expected"),
    [
        (PODS, {}, "verify-signature"),
        (PODS, {"kind": "Deployment", "group": "apps"}, "autogen-verify-signature"),
        (PODS, {"kind": "CronJob", "group": "batch"}, "autogen-cronjob-verify-signature"),
        (PODS, {"kind": "ConfigMap"}, None),
        (PODS, {"op": "DELETE"}, None),
        (PODS, {"sub": "status"}, None),
        (PODS, {"sub": "ephemeralcontainers", "op": "UPDATE"}, "verify-signature"),
        ({"any": [{"resources": {"kinds": ["v1/Pod"]}}]}, {}, "verify-signature"),
        (
            {"any": [{"resources": {"kinds": ["apps/v1/Deployment"]}}]},
            {"kind": "Deployment", "group": "apps"},
            "verify-signature",
        ),
        ({"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["prod-*"]}}]}, {"ns": "prod-eu"}, "verify-signature"),
        ({"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["prod-*"]}}]}, {"ns": "dev"}, None),
        ({"any": [{"resources": {"kinds": ["Pod"], "names": ["web-?"]}}]}, {"name": "web-1"}, "verify-signature"),
        ({"any": [{"resources": {"kinds": ["Pod"], "names": ["web-?"]}}]}, {"name": "web-10"}, None),
        # a name restriction disables autogen
        ({"any": [{"resources": {"kinds": ["Pod"], "names": ["web"]}}]}, {"kind": "Deployment", "name": "web"}, None),
        (
            {
                "any": [
                    {
                        "resources": {
                            "kinds": ["Pod"],
                            "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]}]},
                        }
                    }
                ]
            },
            {"labels": {"tier": "prod"}},
            "verify-signature",
        ),
        (
            {
                "any": [
                    {
                        "resources": {
                            "kinds": ["Pod"],
                            "selector": {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
                        }
                    }
                ]
            },
            {"labels": {"tier": "prod"}},
            None,
        ),
        (
            {"all": [{"resources": {"kinds": ["Pod"]}}, {"resources": {"kinds": ["Pod"], "namespaces": ["a"]}}]},
            {"ns": "a"},
            "verify-signature",
        ),
        (
            {"all": [{"resources": {"kinds": ["Pod"]}}, {"resources": {"kinds": ["Pod"], "namespaces": ["a"]}}]},
            {"ns": "b"},
            None,
        ),
        ({"resources": {"kinds": ["Pod"]}}, {}, "verify-signature"),
        ({"any": [{"resources": {"kinds": ["Pod"], "operations": ["CREATE"]}}]}, {"op": "UPDATE"}, None),
    ],
)
def test_rule_applies(match: dict[str, Any], request_kwargs: dict[str, Any], expected: str | None) -> None:
    p = policy(match)
    result = rule_applies(p, p.spec.rules[0], info(**request_kwargs))
    assert (result.name if result else None) == expected


def test_exclude_and_autogen_annotation() -> None:
    p = policy(PODS, exclude={"any": [{"resources": {"namespaces": ["kube-*"]}}]})
    assert rule_applies(p, p.spec.rules[0], info(ns="kube-system")) is None
    assert rule_applies(p, p.spec.rules[0], info(kind="Deployment", ns="kube-system")) is None
    listed = policy(PODS, annotations={"pod-policies.kyverno.io/autogen-controllers": "Deployment,Job"})
    assert rule_applies(listed, listed.spec.rules[0], info(kind="Job")) is not None
    assert rule_applies(listed, listed.spec.rules[0], info(kind="StatefulSet")) is None
    none = policy(PODS, annotations={"pod-policies.kyverno.io/autogen-controllers": "none"})
    assert rule_applies(none, none.spec.rules[0], info(kind="Deployment")) is None


def test_images_in_every_place() -> None:
    pod = {
        "spec": {
            "initContainers": [{"name": "i", "image": "init:1"}],
            "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "ghcr.io/x/y@sha256:" + "a" * 64}],
            "ephemeralContainers": [{"name": "d", "image": "busybox"}],
        }
    }
    found = extract_images(pod, kind="Pod")
    assert [(i.group, i.key, i.pointer, i.ref.reference) for i in found] == [
        ("initContainers", "i", "/spec/initContainers/0/image", "docker.io/init:1"),
        ("containers", "a", "/spec/containers/0/image", "docker.io/nginx:latest"),
        ("containers", "b", "/spec/containers/1/image", "ghcr.io/x/y@sha256:" + "a" * 64),
        ("ephemeralContainers", "d", "/spec/ephemeralContainers/0/image", "docker.io/busybox:latest"),
    ]
    cron = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}}
    assert [i.pointer for i in extract_images(cron, kind="CronJob")] == [
        "/spec/jobTemplate/spec/template/spec/containers/0/image"
    ]
    assert extract_images({"spec": {}}, kind="ConfigMap") == []


def test_custom_extractors() -> None:
    class Cfg:
        def __init__(self, path: str, value: str = "", key: str = "", name: str = "", jmes_path: str = "") -> None:
            self.path, self.value, self.key, self.name, self.jmes_path = path, value, key, name, jmes_path

    task = {
        "spec": {
            "steps": [{"name": "a", "image": "alpine"}, {"name": "b", "image": ""}],
            "map": {"k1": {"ref": "docker://ghcr.io/a/b:1"}},
        }
    }
    found = extract_images(task, kind="Task", extractors={"Task": [Cfg("/spec/steps/*/image")]})
    assert [(i.pointer, i.ref.reference) for i in found] == [("/spec/steps/0/image", "docker.io/alpine:latest")]

    def search(expression: str, value: str) -> str:
        assert expression == "trim_prefix(@, 'docker://')"
        return value.removeprefix("docker://")

    found = extract_images(
        task,
        kind="Task",
        extractors={"Task": [Cfg("/spec/map/*", value="ref", name="refs", jmes_path="trim_prefix(@, 'docker://')")]},
        jmespath_search=search,
    )
    assert [(i.group, i.pointer, i.ref.reference) for i in found] == [("refs", "/spec/map/k1/ref", "ghcr.io/a/b:1")]


def test_invalid_image_is_refused_with_its_pointer() -> None:
    with pytest.raises(BadRequestError, match="/spec/containers/0/image"):
        extract_images({"spec": {"containers": [{"name": "a", "image": "UPPER/Case"}]}}, kind="Pod")
    with pytest.raises(BadRequestError, match="expected a list or map"):
        extract_images({"spec": {"containers": "nope"}}, kind="Pod")

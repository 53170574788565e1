"""What Kyverno's autogen makes of an ImageValidatingPolicy (``status.autogen.configs``, pkg/cel/autogen): a
pods-only policy also selects its Pod controllers, in two configs — ``cronjobs`` (``batch/v1 cronjobs``, the Pod
template under ``spec.jobTemplate.spec.template``) and ``defaults`` (every other controller, the template under
``spec.template``), each with the operations of the policy's first resource rule. sigward evaluates autogen in place
(sigward.verify.ivpol); this is the description ``check-policy`` shows and the vectors are compared with."""

from __future__ import annotations

from dataclasses import dataclass

from sigward.policy.ivpol.load import ImagePolicy

# The API group of each Pod controller Kyverno autogen knows.
CONTROLLER_GROUPS = {
    "daemonsets": "apps",
    "deployments": "apps",
    "replicasets": "apps",
    "statefulsets": "apps",
    "jobs": "batch",
    "cronjobs": "batch",
}
# Where each config reads the Pod template (Kyverno rewrites ``object.metadata``/``object.spec`` to these).
TEMPLATE_PATHS = {"defaults": "spec.template", "cronjobs": "spec.jobTemplate.spec.template"}


@dataclass(frozen=True)
class ResourceRule:
    api_group: str
    resources: tuple[str, ...]
    operations: tuple[str, ...]
    api_version: str = "v1"

    def as_json(self) -> dict[str, list[str]]:
        return {
            "apiGroups": [self.api_group],
            "apiVersions": [self.api_version],
            "operations": list(self.operations),
            "resources": list(self.resources),
        }


@dataclass(frozen=True)
class AutogenConfig:
    """One entry of ``status.autogen.configs``: its name and the resource rules it matches."""

    name: str
    resource_rules: tuple[ResourceRule, ...]

    @property
    def template_path(self) -> str:
        return TEMPLATE_PATHS[self.name]

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(r for rule in self.resource_rules for r in rule.resources)


def autogen_configs(policy: ImagePolicy) -> tuple[AutogenConfig, ...]:
    """The policy's autogen configs in Kyverno's order (cronjobs first); empty when autogen does not apply."""
    controllers = set(policy.pod_controllers)
    mc = policy.spec.match_constraints
    if not controllers or mc is None or not mc.resource_rules:
        return ()
    operations = tuple(mc.resource_rules[0].operations)

    def rules(names: set[str]) -> tuple[ResourceRule, ...]:
        groups = sorted({CONTROLLER_GROUPS[c] for c in names})
        return tuple(
            ResourceRule(g, tuple(sorted(c for c in names if CONTROLLER_GROUPS[c] == g)), operations) for g in groups
        )

    out: list[AutogenConfig] = []
    if "cronjobs" in controllers:
        out.append(AutogenConfig("cronjobs", rules({"cronjobs"})))
    rest = controllers - {"cronjobs"}
    if rest:
        out.append(AutogenConfig("defaults", rules(rest)))
    return tuple(out)


def describe(configs: tuple[AutogenConfig, ...]) -> str:
    """``check-policy``'s one-line summary: ``autogen: defaults=deployments,statefulsets cronjobs=cronjobs``."""
    if not configs:
        return "autogen: none"
    return "autogen: " + " ".join(f"{c.name}={','.join(c.resources)}" for c in configs)

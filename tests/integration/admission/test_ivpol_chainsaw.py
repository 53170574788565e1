"""EVERY chainsaw directory of Kyverno's ImageValidatingPolicy conformance tests (shared/vectors/kyverno-ivpol) run
step by step through sigward's real path: each ``chainsaw-test.yaml`` is read, its policies are loaded as shipped
(the only edits are the ones a local registry forces, see :func:`localize`), and each step gives sigward's outcome:

- ``apply``/``create`` of a workload: the admission function (functions-framework) on the real docker-registry,
  ``/mutate`` then ``/validate`` on the mutated object — admitted, or denied with Kyverno's message when the step
  expects an error; ``script`` ``kubectl debug``: an ``ephemeralcontainers`` subresource UPDATE, denied;
- ``assert`` of a workload: the admitted (pinned) object contains the expected one; of an ImageValidatingPolicy:
  ``status.autogen`` against sigward's autogen configs (and the policy loads: "ready"); of a PolicyReport: ``sigward
  review --output policyreport`` on the resource; of webhook configurations: ``sigward webhook-config`` receives
  every request Kyverno's webhooks would, with the same failurePolicy and timeout.

A directory appearing in the vectors fails :func:`test_every_directory_is_classified` until it is classified; one
marked refused fails :func:`test_refused_directory_is_refused_as_recorded` once sigward loads it (flip it to run)."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sigward import cli
from sigward.errors import PolicyError
from sigward.policy.ivpol.autogen import autogen_configs
from sigward.policy.loader import load_policies, load_policy_text
from tests.integration.admission.conftest import AdmissionEnv
from tests.support.admission import decode_patch, pod_request, review
from tests.support.kubeapi import KubeAPI
from tests.support.notation import TestCA, make_ca, push_notary_attestation, sign_pushed
from tests.support.registry import LocalRegistry, canonical_json
from tests.support.report_schemas import errors, policy_report_validator, sarif_validator

pytestmark = pytest.mark.registry

VECTORS = Path("/work/shared/vectors/kyverno-ivpol/chainsaw")
SHIPPED_CERT_MARK = "MIIDTTCCAjWgAwIBAgIJAPI+zAzn4s0xMA0GCSqGSIb3DQEBCwUAMEwxCzAJBgNV"
POLICY_KINDS = ("ImageValidatingPolicy", "NamespacedImageValidatingPolicy")
SETUP_KINDS = ("Namespace", "ConfigMap", "PolicyException", "GlobalContextEntry")
CLUSTER_KINDS = ("Namespace", "ConfigMap")
# CLUSTER_KINDS: applied by a step, served by the kube API stand-in from then on; CORE_RESOURCES: the kinds it stores
# beside WORKLOADS, with their resource names
CORE_RESOURCES = {"ConfigMap": "configmaps"}
LOADED_KINDS = (*POLICY_KINDS, "PolicyException", "GlobalContextEntry")  # what sigward reads beside its policies
# Asserted by chainsaw, produced by Kyverno's controller, and deliberately not by sigward (with the reason): classified
# explicitly so such a step is reported as "not produced, by design", never passed silently.
NOT_PRODUCED = {
    "Event": "sigward has no write access to the cluster by design, so it creates no Kubernetes Events; the same "
    "verdict is in the admission response, the audit log line and `sigward review --output policyreport`",
}
WORKLOADS = {
    "Pod": ("", "pods"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "ReplicaSet": ("apps", "replicasets"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
}
# Steps with nothing for sigward to do: waiting for a policy to become ready, pauses.
READY_TEMPLATES = ("image-validating-policy-ready.yaml",)
SBOM = "sbom/cyclone-dx"
ARM_DIGEST_SHIPPED = "sha256:fa8dc70514f29471fe118446e3f84040b19791531ec197836a4f43baf13d744b"
KEYLESS_DIGEST_SHIPPED = "sha256:445a99db22e9add9bfb15ddb1980861a329e5dff5c88d7eec9cbf08b6b2f4eb1"


@dataclass(frozen=True)
class Vector:
    """How a chainsaw directory is handled: run (every step through sigward) or refused at load (``refusal``: a
    piece of today's PolicyError text, so the mark flips when the feature lands). ``adapt``: edits beyond
    localisation, with the reason."""

    run: bool
    refusal: str = ""
    why: str = ""
    adapt: Callable[[dict[str, Any]], None] | None = None
    # Loads now, but the harness does not yet give it what it needs (strict xfail: passing flips it to RUN).
    pending: str = ""
    # Kyverno's code at the vectors' commit decides a step differently from what its chainsaw file expects (file →
    # the denial message Kyverno's engine gives); ``why`` says where in Kyverno's source.
    kyverno_code: Mapping[str, str] = field(default_factory=dict)


def _admission_enabled(doc: dict[str, Any]) -> None:
    """sigward scans no cluster in the background: the per-resource report comes from ``sigward review``, so the
    background-only policy is evaluated as an admission policy (its verdict is Audit: the resource is admitted)."""
    doc["spec"]["evaluation"] = {"admission": {"enabled": True}}


RUN = Vector(run=True)
DIRECTORIES: dict[str, Vector] = {
    "autogen/autogen-deployments-cronjobs": RUN,
    "autogen/autogen-deployments-statefulsets": RUN,
    "autogen/none": RUN,
    "autogen/should-autogen": RUN,
    "autogen/should-not-autogen": RUN,
    "context/configmap": Vector(
        True,
        why="validationConfigurations.required defaults to true and no expression of the policy verifies an image: "
        "Kyverno's engine (pkg/cel/policies/ivpol/engine enforceRequired → evaluator/policy.go EnforceRequired, "
        "kyverno@111e07bbecc6) turns the passing positive Deployment into a failure, denied under Deny; the chainsaw "
        "step predates that check. sigward follows Kyverno's code (twin: with required false it is admitted)",
        kyverno_code={
            "positive.yaml": "Policy check-deployment-labels failed: image "
            "HOST/cs/kyverno/test-verify-image:signed@SIGNED is not verified: no policy performed a signature or "
            "attestation check on it"
        },
    ),
    "context/globalreference": RUN,
    "context/imagedata/image-data-arch": RUN,
    "context/imagedata/imagereference": RUN,
    "context/resource": RUN,
    "exceptions/autogen": RUN,
    "mutate-digest-disabled": RUN,
    "mutate-then-validate": RUN,
    "report/admission": RUN,
    "report/background": Vector(True, adapt=_admission_enabled),
    "report/with-exception": Vector(True, adapt=_admission_enabled),
    "security/forged-verification-annotation": RUN,
    "standard/notary-configmap-cert": RUN,
    "subresources/block-ephemeral-containers": RUN,
    "validation-actions/audit": RUN,
    "validation-actions/deny": RUN,
    "validation-actions/none": RUN,
    "validation-actions/warn": RUN,
    "validation-rules/accept": RUN,
    "validation-rules/reject": RUN,
    "webhook-configuration/basic/single": RUN,
    "webhook-configuration/combined": RUN,
    "webhook-configuration/ephemeral-containers/single": RUN,
    "webhook-configuration/fine-grained/match-conditions": RUN,
    "webhook-configuration/fine-grained/match-constraints": RUN,
    "webhook-configuration/fine-grained/timeout": RUN,
}
# What chainsaw cannot see but sigward's response shows: Warn → an AdmissionResponse warning (per applied file).
WARNINGS = {
    ("validation-actions/warn", "deployment.yaml"): (
        "Policy check-signed-images failed: failed to verify image with notary cert",
    ),
}


def chainsaw_directories() -> list[str]:
    return sorted(str(p.parent.relative_to(VECTORS)) for p in VECTORS.rglob("chainsaw-test.yaml"))


def test_every_directory_is_classified() -> None:
    found = set(chainsaw_directories())
    assert found == set(DIRECTORIES), {"unclassified": found - set(DIRECTORIES), "gone": set(DIRECTORIES) - found}


# --- the chainsaw test files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    op: str  # apply | assert | script
    file: str = ""
    error: str | None = None  # apply expecting failure: "" any error, else the message after "denied the request: "
    script: str = ""


def steps(directory: str) -> list[Step]:
    """The operations of a chainsaw test in order (template steps resolved to what they do)."""
    doc = yaml.safe_load((VECTORS / directory / "chainsaw-test.yaml").read_text())
    out: list[Step] = []
    for step in doc["spec"]["steps"]:
        if "use" in step:
            template = step["use"]["template"]
            bindings = {b["name"]: b["value"] for b in step["use"].get("with", {}).get("bindings", [])}
            if template.endswith("create-policy.yaml"):
                out.append(Step("apply", bindings["file"]))
            elif not template.endswith(READY_TEMPLATES):
                raise AssertionError(f"{directory}: unknown step template {template}")
            continue
        for op in step.get("try", []):
            ((name, body),) = [(k, v) for k, v in op.items() if k not in ("description",)]
            if name in ("apply", "create"):
                out.append(Step("apply", body["file"], _expected_error(body)))
            elif name == "assert":
                out.append(Step("assert", body["file"]))
            elif name == "script":
                out.append(Step("script", script=body["content"]))
            elif name != "sleep":
                raise AssertionError(f"{directory}: unknown chainsaw operation {name}")
    return out


def _expected_error(body: Mapping[str, Any]) -> str | None:
    for expect in body.get("expect", []):
        check = expect.get("check", {})
        if check.get("($error != null)") is True:
            return ""
        if "($error)" in check:
            return str(check["($error)"]).partition("denied the request: ")[2].strip()
    return None


def documents(directory: str, name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((VECTORS / directory / name).read_text()) if d]


def policy_files(directory: str) -> list[str]:
    return [
        s.file
        for s in steps(directory)
        if s.op == "apply" and any(d["kind"] in LOADED_KINDS for d in documents(directory, s.file))
    ]


def test_refused_directories_are_refused_as_recorded() -> None:
    """Every directory marked refused is refused with its recorded reason (none is, at this stop: the table keeps
    the mechanism so a future refusal is pinned, and one that starts loading flips)."""
    for directory in (d for d, v in DIRECTORIES.items() if not v.run):
        vector = DIRECTORIES[directory]
        with pytest.raises(PolicyError) as raised:
            load_policies([str(VECTORS / directory / f) for f in policy_files(directory)])
        assert vector.refusal in str(raised.value), str(raised.value)
        # never a stack trace or a silent pass: each problem names the file and the YAML path
        assert all("#doc" in str(p) or ".yaml" in str(p) for p in raised.value.problems)


# --- the local world --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    host: str  # stands for ghcr.io
    alias: str  # the same registry under another name: public.ecr.aws, Docker Hub
    ca: TestCA
    other_ca: TestCA
    digests: Mapping[str, str] = field(default_factory=dict)

    def localize(self, text: str, *, ca: TestCA | None = None) -> str:
        """A vector file pointed at the local registry: ``ghcr.io/`` → ``HOST/cs/`` (a repository prefix of this
        module's own), other registries → the alias; shipped digests → the pushed ones."""
        text = text.replace("ghcr.io/", f"{self.host}/cs/").replace('"ghcr.io"', f'"{self.host}"')
        text = text.replace("public.ecr.aws/", f"{self.alias}/cs-ecr/")
        text = text.replace(f"arm64v8/busybox@{ARM_DIGEST_SHIPPED}", f"{self.alias}/cs-hub/arm64v8/busybox@x")
        text = text.replace("@x", "@" + self.digests["arm64"]).replace(KEYLESS_DIGEST_SHIPPED, self.digests["keyless"])
        return text


def _config(arch: str) -> bytes:
    doc = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    return canonical_json(doc)


@pytest.fixture(scope="module")
def world(registry: LocalRegistry) -> World:
    """Kyverno's test images re-created: ``test-verify-image:signed`` Notation-signed by our CA with a signed
    CycloneDX SBOM referrer; ``:unsigned``; ``:signed-keyless`` (pinned only); busybox amd64 and arm64."""
    ca, other = make_ca("chainsaw vectors"), make_ca("chainsaw other", ec_key=True)
    repo = "cs/kyverno/test-verify-image"
    signed = registry.push_image(repo, tag="signed")
    sign_pushed(registry, repo, signed, ca)
    sbom: dict[str, object] = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}
    push_notary_attestation(registry, repo, signed, SBOM, sbom, ca)
    registry.push_image(repo, tag="unsigned")
    keyless = registry.push_image(repo, tag="signed-keyless")
    registry.push_image("cs/kyverno/kyverno", tag="latest")
    for tag in ("latest", "1.35"):
        registry.push_image("cs-ecr/docker/library/busybox", tag=tag, config=_config("amd64"))
    registry.push_image("cs-ecr/docker/library/nginx", tag="latest", config=_config("amd64"))
    arm = registry.push_image("cs-hub/arm64v8/busybox", tag=None, config=_config("arm64"))
    alias = registry.host.replace("127.0.0.1", "localhost")
    return World(registry.host, alias, ca, other, {"arm64": arm, "keyless": keyless, "signed": signed})


def policy_docs(
    directory: str,
    world: World,
    *,
    ca: TestCA | None = None,
    adapt: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """The directory's policies (and the exceptions and GlobalContextEntries applied beside them), localised; the
    shipped Notary certificate (whose key nobody has) becomes our CA. ``adapt``: a twin's edit of the policies."""
    vector = DIRECTORIES[directory]
    out = []
    for name in policy_files(directory):
        for doc in yaml.safe_load_all(world.localize((VECTORS / directory / name).read_text())):
            if doc["kind"] not in LOADED_KINDS:
                continue  # a Namespace or ConfigMap in the same file: the cluster's (see Cluster)
            for attestor in doc["spec"].get("attestors") or []:
                certs = attestor.get("notary", {}).get("certs", {})
                if SHIPPED_CERT_MARK in certs.get("value", ""):
                    certs["value"] = (ca or world.ca).root_pem
            for edit in (vector.adapt, adapt):
                if edit is not None and doc["kind"] in POLICY_KINDS:
                    edit(doc)
            out.append(doc)
    return out


# --- running the steps --------------------------------------------------------------------------------------------


def request_for(obj: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    group, _ = WORKLOADS[obj["kind"]]
    return pod_request(obj, kind=obj["kind"], group=group, **kwargs)


def decide(env: AdmissionEnv, request: dict[str, Any], path: str) -> dict[str, Any]:
    resp = env.post(path, review(request))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    answer: dict[str, Any] = resp.get_json()["response"]
    return answer


@dataclass(frozen=True)
class Admitted:
    obj: dict[str, Any]  # as stored: the mutating webhook's patch applied
    warnings: tuple[str, ...]


def admit(env: AdmissionEnv, obj: dict[str, Any]) -> Admitted | str:
    """``/mutate`` then ``/validate`` on the patched object: the stored object, or the denial message."""
    obj.setdefault("metadata", {}).setdefault("namespace", "default")
    mutated = decide(env, request_for(obj), "/mutate")
    if not mutated["allowed"]:
        return str(mutated["status"]["message"])
    stored = json.loads(json.dumps(obj))
    for op in decode_patch({"response": mutated}):
        assert op["op"] == "replace", op  # sigward pins images in place, nothing else
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node: Any = stored
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = op["value"]
    validated = decide(env, request_for(stored), "/validate")
    if not validated["allowed"]:
        return str(validated["status"]["message"])
    return Admitted(stored, tuple(mutated.get("warnings", ())))


def contains(actual: Any, expected: Any, path: str = "") -> list[str]:
    """Chainsaw's assert: every expected field is present and equal (lists element by element)."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{path}: expected a mapping, got {actual!r}"]
        return [m for k, v in expected.items() for m in contains(actual.get(k), v, f"{path}.{k}")]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [
            m for i, (a, e) in enumerate(zip(actual, expected, strict=True)) for m in contains(a, e, f"{path}[{i}]")
        ]
    return [] if actual == expected else [f"{path}: expected {expected!r}, got {actual!r}"]


def autogen_mismatches(directory: str, expected: Mapping[str, Any], world: World) -> list[str]:
    """``status.autogen`` of Kyverno against sigward's autogen configs: the config names, their resource rules and
    where their matchConditions read the Pod template."""
    (policy,) = load_policy_text(yaml.safe_dump_all(policy_docs(directory, world)), directory).image_policies
    ours = {c.name: c for c in autogen_configs(policy)}
    theirs = (expected.get("status", {}).get("autogen") or {}).get("configs") or {}
    # chainsaw asserts a subset (should-autogen lists only ``defaults``; Kyverno also makes ``cronjobs``); an empty
    # ``autogen: {}`` is read strictly — Kyverno generates nothing there (none, should-not-autogen)
    fits = set(theirs) <= set(ours) if theirs else not ours
    problems = [] if fits else [f"configs: sigward {sorted(ours)}, Kyverno {sorted(theirs)}"]
    for name in set(ours) & set(theirs):
        spec = theirs[name]["spec"]
        rules = spec["matchConstraints"]["resourceRules"]
        problems += contains([r.as_json() for r in ours[name].resource_rules], rules, f"configs.{name}.resourceRules")
        for condition in spec.get("matchConditions", []):
            if f"object.{ours[name].template_path}.metadata" not in " ".join(condition["expression"].split()):
                problems.append(f"configs.{name}.matchConditions: not read at {ours[name].template_path}")
    return problems


def sigward_webhooks(policy_paths: list[Path]) -> dict[str, dict[str, Any]]:
    out = io.StringIO()
    argv = ["webhook-config", "--url", "https://sigward.example/admission"]
    assert cli.run([*argv, *itertools.chain(*(("--policy", str(p)) for p in policy_paths))], out=out) == 0
    return {d["kind"]: d for d in yaml.safe_load_all(out.getvalue())}


def _covers(rule: Mapping[str, Any], group: str, version: str, op: str, resource: str) -> bool:
    def has(key: str, value: str) -> bool:
        return value in rule[key] or "*" in rule[key]

    return (
        has("apiGroups", group) and has("apiVersions", version) and has("operations", op) and has("resources", resource)
    )


def webhook_mismatches(ours: Mapping[str, dict[str, Any]], expected: list[dict[str, Any]]) -> list[str]:
    """Does sigward's webhook receive every request Kyverno's would, with the same failurePolicy and timeout?
    (URL, name, caBundle, sideEffects and reinvocation differ by design; sigward registers one webhook and evaluates
    each policy's matchConstraints/matchConditions itself, so it sets no matchConditions that could drop a request.)"""
    problems: list[str] = []
    for config in expected:
        (hook,) = [h for h in ours[config["kind"]]["webhooks"] if "-sel-" not in h["name"]]
        for theirs in config["webhooks"]:
            where = f"{config['kind']}/{theirs['name']}"
            for field_name in ("failurePolicy", "timeoutSeconds"):
                if hook[field_name] != theirs[field_name]:
                    problems.append(f"{where}: {field_name} {hook[field_name]!r} != {theirs[field_name]!r}")
            if hook.get("matchConditions"):
                problems.append(f"{where}: sigward's matchConditions could drop requests Kyverno receives")
            for rule in theirs["rules"]:
                for group, version, op, resource in itertools.product(
                    rule["apiGroups"], rule["apiVersions"], rule["operations"], rule["resources"]
                ):
                    if not any(_covers(r, group, version, op, resource) for r in hook["rules"]):
                        problems.append(f"{where}: {op} {group or 'core'}/{version}/{resource} is not sent to sigward")
    return problems


def report_mismatches(
    env: AdmissionEnv, obj: Mapping[str, Any], expected: Mapping[str, Any], tmp_path: Path
) -> list[str]:
    """``sigward review --output policyreport`` on the resource against the fields Kyverno's report asserts (its
    ownerReferences and managed-by label name Kyverno's own objects)."""
    path = tmp_path / "review.json"
    path.write_text(json.dumps(review(request_for(dict(obj)))))
    out = io.StringIO()
    argv = ["review", "--policy", str(env.policy_path), "--output", "policyreport", str(path)]
    assert cli.run(argv, out=out, err=io.StringIO()) == 0
    report = json.loads(out.getvalue())
    assert errors(policy_report_validator(), report) == []  # the wgpolicyk8s.io CRD schema
    wanted = {k: v for k, v in expected.items() if k not in ("metadata",)}
    return contains(report, wanted, "PolicyReport")


@dataclass
class Run:
    """What the steps left behind: admitted objects by (kind, name), and every problem found."""

    admitted: dict[tuple[str, str], Admitted] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    not_produced: list[str] = field(default_factory=list)  # assert steps classified in NOT_PRODUCED


@dataclass
class Cluster:
    """What the steps applied, served by the kube API stand-in as an API server would: each object at its own path
    and in its collections (all namespaces and per namespace), from the step that applied it on. ``edit``: a twin's
    change to an object before the cluster stores it (None: the object is left out)."""

    kube: KubeAPI
    edit: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    stored: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def store(self, obj: dict[str, Any]) -> None:
        edited = self.edit(obj) if self.edit is not None else obj
        if edited is None:
            return
        meta = edited["metadata"]
        if edited["kind"] != "Namespace":
            meta.setdefault("namespace", "default")
            self.store_namespace(meta["namespace"])
        self.stored[(edited["kind"], meta.get("namespace", ""), meta["name"])] = edited
        self.publish()

    def store_namespace(self, name: str) -> None:
        if ("Namespace", "", name) not in self.stored:
            self.stored[("Namespace", "", name)] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}

    def publish(self) -> None:
        # every collection exists, empty until something is stored in it (as an API server lists it)
        kinds = {**{kind: ("", resource) for kind, resource in CORE_RESOURCES.items()}, **WORKLOADS}
        namespaces = [name for (kind, _, name) in self.stored if kind == "Namespace"]
        collections: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for kind, (group, resource) in kinds.items():
            base = f"/apis/{group}/v1" if group else "/api/v1"
            collections[(f"{base}/{resource}", kind)] = []
            for ns in namespaces:
                collections[(f"{base}/namespaces/{ns}/{resource}", kind)] = []
        for (kind, ns, name), obj in self.stored.items():
            if kind == "Namespace":
                self.kube.add(obj)
                continue
            group, resource = WORKLOADS.get(kind) or ("", CORE_RESOURCES[kind])
            base = f"/apis/{group}/v1" if group else "/api/v1"
            self.kube.objects[f"{base}/namespaces/{ns}/{resource}/{name}"] = obj
            collections.setdefault((f"{base}/{resource}", kind), []).append(obj)
            collections.setdefault((f"{base}/namespaces/{ns}/{resource}", kind), []).append(obj)
        for (path, kind), items in collections.items():
            self.kube.add_list(path, kind, items)


def run_steps(
    directory: str,
    world: World,
    admission_env: Callable[..., AdmissionEnv],
    tmp_path: Path,
    *,
    ca: TestCA | None = None,
    adapt: Callable[[dict[str, Any]], None] | None = None,
    cluster_edit: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    kube_down: bool = False,
) -> Run:
    """The chainsaw steps in order against sigward, with the kube API stand-in as the cluster (``kube_down``: its
    address answers nothing). Before the step that creates the policy, Kyverno has nothing to enforce: a workload
    applied then is stored in the cluster without a decision (it is not a step sigward decides)."""
    with KubeAPI(tmp_path / "kube-tls") as kube:
        kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
        cluster = Cluster(kube, cluster_edit)
        cluster.store_namespace("default")
        cluster.publish()
        if kube_down:
            kube.__exit__(None, None, None)
        return _run_steps(directory, world, admission_env, tmp_path, cluster, kubeconfig, ca=ca, adapt=adapt)


def _run_steps(
    directory: str,
    world: World,
    admission_env: Callable[..., AdmissionEnv],
    tmp_path: Path,
    cluster: Cluster,
    kubeconfig: Path,
    *,
    ca: TestCA | None,
    adapt: Callable[[dict[str, Any]], None] | None,
) -> Run:
    vector = DIRECTORIES[directory]
    docs = policy_docs(directory, world, ca=ca, adapt=adapt)
    env = admission_env(
        *docs,
        extra_env={
            "SIGWARD_INSECURE_REGISTRIES": f"{world.host},{world.alias}",
            "SIGWARD_PRIVATE_REGISTRIES": "127.0.0.1,localhost",
            "SIGWARD_KUBECONFIG": str(kubeconfig),
        },
    )
    run = Run()
    policy_created = False
    for step in steps(directory):
        if step.op == "apply":
            for doc in documents(directory, step.file):
                if doc["kind"] in POLICY_KINDS:
                    policy_created = True
                if doc["kind"] in LOADED_KINDS:
                    continue
                obj = yaml.safe_load(world.localize(yaml.safe_dump(doc)))
                where = f"{step.file} {obj['kind']}/{obj['metadata']['name']}"
                if doc["kind"] in CLUSTER_KINDS:
                    cluster.store(_with_our_ca(obj, ca or world.ca))
                    continue
                if not policy_created:
                    run.checked.append(f"apply {where}: before any policy, stored without a decision")
                    obj["metadata"].setdefault("namespace", "default")
                    run.admitted[(obj["kind"], obj["metadata"]["name"])] = Admitted(obj, ())
                    cluster.store(json.loads(json.dumps(obj)))
                    continue
                outcome = admit(env, obj)
                run.checked.append(f"apply {where}: {'admitted' if isinstance(outcome, Admitted) else 'denied'}")
                expected = _kyverno_code_expectation(vector, step, world)
                if expected is None and not isinstance(outcome, Admitted):
                    run.problems.append(f"{where}: Kyverno admits it, sigward denied: {outcome}")
                elif expected is not None and isinstance(outcome, Admitted):
                    run.problems.append(f"{where}: Kyverno denies it ({expected or 'an error'}), sigward admitted")
                elif expected and outcome != expected:
                    run.problems.append(f"{where}: message {outcome!r} != Kyverno's {expected!r}")
                if isinstance(outcome, Admitted):
                    run.admitted[(obj["kind"], obj["metadata"]["name"])] = outcome
                    cluster.store(json.loads(json.dumps(outcome.obj)))
                    wanted = WARNINGS.get((directory, step.file), ())
                    if outcome.warnings != wanted:
                        run.problems.append(f"{where}: warnings {outcome.warnings} != {wanted}")
        elif step.op == "script":
            run.problems += ephemeral_debug(env, step.script, run)
        else:
            for expected_doc in yaml.safe_load_all(world.localize((VECTORS / directory / step.file).read_text())):
                kind = expected_doc["kind"]
                if kind in NOT_PRODUCED:
                    run.checked.append(f"assert {step.file} {kind}: not produced, by design ({NOT_PRODUCED[kind]})")
                    run.not_produced.append(f"{step.file} {kind}")
                    continue
                run.checked.append(f"assert {step.file} {kind}")
                run.problems += assert_one(directory, expected_doc, world, env, run, tmp_path)
    return run


def _kyverno_code_expectation(vector: Vector, step: Step, world: World) -> str | None:
    """The denial Kyverno gives for ``step``: its engine's where the vector records one (see ``kyverno_code``), else
    the chainsaw file's."""
    if step.file in vector.kyverno_code:
        return vector.kyverno_code[step.file].replace("HOST", world.host).replace("SIGNED", world.digests["signed"])
    return step.error


def _with_our_ca(obj: dict[str, Any], ca: TestCA) -> dict[str, Any]:
    """A ConfigMap holding the shipped Notary certificate (whose key nobody has) holds our CA instead, as the
    policies' own certificates do (standard/notary-configmap-cert reads it with ``certs.expression``)."""
    data = obj.get("data") or {}
    for key, value in data.items():
        if isinstance(value, str) and SHIPPED_CERT_MARK in value:
            data[key] = ca.root_pem
    return obj


def assert_one(
    directory: str, expected: dict[str, Any], world: World, env: AdmissionEnv, run: Run, tmp_path: Path
) -> list[str]:
    kind = expected["kind"]
    if kind in WORKLOADS:
        stored = run.admitted.get((kind, expected["metadata"]["name"]))
        if stored is None:
            return [f"assert {kind}/{expected['metadata']['name']}: never admitted"]
        return contains(stored.obj, expected, f"{kind}/{expected['metadata']['name']}")
    if kind in SETUP_KINDS:  # a Namespace or ConfigMap the test created: the cluster's, not sigward's
        return []
    if kind in POLICY_KINDS:  # "ready" is: sigward loaded it (the env above); autogen is compared
        return autogen_mismatches(directory, expected, world) if "autogen" in expected.get("status", {}) else []
    if kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        return webhook_mismatches(sigward_webhooks([env.policy_path]), [expected])
    if kind == "PolicyReport":
        scope = expected["scope"]
        stored = run.admitted[(scope["kind"], scope["name"])]
        return report_mismatches(env, stored.obj, expected, tmp_path)
    return [f"assert of a {kind}: not classified"]


def ephemeral_debug(env: AdmissionEnv, script: str, run: Run) -> list[str]:
    """``kubectl debug POD --image=IMAGE`` expected to fail: an UPDATE of the ``ephemeralcontainers`` subresource
    adding a debug container; sigward must deny it."""
    words = script.split()
    assert "debug" in words and "exit 1; else exit 0" in script, script
    name = words[words.index("debug") + 1]
    image = next(w.split("=", 1)[1] for w in words if w.startswith("--image="))
    pod = next(a.obj for (kind, n), a in run.admitted.items() if kind == "Pod" and n == name)
    debugged = json.loads(json.dumps(pod))
    debugged["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": image, "targetContainerName": "busybox"}]
    request = request_for(debugged, operation="UPDATE", old=pod, sub_resource="ephemeralcontainers")
    answer = decide(env, request, "/validate")
    run.checked.append(f"kubectl debug {name}: {'admitted' if answer['allowed'] else 'denied'}")
    return [f"kubectl debug {name}: admitted, Kyverno denies it"] if answer["allowed"] else []


@pytest.mark.parametrize(
    "directory",
    [
        pytest.param(d, marks=pytest.mark.xfail(reason=v.pending, strict=True)) if v.pending else d
        for d, v in DIRECTORIES.items()
        if v.run
    ],
)
def test_chainsaw_directory(
    directory: str, world: World, admission_env: Callable[..., AdmissionEnv], tmp_path: Path
) -> None:
    run = run_steps(directory, world, admission_env, tmp_path)
    assert run.checked, "no step gave sigward anything to decide"
    assert run.problems == [], run.checked
    # Events are the only thing a step asserts that sigward does not produce, and only where the vector asks for them
    assert run.not_produced == EXPECTED_NOT_PRODUCED.get(directory, []), run.checked


EXPECTED_NOT_PRODUCED = {"report/admission": ["events-assert.yaml Event", "events-assert.yaml Event"]}


# --- negative twins: each comparison detects a wrong outcome -------------------------------------------------------


@pytest.mark.parametrize(
    "directory",
    ["autogen/autogen-deployments-cronjobs", "autogen/autogen-deployments-statefulsets", "validation-rules/accept"],
)
def test_foreign_ca_denies_what_kyverno_admits(
    directory: str, world: World, admission_env: Callable[..., AdmissionEnv], tmp_path: Path
) -> None:
    """The same steps with another CA in the policy: the good workloads are now denied — the admissions above are
    real signature checks, not pass-throughs."""
    run = run_steps(directory, world, admission_env, tmp_path, ca=world.other_ca)
    denied = [p for p in run.problems if "Kyverno admits it, sigward denied" in p]
    assert denied and all("failed to verify image with notary cert" in p for p in denied), run.problems


def _without_main_deployment(obj: dict[str, Any]) -> dict[str, Any] | None:
    return None if obj["metadata"]["name"] == "main-deployment" else obj


def _data(key: str, value: Callable[[World], str]) -> Callable[[World], Callable[[dict[str, Any]], dict[str, Any]]]:
    """A twin's cluster edit: every ConfigMap's ``data[key]`` replaced."""

    def for_world(world: World) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def edit(obj: dict[str, Any]) -> dict[str, Any]:
            if obj["kind"] == "ConfigMap" and key in obj.get("data", {}):
                obj["data"][key] = value(world)
            return obj

        return edit

    return for_world


def _pod_env_testing(world: World) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == "Pod":
            obj["metadata"]["labels"]["env"] = "testing"
        return obj

    return edit


def _required_off(doc: dict[str, Any]) -> None:
    doc["spec"]["validationConfigurations"] = {"required": False}


def _audit_label_staging(doc: dict[str, Any]) -> None:
    doc["spec"]["auditAnnotations"][0]["valueExpression"] = "'staging'"


@dataclass(frozen=True)
class Twin:
    """A flipped directory run with one thing changed, and the problems the walker must then report (each a piece of
    a problem line): proof that the directory's outcomes come from what the twin changed."""

    directory: str
    problems: tuple[str, ...]
    cluster_edit: Callable[[World], Callable[[dict[str, Any]], dict[str, Any] | None]] | None = None
    adapt: Callable[[dict[str, Any]], None] | None = None
    kube_down: bool = False


TWINS = {
    # no main-deployment in the cluster: the GlobalContextEntry counts 0 and the validation passes; what denies the
    # new Deployment is then `required` (nothing verified its image), as in Kyverno's engine
    "globalreference-no-main": Twin(
        "context/globalreference",
        ("new-deployment.yaml Deployment/new-deployment: message 'Policy ivpol-apicall-correct failed: image ",),
        cluster_edit=lambda world: _without_main_deployment,
    ),
    # the API server down: the entry cannot be read, the policy errs and is denied (not admitted)
    "globalreference-api-down": Twin(
        "context/globalreference",
        ("message 'Policy ivpol-apicall-correct error: ",),
        kube_down=True,
    ),
    # the ConfigMap says env=dev: the positive now fails the label validation instead of `required`
    "configmap-other-env": Twin(
        "context/configmap",
        ("positive.yaml Deployment/positive: message 'Policy check-deployment-labels failed: Deployment labels must",),
        cluster_edit=_data("env", lambda world: "dev"),
    ),
    # required false: nothing denies the positive, so the recorded denial is Kyverno's required check
    "configmap-required-off": Twin(
        "context/configmap", ("positive.yaml Deployment/positive: Kyverno denies it",), adapt=_required_off
    ),
    # the Pod the policy reads is labelled env=testing: the positive Deployment is denied
    "resource-pod-testing": Twin(
        "context/resource",
        (
            "positive.yaml Deployment/positive: Kyverno admits it, sigward denied: Policy ivpol-resource-lookup-sample "
            "failed: Deployment labels must be env=prod",
            "assert Deployment/positive: never admitted",
            "negative.yaml Deployment/negative: Kyverno denies it",  # it now has the Pod's label
        ),
        cluster_edit=lambda world: _pod_env_testing(world),
    ),
    "resource-api-down": Twin(
        "context/resource",
        (
            "positive.yaml Deployment/positive: Kyverno admits it, sigward denied: Policy ivpol-resource-lookup-sample "
            "error: ",
            "assert Deployment/positive: never admitted",
            "negative.yaml Deployment/negative: message 'Policy ivpol-resource-lookup-sample error: ",
        ),
        kube_down=True,
    ),
    # the ConfigMap holds another CA: the good Pod no longer verifies
    "notary-cm-other-ca": Twin(
        "standard/notary-configmap-cert",
        (
            "good-pod.yaml Pod/test-pod-good: Kyverno admits it, sigward denied: Policy ivpol-sample failed: failed to "
            "verify image with notary cert",
            "assert Pod/test-pod-good: never admitted",
        ),
        cluster_edit=_data("certificate", lambda world: world.other_ca.root_pem),
    ),
    # Regression (wrong allow): the ConfigMap lookup cannot be answered and the policy says failurePolicy Ignore;
    # Kyverno's webhook denies the evaluation error under Deny (failurePolicy governs only a webhook that cannot answer)
    "notary-cm-api-down": Twin(
        "standard/notary-configmap-cert",
        (
            "bad-pod.yaml Pod/test-pod-bad: message 'Policy ivpol-sample error: ",
            "good-pod.yaml Pod/test-pod-good: Kyverno admits it, sigward denied: Policy ivpol-sample error: ",
            "assert Pod/test-pod-good: never admitted",
        ),
        kube_down=True,
    ),
    # another auditAnnotation value: the report's properties follow it
    "report-admission-label": Twin(
        "report/admission",
        ("PolicyReport.results[0].properties.label: expected 'prod', got 'staging'",),
        adapt=_audit_label_staging,
    ),
}


@pytest.mark.parametrize("twin", list(TWINS))
def test_flipped_directory_twin(
    twin: str, world: World, admission_env: Callable[..., AdmissionEnv], tmp_path: Path
) -> None:
    spec = TWINS[twin]
    edit = spec.cluster_edit(world) if spec.cluster_edit is not None else None
    run = run_steps(
        spec.directory, world, admission_env, tmp_path, adapt=spec.adapt, cluster_edit=edit, kube_down=spec.kube_down
    )
    assert len(run.problems) == len(spec.problems), run.problems
    for wanted, found in zip(spec.problems, run.problems, strict=True):
        assert wanted in found, (wanted, run.problems)


def test_cronjob_labelled_only_in_its_job_template_is_checked(
    world: World, admission_env: Callable[..., AdmissionEnv]
) -> None:
    """Regression (wrong allow): autogen matchConditions read the CronJob's Pod template labels (Kyverno rewrites
    ``object.metadata`` to ``object.spec.jobTemplate.spec.template.metadata``), not the CronJob's own."""
    env = admission_env(*policy_docs("autogen/autogen-deployments-cronjobs", world))
    docs = documents("autogen/autogen-deployments-cronjobs", "bad-deployment.yaml")
    cronjob = yaml.safe_load(world.localize(yaml.safe_dump(next(d for d in docs if d["kind"] == "CronJob"))))
    assert "labels" not in cronjob["metadata"]
    assert admit(env, cronjob) == "Policy ivpol-autogen-sample failed: failed to verify image with notary cert"
    unlabelled = json.loads(json.dumps(cronjob))
    del unlabelled["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert isinstance(admit(env, unlabelled), Admitted)  # matchConditions not met: skipped, as in Kyverno


def test_the_exception_is_what_admits_the_skipped_resources(
    world: World, admission_env: Callable[..., AdmissionEnv]
) -> None:
    """exceptions/autogen without its PolicyException: the "skipped" workloads (unsigned) are denied; with it they
    are admitted, and a good-looking name on a bad workload is not enough (the exception reads the object's name)."""
    directory = "exceptions/autogen"
    docs = policy_docs(directory, world)
    skipped = [
        yaml.safe_load(world.localize(yaml.safe_dump(d))) for d in documents(directory, "skipped-resources.yaml")
    ]
    without = admission_env(*[d for d in docs if d["kind"] != "PolicyException"])
    for obj in skipped:
        assert admit(without, json.loads(json.dumps(obj))) == (
            "Policy ivpol-autogen-sample failed: failed to verify image with notary cert"
        ), obj["metadata"]["name"]
    with_exception = admission_env(*docs)
    assert all(isinstance(admit(with_exception, json.loads(json.dumps(o))), Admitted) for o in skipped)
    renamed = json.loads(json.dumps(skipped[0]))
    renamed["metadata"]["name"] = "not-skipped"
    assert not isinstance(admit(with_exception, renamed), Admitted)


def test_autogen_comparison_detects_a_wrong_expectation(world: World) -> None:
    directory = "autogen/autogen-deployments-cronjobs"
    (expected,) = documents(directory, "check-autogen.yaml")
    assert autogen_mismatches(directory, expected, world) == []
    wrong = json.loads(json.dumps(expected))
    wrong["status"]["autogen"]["configs"]["defaults"]["spec"]["matchConstraints"]["resourceRules"][0]["resources"] = [
        "statefulsets"
    ]
    assert autogen_mismatches(directory, wrong, world)
    (none,) = documents("autogen/none", "check-autogen.yaml")
    assert autogen_mismatches(directory, none, world)  # Kyverno generates nothing there, sigward two configs


def test_webhook_comparison_detects_a_missing_rule_and_timeout(world: World, tmp_path: Path) -> None:
    directory = "webhook-configuration/fine-grained/timeout"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump_all(policy_docs(directory, world)))
    expected = documents(directory, "webhooks.yaml")
    ours = sigward_webhooks([path])
    assert webhook_mismatches(ours, expected) == []
    shorter = json.loads(json.dumps(expected))
    shorter[0]["webhooks"][0]["timeoutSeconds"] = 10
    assert any("timeoutSeconds" in p for p in webhook_mismatches(ours, shorter))
    more = json.loads(json.dumps(expected))
    more[0]["webhooks"][0]["rules"].append(
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["services"]}
    )
    assert webhook_mismatches(ours, more) == [
        "MutatingWebhookConfiguration/"
        + more[0]["webhooks"][0]["name"]
        + ": CREATE core/v1/services is not sent to sigward"
    ]


def test_report_comparison_detects_a_wrong_result(
    world: World, admission_env: Callable[..., AdmissionEnv], tmp_path: Path
) -> None:
    directory = "report/background"
    env = admission_env(*policy_docs(directory, world))
    (deployment,) = documents(directory, "deployment.yaml")
    obj = yaml.safe_load(world.localize(yaml.safe_dump(deployment)))
    obj["metadata"]["namespace"] = "default"
    (expected,) = yaml.safe_load_all(world.localize((VECTORS / directory / "report.yaml").read_text()))
    assert report_mismatches(env, obj, expected, tmp_path) == []
    passing = json.loads(json.dumps(expected))
    passing["results"][0]["result"] = "pass"
    assert report_mismatches(env, obj, passing, tmp_path)
    # a signed image passes: the report says pass, Kyverno's fail expectation no longer holds
    signed = json.loads(json.dumps(obj).replace(":unsigned", ":signed"))
    assert report_mismatches(env, signed, expected, tmp_path)


@pytest.mark.parametrize(
    ("directory", "image", "level", "kind"),
    [
        ("validation-rules/reject", "unsigned", "error", "fail"),
        ("validation-actions/audit", "unsigned", "warning", "fail"),
        ("validation-rules/accept", "signed", "none", "pass"),
    ],
)
def test_review_sarif_carries_ivpol_results(
    directory: str,
    image: str,
    level: str,
    kind: str,
    world: World,
    admission_env: Callable[..., AdmissionEnv],
    tmp_path: Path,
) -> None:
    """``sigward review --output sarif``: the IVPOL's verdict on the vector's Deployment (Deny → error, Audit →
    warning), named by the policy."""
    env = admission_env(*policy_docs(directory, world))
    (deployment,) = documents(directory, "deployment.yaml")
    obj = yaml.safe_load(world.localize(yaml.safe_dump(deployment)).replace(":unsigned", f":{image}"))
    obj["metadata"]["namespace"] = "default"
    path = tmp_path / "review.json"
    path.write_text(json.dumps(review(request_for(obj))))
    out = io.StringIO()
    assert cli.run(["review", "--policy", str(env.policy_path), "--output", "sarif", str(path)], out=out) == 0
    doc = json.loads(out.getvalue())
    assert errors(sarif_validator(), doc) == []
    (result,) = doc["runs"][0]["results"]
    assert (result["ruleId"], result["level"], result["kind"]) == (
        "check-signed-images/ImageValidatingPolicy",
        level,
        kind,
    )
    assert result["message"]["text"] == ("failed to verify image with notary cert" if kind == "fail" else "")


@pytest.mark.parametrize(
    ("directory", "summary"),
    [
        ("autogen/autogen-deployments-cronjobs", "autogen: cronjobs=cronjobs defaults=deployments"),
        ("autogen/autogen-deployments-statefulsets", "autogen: defaults=deployments,statefulsets"),
        (
            "autogen/should-autogen",
            "autogen: cronjobs=cronjobs defaults=daemonsets,deployments,replicasets,statefulsets,jobs",
        ),
        ("autogen/none", "autogen: none"),
        ("autogen/should-not-autogen", "autogen: none"),
    ],
)
def test_check_policy_shows_autogen(directory: str, summary: str) -> None:
    """``sigward check-policy`` (human and ``--json``) shows the kinds each vector policy's rules extend to."""
    path = str(VECTORS / directory / "policy.yaml")
    out = io.StringIO()
    assert cli.run(["check-policy", path], out=out, err=io.StringIO()) == 0
    assert out.getvalue().rstrip().endswith(f"validations; {summary})"), out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(["check-policy", "--json", path], out=out, err=err) == 0
    (policy,) = json.loads(out.getvalue())["imageValidatingPolicies"]
    shown = " ".join(
        f"{k}={','.join(r for rule in v for r in rule['resources'])}" for k, v in policy["autogen"].items()
    )
    assert f"autogen: {shown or 'none'}" == summary
    assert policy["kind"] == "ImageValidatingPolicy" and "ok:" not in out.getvalue()


@pytest.fixture(autouse=True)
def _vectors_present() -> Iterator[None]:
    if not VECTORS.is_dir():
        pytest.skip("shared/vectors/kyverno-ivpol is not on this machine")
    yield

"""terraform/gcp, read statically with python-hcl2 (the Google provider cannot be downloaded here, so neither
``terraform validate`` nor ``plan`` can run): the settings that security and availability depend on.

The functions are calls of ``modules/function``; the fixture renders each call into the resource it creates (the
child's variables replaced by the call's arguments) under the call's name, so every check reads the function as
Terraform will create it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.hcl import block, load_module, render_call, walk

REPO = Path(__file__).resolve().parents[3]
GCP = REPO / "terraform" / "gcp"
ALLOWED_ROLES = {
    "roles/run.invoker",
    "roles/cloudkms.publicKeyViewer",
    "roles/cloudkms.viewer",
    "roles/artifactregistry.reader",
    "roles/datastore.user",
    "roles/secretmanager.secretAccessor",
    "roles/eventarc.eventReceiver",
    "roles/iam.serviceAccountTokenCreator",
}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}


FUNCTION_MODULE = "./modules/function"
FUNCTIONS = ("admission", "push_pubsub", "push_webhook", "reverify")


def load_with_functions() -> dict[str, Any]:
    """terraform/gcp with each ``modules/function`` call rendered into ``resource[TYPE][CALL]``."""
    loaded = load_module(GCP)
    for call, args in loaded["module"].items():
        if args["source"] == FUNCTION_MODULE:
            for rtype, body in render_call(loaded, GCP, call).items():
                loaded["resource"].setdefault(rtype, {})[call] = body
    return loaded


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return load_with_functions()


def _function(module: dict[str, Any], name: str) -> dict[str, Any]:
    body: dict[str, Any] = module["resource"]["google_cloudfunctions2_function"][name]
    return body


def _variable_regex(module: dict[str, Any], name: str) -> re.Pattern[str]:
    condition = block(module["variable"][name], "validation")["condition"]
    match = re.search(r'regex\("(.+?)", ', condition)
    assert match, condition
    return re.compile(match.group(1).replace("\\\\", "\\"))


def test_versions_pin_terraform_and_both_providers(module: dict[str, Any]) -> None:
    (terraform,) = module["terraform"]
    assert terraform["required_version"] == ">= 1.5"
    providers = terraform["required_providers"][0] if isinstance(terraform["required_providers"], list) else {}
    providers = providers or terraform["required_providers"]
    assert providers["google"]["source"] == "hashicorp/google"
    assert providers["random"]["source"] == "hashicorp/random"


def test_admission_is_warm_public_and_token_protected(module: dict[str, Any]) -> None:
    admission = _function(module, "admission")
    build = block(admission, "build_config")
    assert build["runtime"] == "python311" and build["entry_point"] == "admission"
    service = block(admission, "service_config")
    assert service["min_instance_count"] == "${var.min_instance_count}"
    assert service["ingress_settings"] == "ALLOW_ALL"
    variable = module["variable"]["min_instance_count"]
    assert variable["default"] >= 1
    assert "var.min_instance_count >= 1" in block(variable, "validation")["condition"]
    (token,) = service["secret_environment_variables"]
    assert token["key"] == "SIGWARD_ADMISSION_TOKEN"
    assert token["secret"] == "${google_secret_manager_secret.admission_token.secret_id}"
    assert token["version"] == "${google_secret_manager_secret_version.admission_token.version}"
    assert "SIGWARD_ADMISSION_TOKEN" not in str(service["environment_variables"])
    # The source object is the archive, named by its hash.
    storage = block(block(build, "source"), "storage_source")
    assert storage["object"] == "${google_storage_bucket_object.source.name}"
    assert module["resource"]["google_storage_bucket_object"]["source"]["name"] == "${local.source_object}"
    assert module["locals"]["source_object"] == "sigward-${substr(filesha256(var.source_zip), 0, 12)}.zip"


def test_push_pubsub_is_triggered_by_the_gcr_topic_with_retries(module: dict[str, Any]) -> None:
    push = _function(module, "push_pubsub")
    assert block(push, "build_config")["entry_point"] == "push_pubsub"
    dynamic = push["dynamic"][0]["event_trigger"]
    for_each = dynamic["for_each"]
    assert for_each.startswith("${local.pubsub_eventarc ? [{") and for_each.endswith("}] : []}")
    for setting in (
        "trigger_region = var.region",
        'event_type = "google.cloud.pubsub.topic.v1.messagePublished"',
        'retry_policy = "RETRY_POLICY_RETRY"',
        "pubsub_topic = local.gcr_topic",
        "service_account_email = google_service_account.trigger[0].email",
    ):
        assert setting in for_each, setting
    trigger = dynamic["content"][0]
    assert trigger == {k: f"${{event_trigger.value.{k}}}" for k in trigger}
    assert set(trigger) == {"trigger_region", "event_type", "pubsub_topic", "retry_policy", "service_account_email"}
    assert module["locals"]["gcr_topic"] == "projects/${var.project_id}/topics/gcr"
    assert block(push, "service_config")["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    topic = module["resource"]["google_pubsub_topic"]["gcr"]
    assert topic["name"] == "gcr" and "var.create_gcr_topic" in topic["count"]


def test_public_invoker_only_where_a_secret_guards_the_door(module: dict[str, Any]) -> None:
    """allUsers may invoke admission (path token) and, when enabled, push_webhook (shared secret) — nothing else;
    push_pubsub only by its trigger's identity."""
    bindings = []
    for rtype, resources in module["resource"].items():
        for name, body in resources.items():
            if "member" in body or "members" in body:
                bindings.append((rtype, name, body))
    public = {(rtype, name) for rtype, name, body in bindings if body.get("member") in PUBLIC_MEMBERS}
    assert not [b for b in bindings if set(b[2].get("members", [])) & PUBLIC_MEMBERS]
    assert public == {
        ("google_cloud_run_service_iam_member", "admission_public"),
        ("google_cloud_run_service_iam_member", "push_webhook_public"),
        ("google_cloud_run_service_iam_member", "push_pubsub_public"),  # push subscription: the OIDC token guards it
    }
    invokers = module["resource"]["google_cloud_run_service_iam_member"]
    assert invokers["admission_public"]["service"] == "${module.admission.name}"
    assert invokers["admission_public"]["role"] == "roles/run.invoker"
    assert invokers["push_webhook_public"]["count"] == "${var.push_webhook_enabled ? 1 : 0}"
    assert invokers["push_webhook_public"]["service"] == "${module.push_webhook[0].name}"
    assert invokers["push_pubsub_trigger"]["member"] == "serviceAccount:${google_service_account.trigger[0].email}"
    assert invokers["push_pubsub_trigger"]["count"] == "${local.pubsub_eventarc ? 1 : 0}"
    assert invokers["push_pubsub_public"]["count"] == "${local.pubsub_push ? 1 : 0}"
    assert module["locals"]["pubsub_push"] == (
        '${var.push_pubsub_enabled && var.push_pubsub_delivery == "push_subscription"}'
    )
    webhook = block(_function(module, "push_webhook"), "service_config")
    assert webhook["secret_environment_variables"][0]["key"] == "SIGWARD_PUSH_SECRET"
    assert module["variable"]["push_webhook_enabled"]["default"] is False


def test_least_privilege_roles(module: dict[str, Any]) -> None:
    text = "\n".join(p.read_text() for p in sorted(GCP.rglob("*.tf")))
    roles = set(re.findall(r"roles/[A-Za-z0-9_.]+", text))
    assert roles <= ALLOWED_ROLES, roles - ALLOWED_ROLES
    assert not re.search(r"roles/(owner|editor|viewer\b)|[A-Za-z]+\.?[Aa]dmin\b|Admin\"", text)
    resources = module["resource"]
    # No project-wide grant beyond the verdict store and the trigger's event receiver.
    project_roles = {body["role"] for body in resources["google_project_iam_member"].values()}
    assert project_roles == {"roles/datastore.user", "roles/eventarc.eventReceiver"}
    # KMS: read public keys of the listed keys only (a grant per key and function).
    kms = resources["google_kms_crypto_key_iam_member"]["public_key_reader"]
    assert kms["crypto_key_id"] == "${each.value.key}" and kms["role"] == "${each.value.role}"
    assert "roles/cloudkms.publicKeyViewer" in module["locals"]["kms_grants"]
    repo = resources["google_artifact_registry_repository_iam_member"]["reader"]
    assert repo["role"] == "roles/artifactregistry.reader"
    # Secret Manager: each secret readable by the function that needs it, not project-wide.
    accessors = resources["google_secret_manager_secret_iam_member"]
    assert accessors["admission_token"]["secret_id"] == "${google_secret_manager_secret.admission_token.secret_id}"
    assert accessors["admission_token"]["member"] == 'serviceAccount:${local.verifier_sa["admission"].email}'
    assert accessors["push_secret"]["member"] == 'serviceAccount:${local.verifier_sa["push-webhook"].email}'
    # One service account per function, each function running as its own.
    assert module["resource"]["google_service_account"]["function"]["for_each"] == "${toset(local.verifiers)}"
    for name, fn in (("admission", "admission"), ("push_pubsub", "push-pubsub"), ("push_webhook", "push-webhook")):
        email = block(_function(module, name), "service_config")["service_account_email"]
        assert email == f'${{local.verifier_sa["{fn}"].email}}'


def test_no_hard_coded_secrets_and_sensitive_outputs(module: dict[str, Any]) -> None:
    versions = module["resource"]["google_secret_manager_secret_version"]
    assert versions["admission_token"]["secret_data"] == "${random_password.admission_token.result}"
    assert versions["push_secret"]["secret_data"] == "${random_password.push_secret[0].result}"
    assert versions["policy"]["secret_data"] == "${var.policy_yaml}"
    for name, password in module["resource"]["random_password"].items():
        assert password["length"] >= 32, name
        assert password["special"] is False, name  # a URL path segment / header value
    # No literal value for anything that looks like a credential, anywhere.
    for path, value in walk(module["resource"]):
        leaf = path.rsplit(".", 1)[-1]
        if re.search(r"(?i)(password|secret_data|token|api_key|private_key)$", leaf) and isinstance(value, str):
            assert value.startswith("${"), f"{path} = {value!r} is a literal"
    for name, variable in module["variable"].items():
        if re.search(r"(?i)(token|secret|password)", name):
            assert variable.get("default", "") == "", name
    text = "\n".join(p.read_text() for p in sorted(GCP.rglob("*.tf")))
    for literal in re.findall(r'"([A-Za-z0-9+/=_-]{24,})"', text):  # long, unbroken, letters and digits: a key?
        digits = sum(c.isdigit() for c in literal)
        assert digits < 3 or not any(c.isalpha() for c in literal), f"{literal!r} looks like a hard-coded secret"
    outputs = module["output"]
    for name in ("admission_token", "admission_url_with_token", "push_secret"):
        assert outputs[name]["sensitive"] is True, name
    for name, output in outputs.items():
        if "random_password" in str(output["value"]):
            assert output.get("sensitive") is True, f"output {name} exposes a generated secret"
    assert outputs["admission_url"]["value"] == "${module.admission.url}"
    assert "sensitive" not in outputs["admission_url"]


def test_firestore_store_with_ttl_on_expires_at(module: dict[str, Any]) -> None:
    field = module["resource"]["google_firestore_field"]["ttl"]
    assert field["field"] == "expires_at"
    assert field["ttl_config"] == [{}]
    assert field["index_config"] == [{}]
    assert "var.verdicts_collection" in field["for_each"]
    assert module["variable"]["verdicts_collection"]["default"] == "verdicts"
    assert module["locals"]["store_uri"] == "firestore://${var.project_id}/${var.verdicts_collection}"
    assert "SIGWARD_STORE = local.store_uri" in module["locals"]["common_env"]
    database = module["resource"]["google_firestore_database"]["default"]
    assert database["name"] == "(default)" and database["type"] == "FIRESTORE_NATIVE"


def test_policy_delivery_toggles_between_archive_and_secret(module: dict[str, Any]) -> None:
    variable = module["variable"]["policy_source"]
    assert variable["default"] == "bundled"
    assert 'contains(["bundled", "secret"], var.policy_source)' in block(variable, "validation")["condition"]
    assert "SIGWARD_POLICY" in module["locals"]["common_env"]
    for name in FUNCTIONS:
        dynamic = block(_function(module, name), "service_config")["dynamic"][0]["secret_volumes"]
        assert dynamic["for_each"] == "${local.policy_volumes}"
        assert dynamic["content"][0]["versions"][0] == {
            "version": "${secret_volumes.value.version}",
            "path": "${secret_volumes.value.path}",
        }
    volumes = module["locals"]["policy_volumes"]
    assert volumes.startswith("${local.policy_from_secret ? [{") and volumes.endswith("}] : []}")
    for setting in (
        "mount_path = local.policy_mount_path",
        "secret = google_secret_manager_secret.policy[0].secret_id",
        "version = google_secret_manager_secret_version.policy[0].version",
        'path = "policy.yaml"',
    ):
        assert setting in volumes, setting


def test_variables_are_documented_and_validated(module: dict[str, Any]) -> None:
    for name, variable in module["variable"].items():
        assert variable.get("description"), f"variable {name} has no description"
    for name in ("project_id", "region", "min_instance_count", "kms_key_ids", "artifact_registry_repositories"):
        assert "validation" in module["variable"][name], name
    project = _variable_regex(module, "project_id")
    assert project.match("my-project-123") and not project.match("123456789012") and not project.match("My_Project")
    region = _variable_regex(module, "region")
    assert region.match("us-central1") and region.match("europe-west4") and not region.match("us-central1-a")
    key_condition = block(module["variable"]["kms_key_ids"], "validation")["condition"]
    key = re.compile(re.search(r'regex\("(.+?)", k\)', key_condition).group(1))  # type: ignore[union-attr]
    assert key.match("projects/p/locations/global/keyRings/r/cryptoKeys/k")
    assert not key.match("projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1")
    assert not key.match("gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k")


def test_example_calls_the_module() -> None:
    example = load_module(REPO / "terraform" / "examples" / "gcp")
    (call,) = example["module"].values()
    assert call["source"] == "../../gcp"
    assert call["min_instance_count"] >= 1


def test_push_subscription_carries_an_oidc_token_the_function_requires(module: dict[str, Any]) -> None:
    """push_pubsub_delivery = "push_subscription": the subscription signs deliveries as the trigger identity for a
    fixed audience, and the function is configured to accept exactly that audience and identity."""
    variable = module["variable"]["push_pubsub_delivery"]
    assert variable["default"] == "eventarc"
    assert 'contains(["eventarc", "push_subscription"]' in block(variable, "validation")["condition"]
    subscription = module["resource"]["google_pubsub_subscription"]["push_pubsub"]
    assert subscription["count"] == "${local.pubsub_push ? 1 : 0}"
    assert subscription["topic"] == "${local.gcr_topic}"
    push = block(subscription, "push_config")
    assert push["push_endpoint"] == "${module.push_pubsub[0].uri}"
    oidc = block(push, "oidc_token")
    assert oidc == {
        "service_account_email": "${google_service_account.trigger[0].email}",
        "audience": "${local.pubsub_audience}",
    }
    assert block(subscription, "retry_policy")["maximum_backoff"] == "600s"
    assert block(subscription, "expiration_policy")["ttl"] == ""
    assert subscription["ack_deadline_seconds"] >= 60
    env = block(_function(module, "push_pubsub"), "service_config")["environment_variables"]
    assert "local.pubsub_push" in env
    assert "SIGWARD_PUBSUB_AUDIENCE = local.pubsub_audience" in env
    assert "SIGWARD_PUBSUB_SERVICE_ACCOUNTS = google_service_account.trigger[0].email" in env
    assert "var.pubsub_audience" in module["locals"]["pubsub_audience"]
    # Pub/Sub's service agent may mint tokens for that one account only (not a project-wide grant).
    creator = module["resource"]["google_service_account_iam_member"]["pubsub_token_creator"]
    assert creator["service_account_id"] == "${google_service_account.trigger[0].name}"
    assert creator["role"] == "roles/iam.serviceAccountTokenCreator"
    assert creator["member"].endswith("@gcp-sa-pubsub.iam.gserviceaccount.com")
    assert "${data.google_project.this[0].number}" in creator["member"]
    # The public invoker exists only in this mode; ingress stays internal either way.
    assert block(_function(module, "push_pubsub"), "service_config")["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    outputs = module["output"]
    assert "google_pubsub_subscription.push_pubsub[0].id" in outputs["push_pubsub_subscription"]["value"]
    assert "local.pubsub_audience" in outputs["pubsub_audience"]["value"]


def test_admission_request_logs_are_excluded(module: dict[str, Any]) -> None:
    """Cloud Run's request log records the URL path, which carries the admission token: the _Default sink drops the
    admission service's request logs, and the filter is an output for other sinks."""
    exclusion = module["resource"]["google_logging_project_exclusion"]["admission_requests"]
    assert exclusion["count"] == "${var.exclude_admission_request_logs ? 1 : 0}"
    assert exclusion["filter"] == "${local.admission_request_log_filter}"
    assert module["variable"]["exclude_admission_request_logs"]["default"] is True
    assert "disabled" not in exclusion
    terms = module["locals"]["admission_request_log_filter"]
    assert 'logName=\\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\\"' in terms
    assert 'resource.type=\\"cloud_run_revision\\"' in terms
    assert 'resource.labels.service_name=\\"${var.name_prefix}-admission\\"' in terms
    assert '" AND "' in terms
    # The filter names the service the admission function really is.
    assert _function(module, "admission")["name"] == "${var.name_prefix}-admission"
    assert module["output"]["admission_request_log_filter"]["value"] == "${local.admission_request_log_filter}"


# Which API each resource type (or the functions' own calls) needs.
API_OF_RESOURCE = {
    "google_cloudfunctions2_function": {"cloudfunctions", "run", "cloudbuild", "artifactregistry", "eventarc"},
    "google_cloud_run_service_iam_member": {"run"},
    "google_pubsub_topic": {"pubsub"},
    "google_pubsub_subscription": {"pubsub"},
    "google_secret_manager_secret": {"secretmanager"},
    "google_firestore_database": {"firestore"},
    "google_firestore_field": {"firestore"},
    "google_logging_project_exclusion": {"logging"},
    "google_kms_crypto_key_iam_member": {"cloudkms"},
    "google_artifact_registry_repository_iam_member": {"artifactregistry"},
    "google_service_account": {"iam"},
    "google_service_account_iam_member": {"iam"},
    "google_project_iam_member": {"cloudresourcemanager"},
    "google_storage_bucket": {"storage"},
    "google_cloud_scheduler_job": {"cloudscheduler"},
}


def test_every_api_the_module_uses_is_enabled(module: dict[str, Any]) -> None:
    enabled = {api.removesuffix(".googleapis.com") for api in module["locals"]["apis"]}
    needed: set[str] = set()
    for rtype in module["resource"]:
        if rtype in API_OF_RESOURCE:
            needed |= API_OF_RESOURCE[rtype]
    assert not needed - enabled, f"APIs used but not enabled: {sorted(needed - enabled)}"
    assert {"logging", "pubsub", "iam", "cloudkms"} <= enabled
    services = module["resource"]["google_project_service"]["apis"]
    assert services["for_each"] == "${var.enable_apis ? toset(local.apis) : toset([])}"
    assert services["disable_on_destroy"] is False


def test_example_takes_keys_and_repositories_as_variables() -> None:
    example = load_module(REPO / "terraform" / "examples" / "gcp")
    (call,) = example["module"].values()
    module_vars = set(load_module(GCP)["variable"])
    arguments = {k for k in call if k not in {"source", "providers", "depends_on"}}
    assert arguments <= module_vars, arguments - module_vars
    for name in ("kms_key_ids", "artifact_registry_repositories", "push_pubsub_delivery", "aws_role_arn"):
        assert call[name] == f"${{var.{name}}}", name
        assert example["variable"][name].get("description"), name
    text = (REPO / "terraform" / "examples" / "gcp" / "main.tf").read_text()
    used = set(re.findall(r"var\.([a-z_]+)", text))
    assert used <= set(example["variable"]), used - set(example["variable"])
    assert "terraform init" in text


def _guide_outputs() -> set[str]:
    text = (REPO / "docs" / "deploy.md").read_text()
    return set(re.findall(r"terraform(?: -chdir=\S+)? output(?: -raw| -json)? ([a-z_]+)", text))


def test_outputs_the_guide_names_exist() -> None:
    """Every `terraform output NAME` in docs/deploy.md is an output of the example it runs in, and each example
    output reads an output its module really has."""
    named = _guide_outputs()
    assert {"admission_url", "admission_token", "admission_request_log_filter"} <= named
    examples = {cloud: load_module(REPO / "terraform" / "examples" / cloud)["output"] for cloud in ("gcp", "aws")}
    available = set(examples["gcp"]) | set(examples["aws"])
    assert not named - available, f"the guide names outputs no example has: {sorted(named - available)}"
    for cloud, outputs in examples.items():
        module_outputs = set(load_module(REPO / "terraform" / cloud)["output"])
        for name, output in outputs.items():
            ref = re.fullmatch(r"\$\{module\.sigward\.([a-z_]+)\}", output["value"])
            assert ref and ref.group(1) in module_outputs, (cloud, name, output["value"])


def test_registry_reader_grants_match_the_credential_providers() -> None:
    """The pulls the code makes with each cloud's credentials are what the modules grant."""
    gcp = load_module(GCP)
    assert gcp["resource"]["google_artifact_registry_repository_iam_member"]["reader"]["role"] == (
        "roles/artifactregistry.reader"
    )
    aws = (REPO / "terraform" / "aws" / "main.tf").read_text()
    for action in ("ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
        assert f'"{action}"' in aws, action
    guide = (REPO / "docs" / "deploy.md").read_text()
    for needle in (
        "AcrPull",
        "roles/artifactregistry.reader",
        "ecr:GetAuthorizationToken",
        "SIGWARD_AWS_ROLE_ARN",
        "SIGWARD_REGISTRY_PROVIDERS",
        "GITHUB_TOKEN",
    ):
        assert needle in guide, needle


def test_reverify_is_scheduled_with_oidc_and_invokable_only_by_the_scheduler(module: dict[str, Any]) -> None:
    fn = _function(module, "reverify")
    assert fn["count"] == "${var.reverify_enabled ? 1 : 0}"
    assert block(fn, "build_config")["entry_point"] == "reverify"
    service = block(fn, "service_config")
    assert service["service_account_email"] == '${local.verifier_sa["reverify"].email}'
    assert service["max_instance_count"] == 1 and service["max_instance_request_concurrency"] == 1
    assert service["timeout_seconds"] == "${var.reverify_run_seconds + 60}"
    # its own service account with the verifiers' read-only grants (keys, images, verdict store)
    assert 'var.reverify_enabled ? ["reverify"] : []' in module["locals"]["verifiers"]
    job = module["resource"]["google_cloud_scheduler_job"]["reverify"]
    target = block(job, "http_target")
    oidc = block(target, "oidc_token")
    assert target["http_method"] == "POST"
    assert target["uri"] == oidc["audience"] == "${module.reverify[0].uri}"
    assert oidc["service_account_email"] == "${google_service_account.scheduler[0].email}"
    assert job["attempt_deadline"] == "${var.reverify_run_seconds + 60}s"
    invoker = module["resource"]["google_cloud_run_service_iam_member"]["reverify_scheduler"]
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "serviceAccount:${google_service_account.scheduler[0].email}"
    assert invoker["service"] == "${module.reverify[0].name}"
    # the scheduler's account is granted nothing else anywhere
    grants = [
        (rtype, name)
        for rtype, resources in module["resource"].items()
        for name, body in resources.items()
        if "google_service_account.scheduler" in str(body.get("member", ""))
    ]
    assert grants == [("google_cloud_run_service_iam_member", "reverify_scheduler")]


def test_reverify_variables_are_validated(module: dict[str, Any]) -> None:
    for name in ("reverify_enabled", "reverify_schedule", "reverify_run_seconds", "pending_grace_seconds"):
        assert module["variable"][name]["description"]
    for name in ("reverify_schedule", "reverify_run_seconds", "pending_grace_seconds"):
        assert block(module["variable"][name], "validation")["condition"]

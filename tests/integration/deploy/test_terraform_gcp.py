"""terraform/gcp, read statically with python-hcl2 (the Google provider cannot be downloaded here, so neither
``terraform validate`` nor ``plan`` can run): the settings that security and availability depend on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.hcl import block, load_module, walk

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
}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return load_module(GCP)


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
    trigger = block(push, "event_trigger")
    assert trigger["event_type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
    assert trigger["pubsub_topic"] == "${local.gcr_topic}"
    assert module["locals"]["gcr_topic"] == "projects/${var.project_id}/topics/gcr"
    assert trigger["service_account_email"] == "${google_service_account.trigger[0].email}"
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
    }
    invokers = module["resource"]["google_cloud_run_service_iam_member"]
    assert invokers["admission_public"]["service"] == "${google_cloudfunctions2_function.admission.name}"
    assert invokers["admission_public"]["role"] == "roles/run.invoker"
    assert invokers["push_webhook_public"]["count"] == "${var.push_webhook_enabled ? 1 : 0}"
    assert invokers["push_webhook_public"]["service"] == "${google_cloudfunctions2_function.push_webhook[0].name}"
    assert invokers["push_pubsub_trigger"]["member"] == "serviceAccount:${google_service_account.trigger[0].email}"
    webhook = block(_function(module, "push_webhook"), "service_config")
    assert webhook["secret_environment_variables"][0]["key"] == "SIGWARD_PUSH_SECRET"
    assert module["variable"]["push_webhook_enabled"]["default"] is False


def test_least_privilege_roles(module: dict[str, Any]) -> None:
    text = "\n".join(p.read_text() for p in sorted(GCP.glob("*.tf")))
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
    text = "\n".join(p.read_text() for p in sorted(GCP.glob("*.tf")))
    for literal in re.findall(r'"([A-Za-z0-9+/=_-]{24,})"', text):  # long, unbroken, letters and digits: a key?
        digits = sum(c.isdigit() for c in literal)
        assert digits < 3 or not any(c.isalpha() for c in literal), f"{literal!r} looks like a hard-coded secret"
    outputs = module["output"]
    for name in ("admission_token", "admission_url_with_token", "push_secret"):
        assert outputs[name]["sensitive"] is True, name
    for name, output in outputs.items():
        if "random_password" in str(output["value"]):
            assert output.get("sensitive") is True, f"output {name} exposes a generated secret"
    assert outputs["admission_url"]["value"] == "${google_cloudfunctions2_function.admission.url}"
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
    for name in ("admission", "push_pubsub", "push_webhook"):
        dynamic = block(_function(module, name), "service_config")["dynamic"][0]["secret_volumes"]
        assert "local.policy_from_secret" in dynamic["for_each"]
        assert dynamic["content"][0]["versions"][0]["path"] == "policy.yaml"


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

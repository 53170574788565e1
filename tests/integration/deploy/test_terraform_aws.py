"""terraform/aws for real: ``terraform init`` (AWS provider 5.100.0 from the offline filesystem mirror), ``apply`` and
``destroy`` against a ``moto_server``, then what moto holds read back with boto3 — and the role the module made,
assumed by sigward's own federation code with a Google-style ID token, reading the module's signing key.

Skipped (with the reason) only when terraform or the provider mirror is absent."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gce_metadata import SA_UNIQUE_ID, FakeMetadataServer
from tests.support.moto import ACCESS_KEY_ID, ACCOUNT, REGION, SECRET_ACCESS_KEY, MotoServer, clear_ambient_aws
from tests.support.terraform import Terraform, missing_reason

REPO = Path(__file__).resolve().parents[3]
TERRAFORM = REPO / "terraform"
WEBHOOK_URL = "https://sigward-push-webhook-abc123-uc.a.run.app"
PUSH_SECRET = "test-push-secret-0123456789abcdefXYZ"
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
REPO_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/app"
SERVICES = ("events", "iam", "kms", "sts", "ecr", "sqs", "secretsmanager")

needs_terraform = pytest.mark.skipif(
    missing_reason(need_mirror=False) is not None, reason=missing_reason(need_mirror=False) or ""
)
needs_mirror = pytest.mark.skipif(
    missing_reason(need_mirror=True) is not None, reason=missing_reason(need_mirror=True) or ""
)


def _root_module(moto: MotoServer, *, module_source: Path) -> str:
    endpoints = "\n".join(f'    {svc} = "{moto.url}"' for svc in SERVICES)
    return f"""
terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "5.100.0"
    }}
  }}
}}

provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "{ACCESS_KEY_ID}"
  secret_key                  = "{SECRET_ACCESS_KEY}"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {{
{endpoints}
  }}
}}

module "sigward" {{
  source = "{module_source}"

  push_webhook_url                  = "{WEBHOOK_URL}"
  push_secret                       = "{PUSH_SECRET}"
  repository_names                  = ["team/app", "team/tool"]
  invocation_rate_limit_per_second  = 7
  maximum_retry_attempts            = 50
  google_service_account_unique_ids = ["{SA_UNIQUE_ID}"]
  kms_key_arns                      = ["{KMS_KEY_ARN}"]
  ecr_repository_arns               = ["{REPO_ARN}"]
  create_signing_key                = true
  signing_key_deletion_window_days  = 7
}}

output "module" {{
  value = {{
    verifier_role_arn   = module.sigward.verifier_role_arn
    api_destination_arn = module.sigward.api_destination_arn
    event_rule_arn      = module.sigward.event_rule_arn
    connection_arn      = module.sigward.connection_arn
    dlq_url             = module.sigward.dead_letter_queue_url
    signing_key_arn     = module.sigward.signing_key_arn
    signing_key_uri     = module.sigward.signing_key_uri
    sigward_env         = module.sigward.sigward_env
  }}
}}

output "push_secret" {{
  value     = module.sigward.push_secret
  sensitive = true
}}
"""


def _client(moto: MotoServer, service: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=moto.url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


@needs_terraform
def test_terraform_fmt_is_clean(tmp_path: Path) -> None:
    tf = Terraform(tmp_path)
    proc = tf.run(TERRAFORM, "fmt", "-check", "-recursive", "-diff", check=False)
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


@needs_mirror
def test_aws_module_and_example_validate(tmp_path: Path) -> None:
    tree = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, tree, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    tf = Terraform(tmp_path / "tf")
    for module in (tree / "aws", tree / "examples" / "aws"):
        tf.init(module)
        proc = tf.run(module, "validate", "-json")
        result = json.loads(proc.stdout)
        assert result["valid"] is True, result
        assert result["error_count"] == 0 and result["warning_count"] == 0, result["diagnostics"]


@needs_mirror
def test_variable_validations_refuse_bad_inputs(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "main.tf").write_text(
        f"""
provider "aws" {{
  region                      = "{REGION}"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}}

module "sigward" {{
  source                            = "{TERRAFORM / "aws"}"
  push_webhook_url                  = "http://plain-http.example.com/push"
  push_secret                       = "short"
  google_service_account_unique_ids = ["sigward@example-project.iam.gserviceaccount.com"]
  kms_key_arns                      = ["alias/sigward"]
  invocation_rate_limit_per_second  = 0
}}
"""
    )
    tf = Terraform(tmp_path / "tf")
    tf.init(root)
    proc = tf.run(root, "validate", check=False)
    assert proc.returncode != 0
    errors = proc.stderr + proc.stdout
    for fragment in (
        "push_webhook_url must be an https URL",
        "push_secret must be at least 24",
        "21-digit unique id",
        "kms_key_arns entry must be a key ARN",
        "invocation_rate_limit_per_second must be between 1 and 300",
    ):
        assert fragment in " ".join(errors.split()), errors


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    with MotoServer(tmp_path / "moto") as server:
        yield server


@needs_mirror
def test_apply_against_moto_then_destroy(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(_root_module(moto, module_source=TERRAFORM / "aws"))
    tf = Terraform(tmp_path / "tf")
    tf.init(root)
    started = time.monotonic()
    tf.run(root, "apply", "-auto-approve", "-input=false")
    applied = time.monotonic() - started
    out = tf.outputs(root)
    module = out["module"]
    assert out["push_secret"] == PUSH_SECRET

    events = _client(moto, "events")
    # The rule: successful ECR image and referrer actions of the two repositories.
    rule = events.describe_rule(Name="sigward-ecr-push")
    assert rule["Arn"] == module["event_rule_arn"]
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action", "ECR Referrer Action"],
        "detail": {"result": ["SUCCESS"], "repository-name": ["team/app", "team/tool"]},
    }
    # The connection adds the secret header; the API destination posts to the function, rate-limited.
    connection = events.describe_connection(Name="sigward-push-webhook")
    assert connection["AuthorizationType"] == "API_KEY"
    assert connection["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"] == "X-Sigward-Secret"
    destination = events.describe_api_destination(Name="sigward-push-webhook")
    assert destination["ApiDestinationArn"] == module["api_destination_arn"]
    assert destination["InvocationEndpoint"] == WEBHOOK_URL
    assert destination["HttpMethod"] == "POST"
    assert destination["InvocationRateLimitPerSecond"] == 7
    assert destination["ConnectionArn"] == module["connection_arn"]
    # The target: the API destination, invoked through the EventBridge role, retried, dead letters kept.
    (target,) = events.list_targets_by_rule(Rule="sigward-ecr-push")["Targets"]
    assert target["Arn"] == module["api_destination_arn"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 50, "MaximumEventAgeInSeconds": 86400}
    sqs = _client(moto, "sqs")
    dlq = sqs.get_queue_attributes(QueueUrl=module["dlq_url"], AttributeNames=["QueueArn", "Policy"])["Attributes"]
    assert target["DeadLetterConfig"]["Arn"] == dlq["QueueArn"]
    dlq_policy = json.loads(dlq["Policy"])["Statement"][0]
    assert dlq_policy["Condition"]["ArnEquals"]["aws:SourceArn"] == module["event_rule_arn"]

    iam = _client(moto, "iam")
    invoker = iam.get_role(RoleName="sigward-eventbridge-push")["Role"]
    assert target["RoleArn"] == invoker["Arn"]
    assert invoker["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    invoke = iam.get_role_policy(RoleName="sigward-eventbridge-push", PolicyName="invoke-api-destination")
    assert invoke["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": ["events:InvokeApiDestination"], "Resource": [module["api_destination_arn"]]}
    ]

    # The verifier role: trusts Google for exactly this service account, no AWS keys; reads only what it needs.
    role = iam.get_role(RoleName="sigward-verifier")["Role"]
    assert role["Arn"] == module["verifier_role_arn"] == module["sigward_env"]["SIGWARD_AWS_ROLE_ARN"]
    assert role["MaxSessionDuration"] == 3600
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Federated": "accounts.google.com"}
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"]["StringEquals"] == {
        "accounts.google.com:aud": [SA_UNIQUE_ID],
        "accounts.google.com:sub": [SA_UNIQUE_ID],
        "accounts.google.com:oaud": "sts.amazonaws.com",
    }
    assert iam.list_users()["Users"] == []  # no IAM user, so no access keys exist to leak
    policy = iam.get_role_policy(RoleName="sigward-verifier", PolicyName="verify-signatures")["PolicyDocument"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert set(statements) == {"ReadPublicKeys", "EcrToken", "EcrPublicToken", "EcrPull"}
    assert statements["EcrPublicToken"]["Action"] == ["ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"]
    assert statements["EcrPublicToken"]["Resource"] == ["*"]
    assert statements["ReadPublicKeys"]["Action"] == ["kms:GetPublicKey", "kms:DescribeKey"]
    assert statements["ReadPublicKeys"]["Resource"] == [KMS_KEY_ARN, module["signing_key_arn"]]
    assert statements["EcrToken"] == {
        "Sid": "EcrToken",
        "Effect": "Allow",
        "Action": ["ecr:GetAuthorizationToken"],
        "Resource": ["*"],
    }
    assert sorted(statements["EcrPull"]["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:DescribeImages",
        "ecr:GetDownloadUrlForLayer",
    ]
    assert statements["EcrPull"]["Resource"] == [REPO_ARN]
    actions = [a for s in policy["Statement"] for a in s["Action"]]
    assert not [a for a in actions if a.endswith("*") or a in ("kms:Sign", "kms:Decrypt", "ecr:PutImage")]

    # The signing key for `sigward sign` in CI.
    kms = _client(moto, "kms")
    meta = kms.describe_key(KeyId="alias/sigward-signing")["KeyMetadata"]
    assert meta["Arn"] == module["signing_key_arn"]
    assert meta["KeyUsage"] == "SIGN_VERIFY"
    assert (meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")) == "ECC_NIST_P256"
    assert module["signing_key_uri"] == "awskms:///alias/sigward-signing"

    # sigward's federation code assumes the role the module made and reads the signing key's public key with it.
    from sigward import aws_federation

    with FakeMetadataServer() as metadata:
        clear_ambient_aws(monkeypatch, tmp_path)
        monkeypatch.setenv("SIGWARD_AWS_ROLE_ARN", module["verifier_role_arn"])
        monkeypatch.setenv("GCE_METADATA_HOST", metadata.host)
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto.url)
        aws_federation.reset()
        try:
            session = aws_federation.aws_session(region_name=REGION)
            assert (
                session.client("sts")
                .get_caller_identity()["Arn"]
                .startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/sigward-verifier/")
            )
            public = session.client("kms").get_public_key(KeyId=module["signing_key_uri"].removeprefix("awskms:///"))
            assert public["KeyUsage"] == "SIGN_VERIFY"
        finally:
            aws_federation.reset()
        assert len(metadata.issued) == 1

    started = time.monotonic()
    tf.run(root, "destroy", "-auto-approve", "-input=false", "-refresh=false")
    destroyed = time.monotonic() - started
    assert events.list_rules(NamePrefix="sigward")["Rules"] == []
    assert events.list_api_destinations(NamePrefix="sigward")["ApiDestinations"] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("sigward")] == []
    assert kms.describe_key(KeyId=module["signing_key_arn"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert sqs.list_queues(QueueNamePrefix="sigward").get("QueueUrls", []) == []
    with capsys.disabled():
        print(f"\n[terraform/aws against moto] apply {applied:.1f} s, destroy {destroyed:.1f} s")

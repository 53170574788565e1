# sigward for AWS users of the (GCP-hosted) sigward functions:
#
#   ECR push events  EventBridge rule -> API destination (X-Sigward-Secret header) -> push_webhook, retried, DLQ
#   verifier role    assumed with the functions' Google-signed ID token (no AWS keys): reads KMS public keys and
#                    ECR images of the listed keys and repositories only
#   signing key      optional ECC_NIST_P256 key for `sigward sign` in CI

locals {
  tags = merge({ "managed-by" = "terraform", "app" = "sigward" }, var.tags)

  push_events   = var.push_events_enabled
  verifier_role = length(var.google_service_account_unique_ids) > 0

  ecr_event_pattern = {
    source        = ["aws.ecr"]
    "detail-type" = ["ECR Image Action", "ECR Referrer Action"]
    detail = merge(
      { result = ["SUCCESS"] },
      length(var.repository_names) > 0 ? { "repository-name" = var.repository_names } : {},
    )
  }

  verifier_kms_keys = concat(var.kms_key_arns, aws_kms_key.signing[*].arn)

  # Statements without resources are left out (IAM refuses an empty Resource); the ECR token only with repositories.
  verifier_statements = [
    for s in [
      {
        Sid      = "ReadPublicKeys"
        Effect   = "Allow"
        Action   = ["kms:GetPublicKey", "kms:DescribeKey"]
        Resource = local.verifier_kms_keys
      },
      {
        Sid      = "EcrToken"
        Effect   = "Allow"
        Action   = ["ecr:GetAuthorizationToken"]
        Resource = length(var.ecr_repository_arns) > 0 ? ["*"] : []
      },
      {
        # ECR Public (public.ecr.aws): a token only raises the anonymous rate limit; it grants no repository.
        Sid      = "EcrPublicToken"
        Effect   = "Allow"
        Action   = ["ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"]
        Resource = var.ecr_public_pull ? ["*"] : []
      },
      {
        Sid    = "EcrPull"
        Effect = "Allow"
        Action = [
          "ecr:BatchGetImage",
          "ecr:GetDownloadUrlForLayer",
          "ecr:DescribeImages",
          "ecr:BatchCheckLayerAvailability",
        ]
        Resource = var.ecr_repository_arns
      },
    ] : s if length(s.Resource) > 0
  ]
}

# -- ECR push events -> push_webhook ---------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "ecr_push" {
  count = local.push_events ? 1 : 0

  name          = "${var.name_prefix}-ecr-push"
  description   = "ECR image and referrer pushes, verified by sigward's push_webhook"
  event_pattern = jsonencode(local.ecr_event_pattern)
  tags          = local.tags
}

resource "aws_cloudwatch_event_connection" "push" {
  count = local.push_events ? 1 : 0

  name               = "${var.name_prefix}-push-webhook"
  description        = "Authenticates EventBridge to sigward's push_webhook (SIGWARD_PUSH_SECRET)"
  authorization_type = "API_KEY"

  auth_parameters {
    api_key {
      key   = "X-Sigward-Secret"
      value = var.push_secret
    }
  }

  lifecycle {
    precondition {
      condition     = var.push_secret != "" && var.push_webhook_url != ""
      error_message = "push_events_enabled needs push_webhook_url and push_secret (terraform/gcp outputs push_webhook_url and push_secret)."
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "push" {
  count = local.push_events ? 1 : 0

  name                             = "${var.name_prefix}-push-webhook"
  description                      = "sigward push_webhook function"
  invocation_endpoint              = var.push_webhook_url
  http_method                      = "POST"
  invocation_rate_limit_per_second = var.invocation_rate_limit_per_second
  connection_arn                   = aws_cloudwatch_event_connection.push[0].arn
}

resource "aws_iam_role" "eventbridge" {
  count = local.push_events ? 1 : 0

  name        = "${var.name_prefix}-eventbridge-push"
  description = "EventBridge invokes the sigward API destination"
  tags        = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "eventbridge_invoke" {
  count = local.push_events ? 1 : 0

  name = "invoke-api-destination"
  role = aws_iam_role.eventbridge[0].id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["events:InvokeApiDestination"]
      Resource = [aws_cloudwatch_event_api_destination.push[0].arn]
    }]
  })
}

# Events EventBridge could not deliver. The policy is inline (not aws_sqs_queue_policy): one attribute wait, not two.
resource "aws_sqs_queue" "dead_letter" {
  count = local.push_events && var.dead_letter_queue_enabled ? 1 : 0

  name                      = "${var.name_prefix}-ecr-push-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = local.tags

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeDeadLetters"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = "*"
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.ecr_push[0].arn } }
    }]
  })
}

resource "aws_cloudwatch_event_target" "push" {
  count = local.push_events ? 1 : 0

  rule      = aws_cloudwatch_event_rule.ecr_push[0].name
  target_id = "sigward-push-webhook"
  arn       = aws_cloudwatch_event_api_destination.push[0].arn
  role_arn  = aws_iam_role.eventbridge[0].arn

  retry_policy {
    maximum_event_age_in_seconds = var.maximum_event_age_seconds
    maximum_retry_attempts       = var.maximum_retry_attempts
  }

  dynamic "dead_letter_config" {
    for_each = aws_sqs_queue.dead_letter[*].arn
    content {
      arn = dead_letter_config.value
    }
  }
}

# -- the role sigward assumes with its Google identity (no AWS keys) --------------------------------------------

# accounts.google.com is a built-in identity provider of IAM: no OIDC provider resource is needed. For Google
# tokens `accounts.google.com:aud` is the token's azp (the service account's unique id), `:oaud` its aud.
resource "aws_iam_role" "verifier" {
  count = local.verifier_role ? 1 : 0

  name                 = "${var.name_prefix}-verifier"
  description          = "sigward (GCP service accounts) reads KMS public keys and ECR images"
  max_session_duration = var.max_session_duration
  tags                 = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = "accounts.google.com" }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "accounts.google.com:aud"  = var.google_service_account_unique_ids
          "accounts.google.com:sub"  = var.google_service_account_unique_ids
          "accounts.google.com:oaud" = var.google_audience
        }
      }
    }]
  })
}

resource "aws_iam_role_policy" "verifier" {
  count = local.verifier_role && length(local.verifier_statements) > 0 ? 1 : 0

  name   = "verify-signatures"
  role   = aws_iam_role.verifier[0].id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.verifier_statements })
}

# -- optional signing key ---------------------------------------------------------------------------------------

resource "aws_kms_key" "signing" {
  count = var.create_signing_key ? 1 : 0

  description              = "sigward image signing key (sigward sign / cosign)"
  customer_master_key_spec = "ECC_NIST_P256"
  key_usage                = "SIGN_VERIFY"
  deletion_window_in_days  = var.signing_key_deletion_window_days
  tags                     = local.tags
}

resource "aws_kms_alias" "signing" {
  count = var.create_signing_key ? 1 : 0

  name          = var.signing_key_alias
  target_key_id = aws_kms_key.signing[0].key_id
}

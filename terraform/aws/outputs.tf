output "verifier_role_arn" {
  description = "Role sigward assumes with its Google identity: terraform/gcp's aws_role_arn (SIGWARD_AWS_ROLE_ARN). Null without google_service_account_unique_ids."
  value       = local.verifier_role ? aws_iam_role.verifier[0].arn : null
}

output "api_destination_arn" {
  description = "EventBridge API destination that posts ECR push events to push_webhook."
  value       = local.push_events ? aws_cloudwatch_event_api_destination.push[0].arn : null
}

output "event_rule_arn" {
  description = "EventBridge rule matching successful ECR image and referrer pushes."
  value       = local.push_events ? aws_cloudwatch_event_rule.ecr_push[0].arn : null
}

output "connection_arn" {
  description = "EventBridge connection carrying the X-Sigward-Secret header."
  value       = local.push_events ? aws_cloudwatch_event_connection.push[0].arn : null
}

output "dead_letter_queue_url" {
  description = "SQS queue of events EventBridge could not deliver (null when disabled)."
  value       = one(aws_sqs_queue.dead_letter[*].id)
}

output "push_secret" {
  description = "The shared secret EventBridge sends in X-Sigward-Secret (as given)."
  value       = var.push_secret
  sensitive   = true
}

output "signing_key_arn" {
  description = "ARN of the signing key (null unless create_signing_key)."
  value       = one(aws_kms_key.signing[*].arn)
}

output "signing_key_uri" {
  description = "The key for `sigward sign --key` and for policies (awskms:///ALIAS); null unless create_signing_key."
  value       = var.create_signing_key ? "awskms:///${var.signing_key_alias}" : null
}

output "sigward_env" {
  description = "Environment for the sigward functions (terraform/gcp: aws_role_arn)."
  value       = local.verifier_role ? { SIGWARD_AWS_ROLE_ARN = aws_iam_role.verifier[0].arn } : {}
}

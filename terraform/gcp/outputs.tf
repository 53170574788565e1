output "admission_url" {
  description = "HTTPS URL of the admission function, without the token."
  value       = module.admission.url
}

output "admission_token" {
  description = "The admission path token (also in Secret Manager). Pass it to `sigward webhook-config --token`."
  value       = random_password.admission_token.result
  sensitive   = true
}

output "admission_url_with_token" {
  description = "The admission URL with the token segment; `…/mutate` and `…/validate` hang below it."
  value       = "${module.admission.url}/${random_password.admission_token.result}"
  sensitive   = true
}

output "admission_token_secret" {
  description = "Secret Manager secret holding the admission token."
  value       = google_secret_manager_secret.admission_token.id
}

output "webhook_config_command" {
  description = "Registers a cluster (run with kubectl pointed at it)."
  value       = "sigward webhook-config --url ${module.admission.url} --token \"$(terraform output -raw admission_token)\" | kubectl apply -f -"
}

output "push_pubsub_function" {
  description = "Name of the push_pubsub function (null when disabled)."
  value       = var.push_pubsub_enabled ? module.push_pubsub[0].name : null
}

output "push_pubsub_subscription" {
  description = "The Pub/Sub push subscription delivering to push_pubsub (null unless push_pubsub_delivery = \"push_subscription\")."
  value       = local.pubsub_push ? google_pubsub_subscription.push_pubsub[0].id : null
}

output "pubsub_audience" {
  description = "Audience push_pubsub requires of the push subscription's OIDC token (SIGWARD_PUBSUB_AUDIENCE; null unless push_pubsub_delivery = \"push_subscription\")."
  value       = local.pubsub_push ? local.pubsub_audience : null
}

output "pubsub_service_account" {
  description = "The identity whose OIDC token delivers Pub/Sub messages to push_pubsub (SIGWARD_PUBSUB_SERVICE_ACCOUNTS; null when push_pubsub is disabled)."
  value       = var.push_pubsub_enabled ? google_service_account.trigger[0].email : null
}

output "admission_request_log_filter" {
  description = "Cloud Logging filter matching the admission service's request logs (which carry the token in the URL): exclude it from every log sink you add."
  value       = local.admission_request_log_filter
}

output "admission_log_exclusion" {
  description = "The _Default sink's exclusion of the admission request logs (null when exclude_admission_request_logs = false)."
  value       = var.exclude_admission_request_logs ? google_logging_project_exclusion.admission_requests[0].id : null
}

output "push_webhook_url" {
  description = "HTTPS URL of the push_webhook function for registry webhooks, e.g. terraform/aws's push_webhook_url (null when disabled)."
  value       = var.push_webhook_enabled ? module.push_webhook[0].url : null
}

output "push_secret" {
  description = "Shared secret push webhooks must send (X-Sigward-Secret or Authorization); terraform/aws's push_secret."
  value       = var.push_webhook_enabled ? random_password.push_secret[0].result : null
  sensitive   = true
}

output "service_accounts" {
  description = "Service account e-mail of each function."
  value       = { for fn, sa in local.verifier_sa : fn => sa.email }
}

output "service_account_unique_ids" {
  description = "Unique (numeric) id of each function's service account: the `sub` an AWS role trusts (terraform/aws google_service_account_unique_ids)."
  value       = { for fn, sa in local.verifier_sa : fn => sa.unique_id }
}

output "source_object" {
  description = "The archive's object in the source bucket (named by its hash)."
  value       = "gs://${local.source_bucket}/${google_storage_bucket_object.source.name}"
}

output "store_uri" {
  description = "SIGWARD_STORE the functions use; `sigward verdict` reads the same with this value."
  value       = local.store_uri
}

output "reverify_url" {
  description = "URL of the reverify function (invokable only by the scheduler's service account)."
  value       = var.reverify_enabled ? module.reverify[0].uri : null
}

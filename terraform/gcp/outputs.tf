output "admission_url" {
  description = "HTTPS URL of the admission function, without the token."
  value       = google_cloudfunctions2_function.admission.url
}

output "admission_token" {
  description = "The admission path token (also in Secret Manager). Pass it to `sigward webhook-config --token`."
  value       = random_password.admission_token.result
  sensitive   = true
}

output "admission_url_with_token" {
  description = "The admission URL with the token segment; `…/mutate` and `…/validate` hang below it."
  value       = "${google_cloudfunctions2_function.admission.url}/${random_password.admission_token.result}"
  sensitive   = true
}

output "admission_token_secret" {
  description = "Secret Manager secret holding the admission token."
  value       = google_secret_manager_secret.admission_token.id
}

output "webhook_config_command" {
  description = "Registers a cluster (run with kubectl pointed at it)."
  value       = "sigward webhook-config --url ${google_cloudfunctions2_function.admission.url} --token \"$(terraform output -raw admission_token)\" | kubectl apply -f -"
}

output "push_pubsub_function" {
  description = "Name of the push_pubsub function (null when disabled)."
  value       = var.push_pubsub_enabled ? google_cloudfunctions2_function.push_pubsub[0].name : null
}

output "push_webhook_url" {
  description = "HTTPS URL of the push_webhook function for registry webhooks, e.g. terraform/aws's push_webhook_url (null when disabled)."
  value       = var.push_webhook_enabled ? google_cloudfunctions2_function.push_webhook[0].url : null
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

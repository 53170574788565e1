output "name" {
  description = "Function name (the Cloud Run service IAM bindings name)."
  value       = google_cloudfunctions2_function.this.name
}

output "url" {
  description = "The function's URL."
  value       = google_cloudfunctions2_function.this.url
}

output "uri" {
  description = "The underlying Cloud Run service URI (OIDC audience and push endpoint)."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

# One sigward Cloud Run function (gen2) built from the `sigward package` archive: the block every function of
# terraform/gcp shares (runtime, source, sizing, identity, environment, secrets, optional event trigger). Callers
# decide what differs; the resource address inside is `google_cloudfunctions2_function.this` (see ../../moved.tf).

resource "google_cloudfunctions2_function" "this" {
  project     = var.project_id
  location    = var.location
  name        = var.name
  description = var.description
  labels      = var.labels

  build_config {
    runtime     = "python311"
    entry_point = var.entry_point

    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    min_instance_count               = var.min_instance_count
    max_instance_count               = var.max_instance_count
    available_memory                 = var.available_memory
    available_cpu                    = "1"
    max_instance_request_concurrency = var.max_instance_request_concurrency
    timeout_seconds                  = var.timeout_seconds
    ingress_settings                 = var.ingress_settings
    all_traffic_on_latest_revision   = true
    service_account_email            = var.service_account_email
    environment_variables            = var.environment_variables

    # Secrets reach the function from Secret Manager, never as plain environment values.
    dynamic "secret_environment_variables" {
      for_each = var.secret_environment_variables
      content {
        key        = secret_environment_variables.value.key
        project_id = secret_environment_variables.value.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }

    dynamic "secret_volumes" {
      for_each = var.secret_volumes
      content {
        mount_path = secret_volumes.value.mount_path
        project_id = secret_volumes.value.project_id
        secret     = secret_volumes.value.secret
        versions {
          version = secret_volumes.value.version
          path    = secret_volumes.value.path
        }
      }
    }
  }

  dynamic "event_trigger" {
    for_each = var.event_triggers
    content {
      trigger_region        = event_trigger.value.trigger_region
      event_type            = event_trigger.value.event_type
      pubsub_topic          = event_trigger.value.pubsub_topic
      retry_policy          = event_trigger.value.retry_policy
      service_account_email = event_trigger.value.service_account_email
    }
  }
}

# sigward on Google Cloud: Cloud Run functions (gen2) built from the `sigward package` archive.
#
#   admission    HTTP, public (allUsers may invoke) behind a secret path token; min instances >= 1
#   push_pubsub  Artifact Registry pushes (Pub/Sub topic `gcr`), retried until it answers 2xx; delivered either by an
#                Eventarc trigger (Cloud Run IAM checks the trigger's token) or by a Pub/Sub push subscription whose
#                Google-signed OIDC token sigward verifies itself (SIGWARD_PUBSUB_AUDIENCE/SERVICE_ACCOUNTS)
#   push_webhook HTTP, public behind a shared secret header (optional; other registries, e.g. AWS ECR)
#
# Every function runs as its own service account that can only read what verification needs: public keys of the
# listed KMS keys, the listed repositories, the verdict store, and its own secrets.

locals {
  labels = merge({ "managed-by" = "terraform", "app" = "sigward" }, var.labels)

  source_bucket = var.source_bucket != "" ? var.source_bucket : google_storage_bucket.source[0].name
  # Named by the archive's hash, as `sigward package` names the file: a new archive is a new object (redeploy).
  source_object = "sigward-${substr(filesha256(var.source_zip), 0, 12)}.zip"

  gcr_topic       = "projects/${var.project_id}/topics/gcr"
  pubsub_push     = var.push_pubsub_enabled && var.push_pubsub_delivery == "push_subscription"
  pubsub_eventarc = var.push_pubsub_enabled && var.push_pubsub_delivery == "eventarc"
  # Any fixed string is a valid audience; a fixed one (not the function's URL) avoids a cycle between the function's
  # environment and its URL. The subscription asks for it and the function requires it.
  pubsub_audience = var.pubsub_audience != "" ? var.pubsub_audience : "sigward-push-pubsub/${var.project_id}/${var.name_prefix}"
  # Cloud Run's request log (it records each request URL, path included: the admission token) for the admission
  # service, which a Cloud Run function (gen2) names like the function.
  admission_request_log_filter = join(" AND ", [
    "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\"",
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.name_prefix}-admission\"",
  ])
  policy_from_secret = var.policy_source == "secret"
  policy_mount_path  = "/etc/sigward/policy"
  store_uri          = "firestore://${var.project_id}/${var.verdicts_collection}"
  # Every function mounts the policy secret (when policy_source = secret) as policy.yaml at the same path.
  policy_volumes = local.policy_from_secret ? [{
    mount_path = local.policy_mount_path
    project_id = var.project_id
    secret     = google_secret_manager_secret.policy[0].secret_id
    version    = google_secret_manager_secret_version.policy[0].version
    path       = "policy.yaml"
  }] : []

  # The functions that verify images; each gets its own service account and the same read-only grants.
  verifiers = concat(
    ["admission"],
    var.push_pubsub_enabled ? ["push-pubsub"] : [],
    var.push_webhook_enabled ? ["push-webhook"] : [],
    var.reverify_enabled ? ["reverify"] : [],
  )
  verifier_sa = { for fn in local.verifiers : fn => google_service_account.function[fn] }

  kms_grants = merge([
    for fn in local.verifiers : merge(
      { for key in var.kms_key_ids : "${fn}|publicKeyViewer|${key}" => { fn = fn, key = key, role = "roles/cloudkms.publicKeyViewer" } },
      var.kms_list_key_versions ? { for key in var.kms_key_ids : "${fn}|viewer|${key}" => { fn = fn, key = key, role = "roles/cloudkms.viewer" } } : {},
    )
  ]...)

  repository_grants = merge([
    for fn in local.verifiers : {
      for repo in var.artifact_registry_repositories : "${fn}|${repo}" => {
        fn         = fn
        project    = split("/", repo)[1]
        location   = split("/", repo)[3]
        repository = split("/", repo)[5]
      }
    }
  ]...)

  common_env = merge(
    {
      SIGWARD_STORE            = local.store_uri
      SIGWARD_DEADLINE_SECONDS = tostring(var.deadline_seconds)
    },
    local.policy_from_secret ? { SIGWARD_POLICY = "${local.policy_mount_path}/policy.yaml" } : {},
    var.aws_role_arn != "" ? { SIGWARD_AWS_ROLE_ARN = var.aws_role_arn } : {},
    var.aws_region != "" ? { AWS_REGION = var.aws_region } : {},
    var.extra_env,
  )

  # Every API this module's resources and the functions' own calls need (KMS public keys, AWS federation's ID token
  # comes from the metadata server and needs none).
  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# -- source archive --------------------------------------------------------------------------------------------

resource "google_storage_bucket" "source" {
  count = var.source_bucket == "" ? 1 : 0

  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels

  versioning {
    enabled = false
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  bucket = local.source_bucket
  name   = local.source_object
  source = var.source_zip
}

# -- service accounts (one per function) -----------------------------------------------------------------------

resource "google_service_account" "function" {
  for_each = toset(local.verifiers)

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "sigward ${each.key} function"
  description  = "Runs the sigward ${each.key} function: reads public keys, images and the verdict store; nothing else."
}

# Pub/Sub messages reach push_pubsub signed as this identity (the Eventarc trigger's, or the push subscription's
# oidc_token): it may invoke that function and nothing else.
resource "google_service_account" "trigger" {
  count = var.push_pubsub_enabled ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-trigger"
  display_name = "sigward Pub/Sub delivery"
  description  = "Identity whose Google-signed OIDC token delivers Artifact Registry notifications to sigward push_pubsub."
}

data "google_project" "this" {
  count = var.push_pubsub_enabled ? 1 : 0

  project_id = var.project_id
}

# Pub/Sub's service agent mints the delivery's OIDC token for the trigger identity (automatic in projects created
# after April 2021; granted here on that one account, not project-wide, so older projects work too).
resource "google_service_account_iam_member" "pubsub_token_creator" {
  count = var.push_pubsub_enabled ? 1 : 0

  service_account_id = google_service_account.trigger[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this[0].number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_project_iam_member" "trigger_event_receiver" {
  count = local.pubsub_eventarc ? 1 : 0

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger[0].email}"
}

# -- least-privilege grants ------------------------------------------------------------------------------------

resource "google_kms_crypto_key_iam_member" "public_key_reader" {
  for_each = local.kms_grants

  crypto_key_id = each.value.key
  role          = each.value.role
  member        = "serviceAccount:${local.verifier_sa[each.value.fn].email}"
}

resource "google_artifact_registry_repository_iam_member" "reader" {
  for_each = local.repository_grants

  project    = each.value.project
  location   = each.value.location
  repository = each.value.repository
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${local.verifier_sa[each.value.fn].email}"
}

# Firestore IAM is granted on the project; datastore.user reads and writes documents and nothing else.
resource "google_project_iam_member" "verdict_store" {
  for_each = toset(local.verifiers)

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${local.verifier_sa[each.key].email}"
}

# -- verdict store ---------------------------------------------------------------------------------------------

resource "google_firestore_database" "default" {
  count = var.create_firestore_database ? 1 : 0

  project                 = var.project_id
  name                    = "(default)"
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [google_project_service.apis]
}

# Expired verdicts, event ids and first sightings are deleted by Firestore's TTL policy on expires_at (no index on
# the field: a monotonically growing timestamp index only costs writes).
resource "google_firestore_field" "ttl" {
  for_each = toset([var.verdicts_collection, "${var.verdicts_collection}-events", "${var.verdicts_collection}-sightings"])

  project    = var.project_id
  database   = "(default)"
  collection = each.value
  field      = "expires_at"

  ttl_config {}

  index_config {}

  depends_on = [google_firestore_database.default, google_project_service.apis]
}

# -- secrets ---------------------------------------------------------------------------------------------------

# The admission path token: the endpoint is public (the API server cannot present Google credentials), so the URL
# carries a random segment the cluster's webhook configuration holds. URL-safe: letters and digits only.
resource "random_password" "admission_token" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "admission_token" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-admission-token"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "admission_token" {
  secret      = google_secret_manager_secret.admission_token.id
  secret_data = random_password.admission_token.result
}

resource "google_secret_manager_secret_iam_member" "admission_token" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.admission_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.verifier_sa["admission"].email}"
}

resource "random_password" "push_secret" {
  count = var.push_webhook_enabled ? 1 : 0

  length  = 48
  special = false
}

resource "google_secret_manager_secret" "push_secret" {
  count = var.push_webhook_enabled ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-push-secret"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "push_secret" {
  count = var.push_webhook_enabled ? 1 : 0

  secret      = google_secret_manager_secret.push_secret[0].id
  secret_data = random_password.push_secret[0].result
}

resource "google_secret_manager_secret_iam_member" "push_secret" {
  count = var.push_webhook_enabled ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.push_secret[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.verifier_sa["push-webhook"].email}"
}

resource "google_secret_manager_secret" "policy" {
  count = local.policy_from_secret ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-policy"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "policy" {
  count = local.policy_from_secret ? 1 : 0

  secret      = google_secret_manager_secret.policy[0].id
  secret_data = var.policy_yaml

  lifecycle {
    precondition {
      condition     = trimspace(var.policy_yaml) != ""
      error_message = "policy_source = \"secret\" needs the policies in policy_yaml."
    }
  }
}

resource "google_secret_manager_secret_iam_member" "policy" {
  for_each = local.policy_from_secret ? toset(local.verifiers) : toset([])

  project   = var.project_id
  secret_id = google_secret_manager_secret.policy[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.verifier_sa[each.key].email}"
}

# -- functions -------------------------------------------------------------------------------------------------

module "admission" {
  source = "./modules/function"

  project_id    = var.project_id
  location      = var.region
  name          = "${var.name_prefix}-admission"
  description   = "sigward Kubernetes admission webhook (AdmissionReview v1)"
  labels        = local.labels
  entry_point   = "admission"
  source_bucket = local.source_bucket
  source_object = google_storage_bucket_object.source.name

  min_instance_count               = var.min_instance_count
  max_instance_count               = var.max_instance_count
  available_memory                 = var.memory
  max_instance_request_concurrency = var.concurrency
  timeout_seconds                  = var.admission_timeout_seconds
  ingress_settings                 = "ALLOW_ALL"
  service_account_email            = local.verifier_sa["admission"].email
  environment_variables            = local.common_env

  secret_environment_variables = [{
    key        = "SIGWARD_ADMISSION_TOKEN"
    project_id = var.project_id
    secret     = google_secret_manager_secret.admission_token.secret_id
    version    = google_secret_manager_secret_version.admission_token.version
  }]
  secret_volumes = local.policy_volumes

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.admission_token,
    google_secret_manager_secret_iam_member.policy,
  ]
}

# The API server calls the webhook without Google credentials: anyone may invoke admission, and the path token
# (checked in constant time before any work) decides who is served.
resource "google_cloud_run_service_iam_member" "admission_public" {
  project  = var.project_id
  location = var.region
  service  = module.admission.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_pubsub_topic" "gcr" {
  count = var.push_pubsub_enabled && var.create_gcr_topic ? 1 : 0

  project = var.project_id
  name    = "gcr"
  labels  = local.labels

  depends_on = [google_project_service.apis]
}

module "push_pubsub" {
  source = "./modules/function"
  count  = var.push_pubsub_enabled ? 1 : 0

  project_id    = var.project_id
  location      = var.region
  name          = "${var.name_prefix}-push-pubsub"
  description   = "sigward push-time verification of Artifact Registry / GCR pushes (topic gcr)"
  labels        = local.labels
  entry_point   = "push_pubsub"
  source_bucket = local.source_bucket
  source_object = google_storage_bucket_object.source.name

  min_instance_count               = 0
  max_instance_count               = var.max_instance_count
  available_memory                 = var.memory
  max_instance_request_concurrency = var.concurrency
  timeout_seconds                  = 120
  ingress_settings                 = "ALLOW_INTERNAL_ONLY"
  service_account_email            = local.verifier_sa["push-pubsub"].email
  # With a push subscription the function is not behind Cloud Run IAM, so it checks the OIDC token itself.
  environment_variables = merge(local.common_env, local.pubsub_push ? {
    SIGWARD_PUBSUB_AUDIENCE         = local.pubsub_audience
    SIGWARD_PUBSUB_SERVICE_ACCOUNTS = google_service_account.trigger[0].email
  } : {})
  secret_volumes = local.policy_volumes

  # A non-2xx answer (e.g. the signature is not pushed yet) is redelivered with backoff.
  event_triggers = local.pubsub_eventarc ? [{
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = local.gcr_topic
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger[0].email
  }] : []

  depends_on = [
    google_project_service.apis,
    google_pubsub_topic.gcr,
    google_project_iam_member.trigger_event_receiver,
    google_secret_manager_secret_iam_member.policy,
  ]
}

# Eventarc: only the trigger's identity may invoke push_pubsub (Cloud Run checks its token, then strips the token's
# signature, which is why the function does not check it again).
resource "google_cloud_run_service_iam_member" "push_pubsub_trigger" {
  count = local.pubsub_eventarc ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = module.push_pubsub[0].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger[0].email}"
}

# Push subscription: Cloud Run must pass the token through with its signature, so the service is not behind IAM
# (allUsers may invoke; ingress stays internal-only) and sigward verifies the Google-signed token before any work:
# issuer, this audience, this service account, email_verified, expiry.
resource "google_cloud_run_service_iam_member" "push_pubsub_public" {
  count = local.pubsub_push ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = module.push_pubsub[0].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_pubsub_subscription" "push_pubsub" {
  count = local.pubsub_push ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-push-pubsub"
  topic   = local.gcr_topic
  labels  = local.labels

  # The function may take up to its 120 s timeout; a non-2xx answer (signature not pushed yet, outage) is
  # redelivered with backoff until the message expires.
  ack_deadline_seconds       = 120
  message_retention_duration = "86400s"

  push_config {
    push_endpoint = module.push_pubsub[0].uri

    oidc_token {
      service_account_email = google_service_account.trigger[0].email
      audience              = local.pubsub_audience
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_pubsub_topic.gcr, google_service_account_iam_member.pubsub_token_creator]
}

# The admission token travels in the URL path, and Cloud Run's request log records request URLs: drop those
# entries for the admission service from the _Default sink (they are never stored). Any other sink that routes
# Cloud Run request logs (an export to BigQuery, a bucket, a SIEM) must exclude the same filter; the _Required sink
# does not take request logs.
resource "google_logging_project_exclusion" "admission_requests" {
  count = var.exclude_admission_request_logs ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}-admission-request-logs"
  description = "sigward: Cloud Run request logs of the admission service carry the admission token in the URL path."
  filter      = local.admission_request_log_filter

  depends_on = [google_project_service.apis]
}

module "push_webhook" {
  source = "./modules/function"
  count  = var.push_webhook_enabled ? 1 : 0

  project_id    = var.project_id
  location      = var.region
  name          = "${var.name_prefix}-push-webhook"
  description   = "sigward push-time verification for registry webhooks (ECR via EventBridge, ACR, Harbor, GitHub)"
  labels        = local.labels
  entry_point   = "push_webhook"
  source_bucket = local.source_bucket
  source_object = google_storage_bucket_object.source.name

  min_instance_count               = 0
  max_instance_count               = var.max_instance_count
  available_memory                 = var.memory
  max_instance_request_concurrency = var.concurrency
  timeout_seconds                  = 60
  ingress_settings                 = "ALLOW_ALL"
  service_account_email            = local.verifier_sa["push-webhook"].email
  environment_variables            = local.common_env

  secret_environment_variables = [{
    key        = "SIGWARD_PUSH_SECRET"
    project_id = var.project_id
    secret     = google_secret_manager_secret.push_secret[0].secret_id
    version    = google_secret_manager_secret_version.push_secret[0].version
  }]
  secret_volumes = local.policy_volumes

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.push_secret,
    google_secret_manager_secret_iam_member.policy,
  ]
}

# Registry webhooks (EventBridge API destinations, Event Grid, Harbor) cannot present Google credentials: the
# endpoint is public and SIGWARD_PUSH_SECRET authenticates the sender before any work.
resource "google_cloud_run_service_iam_member" "push_webhook_public" {
  count = var.push_webhook_enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = module.push_webhook[0].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# -- re-verification -------------------------------------------------------------------------------------------
#
# Cloud Scheduler calls `reverify` every var.reverify_schedule with a Google-signed OIDC token for the function's
# URL; Cloud Run's IAM checks it (only the scheduler's own service account may invoke the function, nobody else).
# Each run walks a bounded batch of recorded verdicts and resumes from a cursor in the verdict store next time.

module "reverify" {
  source = "./modules/function"
  count  = var.reverify_enabled ? 1 : 0

  project_id    = var.project_id
  location      = var.region
  name          = "${var.name_prefix}-reverify"
  description   = "sigward re-verification of recorded verdicts (Cloud Scheduler, OIDC)"
  labels        = local.labels
  entry_point   = "reverify"
  source_bucket = local.source_bucket
  source_object = google_storage_bucket_object.source.name

  min_instance_count = 0
  # One run at a time: a second concurrent run would only find the lease taken.
  max_instance_count               = 1
  available_memory                 = var.memory
  max_instance_request_concurrency = 1
  timeout_seconds                  = var.reverify_run_seconds + 60
  ingress_settings                 = "ALLOW_ALL"
  service_account_email            = local.verifier_sa["reverify"].email
  environment_variables = merge(local.common_env, {
    SIGWARD_REVERIFY_SECONDS      = tostring(var.reverify_run_seconds)
    SIGWARD_PENDING_GRACE_SECONDS = tostring(var.pending_grace_seconds)
  })
  secret_volumes = local.policy_volumes

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.policy,
  ]
}

# The scheduler's identity: its OIDC token may invoke `reverify` and nothing else.
resource "google_service_account" "scheduler" {
  count = var.reverify_enabled ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "sigward re-verification schedule"
  description  = "Identity whose Google-signed OIDC token lets Cloud Scheduler invoke sigward reverify."
}

resource "google_cloud_run_service_iam_member" "reverify_scheduler" {
  count = var.reverify_enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = module.reverify[0].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler[0].email}"
}

resource "google_cloud_scheduler_job" "reverify" {
  count = var.reverify_enabled ? 1 : 0

  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-reverify"
  description      = "Re-verify recorded sigward verdicts; findings for every image that stopped satisfying policy."
  schedule         = var.reverify_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${var.reverify_run_seconds + 60}s"

  retry_config {
    # A failed run (store or registry down) is retried; the cursor makes a retry resume, not restart.
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
  }

  http_target {
    http_method = "POST"
    uri         = module.reverify[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler[0].email
      audience              = module.reverify[0].uri
    }
  }

  depends_on = [google_project_service.apis, google_cloud_run_service_iam_member.reverify_scheduler]
}

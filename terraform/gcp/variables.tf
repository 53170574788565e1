variable "project_id" {
  description = "Google Cloud project that hosts the functions, the verdict store (Firestore) and the secrets."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 characters: lowercase letters, digits, hyphens; starts with a letter), not a project number or name."
  }
}

variable "region" {
  description = "Region of the functions, the Eventarc trigger and the source bucket, e.g. us-central1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Cloud Run region such as us-central1 or europe-west4."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, service accounts, secrets)."
  type        = string
  default     = "sigward"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-16 characters: lowercase letters, digits and hyphens, starting with a letter (service account ids are limited to 30 characters)."
  }
}

variable "source_zip" {
  description = "Path of the archive built by `sigward package` (dist/sigward-<sha12>.zip). The bucket object is named by the archive's hash, so a new archive redeploys the functions and an unchanged one does not."
  type        = string

  validation {
    condition     = can(regex("\\.zip$", var.source_zip))
    error_message = "source_zip must be the .zip file `sigward package` printed."
  }
}

variable "source_bucket" {
  description = "Existing bucket for the function source. Empty: the module creates <project_id>-<name_prefix>-source (uniform access, no public access)."
  type        = string
  default     = ""

  validation {
    condition     = var.source_bucket == "" || can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", var.source_bucket))
    error_message = "source_bucket must be a bucket name (no gs:// prefix) or empty."
  }
}

variable "enable_apis" {
  description = "Enable the APIs the module and the functions use (Cloud Functions, Cloud Run, Cloud Build, Artifact Registry, Cloud KMS, Eventarc, Pub/Sub, Secret Manager, Firestore, IAM, Cloud Logging, Cloud Resource Manager, Cloud Storage). They are left enabled on destroy."
  type        = bool
  default     = true
}

variable "policy_source" {
  description = "Where the functions read the Kyverno policies: \"bundled\" = the policies/ directory inside the archive (`sigward package --policy ...`); \"secret\" = a Secret Manager secret holding policy_yaml, mounted as a file (change policies without rebuilding the archive)."
  type        = string
  default     = "bundled"

  validation {
    condition     = contains(["bundled", "secret"], var.policy_source)
    error_message = "policy_source must be \"bundled\" or \"secret\"."
  }
}

variable "policy_yaml" {
  description = "The policies (multi-document YAML) stored in Secret Manager when policy_source = \"secret\". Ignored otherwise."
  type        = string
  default     = ""

  validation {
    condition     = length(var.policy_yaml) <= 65536
    error_message = "policy_yaml is larger than Secret Manager's 64 KiB limit."
  }
}

variable "min_instance_count" {
  description = "Instances of the admission function kept warm. At least 1: a cold start inside the API server's webhook timeout turns into failurePolicy."
  type        = number
  default     = 1

  validation {
    condition     = var.min_instance_count >= 1 && floor(var.min_instance_count) == var.min_instance_count
    error_message = "min_instance_count must be a whole number >= 1 (the admission webhook must not cold-start)."
  }
}

variable "max_instance_count" {
  description = "Upper bound of instances per function."
  type        = number
  default     = 20

  validation {
    condition     = var.max_instance_count >= 1 && var.max_instance_count <= 1000 && floor(var.max_instance_count) == var.max_instance_count
    error_message = "max_instance_count must be a whole number between 1 and 1000."
  }
}

variable "concurrency" {
  description = "Requests one instance serves at once (gunicorn threads). Verification waits on the network, so many fit on one CPU."
  type        = number
  default     = 16

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "memory" {
  description = "Memory of each function instance."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must look like 512Mi or 1Gi."
  }
}

variable "admission_timeout_seconds" {
  description = "Request timeout of the admission function. The API server gives up at the webhook's timeoutSeconds (10 by default) and sigward decides within SIGWARD_DEADLINE_SECONDS before that."
  type        = number
  default     = 30

  validation {
    condition     = var.admission_timeout_seconds >= 10 && var.admission_timeout_seconds <= 3600
    error_message = "admission_timeout_seconds must be between 10 and 3600."
  }
}

variable "deadline_seconds" {
  description = "SIGWARD_DEADLINE_SECONDS: the admission time budget; keep it below the webhook's timeoutSeconds."
  type        = number
  default     = 8

  validation {
    condition     = var.deadline_seconds >= 1 && var.deadline_seconds < 30
    error_message = "deadline_seconds must be between 1 and 29 (the webhook timeout is at most 30 s)."
  }
}

variable "push_pubsub_enabled" {
  description = "Deploy push_pubsub: verify images pushed to Artifact Registry / GCR as they arrive (Eventarc trigger on the gcr topic)."
  type        = bool
  default     = true
}

variable "push_pubsub_delivery" {
  description = "How Pub/Sub messages reach push_pubsub: \"eventarc\" = an Eventarc trigger, the function behind Cloud Run IAM (only the trigger's identity may invoke; Cloud Run checks its token); \"push_subscription\" = a Pub/Sub push subscription with an OIDC token for the trigger identity and pubsub_audience, which sigward verifies itself (SIGWARD_PUBSUB_AUDIENCE, SIGWARD_PUBSUB_SERVICE_ACCOUNTS) because Cloud Run IAM would strip the token's signature."
  type        = string
  default     = "eventarc"

  validation {
    condition     = contains(["eventarc", "push_subscription"], var.push_pubsub_delivery)
    error_message = "push_pubsub_delivery must be \"eventarc\" or \"push_subscription\"."
  }
}

variable "pubsub_audience" {
  description = "Audience of the push subscription's OIDC token (push_pubsub_delivery = \"push_subscription\"); the function accepts tokens for this audience only. Empty: sigward-push-pubsub/<project_id>/<name_prefix>."
  type        = string
  default     = ""

  validation {
    condition     = length(var.pubsub_audience) <= 256 && !can(regex("[,\\s]", var.pubsub_audience))
    error_message = "pubsub_audience must be at most 256 characters without commas or spaces."
  }
}

variable "exclude_admission_request_logs" {
  description = "Exclude Cloud Run's request logs of the admission service from the _Default log sink: they record each request URL, and the URL path carries the admission token. Other sinks that route run.googleapis.com/requests must exclude them too (output admission_request_log_filter)."
  type        = bool
  default     = true
}

variable "create_gcr_topic" {
  description = "Create the Pub/Sub topic `gcr` that Artifact Registry publishes to. Set false when the project already has it."
  type        = bool
  default     = true
}

variable "push_webhook_enabled" {
  description = "Deploy push_webhook: the HTTPS endpoint for other registries' push events (AWS ECR through terraform/aws, Azure Event Grid, distribution, Harbor, GitHub). It is public and authenticates senders with a generated shared secret (SIGWARD_PUSH_SECRET)."
  type        = bool
  default     = false
}

variable "kms_key_ids" {
  description = "Cloud KMS keys the policies verify with (projects/P/locations/L/keyRings/R/cryptoKeys/K). Each function's service account gets roles/cloudkms.publicKeyViewer on each."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.kms_key_ids : can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", k))])
    error_message = "Each kms_key_ids entry must be a crypto key name projects/P/locations/L/keyRings/R/cryptoKeys/K (without /cryptoKeyVersions/N)."
  }
}

variable "kms_list_key_versions" {
  description = "Also grant roles/cloudkms.viewer on the keys, which sigward needs to find the newest enabled version when a policy names a key without /cryptoKeyVersions/N. Set false when every gcpkms:// URI pins a version."
  type        = bool
  default     = true
}

variable "artifact_registry_repositories" {
  description = "Artifact Registry repositories the functions read images and signatures from (projects/P/locations/L/repositories/R). roles/artifactregistry.reader on each."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.artifact_registry_repositories : can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/[a-z0-9-]+/repositories/[a-z][a-z0-9-]{0,62}$", r))])
    error_message = "Each artifact_registry_repositories entry must be projects/P/locations/L/repositories/R."
  }
}

variable "create_firestore_database" {
  description = "Create the project's (default) Firestore database in native mode. Set false when it exists (a project has at most one (default) database)."
  type        = bool
  default     = false
}

variable "firestore_location" {
  description = "Location of the Firestore database when create_firestore_database is true (e.g. nam5, eur3, us-central1)."
  type        = string
  default     = "nam5"

  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location id such as nam5 or europe-west1."
  }
}

variable "verdicts_collection" {
  description = "Firestore collection of push-time verdicts (SIGWARD_STORE=firestore://<project>/<collection>); a TTL policy on expires_at deletes expired ones."
  type        = string
  default     = "verdicts"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,60}$", var.verdicts_collection))
    error_message = "verdicts_collection must be a single collection id (letters, digits, _ and -)."
  }
}

variable "aws_role_arn" {
  description = "IAM role the functions assume with their Google identity for AWS KMS keys and ECR (output verifier_role_arn of terraform/aws). Empty: no AWS access."
  type        = string
  default     = ""

  validation {
    condition     = var.aws_role_arn == "" || can(regex("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", var.aws_role_arn))
    error_message = "aws_role_arn must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME) or empty."
  }
}

variable "aws_region" {
  description = "AWS_REGION for AWS KMS keys named by id or alias (keys named by ARN carry their region)."
  type        = string
  default     = ""

  validation {
    condition     = var.aws_region == "" || can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region such as us-east-1, or empty."
  }
}

variable "extra_env" {
  description = "More environment variables for every function (e.g. SIGWARD_PRIVATE_REGISTRIES). Not for secrets: those belong in Secret Manager."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_env) : !can(regex("(?i)(TOKEN|SECRET|PASSWORD|PRIVATE_KEY)", k))])
    error_message = "extra_env must not carry secrets (TOKEN, SECRET, PASSWORD, PRIVATE_KEY): use Secret Manager."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "reverify_enabled" {
  description = "Deploy reverify and a Cloud Scheduler job that calls it (OIDC): recorded verdicts are re-verified against current policies, and every image that stops satisfying them becomes a finding."
  type        = bool
  default     = true
}

variable "reverify_schedule" {
  description = "Cron schedule (UTC) of re-verification runs. Every run walks a bounded batch and resumes from the store's cursor; a finding arrives within one full cycle (records / records-per-run runs)."
  type        = string
  default     = "*/15 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.reverify_schedule))) == 5
    error_message = "reverify_schedule must be a five-field cron expression, e.g. \"*/15 * * * *\"."
  }
}

variable "reverify_run_seconds" {
  description = "Time budget of one re-verification run (SIGWARD_REVERIFY_SECONDS); the function and scheduler deadlines are this plus 60 s."
  type        = number
  default     = 150

  validation {
    condition     = var.reverify_run_seconds >= 10 && var.reverify_run_seconds <= 1700
    error_message = "reverify_run_seconds must be between 10 and 1700 (Cloud Scheduler allows at most 30 minutes)."
  }
}

variable "pending_grace_seconds" {
  description = "How long an image pushed without a signature stays pending before re-verification records it unsigned with a finding (SIGWARD_PENDING_GRACE_SECONDS)."
  type        = number
  default     = 3600

  validation {
    condition     = var.pending_grace_seconds >= 0
    error_message = "pending_grace_seconds must not be negative."
  }
}

variable "monitoring_enabled" {
  description = "Create the log-based metrics, the dashboard and the alert policies (monitoring.tf)."
  type        = bool
  default     = true
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channel ids the alert policies notify (empty: alerts show in the console only)."
  type        = list(string)
  default     = []
}

variable "alert_denials_per_minute" {
  description = "Alert when more Pods than this are denied per minute, for 5 minutes."
  type        = number
  default     = 20
  validation {
    condition     = var.alert_denials_per_minute > 0
    error_message = "alert_denials_per_minute must be positive."
  }
}

variable "alert_errors_per_5_minutes" {
  description = "Alert when more admissions than this could not be decided in 5 minutes."
  type        = number
  default     = 0
  validation {
    condition     = var.alert_errors_per_5_minutes >= 0
    error_message = "alert_errors_per_5_minutes must not be negative."
  }
}

variable "alert_latency_p99_ms" {
  description = "Alert when the p99 admission decision latency stays above this many milliseconds for 10 minutes (keep it below deadline_seconds)."
  type        = number
  default     = 5000
  validation {
    condition     = var.alert_latency_p99_ms > 0
    error_message = "alert_latency_p99_ms must be positive."
  }
}

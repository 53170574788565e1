variable "project_id" {
  description = "Project the function runs in."
  type        = string
}

variable "location" {
  description = "Region of the function."
  type        = string
}

variable "name" {
  description = "Function name (also the Cloud Run service name)."
  type        = string
}

variable "description" {
  description = "What the function does, shown in the console."
  type        = string
}

variable "labels" {
  description = "Labels of the function."
  type        = map(string)
  default     = {}
}

variable "entry_point" {
  description = "The function's entry point in the archive's main.py (admission, push_pubsub, push_webhook, reverify)."
  type        = string
}

variable "source_bucket" {
  description = "Bucket holding the `sigward package` archive."
  type        = string
}

variable "source_object" {
  description = "Object name of the archive (named by its hash: a new archive redeploys)."
  type        = string
}

variable "min_instance_count" {
  description = "Instances kept warm."
  type        = number
}

variable "max_instance_count" {
  description = "Upper bound on instances."
  type        = number
}

variable "available_memory" {
  description = "Memory per instance, e.g. 512Mi."
  type        = string
}

variable "max_instance_request_concurrency" {
  description = "Concurrent requests per instance."
  type        = number
}

variable "timeout_seconds" {
  description = "Request timeout."
  type        = number
}

variable "ingress_settings" {
  description = "ALLOW_ALL or ALLOW_INTERNAL_ONLY."
  type        = string
}

variable "service_account_email" {
  description = "The function's own least-privilege service account."
  type        = string
}

variable "environment_variables" {
  description = "Plain (non-secret) environment."
  type        = map(string)
}

variable "secret_environment_variables" {
  description = "Environment variables read from Secret Manager versions."
  type = list(object({
    key        = string
    project_id = string
    secret     = string
    version    = string
  }))
  default = []
}

variable "secret_volumes" {
  description = "Secret Manager versions mounted as files (the policy, when policy_source = secret)."
  type = list(object({
    mount_path = string
    project_id = string
    secret     = string
    version    = string
    path       = string
  }))
  default = []
}

variable "event_triggers" {
  description = "At most one Eventarc trigger (push_pubsub delivered by Eventarc); none for HTTP functions."
  type = list(object({
    trigger_region        = string
    event_type            = string
    pubsub_topic          = string
    retry_policy          = string
    service_account_email = string
  }))
  default = []

  validation {
    condition     = length(var.event_triggers) <= 1
    error_message = "A Cloud Run function takes at most one event trigger."
  }
}

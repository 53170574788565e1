variable "name_prefix" {
  description = "Prefix of every resource name (rule, connection, API destination, roles, queue, key alias)."
  type        = string
  default     = "sigward"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{1,31}$", var.name_prefix))
    error_message = "name_prefix must be 2-32 characters: letters, digits and hyphens, starting with a letter."
  }
}

# -- ECR push events -> push_webhook ---------------------------------------------------------------------------

variable "push_events_enabled" {
  description = "Send ECR push events (EventBridge) to sigward's push_webhook function."
  type        = bool
  default     = true
}

variable "push_webhook_url" {
  description = "HTTPS URL of sigward's push_webhook function (terraform/gcp output push_webhook_url)."
  type        = string
  default     = ""

  validation {
    condition     = var.push_webhook_url == "" || can(regex("^https://[^/?#\\s]+(/[^?#\\s]*)?$", var.push_webhook_url))
    error_message = "push_webhook_url must be an https URL without query or fragment."
  }
}

variable "push_secret" {
  description = "Shared secret EventBridge sends in the X-Sigward-Secret header (terraform/gcp output push_secret; SIGWARD_PUSH_SECRET of the function). A variable rather than generated here: the secret is sigward's, and this module needs no provider but aws."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.push_secret == "" || (length(var.push_secret) >= 24 && can(regex("^[\\x21-\\x7e]+$", var.push_secret)))
    error_message = "push_secret must be at least 24 printable ASCII characters without spaces."
  }
}

variable "repository_names" {
  description = "Only events of these ECR repositories (empty: every repository of the account and region)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.repository_names : can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", r))])
    error_message = "Each repository_names entry must be an ECR repository name (lowercase, e.g. team/app)."
  }
}

variable "invocation_rate_limit_per_second" {
  description = "Upper bound of calls per second EventBridge makes to push_webhook (events above it wait and are retried)."
  type        = number
  default     = 10

  validation {
    condition     = var.invocation_rate_limit_per_second >= 1 && var.invocation_rate_limit_per_second <= 300
    error_message = "invocation_rate_limit_per_second must be between 1 and 300."
  }
}

variable "maximum_event_age_seconds" {
  description = "How long EventBridge keeps retrying an undelivered event (a non-2xx answer, e.g. the signature is not pushed yet)."
  type        = number
  default     = 86400

  validation {
    condition     = var.maximum_event_age_seconds >= 60 && var.maximum_event_age_seconds <= 86400
    error_message = "maximum_event_age_seconds must be between 60 and 86400."
  }
}

variable "maximum_retry_attempts" {
  description = "Retries of one event before it goes to the dead-letter queue."
  type        = number
  default     = 185

  validation {
    condition     = var.maximum_retry_attempts >= 0 && var.maximum_retry_attempts <= 185
    error_message = "maximum_retry_attempts must be between 0 and 185."
  }
}

variable "dead_letter_queue_enabled" {
  description = "Keep events that could not be delivered in an SQS queue (14 days) instead of dropping them."
  type        = bool
  default     = true
}

# -- the role sigward assumes with its Google identity --------------------------------------------------------

variable "google_service_account_unique_ids" {
  description = "Unique (numeric) ids of the GCP service accounts sigward runs as (terraform/gcp output service_account_unique_ids). They may assume the verifier role with their Google-signed ID token; no AWS keys exist. Empty: no role."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.google_service_account_unique_ids : can(regex("^[0-9]{21}$", id))])
    error_message = "Each google_service_account_unique_ids entry must be a service account's 21-digit unique id (not its e-mail)."
  }
}

variable "google_audience" {
  description = "Audience of the Google ID token (SIGWARD_AWS_AUDIENCE of the functions); checked as accounts.google.com:oaud."
  type        = string
  default     = "sts.amazonaws.com"

  validation {
    condition     = length(var.google_audience) > 0 && length(var.google_audience) <= 255
    error_message = "google_audience must be a non-empty string."
  }
}

variable "kms_key_arns" {
  description = "AWS KMS keys the policies verify with (awskms:///arn:aws:kms:...). The role gets kms:GetPublicKey and kms:DescribeKey on each."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.kms_key_arns : can(regex("^arn:aws(-cn|-us-gov)?:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", k))])
    error_message = "Each kms_key_arns entry must be a key ARN arn:aws:kms:REGION:ACCOUNT:key/ID (IAM policies do not match aliases)."
  }
}

variable "ecr_public_pull" {
  description = "Let the verifier role mint ECR Public (public.ecr.aws) pull tokens: ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken (no resource; they grant no repository, only the authenticated rate limit). Off: public.ecr.aws images are pulled anonymously."
  type        = bool
  default     = true
}

variable "ecr_repository_arns" {
  description = "ECR repositories the functions read images and signatures from. The role gets ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, ecr:DescribeImages and ecr:BatchCheckLayerAvailability on each (and ecr:GetAuthorizationToken, which has no resource)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.ecr_repository_arns : can(regex("^arn:aws(-cn|-us-gov)?:ecr:[a-z0-9-]+:[0-9]{12}:repository/[a-z0-9][a-z0-9._/*-]*$", r))])
    error_message = "Each ecr_repository_arns entry must be arn:aws:ecr:REGION:ACCOUNT:repository/NAME."
  }
}

variable "max_session_duration" {
  description = "Longest session (seconds) the verifier role grants; sigward asks for one hour and refreshes before expiry."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration must be between 3600 and 43200."
  }
}

# -- optional signing key for `sigward sign` in CI -------------------------------------------------------------

variable "create_signing_key" {
  description = "Create an ECC_NIST_P256 SIGN_VERIFY KMS key (and alias) for `sigward sign --key awskms:///alias/...` in CI. The verifier role may read its public key."
  type        = bool
  default     = false
}

variable "signing_key_alias" {
  description = "Alias of the signing key."
  type        = string
  default     = "alias/sigward-signing"

  validation {
    condition     = can(regex("^alias/[A-Za-z0-9/_-]+$", var.signing_key_alias)) && !startswith(var.signing_key_alias, "alias/aws/")
    error_message = "signing_key_alias must look like alias/NAME and not be in the reserved alias/aws/ namespace."
  }
}

variable "signing_key_deletion_window_days" {
  description = "Waiting period before a destroyed signing key is deleted (7-30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.signing_key_deletion_window_days >= 7 && var.signing_key_deletion_window_days <= 30
    error_message = "signing_key_deletion_window_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

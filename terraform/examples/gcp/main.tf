# sigward on Google Cloud, end to end (from this directory):
#
#   sigward package --policy policies/ --out dist        # prints "<sha256>  dist/sigward-<sha12>.zip"
#   terraform init
#   terraform apply -var project_id=my-project -var source_zip=../../../dist/sigward-<sha12>.zip \
#     -var 'kms_key_ids=["projects/my-project/locations/global/keyRings/signing/cryptoKeys/cosign"]' \
#     -var 'artifact_registry_repositories=["projects/my-project/locations/us-central1/repositories/apps"]'
#   sigward webhook-config --url "$(terraform output -raw admission_url)" \
#       --token "$(terraform output -raw admission_token)" | kubectl apply -f -

terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.40, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
  }
}

variable "project_id" {
  description = "Project to deploy sigward into."
  type        = string
}

variable "region" {
  description = "Region of the functions."
  type        = string
  default     = "us-central1"
}

variable "source_zip" {
  description = "The archive `sigward package` built."
  type        = string
}

variable "kms_key_ids" {
  description = "Cloud KMS keys the policies verify with (projects/P/locations/L/keyRings/R/cryptoKeys/K)."
  type        = list(string)
  default     = []
}

variable "artifact_registry_repositories" {
  description = "Artifact Registry repositories holding the images and signatures (projects/P/locations/L/repositories/R)."
  type        = list(string)
  default     = []
}

variable "push_pubsub_delivery" {
  description = "\"eventarc\" (Cloud Run IAM) or \"push_subscription\" (sigward verifies the Pub/Sub OIDC token)."
  type        = string
  default     = "eventarc"
}

variable "push_webhook_enabled" {
  description = "Deploy push_webhook for other registries (ECR through ../aws, ACR, Harbor, GitHub)."
  type        = bool
  default     = false
}

variable "aws_role_arn" {
  description = "../aws output verifier_role_arn, for AWS KMS keys and private ECR repositories (empty: none)."
  type        = string
  default     = ""
}

variable "aws_region" {
  description = "AWS region of the KMS keys named by id or alias (empty: none)."
  type        = string
  default     = ""
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "sigward" {
  source = "../../gcp"

  project_id         = var.project_id
  region             = var.region
  source_zip         = var.source_zip
  min_instance_count = 1

  # Keys and repositories the policies use (read-only grants for the functions' service accounts).
  kms_key_ids                    = var.kms_key_ids
  artifact_registry_repositories = var.artifact_registry_repositories

  push_pubsub_enabled  = true
  push_pubsub_delivery = var.push_pubsub_delivery
  create_gcr_topic     = true
  push_webhook_enabled = var.push_webhook_enabled
  aws_role_arn         = var.aws_role_arn
  aws_region           = var.aws_region
}

output "admission_url" {
  value = module.sigward.admission_url
}

output "admission_token" {
  value     = module.sigward.admission_token
  sensitive = true
}

output "push_webhook_url" {
  value = module.sigward.push_webhook_url
}

output "push_secret" {
  value     = module.sigward.push_secret
  sensitive = true
}

output "service_account_unique_ids" {
  value = module.sigward.service_account_unique_ids
}

output "webhook_config_command" {
  value = module.sigward.webhook_config_command
}

output "admission_request_log_filter" {
  value = module.sigward.admission_request_log_filter
}

output "pubsub_service_account" {
  value = module.sigward.pubsub_service_account
}

output "service_accounts" {
  value = module.sigward.service_accounts
}

output "store_uri" {
  value = module.sigward.store_uri
}

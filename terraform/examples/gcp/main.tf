# sigward on Google Cloud, end to end:
#
#   sigward package --policy policies/ --out dist        # prints "<sha256>  dist/sigward-<sha12>.zip"
#   terraform init && terraform apply -var project_id=my-project -var source_zip=../../../dist/sigward-<sha12>.zip
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
  kms_key_ids = [
    "projects/${var.project_id}/locations/global/keyRings/signing/cryptoKeys/cosign",
  ]
  artifact_registry_repositories = [
    "projects/${var.project_id}/locations/${var.region}/repositories/apps",
  ]

  push_pubsub_enabled  = true
  create_gcr_topic     = true
  push_webhook_enabled = true # for ECR pushes through terraform/aws (see ../aws)
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

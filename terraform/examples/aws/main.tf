# ECR push events and AWS KMS keys for the sigward functions deployed by ../gcp:
#
#   terraform apply \
#     -var push_webhook_url="$(terraform -chdir=../gcp output -raw push_webhook_url)" \
#     -var push_secret="$(terraform -chdir=../gcp output -raw push_secret)" \
#     -var 'google_service_account_unique_ids=["123456789012345678901"]'
#
# then set the GCP module's aws_role_arn to this configuration's verifier_role_arn output.

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

variable "region" {
  description = "AWS region of the ECR repositories and KMS keys."
  type        = string
  default     = "us-east-1"
}

variable "push_webhook_url" {
  description = "terraform/gcp output push_webhook_url."
  type        = string
}

variable "push_secret" {
  description = "terraform/gcp output push_secret."
  type        = string
  sensitive   = true
}

variable "google_service_account_unique_ids" {
  description = "terraform/gcp output service_account_unique_ids (the values)."
  type        = list(string)
}

provider "aws" {
  region = var.region
}

module "sigward" {
  source = "../../aws"

  push_webhook_url                  = var.push_webhook_url
  push_secret                       = var.push_secret
  repository_names                  = ["team/app"]
  google_service_account_unique_ids = var.google_service_account_unique_ids
  ecr_repository_arns               = ["arn:aws:ecr:${var.region}:111122223333:repository/team/app"]
  create_signing_key                = true
}

output "verifier_role_arn" {
  value = module.sigward.verifier_role_arn
}

output "signing_key_uri" {
  value = module.sigward.signing_key_uri
}

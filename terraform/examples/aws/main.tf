# ECR push events and AWS KMS keys for the sigward functions deployed by ../gcp:
#
#   terraform init
#   terraform apply \
#     -var push_webhook_url="$(terraform -chdir=../gcp output -raw push_webhook_url)" \
#     -var push_secret="$(terraform -chdir=../gcp output -raw push_secret)" \
#     -var 'google_service_account_unique_ids=["123456789012345678901"]' \
#     -var 'repository_names=["team/app"]' \
#     -var 'ecr_repository_arns=["arn:aws:ecr:us-east-1:111122223333:repository/team/app"]' \
#     -var 'kms_key_arns=["arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"]'
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

variable "repository_names" {
  description = "ECR repositories whose pushes are verified (empty: every repository of the account and region)."
  type        = list(string)
  default     = []
}

variable "ecr_repository_arns" {
  description = "ECR repositories sigward may pull images and signatures from."
  type        = list(string)
  default     = []
}

variable "kms_key_arns" {
  description = "AWS KMS keys the policies verify with (sigward may read their public keys)."
  type        = list(string)
  default     = []
}

variable "create_signing_key" {
  description = "Also create an asymmetric KMS signing key for cosign / sigward sign."
  type        = bool
  default     = false
}

provider "aws" {
  region = var.region
}

module "sigward" {
  source = "../../aws"

  push_webhook_url                  = var.push_webhook_url
  push_secret                       = var.push_secret
  repository_names                  = var.repository_names
  google_service_account_unique_ids = var.google_service_account_unique_ids
  ecr_repository_arns               = var.ecr_repository_arns
  kms_key_arns                      = var.kms_key_arns
  create_signing_key                = var.create_signing_key
}

output "verifier_role_arn" {
  value = module.sigward.verifier_role_arn
}

output "signing_key_uri" {
  value = module.sigward.signing_key_uri
}

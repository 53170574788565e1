# Metrics on Cloud Run without a scraper: log-based metrics read sigward's structured decision lines ("admission
# decision", "push handled", "admission could not be decided"), a dashboard shows them, and alert policies page on a
# deny spike, on undecided admissions (errors) and on p99 decision latency. Labels are bounded (outcome, mode,
# operation, status) — never images, digests or users.

locals {
  admission_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.name_prefix}-admission\"",
  ])
  push_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "(resource.labels.service_name=\"${var.name_prefix}-push-pubsub\" OR resource.labels.service_name=\"${var.name_prefix}-push-webhook\")",
  ])
  metric_prefix = "logging.googleapis.com/user"
}

resource "google_logging_metric" "admission_decisions" {
  count   = var.monitoring_enabled ? 1 : 0
  project = var.project_id
  name    = "${var.name_prefix}-admission-decisions"
  filter  = "${local.admission_logs} AND jsonPayload.message=\"admission decision\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "sigward admission decisions"
    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "allowed or denied"
    }
    labels {
      key         = "mode"
      value_type  = "STRING"
      description = "mutate or validate"
    }
    labels {
      key         = "operation"
      value_type  = "STRING"
      description = "CREATE or UPDATE"
    }
  }
  label_extractors = {
    "outcome"   = "EXTRACT(jsonPayload.outcome)"
    "mode"      = "EXTRACT(jsonPayload.mode)"
    "operation" = "EXTRACT(jsonPayload.operation)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "admission_latency" {
  count           = var.monitoring_enabled ? 1 : 0
  project         = var.project_id
  name            = "${var.name_prefix}-admission-latency"
  filter          = "${local.admission_logs} AND jsonPayload.message=\"admission decision\""
  value_extractor = "EXTRACT(jsonPayload.latency_ms)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "sigward admission decision latency"
    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "allowed or denied"
    }
  }
  label_extractors = {
    "outcome" = "EXTRACT(jsonPayload.outcome)"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 0.25
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "admission_errors" {
  count   = var.monitoring_enabled ? 1 : 0
  project = var.project_id
  name    = "${var.name_prefix}-admission-errors"
  filter  = "${local.admission_logs} AND severity>=ERROR"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "sigward admissions that could not be decided (denied with an error)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "push_events" {
  count   = var.monitoring_enabled ? 1 : 0
  project = var.project_id
  name    = "${var.name_prefix}-push-events"
  filter  = "${local.push_logs} AND jsonPayload.message=\"push handled\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "sigward push events"
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "recorded, retry, duplicate, ignored or deleted"
    }
  }
  label_extractors = {
    "status" = "EXTRACT(jsonPayload.status)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_dashboard" "sigward" {
  count   = var.monitoring_enabled ? 1 : 0
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "sigward (${var.name_prefix})"
    mosaicLayout = {
      columns = 12
      tiles = [
        {
          xPos = 0, yPos = 0, width = 6, height = 4
          widget = {
            title = "Admission decisions by outcome"
            xyChart = { dataSets = [{
              plotType = "STACKED_BAR"
              timeSeriesQuery = { timeSeriesFilter = {
                filter      = "metric.type=\"${local.metric_prefix}/${var.name_prefix}-admission-decisions\""
                aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_RATE", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.outcome"] }
              } }
            }] }
          }
        },
        {
          xPos = 6, yPos = 0, width = 6, height = 4
          widget = {
            title = "Admission latency p50 / p99 (ms)"
            xyChart = { dataSets = [
              for aligner in ["ALIGN_PERCENTILE_50", "ALIGN_PERCENTILE_99"] : {
                plotType = "LINE"
                timeSeriesQuery = { timeSeriesFilter = {
                  filter      = "metric.type=\"${local.metric_prefix}/${var.name_prefix}-admission-latency\""
                  aggregation = { alignmentPeriod = "60s", perSeriesAligner = aligner, crossSeriesReducer = "REDUCE_MAX" }
                } }
              }
            ] }
          }
        },
        {
          xPos = 0, yPos = 4, width = 6, height = 4
          widget = {
            title = "Undecided admissions (errors)"
            xyChart = { dataSets = [{
              plotType = "LINE"
              timeSeriesQuery = { timeSeriesFilter = {
                filter      = "metric.type=\"${local.metric_prefix}/${var.name_prefix}-admission-errors\""
                aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_RATE", crossSeriesReducer = "REDUCE_SUM" }
              } }
            }] }
          }
        },
        {
          xPos = 6, yPos = 4, width = 6, height = 4
          widget = {
            title = "Push events by status"
            xyChart = { dataSets = [{
              plotType = "STACKED_BAR"
              timeSeriesQuery = { timeSeriesFilter = {
                filter      = "metric.type=\"${local.metric_prefix}/${var.name_prefix}-push-events\""
                aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_RATE", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.status"] }
              } }
            }] }
          }
        },
      ]
    }
  })

  depends_on = [google_logging_metric.admission_decisions, google_logging_metric.admission_latency]
}

resource "google_monitoring_alert_policy" "deny_spike" {
  count                 = var.monitoring_enabled ? 1 : 0
  project               = var.project_id
  display_name          = "sigward: admission denials spike (${var.name_prefix})"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  documentation {
    content   = "More than ${var.alert_denials_per_minute} Pods a minute denied for 5 minutes. Find why in the logs: jsonPayload.message=\"admission decision\" AND jsonPayload.outcome=\"denied\" (each line names the user, namespace, image digest, policy/rule and reason_type)."
    mime_type = "text/markdown"
  }
  conditions {
    display_name = "denials per minute"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${var.name_prefix}-admission-decisions\" AND metric.label.outcome=\"denied\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_denials_per_minute
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  depends_on = [google_logging_metric.admission_decisions]
}

resource "google_monitoring_alert_policy" "errors" {
  count                 = var.monitoring_enabled ? 1 : 0
  project               = var.project_id
  display_name          = "sigward: admissions not decided (${var.name_prefix})"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  documentation {
    content   = "sigward logged errors for admissions (registry, KMS or configuration). With failurePolicy Fail these Pods were denied. Logs: severity>=ERROR on the admission service."
    mime_type = "text/markdown"
  }
  conditions {
    display_name = "admission errors"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${var.name_prefix}-admission-errors\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_errors_per_5_minutes
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  depends_on = [google_logging_metric.admission_errors]
}

resource "google_monitoring_alert_policy" "latency_p99" {
  count                 = var.monitoring_enabled ? 1 : 0
  project               = var.project_id
  display_name          = "sigward: admission p99 latency (${var.name_prefix})"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  documentation {
    content   = "p99 admission decision latency above ${var.alert_latency_p99_ms} ms for 10 minutes: close to the webhook timeout, where failurePolicy decides instead of sigward."
    mime_type = "text/markdown"
  }
  conditions {
    display_name = "p99 latency"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${var.name_prefix}-admission-latency\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_latency_p99_ms
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }

  depends_on = [google_logging_metric.admission_latency]
}

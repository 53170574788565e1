# The functions moved into ./modules/function (one block for every function). These `moved` blocks make Terraform
# re-address the existing functions instead of destroying and recreating them (and their URLs) on the next apply.
# Keep them: a deployment may upgrade from any older version.

moved {
  from = google_cloudfunctions2_function.admission
  to   = module.admission.google_cloudfunctions2_function.this
}

moved {
  from = google_cloudfunctions2_function.push_pubsub[0]
  to   = module.push_pubsub[0].google_cloudfunctions2_function.this
}

moved {
  from = google_cloudfunctions2_function.push_webhook[0]
  to   = module.push_webhook[0].google_cloudfunctions2_function.this
}

moved {
  from = google_cloudfunctions2_function.reverify[0]
  to   = module.reverify[0].google_cloudfunctions2_function.this
}

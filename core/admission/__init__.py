"""Kubernetes admission: AdmissionReview parsing, images in resources, rule matching and the decision."""

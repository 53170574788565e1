"""Kyverno ``ImageValidatingPolicy`` / ``NamespacedImageValidatingPolicy`` (``policies.kyverno.io``): models,
CEL compilation and loading. Evaluation lives in :mod:`sigward.verify.ivpol`."""

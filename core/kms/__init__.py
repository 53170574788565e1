"""KMS key references (cosign's URI grammar) and public-key retrieval with ambient credentials.

Backends (``aws``, ``gcp``, ``azure``, ``vault``) import their cloud SDK only when a URI of their scheme is first
used, so a function that never meets a KMS key never pays for the import.
"""

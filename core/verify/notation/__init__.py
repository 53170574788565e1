"""Notation (Notary Project) signatures: JWS and COSE envelopes attached to an image as OCI referrers.

``envelope`` is the parsed, format-free model; ``jws`` and ``cose`` parse the two envelope formats into it;
``verify`` holds the checks (integrity, critical headers, authenticity, validity, expiry) in notation-go's order;
``discovery`` reads the signature manifests from a registry; ``sign`` writes envelopes for tests and CI.
"""

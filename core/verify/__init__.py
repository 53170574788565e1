"""Signature verification: pure logic over bytes, keys and a clock (``keys``, ``simplesigning``, ``cosign``,
``rekor``, ``trust``) and the service that fetches what it needs from a registry (``engine``)."""

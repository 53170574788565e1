"""One backend per scheme, created on first use; the cloud SDK is imported then and not before."""

from __future__ import annotations

import importlib
import threading

from sigward.kms.base import KmsBackend
from sigward.policy.kms_uri import Scheme

_MODULES: dict[Scheme, tuple[str, str]] = {
    "awskms": ("sigward.kms.aws", "AwsKms"),
    "gcpkms": ("sigward.kms.gcp", "GcpKms"),
    "azurekms": ("sigward.kms.azure", "AzureKms"),
    "hashivault": ("sigward.kms.vault", "VaultKms"),
}
_lock = threading.Lock()
_backends: dict[Scheme, KmsBackend] = {}


def backend(scheme: Scheme) -> KmsBackend:
    with _lock:
        found = _backends.get(scheme)
        if found is None:
            module_name, class_name = _MODULES[scheme]
            cls = getattr(importlib.import_module(module_name), class_name)
            found = cls()
            _backends[scheme] = found
        return found


def set_backend(scheme: Scheme, instance: KmsBackend | None) -> None:
    """Replace (or with None, forget) a scheme's backend: tests and custom endpoints."""
    with _lock:
        if instance is None:
            _backends.pop(scheme, None)
        else:
            _backends[scheme] = instance


def reset() -> None:
    with _lock:
        _backends.clear()

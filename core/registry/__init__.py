"""OCI distribution client: tag resolution, verified manifest and blob fetches, registry auth, SSRF guard.

Use one :class:`RegistryClient` per process (it is thread-safe) so connections and tokens are reused.
"""

from sigward.netguard import BlockedAddressError, NetworkGuard
from sigward.registry.client import RegistryClient
from sigward.registry.config import RegistryConfig
from sigward.registry.credentials import Credentials, CredentialStore
from sigward.registry.models import (
    ACCEPTED_MEDIA_TYPES,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
)
from sigward.registry.transport import RequestStats

__all__ = [
    "ACCEPTED_MEDIA_TYPES",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "BlockedAddressError",
    "CredentialStore",
    "Credentials",
    "Descriptor",
    "Manifest",
    "NetworkGuard",
    "RegistryClient",
    "RegistryConfig",
    "RequestStats",
]

"""OCI distribution client: tag resolution, verified manifest and blob fetches, registry auth, SSRF guard.

Use one :class:`RegistryClient` per process (it is thread-safe) so connections and tokens are reused.
"""

from core.registry.client import RegistryClient
from core.registry.config import RegistryConfig
from core.registry.credentials import Credentials, CredentialStore
from core.registry.models import (
    ACCEPTED_MEDIA_TYPES,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
)
from core.registry.netguard import BlockedAddressError, NetworkGuard
from core.registry.transport import RequestStats

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

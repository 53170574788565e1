"""A real TUF repository for tests: metadata built with python-tuf's ``tuf.api.metadata``, signed with
securesystemslib ``CryptoSigner`` keys, served from 127.0.0.1 the way Sigstore's CDN lays it out (metadata at the URL
root, consistent-snapshot names ``N.snapshot.json`` / ``N.targets.json``, targets at ``/targets/<sha256>.<name>``).

Besides publishing (a new target, a rotated TUF root) it can misbehave the ways a mirror or an attacker would:
answer 500, sign the timestamp with a key the root does not trust, publish an expired timestamp, or replay an older
timestamp (rollback). Each is a method so tests read as the scenario they pin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from securesystemslib.signer import CryptoSigner, Signer  # type: ignore[attr-defined]
from tuf.api.metadata import (  # type: ignore[attr-defined]  # public API, re-exported without __all__
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from tests.support.httpservers import Reply, ScriptedServer, Seen

ROLES = ("root", "timestamp", "snapshot", "targets")
LIFETIME = timedelta(days=1)


def _expiry(delta: timedelta = LIFETIME) -> datetime:
    return (datetime.now(UTC) + delta).replace(microsecond=0)


class TufRepository:
    """Use as a context manager; ``url`` is the repository's base URL."""

    def __init__(self, targets: Mapping[str, bytes]) -> None:
        self.signers: dict[str, CryptoSigner] = {role: CryptoSigner.generate_ecdsa() for role in ROLES}
        root = Root(expires=_expiry(), consistent_snapshot=True)
        for role, signer in self.signers.items():
            root.add_key(signer.public_key, role)
        self.root: Metadata[Root] = Metadata(root)
        self.root.sign(self.signers["root"])
        self.files: dict[str, bytes] = {"1.root.json": self.root.to_bytes()}
        self.bootstrap_root = self.files["1.root.json"]
        self.targets: Metadata[Targets] = Metadata(Targets(version=1, expires=_expiry()))
        self.snapshot: Metadata[Snapshot] = Metadata(Snapshot(version=1, expires=_expiry()))
        self.timestamp: Metadata[Timestamp] = Metadata(Timestamp(version=1, expires=_expiry()))
        self.timestamps: list[bytes] = []  # every timestamp.json published, oldest first (for rollback)
        self.fault: Callable[[Seen], Reply | None] | None = None
        self._bump = 0  # the first publish writes version 1
        self.publish(targets)
        self._bump = 1
        self.server = ScriptedServer(self._serve)

    @property
    def url(self) -> str:
        return self.server.url

    # -- publishing

    def publish(
        self,
        targets: Mapping[str, bytes],
        *,
        timestamp_signer: Signer | None = None,
        timestamp_expires: timedelta = LIFETIME,
    ) -> None:
        """A new repository state holding exactly ``targets`` (new targets, snapshot and timestamp versions)."""
        signed_targets = self.targets.signed
        signed_targets.targets = {}
        for name, data in targets.items():
            info = TargetFile.from_data(name, data, ["sha256"])
            signed_targets.targets[name] = info
            self.files[f"targets/{hashlib.sha256(data).hexdigest()}.{name}"] = data
        signed_targets.version += self._bump
        signed_targets.expires = _expiry()
        self.targets.signatures.clear()
        self.targets.sign(self.signers["targets"])
        self.files[f"{signed_targets.version}.targets.json"] = self.targets.to_bytes()

        snapshot = self.snapshot.signed
        snapshot.meta["targets.json"] = MetaFile(version=signed_targets.version)
        snapshot.version += self._bump
        snapshot.expires = _expiry()
        self.snapshot.signatures.clear()
        self.snapshot.sign(self.signers["snapshot"])
        self.files[f"{snapshot.version}.snapshot.json"] = self.snapshot.to_bytes()

        self._publish_timestamp(signer=timestamp_signer, expires=timestamp_expires)

    def _publish_timestamp(self, *, signer: Signer | None, expires: timedelta) -> None:
        timestamp = self.timestamp.signed
        timestamp.snapshot_meta = MetaFile(version=self.snapshot.signed.version)
        timestamp.version += self._bump
        timestamp.expires = _expiry(expires)
        self.timestamp.signatures.clear()
        self.timestamp.sign(signer or self.signers["timestamp"])
        self.files["timestamp.json"] = self.timestamp.to_bytes()
        self.timestamps.append(self.files["timestamp.json"])

    def rotate_root(self, *roles: str) -> None:
        """Root version N+1 with new keys for ``roles``, signed by the old and the new root keys; re-signs the
        metadata of rotated roles and publishes a new timestamp."""
        old_root_signer = self.signers["root"]
        root = self.root.signed
        for role in roles:
            for keyid in list(root.roles[role].keyids):
                root.revoke_key(keyid, role)
            self.signers[role] = CryptoSigner.generate_ecdsa()
            root.add_key(self.signers[role].public_key, role)
        root.version += 1
        root.expires = _expiry()
        self.root.signatures.clear()
        self.root.sign(old_root_signer, append=True)
        if self.signers["root"] is not old_root_signer:
            self.root.sign(self.signers["root"], append=True)
        self.files[f"{root.version}.root.json"] = self.root.to_bytes()
        self.publish({name: self._target_data(name) for name in self.targets.signed.targets})

    def _target_data(self, name: str) -> bytes:
        info = self.targets.signed.targets[name]
        return self.files[f"targets/{info.hashes['sha256']}.{name}"]

    # -- misbehaving

    def publish_and_fail(self, targets: Mapping[str, bytes], status: int) -> None:
        """Publish, then answer ``status`` to every request (the new state is never seen)."""
        self.publish(targets)
        self.fail_with(status)

    def publish_and_tamper(self, targets: Mapping[str, bytes], name: str, data: bytes) -> None:
        self.publish(targets)
        self.tamper_target(name, data)

    def fail_with(self, status: int) -> None:
        """Every request answers ``status`` from now on."""
        self.fault = lambda seen: Reply(status=status, body=b"mirror broken")

    def heal(self) -> None:
        self.fault = None

    def replay_timestamp(self, index: int) -> None:
        """Serve an earlier timestamp.json again (a rollback / freeze attack)."""
        self.files["timestamp.json"] = self.timestamps[index]

    def tamper_target(self, name: str, data: bytes) -> None:
        """Serve other bytes under the published target's name (the hashes in targets.json no longer match)."""
        info = self.targets.signed.targets[name]
        self.files[f"targets/{info.hashes['sha256']}.{name}"] = data

    # -- serving

    def _serve(self, seen: Seen) -> Reply:
        if self.fault is not None:
            reply = self.fault(seen)
            if reply is not None:
                return reply
        data = self.files.get(seen.path.split("?", 1)[0].lstrip("/"))
        if data is None:
            return Reply(status=404, body=b"not found")
        return Reply(status=200, headers={"Content-Type": "application/json"}, body=data)

    def paths_served(self) -> list[str]:
        return [seen.path for seen in self.server.requests_seen()]

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> TufRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Bench row: re-verify N stored verdicts (default 10,000: half as many signed digests on the real local registry,
each recorded under two policies, as push records an image that two policies govern) from the SQLite store.

Measured: wall time and registry HTTP requests per stored verdict with the per-run signature cache the product
uses, the same without any cache (what the cache saves), and that a second run over an unchanged world writes
nothing and reports nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sigward.policy.loader import load_policy_text
from sigward.policy.models import Policy
from sigward.references import parse_image_reference
from sigward.registry import RegistryClient, RegistryConfig
from sigward.reverify.service import ReverifyService, ReverifySettings
from sigward.store import StoredStatus, StoredVerdict
from sigward.store.sqlite import SqliteStore
from sigward.verify.caching import CachingSignatureSource
from sigward.verify.engine import Verifier
from sigward.verify.oci import RegistrySignatureSource
from sigward.verify.plan import plan_image
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry, canonical_json, sha256_digest
from tests.support.signing import attach_signatures, new_key, signed_layer

REPO = "bench/reverify"
POLICIES_PER_DIGEST = 2
PUSH_THREADS = 8


class _OncePerBlob:
    """Pushes each distinct blob once (the signature manifests' shared empty config)."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry
        self._done: dict[str, str] = {}
        self._lock = threading.Lock()

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256_digest(data)
        with self._lock:
            if digest in self._done:
                return digest
        self.registry.push_blob(repo, data)
        with self._lock:
            self._done[digest] = digest
        return digest

    def push_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        return self.registry.push_manifest(repo, reference, raw, media_type)


def _push_signed(pusher: _OncePerBlob, key: object, config: dict[str, object], layer: dict[str, object], i: int) -> str:
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
        "annotations": {"bench.sigward/n": str(i)},
    }
    raw = json.dumps(manifest).encode()
    digest = pusher.push_manifest(REPO, sha256_digest(raw), raw, "application/vnd.oci.image.manifest.v1+json")
    attach_signatures(pusher, REPO, digest, [signed_layer(key, image_digest=digest)])  # type: ignore[arg-type]
    return digest


def bench_reverify(
    registry: LocalRegistry, workdir: Path, count: int, add: Callable[..., None], cache_seconds: float | None = None
) -> None:
    """``cache_seconds`` shortens the per-run signature cache's lifetime (default: the product's 30 s) to show, on
    a quick machine, what happens when a run outlasts it (the 10,000 row under load took 700 s)."""
    digests_wanted = max(1, count // POLICIES_PER_DIGEST)
    print(f"re-verification: pushing {digests_wanted} signed digests…", flush=True)
    key = new_key("p256", slot=91)
    pusher = _OncePerBlob(registry)
    config_raw = canonical_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    layer_raw = b"sigward bench layer"
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": pusher.push_blob(REPO, config_raw),
              "size": len(config_raw)}  # fmt: skip
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": pusher.push_blob(REPO, layer_raw),
             "size": len(layer_raw)}  # fmt: skip
    started = time.perf_counter()
    with ThreadPoolExecutor(PUSH_THREADS) as pool:
        digests = list(pool.map(lambda i: _push_signed(pusher, key, config, layer, i), range(digests_wanted)))
    print(f"  (set-up: pushed in {time.perf_counter() - started:.1f} s)", flush=True)

    docs = [
        cluster_policy(f"bench-{n}", [key_verification([f"{registry.host}/bench/*"], [keys_entry(key.public_pem)])])
        for n in range(POLICIES_PER_DIGEST)
    ]
    policies: list[Policy] = list(load_policy_text(dump(*docs), "bench.yaml").policies)
    config_registry = RegistryConfig(
        insecure_registries=frozenset({registry.host}), private_registries=frozenset({"127.0.0.1"})
    )
    store = SqliteStore(str(workdir / "reverify-bench.db"))
    now = time.time()
    probe = Verifier(source=RegistrySignatureSource(RegistryClient(config_registry)))
    fingerprint = probe.trusted_root().fingerprint
    for digest in digests:
        image = f"{registry.host}/{REPO}@{digest}"
        for plan in plan_image(policies, parse_image_reference(image)):
            k = plan.key(digest, trust_fingerprint=fingerprint)
            store.record(
                StoredVerdict.of(
                    k,
                    policy=plan.policy.name,
                    verdict=StoredStatus.PASS,
                    message="verified",
                    verified_at=now,
                    ttl=86400,
                    source="distribution",
                    image=image,
                )
            )
    records = len(digests) * POLICIES_PER_DIGEST

    def run(cached: bool) -> tuple[float, int, int, int]:
        client = RegistryClient(config_registry)
        inner = RegistrySignatureSource(client)
        ttl = {} if cache_seconds is None else {"digest_ttl": cache_seconds, "layers_ttl": cache_seconds}
        verifier = Verifier(source=CachingSignatureSource(inner, **ttl) if cached else inner)
        service = ReverifyService(
            policies=lambda: policies,
            verifier=verifier,
            store=store,
            settings=ReverifySettings(run_seconds=3600, batch_size=500),
        )
        t0 = time.perf_counter()
        report = service.run()
        elapsed = time.perf_counter() - t0
        requests_sent = client.stats.total
        client.close()
        return elapsed, requests_sent, report.updated, len(report.flips)

    cached_s, cached_requests, updated, flips = run(cached=True)
    add(
        f"re-verify {records} stored verdicts ({len(digests)} digests x {POLICIES_PER_DIGEST} policies, SQLite"
        + ("" if cache_seconds is None else f", signature cache {cache_seconds:g} s")
        + ")",
        f"{cached_s:.1f} s wall ({records / cached_s:.0f} verdicts/s), "
        f"{cached_requests / records:.2f} registry requests per verdict, {updated} writes, {flips} findings",
        "a finding within one cycle",
    )
    plain_s, plain_requests, _, _ = run(cached=False)
    saved = 1 - cached_requests / plain_requests if plain_requests else 0.0
    add(
        "re-verify without the per-run signature cache",
        f"{plain_s:.1f} s wall, {plain_requests / records:.2f} requests per verdict: the cache saves {saved:.0%} "
        "of registry requests (public keys and the trusted root are parsed once per process either way)",
    )
    store.close()

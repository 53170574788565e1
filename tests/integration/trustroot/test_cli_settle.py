"""Short-lived commands and the trusted root: ``sigward verify``/``review`` let the first TUF refresh finish
(bounded) when they would otherwise verify with the bundled root, and never wait offline, with a fresh cached copy,
or with a pinned SIGWARD_TRUSTED_ROOT. Real TUF repository on 127.0.0.1; a hanging one for the bound."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigward import cli
from sigward.verify import tuf as tufmod
from sigward.verify.tuf import RootOrigin, TrustRootHolder, TrustRootSource
from tests.support.admission import pod, pod_request, review
from tests.support.fulcio import make_fulcio, trusted_root_json
from tests.support.httpservers import SilentServer
from tests.support.policies import cluster_policy, dump, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, new_key, signed_layer
from tests.support.tuf_repo import TufRepository

BUNDLED = trusted_root_json(make_fulcio(0))
PUBLISHED = trusted_root_json(make_fulcio(1))


@pytest.fixture
def repo() -> Iterator[TufRepository]:
    with TufRepository({"trusted_root.json": PUBLISHED}) as served:
        yield served


def holder(url: str, bootstrap: bytes, cache: Path, *, offline: bool = False) -> TrustRootHolder:
    return TrustRootHolder(
        TrustRootSource(url=url, bootstrap_root=bootstrap, cache_dir=cache, fallback=BUNDLED), offline=offline
    )


def test_bundled_root_waits_for_the_first_refresh(repo: TufRepository, tmp_path: Path) -> None:
    h = holder(repo.url, repo.bootstrap_root, tmp_path)
    assert h.origin is RootOrigin.BUNDLED
    h.settle()
    assert h.origin.value == "tuf" and h.current().raw == PUBLISHED


def test_offline_never_waits_nor_asks(repo: TufRepository, tmp_path: Path) -> None:
    h = holder(repo.url, repo.bootstrap_root, tmp_path, offline=True)
    h.settle()
    assert h.origin is RootOrigin.BUNDLED and repo.paths_served() == []


def test_fresh_cached_copy_is_used_without_a_request(repo: TufRepository, tmp_path: Path) -> None:
    holder(repo.url, repo.bootstrap_root, tmp_path).settle()  # leaves a verified copy on disk
    served = len(repo.paths_served())
    again = holder(repo.url, repo.bootstrap_root, tmp_path)
    assert again.origin is RootOrigin.CACHE
    again.settle()
    assert len(repo.paths_served()) == served and again.current().raw == PUBLISHED


def test_hanging_repository_costs_at_most_the_bound(repo: TufRepository, tmp_path: Path) -> None:
    silent = SilentServer()
    try:
        h = holder(f"http://127.0.0.1:{silent.port}", repo.bootstrap_root, tmp_path)
        started = time.monotonic()
        h.settle(timeout=0.5)
        assert time.monotonic() - started < 2.0
        assert h.origin is RootOrigin.BUNDLED and h.current().raw == BUNDLED  # kept, verification goes on
    finally:
        silent.close()
    h.wait(tufmod.REFRESH_BUDGET_SECONDS)  # let the background refresh end here, not log into another test
    assert h.current().raw == BUNDLED


@pytest.fixture
def settles(monkeypatch: pytest.MonkeyPatch) -> list[TrustRootHolder]:
    """Record every settle() the commands make (and run the real one)."""
    calls: list[TrustRootHolder] = []
    real = TrustRootHolder.settle

    def spy(self: TrustRootHolder, timeout: float = tufmod.REFRESH_BUDGET_SECONDS) -> None:
        calls.append(self)
        real(self, timeout)

    monkeypatch.setattr(TrustRootHolder, "settle", spy)
    return calls


@pytest.fixture
def signed_image(registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    key = new_key("p256", slot=91)
    digest = registry.push_image("settle/app", tag="v1")
    attach_signatures(registry, "settle/app", digest, [signed_layer(key, image_digest=digest)])
    policy = tmp_path / "p.yaml"
    policy.write_text(
        dump(cluster_policy("p", [key_verification([f"{registry.host}/settle/*"], [keys_entry(key.public_pem)])]))
    )
    monkeypatch.setenv("SIGWARD_INSECURE_REGISTRIES", registry.host)
    monkeypatch.setenv("SIGWARD_PRIVATE_REGISTRIES", "127.0.0.1")
    monkeypatch.delenv("SIGWARD_TRUSTED_ROOT", raising=False)
    tufmod.reset()
    return f"{registry.host}/settle/app@{digest}", policy


def verify(image: str, policy: Path) -> int:
    return cli.run(["verify", "--policy", str(policy), image], out=io.StringIO(), err=io.StringIO())


def test_verify_settles_the_root_and_offline_is_fast(
    signed_image: tuple[str, Path], settles: list[TrustRootHolder], monkeypatch: pytest.MonkeyPatch
) -> None:
    image, policy = signed_image
    assert os.environ.get("SIGWARD_TUF_OFFLINE") == "1"  # the test default
    started = time.monotonic()
    assert verify(image, policy) == cli.EXIT_OK
    assert time.monotonic() - started < 5.0
    (h,) = settles
    assert h.offline and h.origin is RootOrigin.BUNDLED  # offline: no refresh was attempted
    monkeypatch.setenv("SIGWARD_TRUSTED_ROOT", "public-good")  # pinned: nothing to settle
    assert verify(image, policy) == cli.EXIT_OK
    assert len(settles) == 1
    tufmod.reset()


def test_review_settles_the_root(
    signed_image: tuple[str, Path], settles: list[TrustRootHolder], tmp_path: Path
) -> None:
    image, policy = signed_image
    body = tmp_path / "review.json"
    body.write_text(json.dumps(review(pod_request(pod(image)))))
    out = io.StringIO()
    assert cli.run(["review", "--policy", str(policy), str(body)], out=out, err=io.StringIO()) == cli.EXIT_OK
    assert json.loads(out.getvalue())["response"]["allowed"] is True
    assert len(settles) == 1
    tufmod.reset()

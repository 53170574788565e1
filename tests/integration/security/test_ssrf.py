"""Server-side request forgery at the decision level: image references, token realms and redirects that point sigward
at cloud metadata services or at private addresses nobody allowlisted.

A refused address is a *decided* failure (``BlockedAddressError`` is a ``VerificationFailure``): the Pod is denied even
under ``failurePolicy: Ignore`` — an attacker must not be able to turn "you may not go there" into "registry down,
let it through". And no connection is attempted: metadata addresses are refused before any socket exists (the client
counts zero connections), and a listener on a private loopback address (127.0.0.2, not allowlisted) accepts nothing,
while the same listener, once allowlisted, does see the connection (so the proof would catch one).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.faults.conftest import KEY
from tests.support.faults import AcceptCounter, Admission, FaultProxy, admission, is_blob
from tests.support.httpservers import Reply, Seen
from tests.support.policies import cluster_policy, key_verification, keys_entry
from tests.support.registry import LocalRegistry
from tests.support.signing import attach_signatures, signed_layer

pytestmark = pytest.mark.registry


def everything_policy(failure_policy: str = "Ignore") -> dict[str, Any]:
    return cluster_policy(
        "require-signed",
        [key_verification(["*"], [keys_entry(KEY.public_pem)], mutate_digest=False)],
        failure_policy=failure_policy,
    )


def assert_refused(adm: Admission, response: dict[str, Any], fragment: str = "refusing") -> None:
    assert response["allowed"] is False, response
    assert fragment in response["status"]["message"], response["status"]["message"]
    decision = [line for line in adm.log_lines() if line["message"] == "admission decision"][-1]
    assert {v["verdict"] for v in decision["verdicts"]} == {"fail"}, decision


METADATA_IMAGES = [
    "169.254.169.254/latest/app:v1",
    "169.254.169.254:80/app:v1",
    "169.254.170.2/v2/credentials:v1",
    "metadata.google.internal/computemetadata/v1:x",
    "metadata:80/app:v1",
    "[fd00:ec2::254]/app:v1",
    "[::ffff:a9fe:a9fe]/app:v1",  # IPv4-mapped 169.254.169.254
    "[fe80::1]/app:v1",
    "100.100.100.200/app:v1",
    # other spellings of 169.254.169.254 that the system resolver turns into it (no DNS query involved)
    "0251.0376.0251.0376/app:v1",
    "0xa9.0xfe.0xa9.0xfe/app:v1",
    "169.254.43518/app:v1",
]


@pytest.mark.parametrize("failure_policy", ["Fail", "Ignore"])
@pytest.mark.parametrize("image", METADATA_IMAGES)
def test_metadata_registries_are_denied_without_a_connection(image: str, failure_policy: str) -> None:
    with admission(everything_policy(failure_policy), insecure=[image.split("/", maxsplit=1)[0]]) as adm:
        response, elapsed = adm.decide(image)
        assert_refused(adm, response)
        snapshot = adm.client.stats.snapshot()
    # refused by name before any request for literals and metadata names; for the other spellings the guard refuses
    # the resolved address where the socket would be made: no connection either way
    assert snapshot["connections"] == 0, snapshot
    assert elapsed < 1.0


@pytest.mark.parametrize("spelling", ["127.0.0.2", "localhost"])
def test_private_registry_not_allowlisted_is_denied_without_a_connection(spelling: str) -> None:
    """127.0.0.2 is loopback but only 127.0.0.1 is allowlisted; ``localhost`` resolves to the allowlisted 127.0.0.1 but
    the allowlist names hosts as written, so a name that resolves to a private address needs its own entry."""
    listen = "127.0.0.2" if spelling == "127.0.0.2" else "127.0.0.1"
    with AcceptCounter(listen) as listener:
        host = f"{spelling}:{listener.port}"
        with admission(everything_policy("Ignore"), insecure=[host], private=("127.0.0.1",)) as adm:
            response, _ = adm.decide(f"{host}/app:v1")
            assert_refused(adm, response, "SIGWARD_PRIVATE_REGISTRIES")
        assert listener.accepted == 0
        # control: allowlisted, the same listener sees the connection (and the empty answer is an outage)
        with admission(everything_policy("Fail"), insecure=[host], private=("127.0.0.1", spelling)) as adm:
            response, _ = adm.decide(f"{host}/app:v1")
            assert response["allowed"] is False
        assert listener.accepted >= 1


@pytest.fixture(scope="module")
def ssrf_image(registry: LocalRegistry) -> str:
    digest = registry.push_image("ssrf/app", tag="v1")
    attach_signatures(registry, "ssrf/app", digest, [signed_layer(KEY, image_digest=digest)])
    return "ssrf/app:v1"


REALMS = [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
    "https://[fd00:ec2::254]/latest/api/token",
    "https://100.100.100.200/latest/meta-data/",
    "https://0251.0376.0251.0376/token",
]


@pytest.mark.parametrize("failure_policy", ["Fail", "Ignore"])
@pytest.mark.parametrize("where", ["realm", "redirect"])
@pytest.mark.parametrize("target", [*REALMS, "private-listener"])
def test_registry_sending_sigward_elsewhere_is_denied(
    registry: LocalRegistry, ssrf_image: str, failure_policy: str, where: str, target: str
) -> None:
    """A registry (here: a proxy in front of the real one) that answers with a Bearer challenge whose realm, or a blob
    redirect whose Location, is a metadata service or an unlisted private address."""
    with AcceptCounter("127.0.0.2") as listener, FaultProxy(registry.url) as proxy:
        url = f"http://{listener.host}/token" if target == "private-listener" else target

        def challenge(seen: Seen) -> Reply | None:
            if "authorization" in seen.headers:
                return None
            return Reply(401, {"WWW-Authenticate": f'Bearer realm="{url}",service="evil",scope="repository:x:pull"'})

        def redirect(seen: Seen) -> Reply | None:
            return Reply(307, {"Location": url}) if is_blob(seen) and seen.method == "GET" else None

        proxy.fault = challenge if where == "realm" else redirect
        with admission(everything_policy(failure_policy), insecure=[proxy.host, listener.host]) as adm:
            response, _ = adm.decide(f"{proxy.host}/{ssrf_image}")
            assert_refused(adm, response)
            snapshot = adm.client.stats.snapshot()
        assert listener.accepted == 0
    # the only host sigward connected to is the registry itself
    assert set(snapshot["connections_by_host"]) == {proxy.host}, snapshot

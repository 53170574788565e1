"""SIGWARD_ADMISSION_TOKEN with several tokens: rotation without downtime, per-cluster names that the decision log
reports (never the token), constant-time comparison against all, configuration errors that deny (fail closed even
under failurePolicy: Ignore), and not one log record carrying a path token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sigward import logs
from sigward.admission.http import MAX_ADMISSION_TOKENS, authenticate_tokens, handle_admission, parse_tokens
from sigward.admission.service import AdmissionService, AdmissionSettings
from sigward.errors import ConfigurationError
from sigward.verify.engine import Verifier
from tests.support.admission import pod, pod_request, review
from tests.support.memory import MemorySignatureSource

OLD = "old-token-0a1b2c3d4e5f6a7b8c9d"
NEW = "new-token-9f8e7d6c5b4a39281706"
PROD = "prod-token-A1b2C3d4E5f6G7h8I9"
STAGING = "staging-token-Z9y8X7w6V5u4T3s2"
BODY = json.dumps(review(pod_request(pod("registry.test/app:v1")))).encode()


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.set_stream(stream)
    yield stream
    logs.set_stream(None)


def service() -> AdmissionService:
    return AdmissionService(
        policies=list, verifier=Verifier(source=MemorySignatureSource()), settings=AdmissionSettings()
    )


def admit(configured: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    resp = handle_admission(
        method="POST",
        path=path,
        headers=headers or {},
        body=BODY,
        service=service,
        environ={"SIGWARD_ADMISSION_TOKEN": configured},
    )
    return resp.status, json.loads(resp.body)


# configured value, path, Authorization header, expected status — one rotation, step by step.
ROTATION = [
    ("before: old only, old works", OLD, f"/{OLD}/mutate", None, 200),
    ("before: old only, new refused", OLD, f"/{NEW}/mutate", None, 401),
    ("during: both, old works", f"{OLD},{NEW}", f"/{OLD}/mutate", None, 200),
    ("during: both, new works", f"{OLD}, {NEW}", f"/{NEW}/validate", None, 200),
    ("during: both, new as bearer", f"{OLD},{NEW}", "/mutate", f"Bearer {NEW}", 200),
    ("after: new only, new works", NEW, f"/{NEW}/mutate", None, 200),
    ("after: new only, old refused", NEW, f"/{OLD}/mutate", None, 401),
    ("after: old as bearer refused", NEW, "/mutate", f"Bearer {OLD}", 401),
    ("a prefix of a token is not the token", f"{OLD},{NEW}", f"/{NEW[:-1]}/mutate", None, 401),
    ("a token plus a suffix is not the token", f"{OLD},{NEW}", f"/{NEW}x/mutate", None, 401),
    ("the whole list is not a token", f"{OLD},{NEW}", f"/{OLD},{NEW}/mutate", None, 401),
    ("no token at all", f"{OLD},{NEW}", "/mutate", None, 401),
    ("named: prod's token", f"prod={PROD},staging={STAGING}", f"/{PROD}/mutate", None, 200),
    ("named: the name is not the token", f"prod={PROD},staging={STAGING}", "/prod/mutate", None, 401),
    ("named: name=token as a segment", f"prod={PROD}", f"/prod={PROD}/mutate", None, 401),
    ("mixed named and unnamed", f"prod={PROD},{NEW}", f"/{NEW}/mutate", None, 200),
]


@pytest.mark.parametrize(
    ("configured", "path", "authorization", "status"), [r[1:] for r in ROTATION], ids=[r[0] for r in ROTATION]
)
def test_rotation(configured: str, path: str, authorization: str | None, status: int, log: io.StringIO) -> None:
    code, body = admit(configured, path, {"Authorization": authorization} if authorization else None)
    assert code == status, body
    if status == 200:
        assert body["response"]["allowed"] is True
    else:
        assert body == {"error": "unauthorized: the admission token is missing or wrong"}
    for secret in (OLD, NEW, PROD, STAGING):
        assert secret not in log.getvalue()


@pytest.mark.parametrize(
    ("token", "cluster"), [(PROD, "prod"), (STAGING, "staging"), (NEW, None)], ids=["prod", "staging", "unnamed"]
)
def test_decision_log_names_the_cluster_never_the_token(token: str, cluster: str | None, log: io.StringIO) -> None:
    code, _ = admit(f"prod={PROD},staging={STAGING},{NEW}", f"/{token}/validate")
    assert code == 200
    (decision,) = [json.loads(line) for line in log.getvalue().splitlines()]
    assert decision["message"] == "admission decision" and decision["mode"] == "validate"
    assert decision.get("cluster") == cluster
    assert token not in log.getvalue()


def test_every_token_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant work whichever token matches: the comparison visits every configured token."""
    import hmac

    tokens = parse_tokens(f"a={OLD},b={NEW},c={PROD}")
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    found, clean = authenticate_tokens(path=f"/{OLD}/mutate", headers={}, tokens=tokens)
    monkeypatch.undo()
    assert found is not None and found.cluster == "a" and clean == "/mutate"
    assert compared.count(OLD.encode()) == 2 and compared.count(PROD.encode()) == 2  # both segments, all tokens


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        (f"{OLD},", "entry 2 has no token"),
        (f"prod=,{NEW}", "entry 1 has no token"),
        (f"pr od={PROD}", "entry 1: the cluster name"),
        (f"=={PROD}", "entry 1: the cluster name"),
        ("tok/en", "entry 1: the token may hold only"),
        (f"{OLD} {NEW}", "entry 1: the token may hold only"),
        (f"prod={PROD},prod={NEW}", "entry 2: cluster 'prod' is named twice"),
        (",".join(f"t{i}" for i in range(MAX_ADMISSION_TOKENS + 1)), f"at most {MAX_ADMISSION_TOKENS}"),
    ],
    ids=["trailing-comma", "empty-named", "space-in-name", "empty-name", "slash", "space", "duplicate", "too-many"],
)
def test_unusable_configuration_denies_and_never_prints_a_token(
    configured: str, message: str, log: io.StringIO
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        parse_tokens(configured)
    for secret in (OLD, NEW, PROD):
        assert secret not in str(raised.value)
    code, body = admit(configured, f"/{OLD}/mutate")
    assert code == 200  # an AdmissionReview that denies: a 500 would be an allow under failurePolicy: Ignore
    assert body["response"]["allowed"] is False
    assert body["response"]["status"]["message"] == "sigward configuration error (denied)"
    (record,) = [json.loads(line) for line in log.getvalue().splitlines()]
    assert message in record["error"]
    for secret in (OLD, NEW, PROD):
        assert secret not in log.getvalue()


def test_misconfigured_with_a_malformed_body_is_400() -> None:
    resp = handle_admission(
        method="POST",
        path="/mutate",
        headers={},
        body=b"{",
        service=service,
        environ={"SIGWARD_ADMISSION_TOKEN": f"{OLD},"},
    )
    assert resp.status == 400


def test_no_log_record_carries_a_path_token(
    log: io.StringIO, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the deployed function target (functions-framework + Flask), every record of every logger at DEBUG and
    sigward's own stream: admitted, refused, malformed and wrong-method requests, with the token in the path."""
    import functions_framework

    from tests.support.serve import REPO

    monkeypatch.setenv("SIGWARD_ADMISSION_TOKEN", f"prod={PROD},{NEW}")
    monkeypatch.setattr("sigward.wiring.Services.admission", lambda _self: service())
    caplog.set_level(logging.DEBUG)
    client = functions_framework.create_app("admission", str(REPO / "functions" / "main.py")).test_client()  # type: ignore[no-untyped-call]
    answers = [
        client.post(f"/{PROD}/mutate", data=BODY, headers={"Content-Type": "application/json"}),
        client.post(f"/{NEW}/validate", data=BODY),
        client.post(f"/{PROD}/mutate", data=b"{" + PROD.encode()),
        client.get(f"/{PROD}/mutate"),
        client.post(f"/{PROD}//mutate", data=BODY),
        client.post(f"/{PROD[:-1]}/mutate", data=BODY),
        client.post("/mutate", data=BODY, headers={"Authorization": f"Bearer {PROD}x"}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 400, 405, 200, 401, 401]
    records = [r.getMessage() + " " + json.dumps(r.__dict__, default=str) for r in caplog.records]
    text = log.getvalue() + "\n".join(records)
    assert "admission decision" in log.getvalue()
    for secret in (PROD, NEW, PROD[:-1]):
        assert secret not in text
    for answer in answers:
        assert PROD.encode() not in answer.data and NEW.encode() not in answer.data

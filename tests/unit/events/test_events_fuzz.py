"""Fuzzing: whatever bytes, JSON or headers arrive, every adapter returns a result or raises sigward's own error —
never a KeyError, TypeError, RecursionError or UnicodeError that would become a 500 with a stack trace.

Besides arbitrary bytes and arbitrary JSON, realistic payloads (the golden inputs) are mutated: one leaf replaced by
any JSON value, or one key dropped, so the checks deep inside each adapter are reached.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigward.errors import SigwardError
from sigward.events import (
    PushEvent,
    WebhookResult,
    authenticate,
    from_distribution,
    from_event_grid,
    from_eventbridge,
    from_github,
    from_harbor,
    from_pubsub_cloudevent,
    from_pubsub_push,
    parse_webhook,
)

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = settings(
    max_examples=int(os.environ.get("SIGWARD_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
header_names = st.sampled_from(
    [
        "Content-Type",
        "aeg-event-type",
        "X-GitHub-Event",
        "X-GitHub-Delivery",
        "ce-specversion",
        "ce-id",
        "ce-type",
        "ce-source",
        "WebHook-Request-Origin",
        "x-goog-pubsub-message-id",
        "Authorization",
        "X-Sigward-Secret",
        "X-Hub-Signature-256",
    ]
)
header_values = st.sampled_from(
    [
        "application/vnd.docker.distribution.events.v1+json",
        "application/cloudevents+json",
        "SubscriptionValidation",
        "Notification",
        "registry_package",
        "package",
        "1.0",
        "Microsoft.ContainerRegistry.ImagePushed",
        "harbor.artifact.pushed",
        "google.cloud.pubsub.topic.v1.messagePublished",
        "eventgrid.azure.net",
        "",
    ]
) | st.text(max_size=30)
headers_strategy = st.dictionaries(header_names, header_values, max_size=5)


def _must_be_ours(call: Callable[[], object]) -> None:
    try:
        result = call()
    except SigwardError:
        return
    if isinstance(result, WebhookResult):
        for push in result.pushes:
            assert isinstance(push, PushEvent)
            push.json()  # every emitted push renders (its image reference parses)
    else:
        assert isinstance(result, tuple)
        for push in result:
            push.json()


def _bodies() -> list[tuple[dict[str, str], Any, str]]:
    cases: list[tuple[dict[str, str], Any, str]] = []
    for path in sorted(GOLDEN.glob("*.json")):
        case = json.loads(path.read_text())
        if case["entry"] == "pubsub_cloudevent":
            cases.append(({}, case["cloudevent"]["data"], "pubsub_cloudevent"))
        elif "body" in case:
            cases.append((case.get("headers", {}), case["body"], case["entry"]))
        elif case.get("body_text"):
            try:
                cases.append((case.get("headers", {}), json.loads(case["body_text"]), case["entry"]))
            except ValueError:
                continue
    return cases


REAL = _bodies()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found.extend(_paths(value, (*prefix, i)))
    return found


def _mutate(doc: Any, path: tuple[Any, ...], replacement: Any, drop: bool) -> Any:
    if not path:
        return replacement
    copy = json.loads(json.dumps(doc))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if drop and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return copy


@st.composite
def mutated_real(draw: st.DrawFn) -> tuple[dict[str, str], Any, str]:
    headers, body, entry = draw(st.sampled_from(REAL))
    path = draw(st.sampled_from(_paths(body)))
    return headers, _mutate(body, path, draw(json_values), draw(st.booleans())), entry


@SETTINGS
@given(body=st.binary(max_size=400), headers=headers_strategy, method=st.sampled_from(["POST", "OPTIONS", "GET"]))
def test_parse_webhook_arbitrary_bytes(body: bytes, headers: dict[str, str], method: str) -> None:
    _must_be_ours(lambda: parse_webhook(method, headers, body))


@SETTINGS
@given(doc=json_values, headers=headers_strategy)
def test_parse_webhook_arbitrary_json(doc: Any, headers: dict[str, str]) -> None:
    body = json.dumps(doc).encode()
    _must_be_ours(lambda: parse_webhook("POST", headers, body))


@SETTINGS
@given(case=mutated_real())
def test_every_adapter_on_mutated_real_payloads(case: tuple[dict[str, str], Any, str]) -> None:
    headers, doc, entry = case
    body = json.dumps(doc).encode()
    if entry == "pubsub_cloudevent":
        _must_be_ours(lambda: from_pubsub_cloudevent(doc, {"id": "x"}))
        return
    _must_be_ours(lambda: parse_webhook("POST", headers, body))
    _must_be_ours(lambda: from_pubsub_push(body, headers))
    _must_be_ours(lambda: from_eventbridge(body))
    _must_be_ours(lambda: from_distribution(body))
    _must_be_ours(lambda: from_harbor(body))
    _must_be_ours(lambda: from_github({**headers, "X-GitHub-Event": "registry_package"}, body))
    _must_be_ours(lambda: from_event_grid("POST", headers, body))


@SETTINGS
@given(body=st.binary(max_size=300))
def test_each_adapter_arbitrary_bytes(body: bytes) -> None:
    _must_be_ours(lambda: from_pubsub_push(body))
    _must_be_ours(lambda: from_eventbridge(body))
    _must_be_ours(lambda: from_distribution(body))
    _must_be_ours(lambda: from_harbor(body))
    _must_be_ours(lambda: from_github({"X-GitHub-Event": "package"}, body))
    _must_be_ours(lambda: from_event_grid("POST", {"aeg-event-type": "SubscriptionValidation"}, body))
    _must_be_ours(lambda: from_pubsub_cloudevent(body))


@SETTINGS
@given(data=json_values, attributes=st.dictionaries(st.sampled_from(["id", "type", "source"]), json_values))
def test_pubsub_cloudevent_arbitrary_values(data: Any, attributes: dict[str, Any]) -> None:
    _must_be_ours(lambda: from_pubsub_cloudevent(data, attributes))


@SETTINGS
@given(
    headers=headers_strategy,
    body=st.binary(max_size=200),
    secret=st.text(alphabet="0123456789abcdef~§", min_size=12, max_size=24).map(lambda s: f"~{s}"),
)
def test_authenticate_never_crashes_nor_leaks(headers: dict[str, str], body: bytes, secret: str) -> None:
    try:
        authenticate(headers, body, secret=secret)
    except SigwardError as exc:
        assert secret not in str(exc)

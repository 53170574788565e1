"""AWS ECR events from EventBridge, delivered to the webhook by an API destination (the whole event as the body).

Envelope (EventBridge): ``{"version":"0","id":UUID,"detail-type":…,"source":"aws.ecr","account":"123456789012",
"time":…,"region":"us-west-2","resources":[],"detail":{…}}``; ``id`` is the delivery-stable event id.

``ECR Image Action`` detail (AWS ECR user guide, "Amazon ECR events and EventBridge")::

    {"result": "SUCCESS", "repository-name": "my-repository-name", "image-digest": "sha256:…",
     "action-type": "PUSH" | "DELETE" | "UPDATE_STORAGE_CLASS", "image-tag": "latest",
     "manifest-media-type": …, "artifact-media-type": …, "target-storage-class": …, "last-activated-at": …}

``image-tag`` is absent for a push by digest; the media types and storage class appear on archive/restore actions.

``ECR Referrer Action`` has the *same* detail fields (the ECR guide's sample is a referrer restore with
``action-type: UPDATE_STORAGE_CLASS``, ``manifest-media-type: application/vnd.cncf.oras.artifact.manifest.v1+json``,
``artifact-media-type: text/sbom+json``; the CDK event-pattern class lists action-type, artifact-media-type,
image-digest, image-tag, manifest-media-type, repository-name, result, target-storage-class, last-activated-at).
There is **no subject field**: ``image-digest`` is the referrer manifest's own digest. So a referrer push becomes a
:class:`PushEvent` with ``referrer=True``; the consumer reads the manifest's ``subject`` to learn which image to verify.

Only ``result == "SUCCESS"`` with ``action-type`` PUSH or DELETE is kept; other detail-types, results and actions
(archive/restore, replication, scans) are ignored. The registry host is ``<account>.dkr.ecr.<region>.<suffix>``.
"""

from __future__ import annotations

import re
from typing import Any

from sigward.events._fields import Fields, clip
from sigward.events.models import MAX_WEBHOOK_BYTES, WebhookResult
from sigward.jsonbody import parse_json_body

ECR_EVENT_SOURCE = "aws.ecr"
IMAGE_ACTION = "ECR Image Action"
REFERRER_ACTION = "ECR Referrer Action"
_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$")
_ACTIONS = {"PUSH": "push", "DELETE": "delete"}


def ecr_registry_host(account: str, region: str) -> str:
    """The private registry host of ``account`` in ``region`` (China and isolated partitions have their own DNS)."""
    if region.startswith("cn-"):
        suffix = "amazonaws.com.cn"
    elif region.startswith("us-isob-"):
        suffix = "sc2s.sgov.gov"
    elif region.startswith("us-iso-"):
        suffix = "c2s.ic.gov"
    else:
        suffix = "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def from_eventbridge(body: bytes) -> WebhookResult:
    """The pushes in an EventBridge event body."""
    return eventbridge_document(parse_json_body(body, what="ECR event", max_bytes=MAX_WEBHOOK_BYTES))


def eventbridge_document(doc: Any) -> WebhookResult:
    f = Fields("ECR event")
    event = f.obj(doc, "")
    source = f.string(event, "source", "", required=False)
    if source and source != ECR_EVENT_SOURCE:
        raise f.error("source", f"is {clip(source)}, not {ECR_EVENT_SOURCE!r}")
    detail_type = f.string(event, "detail-type", "")
    if detail_type not in (IMAGE_ACTION, REFERRER_ACTION):
        return WebhookResult(source="ecr", ignored=(f"ECR event: detail-type {clip(detail_type)} ignored",))
    event_id = f.event_id(event, "id", "")
    account = f.string(event, "account", "")
    if not _ACCOUNT_RE.match(account):
        raise f.error("account", f"is not a 12-digit AWS account id: {clip(account)}")
    region = f.string(event, "region", "")
    if not _REGION_RE.match(region):
        raise f.error("region", f"is not an AWS region name: {clip(region)}")
    detail = f.child_obj(event, "detail", "")
    result = f.string(detail, "result", "detail")
    action_type = f.string(detail, "action-type", "detail")
    if result != "SUCCESS":
        return WebhookResult(source="ecr", ignored=(f"ECR event {event_id}: detail.result {clip(result)} ignored",))
    if action_type not in _ACTIONS:
        return WebhookResult(
            source="ecr", ignored=(f"ECR event {event_id}: detail.action-type {clip(action_type)} ignored",)
        )
    repository = f.string(detail, "repository-name", "detail", max_chars=256)
    digest = f.digest(detail, "image-digest", "detail")
    tag = f.tag(detail, "image-tag", "detail")
    media_type = f.string(detail, "manifest-media-type", "detail", required=False, max_chars=256)
    push = f.push(
        source="ecr",
        event_id=event_id,
        action="push" if _ACTIONS[action_type] == "push" else "delete",
        registry=ecr_registry_host(account, region),
        repository=repository,
        digest=digest,
        tag=tag,
        media_type=media_type,
        referrer=detail_type == REFERRER_ACTION,
        registry_path="account/region",
        repository_path="detail.repository-name",
    )
    return WebhookResult(source="ecr", pushes=(push,))

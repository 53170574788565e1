"""Registry push notifications, normalized: pure adapters from each platform's payload (bytes and headers in) to
:class:`PushEvent` values out — no network, no store.

- :func:`from_pubsub_cloudevent`, :func:`from_pubsub_push`: Google Artifact Registry / GCR via Pub/Sub
  (the ``push_pubsub`` target);
- :func:`parse_webhook`: every platform that posts to the ``push_webhook`` target (AWS ECR via EventBridge, Azure
  Container Registry via Event Grid incl. its validation handshakes, CNCF distribution, Harbor, GitHub packages),
  after :func:`authenticate` when ``SIGWARD_PUSH_SECRET`` is set.
"""

from sigward.events.acr import from_event_grid
from sigward.events.auth import Unauthenticated, authenticate
from sigward.events.distribution import from_distribution
from sigward.events.ecr import from_eventbridge
from sigward.events.gcr import from_pubsub_cloudevent, from_pubsub_push
from sigward.events.github import from_github
from sigward.events.harbor import from_harbor
from sigward.events.models import (
    MAX_EVENTS,
    MAX_WEBHOOK_BYTES,
    HandshakeReply,
    PushEvent,
    WebhookResult,
)
from sigward.events.webhook import parse_webhook

__all__ = [
    "MAX_EVENTS",
    "MAX_WEBHOOK_BYTES",
    "HandshakeReply",
    "PushEvent",
    "Unauthenticated",
    "WebhookResult",
    "authenticate",
    "from_distribution",
    "from_event_grid",
    "from_eventbridge",
    "from_github",
    "from_harbor",
    "from_pubsub_cloudevent",
    "from_pubsub_push",
    "parse_webhook",
]

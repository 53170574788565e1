"""Registry push notifications, normalized: pure adapters from each platform's payload (bytes and headers in) to
:class:`PushEvent` values out — no network, no store.

- :func:`from_pubsub_cloudevent`, :func:`from_pubsub_push`: Google Artifact Registry / GCR via Pub/Sub
  (the ``push_pubsub`` target);
- :func:`parse_webhook`: every platform that posts to the ``push_webhook`` target (AWS ECR via EventBridge, Azure
  Container Registry via Event Grid incl. its validation handshakes, CNCF distribution, Harbor, GitHub packages),
  after :func:`authenticate` when ``SIGWARD_PUSH_SECRET`` is set.
"""

from core.events.acr import from_event_grid
from core.events.auth import Unauthenticated, authenticate
from core.events.distribution import from_distribution
from core.events.ecr import from_eventbridge
from core.events.gcr import from_pubsub_cloudevent, from_pubsub_push
from core.events.github import from_github
from core.events.harbor import from_harbor
from core.events.models import (
    MAX_EVENTS,
    MAX_WEBHOOK_BYTES,
    HandshakeReply,
    PushEvent,
    WebhookResult,
)
from core.events.webhook import parse_webhook

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

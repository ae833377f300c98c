"""Delivery events written to the webhook outbox, in the transaction that records them.

Whoever records an event (an outcome of sending, an open, a click, an unsubscribe, a bounce, a
complaint) calls ``queue_outgoing_events`` with the same connection: the outbox row commits or
rolls back with the event, so a process that dies after the commit loses nothing and one that
dies before it reports nothing that did not happen. ``campaigns.webhooks`` delivers the rows.

It lives in ``core`` because every capability that records events sits above it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from campaigns.core.models import TransactionalStream, WebhookEndpoint, WebhookOutboxEvent

OUTGOING_EVENT_KINDS = (
    "sent",
    "deferred",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
)
"""The names an endpoint subscribes to (``edm webhooks add --events``), in the README's order."""


@dataclass(frozen=True)
class OutgoingEvent:
    kind: str
    job_id: int
    campaign_id: int
    occurred_at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subscription:
    endpoint_id: int
    events: frozenset[str]
    campaign_id: int | None
    category: str | None

    def wants(self, event: OutgoingEvent, categories: Mapping[int, str]) -> bool:
        if event.kind not in self.events:
            return False
        if self.campaign_id is not None:
            return event.campaign_id == self.campaign_id
        if self.category is not None:
            return categories.get(event.campaign_id) == self.category
        return True


def subscriptions(connection: Connection) -> list[Subscription]:
    """Every endpoint's subscription: one small read, all a caller pays when there are none."""
    return [
        Subscription(row.id, frozenset(row.events or ()), row.campaign_id, row.category)
        for row in connection.execute(
            select(
                WebhookEndpoint.id,
                WebhookEndpoint.events,
                WebhookEndpoint.campaign_id,
                WebhookEndpoint.category,
            )
        )
    ]


def wanted_kinds(subscribed: Sequence[Subscription]) -> frozenset[str]:
    return frozenset().union(*(each.events for each in subscribed))


def queue_outgoing_events(
    connection: Connection,
    events: Sequence[OutgoingEvent],
    subscribed: Sequence[Subscription] | None = None,
) -> int:
    """Write one outbox row per event and subscribed endpoint; returns how many.

    ``subscribed`` is what ``subscriptions`` returned, when the caller read it already.
    """
    if not events:
        return 0
    if subscribed is None:
        subscribed = subscriptions(connection)
    kinds = {event.kind for event in events}
    subscribed = [each for each in subscribed if each.events & kinds]
    if not subscribed:
        return 0
    categories: dict[int, str] = {}
    if any(each.category is not None for each in subscribed):
        campaign_ids = list({event.campaign_id for event in events})
        categories = dict(
            connection.execute(
                select(TransactionalStream.campaign_id, TransactionalStream.category).where(
                    TransactionalStream.campaign_id.in_(campaign_ids)
                )
            ).all()
        )
    rows: list[dict[str, Any]] = []
    for event in events:
        event_id = str(uuid.uuid4())
        rows.extend(
            {
                "endpoint_id": subscription.endpoint_id,
                "event_id": event_id,
                "kind": event.kind,
                "job_id": event.job_id,
                "campaign_id": event.campaign_id,
                "occurred_at": event.occurred_at,
                "detail": dict(event.detail),
                "attempts": 0,
            }
            for subscription in subscribed
            if subscription.wants(event, categories)
        )
    if rows:
        connection.execute(insert(WebhookOutboxEvent), rows)
    return len(rows)

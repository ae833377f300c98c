"""Webhook endpoints: adding one (with its secret, shown once), listing, removing, resuming."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from campaigns.core.errors import InputError, NotFound
from campaigns.core.event_outbox import OUTGOING_EVENT_KINDS
from campaigns.core.models import (
    Campaign,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookOutboxEvent,
)
from campaigns.core.storage import Database, rows_matched
from campaigns.webhooks.destinations import Resolver, check_destination, checked_url
from campaigns.webhooks.signing import new_secret

ACTIVE = "active"
PAUSED = "paused"
ATTEMPTS_SHOWN = 20
_CATEGORY = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class EndpointListing:
    id: int
    url: str
    events: list[str]
    campaign_id: int | None
    category: str | None
    state: str
    consecutive_failures: int
    failing_since: datetime | None
    next_attempt_at: datetime | None
    pending_events: int
    created_at: datetime


@dataclass(frozen=True)
class AttemptListing:
    attempted_at: datetime
    events: int
    status_code: int | None
    response_ms: int
    error: str | None


def parse_event_names(text: str | Sequence[str]) -> list[str]:
    """The event names of ``--events sent,opened`` (or a JSON list), checked and de-duplicated."""
    names = text.split(",") if isinstance(text, str) else list(text)
    chosen: list[str] = []
    for name in names:
        name = str(name).strip().lower()
        if not name:
            continue
        if name not in OUTGOING_EVENT_KINDS:
            raise InputError(
                f"events: unknown event {name[:40]!r}; expected some of "
                + ",".join(OUTGOING_EVENT_KINDS)
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise InputError("events: name at least one of " + ",".join(OUTGOING_EVENT_KINDS))
    return chosen


def add_endpoint(
    database: Database,
    url: str,
    *,
    events: Sequence[str],
    campaign_id: int | None = None,
    category: str | None = None,
    allow_private: bool = False,
    resolve: Resolver | None = None,
) -> tuple[EndpointListing, str]:
    """The new endpoint and its secret, which a person sees this once."""
    url = checked_url(url)
    chosen = parse_event_names(events)
    if campaign_id is not None and category is not None:
        raise InputError("campaign, category: give one or neither")
    if category is not None and not _CATEGORY.fullmatch(category):
        raise InputError(f"category: {category[:40]!r}: lower-case letters, digits, - and _")
    if resolve is None:
        check_destination(url, allow_private=allow_private)
    else:
        check_destination(url, allow_private=allow_private, resolve=resolve)
    secret = new_secret()
    with database.session() as session:
        if campaign_id is not None and session.get(Campaign, campaign_id) is None:
            raise NotFound(f"campaign: no campaign {campaign_id}")
        row = WebhookEndpoint(
            url=url,
            secret=secret,
            events=chosen,
            campaign_id=campaign_id,
            category=category,
            state=ACTIVE,
            consecutive_failures=0,
        )
        session.add(row)
        session.flush()
        endpoint_id = row.id
    return endpoint(database, endpoint_id), secret


def list_endpoints(database: Database) -> list[EndpointListing]:
    with database.session() as session:
        pending = dict(
            session.execute(
                select(WebhookOutboxEvent.endpoint_id, func.count()).group_by(
                    WebhookOutboxEvent.endpoint_id
                )
            ).all()
        )
        rows = session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()
        return [_listing(row, pending.get(row.id, 0)) for row in rows]


def endpoint(database: Database, endpoint_id: int) -> EndpointListing:
    with database.session() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        if row is None:
            raise NotFound(f"webhook endpoint {endpoint_id}: no such endpoint")
        pending = session.scalar(
            select(func.count()).where(WebhookOutboxEvent.endpoint_id == endpoint_id)
        )
        return _listing(row, pending or 0)


def endpoint_secret(database: Database, endpoint_id: int) -> tuple[str, str]:
    """``(url, secret)`` for signing a test event; never shown."""
    with database.session() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        if row is None:
            raise NotFound(f"webhook endpoint {endpoint_id}: no such endpoint")
        return row.url, row.secret


def remove_endpoint(database: Database, endpoint_id: int) -> None:
    """Delete the endpoint with its undelivered events and its log."""
    with database.session() as session:
        # Deleted explicitly: SQLite's cascades need foreign keys on, and the outbox is large.
        session.execute(
            delete(WebhookOutboxEvent).where(WebhookOutboxEvent.endpoint_id == endpoint_id)
        )
        session.execute(delete(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id))
        result = session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
        if rows_matched(result) == 0:
            raise NotFound(f"webhook endpoint {endpoint_id}: no such endpoint")


def resume_endpoint(database: Database, endpoint_id: int) -> EndpointListing:
    """Deliver a paused endpoint's events again, from the oldest, at once."""
    with database.session() as session:
        if session.get(WebhookEndpoint, endpoint_id) is None:
            raise NotFound(f"webhook endpoint {endpoint_id}: no such endpoint")
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(state=ACTIVE, next_attempt_at=None, consecutive_failures=0, failing_since=None)
        )
    return endpoint(database, endpoint_id)


def recent_attempts(
    database: Database, endpoint_id: int, limit: int = ATTEMPTS_SHOWN
) -> list[AttemptListing]:
    with database.session() as session:
        rows = session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.endpoint_id == endpoint_id)
            .order_by(WebhookAttempt.id.desc())
            .limit(limit)
        ).all()
        return [
            AttemptListing(
                attempted_at=row.attempted_at,
                events=row.events,
                status_code=row.status_code,
                response_ms=row.response_ms,
                error=row.error,
            )
            for row in rows
        ]


def _listing(row: WebhookEndpoint, pending: int) -> EndpointListing:
    return EndpointListing(
        id=row.id,
        url=row.url,
        events=list(row.events),
        campaign_id=row.campaign_id,
        category=row.category,
        state=row.state,
        consecutive_failures=row.consecutive_failures,
        failing_since=row.failing_since,
        next_attempt_at=row.next_attempt_at,
        pending_events=pending,
        created_at=row.created_at,
    )

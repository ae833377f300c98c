"""What became of a transactional message: its job's state, the relay's last reply, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from campaigns.core.errors import NotFound
from campaigns.core.models import Job, JobEvent, Recipient, TransactionalMessage
from campaigns.core.storage import Database


@dataclass(frozen=True)
class MessageEvent:
    kind: str
    occurred_at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class MessageStatus:
    id: str
    to: str
    category: str
    tags: list[str]
    state: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_code: int | None
    last_status: str | None
    last_reply: str | None
    events: list[MessageEvent] = field(default_factory=list)


def message_status(database: Database, message_id: str) -> MessageStatus:
    with database.session() as session:
        row = session.execute(
            select(TransactionalMessage, Job, Recipient.email)
            .join(Job, Job.id == TransactionalMessage.job_id)
            .join(Recipient, Recipient.id == Job.recipient_id)
            .where(TransactionalMessage.uuid == message_id)
        ).first()
        if row is None:
            raise NotFound(f"transactional message {message_id[:40]!r} not found")
        message, job, email = row
        events = [
            MessageEvent(event.kind, event.occurred_at, dict(event.detail or {}))
            for event in session.scalars(
                select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)
            )
        ]
    return MessageStatus(
        id=message.uuid,
        to=email,
        category=message.category,
        tags=list(message.tags or []),
        state=job.state,
        attempts=job.attempts,
        created_at=message.created_at,
        sent_at=job.sent_at,
        last_code=job.last_code,
        last_status=job.last_status,
        last_reply=job.last_reply,
        events=events,
    )

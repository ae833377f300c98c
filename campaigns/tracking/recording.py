"""What a tracked open, a click and an unsubscribe change in the database.

Counters (kept by ``campaigns.core.events``):
- ``opens``: every pixel load; ``machine_opens``: those taken as machine-made (see
  ``campaigns.tracking.machine_opens``); ``unique_opens``: recipients with at least one open a
  person made.
  ``Job.first_opened_at`` is the time of that first human open.
- ``clicks``: every click; ``unique_clicks``: recipients who clicked. A click is not taken as an
  open: the events say what was seen, no more.
- ``unsubscribes``: recipients who unsubscribed from the campaign, once each however often they
  ask.

No IP address is stored: it is personal data and tells nothing the events need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from campaigns.core.events import record_event
from campaigns.core.models import (
    IN_FLIGHT_JOB_STATES,
    Campaign,
    CampaignLink,
    EventKind,
    Job,
    Recipient,
    utc_now,
)
from campaigns.core.storage import Database, rows_matched
from campaigns.lists.suppression import SuppressionReason, insert_new_suppressions, suppression_row
from campaigns.tracking.machine_opens import MachineOpen, image_proxy, machine_open_reason

MACHINE_OPENS_COUNTER = "machine_opens"
USER_AGENT_CHARS = 400


@dataclass(frozen=True)
class RecordedOpen:
    machine: MachineOpen | None
    first: bool
    """The recipient's first open made by a person."""


@dataclass(frozen=True)
class Unsubscribed:
    campaign_id: int
    first: bool
    """False when this message had already been used to unsubscribe (nothing counted again)."""


def record_open(
    database: Database, job_id: int, *, user_agent: str | None, opened_at: datetime | None = None
) -> RecordedOpen | None:
    """Record a pixel load; None when the job no longer exists."""
    opened_at = opened_at or utc_now()
    with database.session() as session:
        job = session.execute(
            select(Job.campaign_id, Job.state, Job.sent_at).where(Job.id == job_id)
        ).first()
        if job is None:
            return None
        # Still "sending": the relay took the message moments ago and its outcome is not written
        # yet, so the open came as soon after delivery as an open can.
        sent_at = opened_at if job.state in IN_FLIGHT_JOB_STATES else job.sent_at
        machine = machine_open_reason(user_agent, opened_at=opened_at, sent_at=sent_at)
        first = record_event(
            session,
            job_id=job_id,
            campaign_id=job.campaign_id,
            kind=EventKind.OPENED,
            occurred_at=opened_at,
            detail={
                "user_agent": (user_agent or "")[:USER_AGENT_CHARS],
                "machine": machine.value if machine else None,
                "proxy": image_proxy(user_agent),
            },
            extra_counters=(MACHINE_OPENS_COUNTER,) if machine else (),
            counts_as_first=machine is None,
        )
        return RecordedOpen(machine=machine, first=first)


def record_click(
    database: Database, job_id: int, link_id: int, *, user_agent: str | None
) -> str | None:
    """Record a click and return the link's URL; None (nothing recorded) unless the link belongs
    to the job's own campaign."""
    with database.session() as session:
        link = _job_link(session, job_id, link_id)
        if link is None:
            return None
        record_event(
            session,
            job_id=job_id,
            campaign_id=link.campaign_id,
            kind=EventKind.CLICKED,
            # As text: a 63-bit id loses digits in JavaScript's numbers.
            detail={"link_id": str(link_id), "user_agent": (user_agent or "")[:USER_AGENT_CHARS]},
        )
        return link.url


def link_target(database: Database, job_id: int, link_id: int) -> str | None:
    """The URL of a link of the job's own campaign; None when there is no such pair."""
    with database.session() as session:
        link = _job_link(session, job_id, link_id)
        return None if link is None else link.url


def _job_link(session: Session, job_id: int, link_id: int) -> Row[int, str] | None:
    return session.execute(
        select(Job.campaign_id, CampaignLink.url)
        .join(CampaignLink, CampaignLink.campaign_id == Job.campaign_id)
        .where(Job.id == job_id, CampaignLink.id == link_id)
    ).first()


def unsubscriber(database: Database, job_id: int) -> tuple[str, bool] | None:
    """``(sender, already unsubscribed)`` for the confirmation page; None for no such job."""
    with database.session() as session:
        row = session.execute(
            select(Campaign.from_address, Job.unsubscribed_at)
            .join(Campaign, Campaign.id == Job.campaign_id)
            .where(Job.id == job_id)
        ).first()
        return None if row is None else (row.from_address, row.unsubscribed_at is not None)


def unsubscribe(database: Database, job_id: int, *, how: str) -> Unsubscribed | None:
    """Suppress the job's address at once and count the unsubscribe on its first request;
    None for no such job. ``how`` is kept on the event (``one-click`` or ``form``)."""
    now = utc_now()
    with database.session() as session:
        # The conditional UPDATE comes first: it decides "first" atomically between two requests,
        # and on SQLite it takes the write lock before anything is read.
        first = (
            rows_matched(
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.unsubscribed_at.is_(None))
                    .values(unsubscribed_at=now)
                )
            )
            == 1
        )
        job = session.execute(
            select(Job.campaign_id, Recipient.email_key)
            .join(Recipient, Recipient.id == Job.recipient_id)
            .where(Job.id == job_id)
        ).first()
        if job is None:
            return None
        # Even when this message was used before: a person may have been taken off the list
        # by hand since, and this request is the newer word. An address suppressed already
        # keeps its first reason (a hard bounce stays a hard bounce).
        detail = f"campaign {job.campaign_id}, job {job_id}"
        insert_new_suppressions(
            session, [suppression_row(job.email_key, SuppressionReason.UNSUBSCRIBE, detail, now)]
        )
        if first:
            record_event(
                session,
                job_id=job_id,
                campaign_id=job.campaign_id,
                kind=EventKind.UNSUBSCRIBED,
                occurred_at=now,
                detail={"how": how},
            )
        return Unsubscribed(campaign_id=job.campaign_id, first=first)

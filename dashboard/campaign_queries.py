"""Reading campaigns for people: summaries, progress, recipients and their history, charts.

State counts come from ``campaign_status`` and event counts from ``campaign_counters``; this
module adds what only a screen needs (searching recipients, time series, bounce reasons).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select

from campaigns.core.errors import NotFound
from campaigns.core.events import campaign_counters, job_history
from campaigns.core.job_predicates import campaign_is_stream
from campaigns.core.models import (
    PENDING_JOB_STATES,
    Campaign,
    EventKind,
    Job,
    JobEvent,
    JobState,
    Recipient,
    RecipientList,
)
from campaigns.core.reply_classes import job_reply_class
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import CampaignStatus, campaign_status
from dashboard.address_pages import address_page

SHOWN_REPLY_CHARS = 300
FAILED_STATES = (JobState.BOUNCED, JobState.FAILED, JobState.EXPIRED, JobState.UNKNOWN)
EXPORT_COLUMNS = (
    "email",
    "state",
    "class",
    "attempts",
    "last_code",
    "enhanced_status",
    "sent_at",
    "first_opened_at",
    "first_clicked_at",
    "unsubscribed_at",
    "last_reply",
)


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    state: str
    list_name: str
    template_name: str
    from_address: str
    tracking: bool
    relays: list[str] | None
    """The relays it may send through; None means every configured relay, by weight."""
    created_at: datetime
    send_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    archived_at: datetime | None = None
    subject: str = ""
    """The campaign's own (Jinja) subject line, as stored."""


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    """Jobs with nothing left to do (sent, failed, bounced, suppressed, cancelled...)."""
    pending: int
    percent: float


@dataclass(frozen=True)
class CampaignOverview:
    campaign: CampaignRow
    status: CampaignStatus
    progress: Progress
    counters: dict[str, int]


@dataclass(frozen=True)
class JobRow:
    job_id: int
    email: str
    state: str
    reply_class: str | None
    attempts: int
    last_code: int | None
    last_status: str | None
    last_reply: str | None
    sent_at: datetime | None
    next_attempt_at: datetime | None
    """When a deferred (or not yet due) recipient is tried next."""
    first_opened_at: datetime | None
    first_clicked_at: datetime | None


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRow]
    next_after: str | None
    previous_before: str | None
    total: int
    """Recipients matching the search and state, on every page."""
    first: int
    """Position of the page's first recipient among them (from 1; 0 on an empty page)."""


@dataclass(frozen=True)
class EventRow:
    kind: str
    occurred_at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class BounceReason:
    state: str
    reply_class: str | None
    last_code: int | None
    last_status: str | None
    count: int
    example_reply: str


@dataclass(frozen=True)
class Bucket:
    start: datetime
    count: int


def campaign_rows(
    database: Database, *, limit: int = 200, archived: bool = False
) -> list[CampaignRow]:
    """The newest campaigns; the archived ones alone with ``archived``, else those not."""
    with database.session() as session:
        rows = session.execute(
            select(Campaign, RecipientList.name)
            .join(RecipientList, RecipientList.id == Campaign.list_id)
            .where(
                ~campaign_is_stream(),
                Campaign.archived_at.is_not(None) if archived else Campaign.archived_at.is_(None),
            )
            .order_by(Campaign.id.desc())
            .limit(limit)
        ).all()
        return [_campaign_row(campaign, list_name) for campaign, list_name in rows]


def campaign_row(database: Database, campaign_id: int) -> CampaignRow:
    with database.session() as session:
        row = session.execute(
            select(Campaign, RecipientList.name)
            .join(RecipientList, RecipientList.id == Campaign.list_id)
            .where(Campaign.id == campaign_id)
        ).first()
        if row is None:
            raise NotFound(f"campaign {campaign_id} not found")
        return _campaign_row(*row)


def progress_of(status: CampaignStatus) -> Progress:
    pending = sum(status.counts.get(str(state), 0) for state in PENDING_JOB_STATES)
    done = status.total - pending
    percent = 100.0 * done / status.total if status.total else 0.0
    return Progress(total=status.total, done=done, pending=pending, percent=round(percent, 1))


def campaign_overview(database: Database, campaign_id: int) -> CampaignOverview:
    campaign = campaign_row(database, campaign_id)
    status = campaign_status(database, campaign_id)
    return CampaignOverview(
        campaign=campaign,
        status=status,
        progress=progress_of(status),
        counters=campaign_counters(database, campaign_id),
    )


def search_jobs(
    database: Database,
    campaign_id: int,
    *,
    contains: str = "",
    state: str | None = None,
    after: str = "",
    before: str = "",
    limit: int = 50,
) -> JobPage:
    """The campaign's recipients whose address holds ``contains``, in address order, a page
    after ``after`` or before ``before``."""
    with database.session() as session:
        list_id = session.scalar(select(Campaign.list_id).where(Campaign.id == campaign_id))
        if list_id is None:
            raise NotFound(f"campaign {campaign_id} not found")
        query = (
            select(Job, Recipient.email, Recipient.email_key)
            .join(Recipient, Recipient.id == Job.recipient_id)
            .where(Job.campaign_id == campaign_id, Recipient.list_id == list_id)
        )
        if state:
            query = query.where(Job.state == state)
        rows, place = address_page(
            session,
            query,
            Recipient.email_key,
            contains=contains,
            after=after,
            before=before,
            limit=limit,
        )
    return JobPage(
        jobs=[_job_row(job, email) for job, email, _key in rows],
        next_after=place.next_after,
        previous_before=place.previous_before,
        total=place.total,
        first=place.first,
    )


def job_detail(database: Database, campaign_id: int, job_id: int) -> tuple[JobRow, list[EventRow]]:
    with database.session() as session:
        row = session.execute(
            select(Job, Recipient.email)
            .join(Recipient, Recipient.id == Job.recipient_id)
            .where(Job.id == job_id, Job.campaign_id == campaign_id)
        ).first()
        if row is None:
            raise NotFound(f"recipient job {job_id} not found in campaign {campaign_id}")
        job = _job_row(*row)
    events = [
        EventRow(event.kind, event.occurred_at, dict(event.detail or {}))
        for event in job_history(database, job_id)
    ]
    return job, events


def bounce_reasons(database: Database, campaign_id: int, *, limit: int = 10) -> list[BounceReason]:
    """The most common refusals of the campaign, by state, reply code and enhanced status."""
    with database.session() as session:
        rows = session.execute(
            select(
                Job.state,
                Job.last_code,
                Job.last_status,
                func.count(),
                func.max(Job.last_reply),
            )
            .where(Job.campaign_id == campaign_id, Job.state.in_(FAILED_STATES))
            .group_by(Job.state, Job.last_code, Job.last_status)
            .order_by(func.count().desc())
            .limit(limit)
        ).all()
    return [
        BounceReason(
            state=state,
            reply_class=_class_name(state, code, status),
            last_code=code,
            last_status=status,
            count=count,
            example_reply=(reply or "")[:SHOWN_REPLY_CHARS],
        )
        for state, code, status, count, reply in rows
    ]


def sends_per_minute(database: Database, campaign_id: int) -> list[Bucket]:
    """Messages the relays accepted, per minute, from the first to the last."""
    with database.session() as session:
        minute = _truncated(session, Job.sent_at, "minute")
        rows = session.execute(
            select(minute, func.count())
            .where(Job.campaign_id == campaign_id, Job.sent_at.is_not(None))
            .group_by(minute)
            .order_by(minute)
        ).all()
    return [Bucket(_as_utc(start), count) for start, count in rows]


def events_over_time(
    database: Database,
    campaign_id: int,
    kinds: tuple[str, ...] = (EventKind.OPENED, EventKind.CLICKED),
) -> dict[str, list[Bucket]]:
    """Events of each kind per hour."""
    with database.session() as session:
        hour = _truncated(session, JobEvent.occurred_at, "hour")
        rows = session.execute(
            select(JobEvent.kind, hour, func.count())
            .where(JobEvent.campaign_id == campaign_id, JobEvent.kind.in_(kinds))
            .group_by(JobEvent.kind, hour)
            .order_by(hour)
        ).all()
    series: dict[str, list[Bucket]] = {str(kind): [] for kind in kinds}
    for kind, start, count in rows:
        series[kind].append(Bucket(_as_utc(start), count))
    return series


def export_rows(database: Database, campaign_id: int) -> Iterator[tuple[object, ...]]:
    """Every recipient of the campaign as ``EXPORT_COLUMNS``, streamed in job order."""
    campaign_row(database, campaign_id)  # a missing campaign fails before anything is written
    query = (
        select(Job, Recipient.email)
        .join(Recipient, Recipient.id == Job.recipient_id)
        .where(Job.campaign_id == campaign_id)
        .order_by(Job.id)
        .execution_options(yield_per=1000)
    )

    def rows() -> Iterator[tuple[object, ...]]:
        with database.session() as session:
            for job, email in session.execute(query):
                yield (
                    email,
                    job.state,
                    _class_name(job.state, job.last_code, job.last_status) or "",
                    job.attempts,
                    job.last_code,
                    job.last_status,
                    job.sent_at,
                    job.first_opened_at,
                    job.first_clicked_at,
                    job.unsubscribed_at,
                    job.last_reply,
                )

    return rows()


def _truncated(session: Any, column: Any, unit: str) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc(unit, column)
    pattern = "%Y-%m-%d %H:%M:00" if unit == "minute" else "%Y-%m-%d %H:00:00"
    return func.strftime(pattern, column)


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _class_name(state: str, code: int | None, status: str | None) -> str | None:
    reply_class = job_reply_class(state, code, status)
    return str(reply_class) if reply_class is not None else None


def _campaign_row(campaign: Campaign, list_name: str) -> CampaignRow:
    return CampaignRow(
        id=campaign.id,
        name=campaign.name,
        state=campaign.state,
        list_name=list_name,
        template_name=campaign.template_name,
        from_address=campaign.from_address,
        tracking=campaign.tracking,
        relays=campaign.relays,
        created_at=campaign.created_at,
        send_at=campaign.send_at,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        archived_at=campaign.archived_at,
        subject=campaign.subject_template,
    )


def _job_row(job: Job, email: str) -> JobRow:
    return JobRow(
        job_id=job.id,
        email=email,
        state=job.state,
        reply_class=_class_name(job.state, job.last_code, job.last_status),
        attempts=job.attempts,
        last_code=job.last_code,
        last_status=job.last_status,
        last_reply=job.last_reply,
        sent_at=job.sent_at,
        next_attempt_at=job.next_attempt_at,
        first_opened_at=job.first_opened_at,
        first_clicked_at=job.first_clicked_at,
    )

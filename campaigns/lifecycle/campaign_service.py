"""Campaign lifecycle: create, check and schedule, pause, resume, cancel, and report status.

States: draft -> scheduled -> running -> completed, with paused and cancelled on the side.
Scheduling writes one job per recipient in the same transaction that moves the campaign on,
so a campaign is never half-scheduled.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, literal, select, update

from campaigns.content.isolated_render import DEFAULT_CPU_LIMIT_S
from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import (
    CompiledTemplate,
    TemplateSource,
    load_template,
    missing_fields,
)
from campaigns.core.batching import chunked
from campaigns.core.errors import InputError, NotFound, StateError, TemplateError
from campaigns.core.job_predicates import campaign_is_stream, job_is_claimable
from campaigns.core.models import (
    Campaign,
    CampaignState,
    Job,
    JobState,
    Recipient,
    RecipientList,
    Suppression,
    utc_now,
)
from campaigns.core.storage import Database, rows_matched
from campaigns.jobs.state_counts import job_state_counts
from campaigns.lifecycle.send_times import LocalTimePlan, local_send_times, spread_slots
from campaigns.lists.holding_lists import is_holding_list
from campaigns.tracking.message_pipeline import MessagePipeline

FINAL_CAMPAIGN_STATES = (CampaignState.COMPLETED, CampaignState.CANCELLED)


@dataclass(frozen=True)
class CampaignStatus:
    id: int
    name: str
    state: str
    list_name: str
    template_name: str
    counts: dict[str, int]
    send_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    total: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum(self.counts.values()))

    def as_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "list": self.list_name,
            "template": self.template_name,
            "total": self.total,
            "counts": self.counts,
            "send_at": iso(self.send_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


def campaign_template(campaign: Campaign) -> TemplateSource:
    return TemplateSource(
        name=campaign.template_name,
        subject=campaign.subject_template,
        html=campaign.html_template,
        text=campaign.text_template,
    )


def create_campaign(
    database: Database,
    *,
    name: str,
    list_name: str,
    template: str,
    from_address: str,
    templates_dir: Any,
    subject: str | None = None,
    tracking: bool = True,
    relays: Sequence[str] = (),
    configured_relays: Collection[str] = (),
) -> Campaign:
    """Make a draft campaign; the template is compiled now so a syntax error stops here.

    ``tracking`` adds the open pixel and click redirects to the HTML part of each message.
    ``relays`` are the names, among ``configured_relays``, the campaign may send through; none
    means every relay, by weight.
    """
    chosen_relays = checked_relays(relays, configured_relays)
    source = checked_template(template, templates_dir, subject)
    checked_sender(from_address)
    with database.session() as session:
        recipient_list = _list_by_name(session, list_name)
        campaign = Campaign(
            name=name,
            list_id=recipient_list.id,
            state=CampaignState.DRAFT,
            from_address=from_address,
            template_name=source.name,
            subject_template=source.subject,
            html_template=source.html,
            text_template=source.text,
            tracking=tracking,
            relays=chosen_relays,
        )
        session.add(campaign)
        session.flush()
        return campaign


def checked_template(template: str, templates_dir: Any, subject: str | None) -> TemplateSource:
    """The template by name or path, its subject replaced by ``subject`` when given, compiled
    so a syntax error stops before anything is written."""
    source = load_template(template, templates_dir)
    if subject is not None:
        source = TemplateSource(
            name=source.name, subject=subject, html=source.html, text=source.text
        )
    CompiledTemplate(source)
    return source


def checked_sender(from_address: str) -> None:
    MessageSkeleton(from_address=from_address, campaign_uuid="check")


def checked_relays(names: Sequence[str], configured: Collection[str]) -> list[str] | None:
    chosen = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    for name in chosen:
        if name not in configured:
            known = ", ".join(sorted(configured)) or "none"
            raise InputError(f"relay {name!r} is not configured (relays: {known})")
    return chosen or None


@dataclass(frozen=True)
class ScheduleResult:
    jobs: int
    first_due: datetime
    last_due: datetime
    recipients_without_zone: int = 0
    """With a local-time plan: recipients whose zone was missing or unknown (default zone used)."""


def schedule_campaign(
    database: Database,
    campaign_id: int,
    *,
    send_at: datetime,
    local_time: LocalTimePlan | None = None,
    spread_hours: float = 0.0,
    render_cpu_limit_s: float = DEFAULT_CPU_LIMIT_S,
) -> ScheduleResult:
    """Check the template against every recipient, then write the jobs with their due times.

    ``send_at`` starts the campaign; ``local_time`` instead makes each recipient due at a wall
    time on their own clock; ``spread_hours`` releases recipients evenly from ``send_at`` on.
    The trial render may use ``render_cpu_limit_s`` of CPU (see ``isolated_render``).
    """
    with database.session() as session:
        campaign = _campaign(session, campaign_id)
        if campaign.state != CampaignState.DRAFT:
            raise StateError(
                f"campaign {campaign_id} is {campaign.state}; only a draft is scheduled"
            )
        suppressed = select(Suppression.email_key).where(
            Suppression.email_key == Recipient.email_key
        )
        _check_audience(session, campaign, suppressed)
        _check_template_against_list(session, campaign, render_cpu_limit_s)
        now = utc_now()
        for state, condition in (
            (JobState.QUEUED, ~suppressed.exists()),
            (JobState.SUPPRESSED, suppressed.exists()),
        ):
            session.execute(
                insert(Job).from_select(
                    ["campaign_id", "recipient_id", "state", "attempts", "updated_at"],
                    select(
                        literal(campaign.id),
                        Recipient.id,
                        literal(str(state)),
                        literal(0),
                        literal(now, type_=Job.__table__.c.updated_at.type),
                    )
                    .where(Recipient.list_id == campaign.list_id, condition)
                    .order_by(Recipient.id),
                )
            )
        jobs = sum(job_state_counts(session, campaign.id).values())
        result = ScheduleResult(jobs, send_at, send_at)
        if local_time is not None:
            result = _plan_local_times(session, campaign, local_time, jobs)
        elif spread_hours:
            result = _plan_spread(session, campaign, send_at, spread_hours * 3600.0, jobs)
        campaign.state = CampaignState.SCHEDULED
        campaign.send_at = result.first_due
        return result


def _plan_local_times(
    session: Any, campaign: Campaign, plan: LocalTimePlan, jobs: int
) -> ScheduleResult:
    rows = session.execute(
        select(Job.id, Recipient.fields)
        .join(Recipient, Recipient.id == Job.recipient_id)
        .where(Job.campaign_id == campaign.id)
    ).all()
    zone_of = {job_id: (fields or {}).get(plan.timezone_field) or None for job_id, fields in rows}
    times = local_send_times(plan, zone_of.values())
    ids_by_due: dict[datetime, list[int]] = {}
    for job_id, zone_name in zone_of.items():
        due = times.due_by_zone[zone_name or plan.default_zone]
        ids_by_due.setdefault(due, []).append(job_id)
    for due, ids in ids_by_due.items():
        for chunk in chunked(ids):
            session.execute(update(Job).where(Job.id.in_(chunk)).values(next_attempt_at=due))
    dues = list(ids_by_due) or [times.due_by_zone[plan.default_zone]]
    without_zone = sum(
        1 for name in zone_of.values() if name is None or name in times.unknown_zones
    )
    return ScheduleResult(jobs, min(dues), max(dues), without_zone)


def _plan_spread(
    session: Any, campaign: Campaign, start: datetime, spread_s: float, jobs: int
) -> ScheduleResult:
    job_ids = list(
        session.scalars(select(Job.id).where(Job.campaign_id == campaign.id).order_by(Job.id))
    )
    slots = spread_slots(len(job_ids), start=start, spread_s=spread_s)
    for slot in slots:
        session.execute(
            update(Job)
            .where(
                Job.campaign_id == campaign.id,
                Job.id >= job_ids[slot.first_index],
                Job.id <= job_ids[slot.last_index],
            )
            .values(next_attempt_at=slot.due)
        )
    last_due = slots[-1].due if slots else start
    return ScheduleResult(jobs, start, last_due)


def _check_audience(session: Any, campaign: Campaign, suppressed: Any) -> None:
    """A campaign nobody would receive is refused: scheduled, it would only "complete" at 0%."""
    in_list = select(func.count()).where(Recipient.list_id == campaign.list_id)
    if session.scalar(in_list.where(~suppressed.exists())):
        return
    total = session.scalar(in_list) or 0
    list_name = session.scalar(
        select(RecipientList.name).where(RecipientList.id == campaign.list_id)
    )
    why = f"all {total} of its recipients are suppressed" if total else "it has no recipients"
    raise InputError(f"list: {list_name!r} has no one to send to ({why})")


_CHECK_BASE_URL = "https://example.invalid"
"""Base of the links in the trial message made before scheduling; it is never sent."""


def _check_template_against_list(
    session: Any, campaign: Campaign, render_cpu_limit_s: float
) -> None:
    compiled = CompiledTemplate(campaign_template(campaign))
    fields_stream = session.execute(
        select(Recipient.fields).where(Recipient.list_id == campaign.list_id).order_by(Recipient.id)
    ).scalars()
    lacking = missing_fields(compiled, fields_stream)
    if lacking:
        total = session.scalar(select(func.count()).where(Recipient.list_id == campaign.list_id))
        variable, count = max(lacking.items(), key=lambda item: item[1])
        others = f" (and {len(lacking) - 1} more variables)" if len(lacking) > 1 else ""
        raise TemplateError(
            f"campaign {campaign.id}: template {campaign.template_name!r} uses {{{{ {variable} }}}}"
            f" but {count} of {total} recipients lack it{others}"
        )
    first = session.execute(
        select(Recipient.id, Recipient.email, Recipient.fields)
        .where(Recipient.list_id == campaign.list_id)
        .order_by(Recipient.id)
        .limit(1)
    ).first()
    if first is not None:
        # A trial message catches what a variable check cannot (a filter failing on real data,
        # a header the data makes invalid), made as delivery makes it.
        pipeline = MessagePipeline(
            campaign_name=campaign.name,
            template=compiled,
            skeleton=MessageSkeleton(
                from_address=campaign.from_address, campaign_uuid=campaign.uuid
            ),
            base_url=_CHECK_BASE_URL,
            secret=b"check",
            render_cpu_limit_s=render_cpu_limit_s,
        )
        link = pipeline.unsubscribe_url(0)
        rendered = pipeline.render(email=first.email, fields=first.fields, unsubscribe_url=link)
        pipeline.build(job_id=0, email=first.email, rendered=rendered, unsubscribe_url=link)


def pause_campaign(database: Database, campaign_id: int) -> str:
    return _transition(
        database,
        campaign_id,
        allowed=(CampaignState.SCHEDULED, CampaignState.RUNNING),
        target=lambda _campaign: CampaignState.PAUSED,
        verb="pause",
    )


def resume_campaign(database: Database, campaign_id: int) -> str:
    def target(campaign: Campaign) -> CampaignState:
        if campaign.started_at is None and campaign.send_at and campaign.send_at > utc_now():
            return CampaignState.SCHEDULED
        return CampaignState.RUNNING

    return _transition(
        database, campaign_id, allowed=(CampaignState.PAUSED,), target=target, verb="resume"
    )


def cancel_campaign(database: Database, campaign_id: int) -> str:
    state = _transition(
        database,
        campaign_id,
        allowed=(
            CampaignState.DRAFT,
            CampaignState.SCHEDULED,
            CampaignState.RUNNING,
            CampaignState.PAUSED,
        ),
        target=lambda _campaign: CampaignState.CANCELLED,
        verb="cancel",
    )
    cancel_unsent_jobs(database, campaign_id)
    return state


def cancel_unsent_jobs(database: Database, campaign_id: int) -> int:
    """Jobs not yet handed to a relay end as cancelled; ones being sent finish first."""
    with database.session() as session:
        result = session.execute(
            update(Job)
            .where(
                Job.campaign_id == campaign_id,
                job_is_claimable(),
            )
            .values(state=JobState.CANCELLED, updated_at=utc_now())
        )
        return rows_matched(result)


def campaign_status(database: Database, campaign_id: int) -> CampaignStatus:
    with database.session() as session:
        campaign = _campaign(session, campaign_id)
        counts = job_state_counts(session, campaign_id)
        list_name = session.scalar(
            select(RecipientList.name).where(RecipientList.id == campaign.list_id)
        )
        return CampaignStatus(
            id=campaign.id,
            name=campaign.name,
            state=campaign.state,
            list_name=list_name or "",
            template_name=campaign.template_name,
            counts=counts,
            send_at=campaign.send_at,
            started_at=campaign.started_at,
            finished_at=campaign.finished_at,
        )


def campaigns_sending(database: Database) -> int:
    """Campaigns running now (their jobs are being released to the workers)."""
    with database.session() as session:
        running = select(func.count()).where(Campaign.state == CampaignState.RUNNING)
        return session.scalar(running) or 0


def get_campaign(database: Database, campaign_id: int) -> Campaign:
    with database.session() as session:
        return _campaign(session, campaign_id)


def _transition(
    database: Database, campaign_id: int, *, allowed: tuple[str, ...], target: Any, verb: str
) -> str:
    with database.session() as session:
        campaign = _campaign(session, campaign_id, for_update=True)
        if campaign.state not in allowed:
            raise StateError(f"campaign {campaign_id} is {campaign.state}; cannot {verb} it")
        campaign.state = target(campaign)
        if campaign.state == CampaignState.CANCELLED:
            campaign.finished_at = utc_now()
        return campaign.state


def _campaign(session: Any, campaign_id: int, *, for_update: bool = False) -> Campaign:
    # A transactional stream is no campaign a person pauses, cancels or schedules.
    query = select(Campaign).where(Campaign.id == campaign_id, ~campaign_is_stream())
    if for_update:
        query = query.with_for_update()
    campaign = session.scalar(query)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


def _list_by_name(session: Any, list_name: str) -> RecipientList:
    recipient_list = session.scalar(select(RecipientList).where(RecipientList.name == list_name))
    # Holding lists keep removed and erased people's rows for their history, not to be mailed.
    if recipient_list is None or is_holding_list(list_name):
        raise NotFound(f"list {list_name!r} not found (import one with `edm lists import`)")
    return recipient_list

"""JSON API for campaigns: create, schedule, pause, resume, cancel, retry, and watch."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from campaigns.core.models import JobState
from campaigns.core.spreadsheet_csv import safe_cell
from campaigns.lifecycle import campaign_service
from campaigns.lifecycle.campaign_edits import (
    DraftChanges,
    archive_campaign,
    clone_campaign,
    delete_campaign,
    edit_draft,
)
from campaigns.lifecycle.failures import retry_failures
from campaigns.lifecycle.schedule_requests import When, schedule_plan
from dashboard.api_templates import PreviewOut
from dashboard.auth import RequireEditor, RequireViewer
from dashboard.campaign_queries import (
    EXPORT_COLUMNS,
    BounceReason,
    Bucket,
    CampaignRow,
    EventRow,
    JobPage,
    JobRow,
    Progress,
    bounce_reasons,
    campaign_overview,
    campaign_row,
    campaign_rows,
    events_over_time,
    export_rows,
    job_detail,
    search_jobs,
    sends_per_minute,
)
from dashboard.campaign_rates import CampaignRates, campaign_rates
from dashboard.dependencies import (
    MAX_ID,
    CampaignId,
    ChartCacheDep,
    DatabaseDep,
    SettingsDep,
    Text,
)
from dashboard.template_files import checked_name
from dashboard.template_preview import campaign_preview
from workers.relays.config import relay_names

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"], dependencies=[RequireViewer])
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="the recipient's job id")]
StateFilter = Annotated[JobState | None, Query(description="only recipients in this state")]


# Named outside CampaignCreate, whose field "list" hides the built-in there.
RelayNames = list[Annotated[Text, Field(max_length=200)]]


class CampaignCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    list: Text = Field(min_length=1, max_length=200, description="recipient list name")
    template: Text = Field(min_length=1, max_length=64, description="template name")
    from_address: Text = Field(min_length=3, max_length=400, examples=["News <news@example.com>"])
    subject: Text | None = Field(None, max_length=2000, description="replaces the template's")
    tracking: bool = True
    relays: RelayNames = Field(
        [],
        max_length=50,
        description="names of configured relays to send through; empty: every relay, by weight",
    )


class CampaignEdit(BaseModel):
    """A draft's parts to change; those left out (or null) stay as they are."""

    name: Text | None = Field(None, min_length=1, max_length=200)
    list: Text | None = Field(None, min_length=1, max_length=200, description="list name")
    template: Text | None = Field(
        None, min_length=1, max_length=64, description="read again, with its subject"
    )
    from_address: Text | None = Field(None, min_length=3, max_length=400)
    subject: Text | None = Field(None, max_length=2000, description="replaces the template's")
    tracking: bool | None = None
    relays: RelayNames | None = Field(None, max_length=50, description="empty: every relay")


class CloneRequest(BaseModel):
    name: Text | None = Field(None, min_length=1, max_length=200, description="default: (copy)")


class ArchiveRequest(BaseModel):
    archived: bool = Field(True, description="false: back in the campaign list")


class CampaignRatesOut(BaseModel):
    recipients: int
    sent: int
    delivered: int
    opened: int
    """Recipients with an open by a person (machine-made opens left out)."""
    clicked: int
    sent_rate: float | None
    delivered_rate: float | None
    open_rate: float | None
    click_rate: float | None

    @classmethod
    def of(cls, rates: CampaignRates) -> CampaignRatesOut:
        return cls(
            recipients=rates.recipients,
            sent=rates.sent,
            delivered=rates.delivered,
            opened=rates.opened,
            clicked=rates.clicked,
            sent_rate=rates.sent_rate,
            delivered_rate=rates.delivered_rate,
            open_rate=rates.open_rate,
            click_rate=rates.click_rate,
        )


class ScheduleRequest(BaseModel):
    when: When = "now"
    at: Text | None = Field(
        None, max_length=40, description="ISO 8601 date and time, e.g. 2026-12-01T09:00"
    )
    timezone: Text = Field("UTC", max_length=64, description="IANA zone of 'at'")
    timezone_field: Text = Field(
        "timezone", max_length=64, description="merge field with each recipient's zone"
    )
    spread_hours: float = Field(0.0, ge=0, le=720, description="release evenly over this long")


class RetryRequest(BaseModel):
    include_unknown: bool = False
    include_policy: bool = False


class CampaignDetail(BaseModel):
    campaign: CampaignRow
    counts: dict[str, int]
    """Recipients by job state."""
    progress: Progress
    counters: dict[str, int]
    """Events: opens, unique_opens, clicks, bounces, unsubscribes, complaints..."""


class ScheduleOut(BaseModel):
    state: str
    jobs: int
    first_due: datetime
    last_due: datetime
    recipients_without_zone: int


class StateOut(BaseModel):
    id: int
    state: str


class RetryOut(BaseModel):
    state: str
    due_now: int
    requeued: dict[str, int]


class JobOut(BaseModel):
    job: JobRow
    events: list[EventRow]


class SeriesOut(BaseModel):
    sends_per_minute: list[Bucket]
    events_per_hour: dict[str, list[Bucket]]


def detail(database: Any, campaign_id: int) -> CampaignDetail:
    overview = campaign_overview(database, campaign_id)
    return CampaignDetail(
        campaign=overview.campaign,
        counts=overview.status.counts,
        progress=overview.progress,
        counters=overview.counters,
    )


@router.get("", summary="Campaigns, newest first (the archived ones apart)")
def get_campaigns(
    database: DatabaseDep,
    archived: Annotated[bool, Query(description="the archived campaigns instead")] = False,
) -> list[CampaignRow]:
    return campaign_rows(database, archived=archived)


@router.get("/rates", summary="Sent, delivered, human-open and click rates of campaigns")
def get_rates(
    database: DatabaseDep,
    ids: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_ID)]],
        Query(max_length=200, description="campaign ids"),
    ],
) -> dict[int, CampaignRatesOut]:
    return {
        campaign_id: CampaignRatesOut.of(rates)
        for campaign_id, rates in campaign_rates(database, ids).items()
    }


@router.post("", status_code=201, summary="Create a draft campaign", dependencies=[RequireEditor])
def post_campaign(
    body: CampaignCreate, database: DatabaseDep, settings: SettingsDep
) -> CampaignDetail:
    campaign = campaign_service.create_campaign(
        database,
        name=body.name.strip(),
        list_name=body.list,
        template=checked_name(body.template),
        from_address=body.from_address,
        templates_dir=settings.resolved_templates_dir,
        subject=body.subject or None,
        tracking=body.tracking,
        relays=body.relays,
        configured_relays=relay_names(settings) if body.relays else (),
    )
    return detail(database, campaign.id)


@router.patch(
    "/{campaign_id}",
    summary="Change a draft (fields left out stay; a new template is read again)",
    dependencies=[RequireEditor],
)
def patch_campaign(
    campaign_id: CampaignId, body: CampaignEdit, database: DatabaseDep, settings: SettingsDep
) -> CampaignDetail:
    edit_draft(
        database,
        campaign_id,
        DraftChanges(
            name=body.name,
            list_name=body.list,
            template=checked_name(body.template) if body.template is not None else None,
            from_address=body.from_address,
            subject=body.subject,
            tracking=body.tracking,
            relays=body.relays,
        ),
        templates_dir=settings.resolved_templates_dir,
        configured_relays=relay_names(settings) if body.relays else (),
    )
    return detail(database, campaign_id)


@router.post(
    "/{campaign_id}/clone",
    status_code=201,
    summary="A new draft copied from the campaign",
    dependencies=[RequireEditor],
)
def post_clone(
    campaign_id: CampaignId, database: DatabaseDep, body: CloneRequest | None = None
) -> CampaignDetail:
    clone = clone_campaign(database, campaign_id, name=body.name if body else None)
    return detail(database, clone.id)


@router.post(
    "/{campaign_id}/archive",
    summary="Hide a finished campaign that has sent from the list (history kept)",
    dependencies=[RequireEditor],
)
def post_archive(
    campaign_id: CampaignId, database: DatabaseDep, body: ArchiveRequest | None = None
) -> CampaignRow:
    archive_campaign(database, campaign_id, archived=body.archived if body else True)
    return campaign_row(database, campaign_id)


@router.delete(
    "/{campaign_id}",
    status_code=204,
    summary="Delete a campaign that has sent nothing (one that has is archived instead)",
    dependencies=[RequireEditor],
)
def delete_campaign_route(campaign_id: CampaignId, database: DatabaseDep) -> Response:
    delete_campaign(database, campaign_id)
    return Response(status_code=204)


@router.get("/{campaign_id}", summary="A campaign with its progress and counts")
def get_campaign(campaign_id: CampaignId, database: DatabaseDep) -> CampaignDetail:
    return detail(database, campaign_id)


@router.post(
    "/{campaign_id}/schedule",
    summary="Check the template and schedule sending",
    dependencies=[RequireEditor],
)
def post_schedule(
    campaign_id: CampaignId, body: ScheduleRequest, database: DatabaseDep, settings: SettingsDep
) -> ScheduleOut:
    plan = schedule_plan(
        body.when,
        at=body.at,
        timezone=body.timezone,
        timezone_field=body.timezone_field,
        spread_hours=body.spread_hours,
    )
    result = campaign_service.schedule_campaign(
        database,
        campaign_id,
        send_at=plan.send_at,
        local_time=plan.local_time,
        spread_hours=plan.spread_hours,
        render_cpu_limit_s=settings.template_render_cpu_s,
    )
    return ScheduleOut(
        state=campaign_row(database, campaign_id).state,
        jobs=result.jobs,
        first_due=result.first_due,
        last_due=result.last_due,
        recipients_without_zone=result.recipients_without_zone,
    )


@router.post(
    "/{campaign_id}/pause", summary="Stop sending within a second", dependencies=[RequireEditor]
)
def post_pause(campaign_id: CampaignId, database: DatabaseDep) -> StateOut:
    return StateOut(id=campaign_id, state=campaign_service.pause_campaign(database, campaign_id))


@router.post(
    "/{campaign_id}/resume", summary="Continue a paused campaign", dependencies=[RequireEditor]
)
def post_resume(campaign_id: CampaignId, database: DatabaseDep) -> StateOut:
    return StateOut(id=campaign_id, state=campaign_service.resume_campaign(database, campaign_id))


@router.post(
    "/{campaign_id}/cancel",
    summary="Cancel every message not yet sent",
    dependencies=[RequireEditor],
)
def post_cancel(campaign_id: CampaignId, database: DatabaseDep) -> StateOut:
    return StateOut(id=campaign_id, state=campaign_service.cancel_campaign(database, campaign_id))


@router.post(
    "/{campaign_id}/retry",
    summary="Queue again the failures that may pass",
    dependencies=[RequireEditor],
)
def post_retry(
    campaign_id: CampaignId, database: DatabaseDep, body: RetryRequest | None = None
) -> RetryOut:
    body = body or RetryRequest()
    result = retry_failures(
        database,
        campaign_id,
        include_unknown=body.include_unknown,
        include_policy=body.include_policy,
    )
    return RetryOut(state=result.campaign_state, due_now=result.due_now, requeued=result.requeued)


@router.get("/{campaign_id}/preview", summary="The campaign's message as one recipient gets it")
def get_preview(
    campaign_id: CampaignId,
    database: DatabaseDep,
    settings: SettingsDep,
    recipient_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> PreviewOut:
    preview = campaign_preview(
        database,
        campaign_id,
        recipient_id=recipient_id,
        cpu_limit_s=settings.template_render_cpu_s,
    )
    rendered = preview.rendered
    return PreviewOut(
        email=preview.email, subject=rendered.subject, html=rendered.html, text=rendered.text
    )


@router.get("/{campaign_id}/recipients", summary="The campaign's recipients, by address")
def get_recipients(
    campaign_id: CampaignId,
    database: DatabaseDep,
    q: Annotated[Text, Query(max_length=320, description="any part of the address")] = "",
    state: StateFilter = None,
    after: Annotated[Text, Query(max_length=320, description="next_after of the page before")] = "",
    before: Annotated[
        Text, Query(max_length=320, description="previous_before of the page after")
    ] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    return search_jobs(
        database,
        campaign_id,
        contains=q,
        state=str(state) if state else None,
        after=after,
        before=before,
        limit=limit,
    )


@router.get("/{campaign_id}/recipients/{job_id}", summary="One recipient's job and its events")
def get_recipient(campaign_id: CampaignId, job_id: JobId, database: DatabaseDep) -> JobOut:
    job, events = job_detail(database, campaign_id, job_id)
    return JobOut(job=job, events=events)


@router.get("/{campaign_id}/bounce-reasons", summary="The most common refusals")
def get_bounce_reasons(campaign_id: CampaignId, database: DatabaseDep) -> list[BounceReason]:
    campaign_row(database, campaign_id)
    return bounce_reasons(database, campaign_id)


@router.get("/{campaign_id}/series", summary="Sends per minute and opens/clicks per hour")
def get_series(campaign_id: CampaignId, database: DatabaseDep, cache: ChartCacheDep) -> SeriesOut:
    campaign_row(database, campaign_id)
    return cache.get(
        ("series", campaign_id),
        lambda: SeriesOut(
            sends_per_minute=sends_per_minute(database, campaign_id),
            events_per_hour=events_over_time(database, campaign_id),
        ),
    )


@router.get(
    "/{campaign_id}/export.csv",
    summary="Every recipient with state, reply and engagement, as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_export(campaign_id: CampaignId, database: DatabaseDep) -> StreamingResponse:
    rows = export_rows(database, campaign_id)
    return StreamingResponse(
        csv_lines(EXPORT_COLUMNS, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'},
    )


def csv_lines(header: tuple[str, ...], rows: Iterator[tuple[object, ...]]) -> Iterator[str]:
    """CSV text in pieces of a thousand rows, every cell spreadsheet-safe (``safe_cell``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([safe_cell(name) for name in header])
    for count, row in enumerate(rows, start=1):
        writer.writerow([safe_cell(value) for value in row])
        if count % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()

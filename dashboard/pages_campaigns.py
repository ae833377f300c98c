"""Campaign pages: the list, the new-campaign form, and the campaign page with its live parts.

Forms post here (with the session's CSRF token) and call the same functions as the JSON API; a
refusal re-renders the page with its one-line reason.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from campaigns.core.errors import EdmError
from campaigns.core.models import CampaignState, JobState
from campaigns.lifecycle import campaign_service
from campaigns.lifecycle.campaign_edits import (
    DraftChanges,
    archive_campaign,
    clone_campaign,
    delete_campaign,
    edit_draft,
)
from campaigns.lifecycle.failures import retry_failures
from campaigns.lifecycle.schedule_requests import schedule_plan
from dashboard.auth import RequireEditor, RequireViewer
from dashboard.campaign_queries import (
    CampaignRow,
    bounce_reasons,
    campaign_overview,
    campaign_row,
    campaign_rows,
    events_over_time,
    job_detail,
    search_jobs,
    sends_per_minute,
)
from dashboard.campaign_rates import campaign_rates
from dashboard.charts import events_chart, sends_chart
from dashboard.dependencies import (
    MAX_ID,
    CampaignId,
    ChartCacheDep,
    DatabaseDep,
    SettingsDep,
    Text,
)
from dashboard.http_errors import status_of
from dashboard.list_queries import list_summaries
from dashboard.page_rendering import render
from dashboard.template_files import checked_name, template_names
from dashboard.template_preview import campaign_preview
from workers.relays.config import relay_names

router = APIRouter(include_in_schema=False, dependencies=[RequireViewer])

FINAL_STATES = (CampaignState.COMPLETED, CampaignState.CANCELLED)
STATE_ORDER = [str(state) for state in JobState]
COUNTER_NAMES = (
    ("unique_opens", "Opened"),
    ("unique_clicks", "Clicked"),
    ("bounces", "Bounces"),
    ("unsubscribes", "Unsubscribed"),
    ("complaints", "Complaints"),
)


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


@router.get("/")
def home() -> Response:
    return RedirectResponse("/campaigns", status_code=303)


@router.get("/campaigns")
def campaigns_page(
    request: Request, database: DatabaseDep, archived: Annotated[bool, Query()] = False
) -> Response:
    rows = campaign_rows(database, archived=archived)
    return render(
        request,
        "campaigns.html",
        {
            "section": "Campaigns",
            "campaigns": rows,
            "rates": campaign_rates(database, [row.id for row in rows]),
            "archived": archived,
            "notice": NOTICES.get(request.query_params.get("notice", "")),
        },
    )


def _new_form(
    request: Request,
    database: Any,
    settings: Any,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
    editing: CampaignRow | None = None,
) -> Response:
    try:
        relays = relay_names(settings)
    except EdmError:
        relays = []
    return render(
        request,
        "campaign_new.html",
        {
            "section": "Campaigns",
            "lists": list_summaries(database),
            "templates": template_names(settings.resolved_templates_dir),
            "relays": relays,
            "values": values or {"tracking": True},
            "error": error,
            "editing": editing,
        },
        status_code=status,
    )


@router.get("/campaigns/new", dependencies=[RequireEditor])
def new_campaign_page(request: Request, database: DatabaseDep, settings: SettingsDep) -> Response:
    values: dict[str, Any] = {"tracking": True, "list": request.query_params.get("list", "")}
    return _new_form(request, database, settings, values=values)


@dataclass(frozen=True)
class CampaignForm:
    """The new-campaign and edit-draft form as posted."""

    name: str
    list_name: str
    template: str
    from_address: str
    subject: str
    tracking: bool
    relay: str

    def values(self) -> dict[str, Any]:
        """The fields as the form template shows them again after a refusal."""
        return {
            "name": self.name,
            "list": self.list_name,
            "template": self.template,
            "from_address": self.from_address,
            "subject": self.subject,
            "tracking": self.tracking,
            "relay": self.relay,
        }


def campaign_form(
    name: Annotated[Text, Form(max_length=200)] = "",
    list_name: Annotated[Text, Form(alias="list", max_length=200)] = "",
    template: Annotated[Text, Form(max_length=64)] = "",
    from_address: Annotated[Text, Form(max_length=400)] = "",
    subject: Annotated[Text, Form(max_length=2000)] = "",
    tracking: Annotated[str, Form(max_length=10)] = "",
    relay: Annotated[Text, Form(max_length=200)] = "",
) -> CampaignForm:
    return CampaignForm(name, list_name, template, from_address, subject, bool(tracking), relay)


CampaignFormDep = Annotated[CampaignForm, Depends(campaign_form)]


@router.post("/campaigns/new", dependencies=[RequireEditor])
def create_campaign_form(
    request: Request, database: DatabaseDep, settings: SettingsDep, form: CampaignFormDep
) -> Response:
    try:
        if not form.name.strip():
            raise _Refused("Name: give the campaign a name")
        campaign = campaign_service.create_campaign(
            database,
            name=form.name.strip(),
            list_name=form.list_name,
            template=checked_name(form.template),
            from_address=form.from_address,
            templates_dir=settings.resolved_templates_dir,
            subject=form.subject or None,
            tracking=form.tracking,
            relays=[form.relay] if form.relay else [],
            configured_relays=relay_names(settings) if form.relay else (),
        )
    except (EdmError, _Refused) as error:
        status = status_of(error) if isinstance(error, EdmError) else 400
        return _new_form(
            request, database, settings, values=form.values(), error=str(error), status=status
        )
    return RedirectResponse(f"/campaigns/{campaign.id}?notice=created", status_code=303)


class _Refused(Exception):
    pass


NOTICES = {
    "created": "Campaign created. Check the preview, then schedule it.",
    "edited": "Draft saved. Check the preview, then schedule it.",
    "cloned": "A new draft, copied from the campaign. Edit it, then schedule it.",
    "archived": "Archived: hidden from the campaign list; its history and counters stay.",
    "unarchived": "Back in the campaign list.",
    "deleted": "Draft deleted.",
    "scheduled": "Scheduled. Sending starts at the due time; this page follows it live.",
    "paused": "Paused: no new message starts; messages already on the wire finish.",
    "resumed": "Resumed.",
    "cancelled": "Cancelled: every message not yet sent ends as cancelled.",
}


def _campaign_page(
    request: Request,
    database: Any,
    campaign_id: int,
    *,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    overview = campaign_overview(database, campaign_id)
    return render(
        request,
        "campaign.html",
        {
            "section": "Campaigns",
            "overview": overview,
            "live": _live_context(overview),
            "time_zones": time_zones(),
            "error": error,
            "notice": notice or NOTICES.get(request.query_params.get("notice", "")),
            "job_states": STATE_ORDER,
        },
        status_code=status,
    )


def _live_context(overview: Any) -> dict[str, Any]:
    counts = overview.status.counts
    return {
        "campaign": overview.campaign,
        "progress": overview.progress,
        "counts": [(state, counts.get(state, 0)) for state in STATE_ORDER],
        "counters": [(label, overview.counters.get(name, 0)) for name, label in COUNTER_NAMES],
        "polling": overview.campaign.state not in FINAL_STATES,
    }


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, campaign_id: CampaignId, database: DatabaseDep) -> Response:
    return _campaign_page(request, database, campaign_id)


@router.get("/campaigns/{campaign_id}/preview")
def campaign_preview_part(
    request: Request,
    campaign_id: CampaignId,
    database: DatabaseDep,
    settings: SettingsDep,
    recipient_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    try:
        preview = campaign_preview(
            database,
            campaign_id,
            recipient_id=recipient_id,
            cpu_limit_s=settings.template_render_cpu_s,
        )
    except EdmError as error:
        return render(request, "message_preview.html", {"error": str(error)})
    return render(request, "message_preview.html", {"preview": preview})


@router.get("/campaigns/{campaign_id}/live")
def campaign_live(
    request: Request,
    campaign_id: CampaignId,
    database: DatabaseDep,
) -> Response:
    overview = campaign_overview(database, campaign_id)
    return render(
        request, "campaign_live.html", {"live": _live_context(overview), "refreshed": True}
    )


@router.get("/campaigns/{campaign_id}/charts")
def campaign_charts(
    request: Request, campaign_id: CampaignId, database: DatabaseDep, cache: ChartCacheDep
) -> Response:
    campaign = campaign_row(database, campaign_id)
    # Keyed by state too: the last drawing, once the campaign ends, is never an old one.
    key = ("charts", campaign_id, campaign.state)
    charts = cache.get(key, lambda: draw_charts(database, campaign_id))
    return render(
        request,
        "campaign_charts.html",
        {"campaign": campaign, **charts, "polling": campaign.state not in FINAL_STATES},
    )


def draw_charts(database: Any, campaign_id: int) -> dict[str, Any]:
    return {
        "sends": sends_chart(sends_per_minute(database, campaign_id)),
        "events": events_chart(events_over_time(database, campaign_id)),
        "reasons": bounce_reasons(database, campaign_id),
    }


@router.get("/campaigns/{campaign_id}/recipients")
def campaign_recipients(
    request: Request,
    campaign_id: CampaignId,
    database: DatabaseDep,
    q: Annotated[Text, Query(max_length=320)] = "",
    state: Annotated[str, Query(max_length=16)] = "",
    after: Annotated[Text, Query(max_length=320)] = "",
    before: Annotated[Text, Query(max_length=320)] = "",
) -> Response:
    state_filter = state if state in STATE_ORDER else None
    page = search_jobs(
        database,
        campaign_id,
        contains=q,
        state=state_filter,
        after=after,
        before=before,
        limit=25,
    )
    return render(
        request,
        "campaign_recipients.html",
        {"campaign_id": campaign_id, "page": page, "q": q, "state": state_filter or ""},
    )


@router.get("/campaigns/{campaign_id}/recipients/{job_id}")
def campaign_recipient(
    request: Request,
    campaign_id: CampaignId,
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    database: DatabaseDep,
) -> Response:
    job, events = job_detail(database, campaign_id, job_id)
    return render(
        request,
        "campaign_recipient.html",
        {"campaign_id": campaign_id, "job": job, "events": events},
    )


@router.post("/campaigns/{campaign_id}/schedule", dependencies=[RequireEditor])
def schedule_form(
    request: Request,
    campaign_id: CampaignId,
    database: DatabaseDep,
    settings: SettingsDep,
    when: Annotated[str, Form(max_length=16)] = "now",
    at: Annotated[Text, Form(max_length=40)] = "",
    timezone: Annotated[Text, Form(max_length=64)] = "UTC",
    timezone_field: Annotated[Text, Form(max_length=64)] = "timezone",
) -> Response:
    try:
        if when not in ("now", "at", "local_time"):
            raise _Refused("When: choose now, a date and time, or each recipient's local time")
        plan = schedule_plan(
            when,  # type: ignore[arg-type]
            at=at or None,
            timezone=timezone or "UTC",
            timezone_field=timezone_field,
            spread_hours=0.0,
        )
        campaign_service.schedule_campaign(
            database,
            campaign_id,
            send_at=plan.send_at,
            local_time=plan.local_time,
            spread_hours=plan.spread_hours,
            render_cpu_limit_s=settings.template_render_cpu_s,
        )
    except (EdmError, _Refused) as error:
        status = status_of(error) if isinstance(error, EdmError) else 400
        return _campaign_page(request, database, campaign_id, error=str(error), status=status)
    return RedirectResponse(f"/campaigns/{campaign_id}?notice=scheduled", status_code=303)


@router.get("/campaigns/{campaign_id}/edit", dependencies=[RequireEditor])
def edit_campaign_page(
    request: Request, campaign_id: CampaignId, database: DatabaseDep, settings: SettingsDep
) -> Response:
    campaign = campaign_row(database, campaign_id)
    if campaign.state != CampaignState.DRAFT:
        return _campaign_page(
            request,
            database,
            campaign_id,
            error=f"campaign {campaign_id} is {campaign.state}; only a draft is edited "
            "(clone it to make a new draft)",
            status=409,
        )
    return _new_form(request, database, settings, values=_draft_values(campaign), editing=campaign)


def _draft_values(campaign: CampaignRow) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "list": campaign.list_name,
        "template": campaign.template_name,
        "from_address": campaign.from_address,
        "subject": campaign.subject,
        "tracking": campaign.tracking,
        "relay": (campaign.relays or [""])[0],
    }


@router.post("/campaigns/{campaign_id}/edit", dependencies=[RequireEditor])
def edit_campaign_form(
    request: Request,
    campaign_id: CampaignId,
    database: DatabaseDep,
    settings: SettingsDep,
    form: CampaignFormDep,
) -> Response:
    campaign = campaign_row(database, campaign_id)
    new_template = form.template != campaign.template_name
    # The form shows the stored subject: left as it was, a new template brings its own.
    subject_given = form.subject != campaign.subject and bool(form.subject.strip())
    try:
        edit_draft(
            database,
            campaign_id,
            DraftChanges(
                name=form.name,
                list_name=form.list_name,
                template=checked_name(form.template) if new_template else None,
                from_address=form.from_address,
                subject=form.subject if subject_given else None,
                tracking=form.tracking,
                relays=[form.relay] if form.relay else [],
            ),
            templates_dir=settings.resolved_templates_dir,
            configured_relays=relay_names(settings) if form.relay else (),
        )
    except EdmError as error:
        return _new_form(
            request,
            database,
            settings,
            values=form.values(),
            error=str(error),
            status=status_of(error),
            editing=campaign,
        )
    return RedirectResponse(f"/campaigns/{campaign_id}?notice=edited", status_code=303)


@router.post("/campaigns/{campaign_id}/{action}", dependencies=[RequireEditor])
def action_form(
    request: Request,
    campaign_id: CampaignId,
    action: str,
    database: DatabaseDep,
    include_unknown: Annotated[str, Form(max_length=10)] = "",
    include_policy: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    actions = {
        "pause": (campaign_service.pause_campaign, "paused"),
        "resume": (campaign_service.resume_campaign, "resumed"),
        "cancel": (campaign_service.cancel_campaign, "cancelled"),
        "archive": (_archive, "archived"),
        "unarchive": (_unarchive, "unarchived"),
    }
    try:
        if action == "retry":
            result = retry_failures(
                database,
                campaign_id,
                include_unknown=bool(include_unknown),
                include_policy=bool(include_policy),
            )
            again = sum(result.requeued.values())
            notice = (
                f"{again} recipients queued again, {result.due_now} deferred now due."
                if result.total
                else "Nothing to retry: no failure that may pass."
            )
            return _campaign_page(request, database, campaign_id, notice=notice)
        if action not in (*actions, "clone", "delete"):
            return _campaign_page(
                request, database, campaign_id, error=f"unknown action {action!r}", status=404
            )
        if action == "clone":
            clone = clone_campaign(database, campaign_id)
            return RedirectResponse(f"/campaigns/{clone.id}?notice=cloned", status_code=303)
        if action == "delete":
            delete_campaign(database, campaign_id)
            return RedirectResponse("/campaigns?notice=deleted", status_code=303)
        function, notice_key = actions[action]
        function(database, campaign_id)
    except EdmError as error:
        return _campaign_page(
            request, database, campaign_id, error=str(error), status=status_of(error)
        )
    return RedirectResponse(f"/campaigns/{campaign_id}?notice={notice_key}", status_code=303)


def _archive(database: Any, campaign_id: int) -> str:
    return str(archive_campaign(database, campaign_id).state)


def _unarchive(database: Any, campaign_id: int) -> str:
    return str(archive_campaign(database, campaign_id, archived=False).state)

"""JSON API for webhook endpoints (admins only): add (the secret is in that answer only), list,
the delivery log, remove, resume, and a signed test event."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from campaigns.core.event_outbox import OUTGOING_EVENT_KINDS
from campaigns.webhooks.destinations import MAX_URL_CHARS
from campaigns.webhooks.endpoints import (
    EndpointListing,
    add_endpoint,
    endpoint,
    list_endpoints,
    recent_attempts,
    remove_endpoint,
    resume_endpoint,
)
from dashboard.auth import RequireAdmin
from dashboard.dependencies import MAX_ID, DatabaseDep, SettingsDep, Text
from workers.webhook_delivery import send_test_event

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], dependencies=[RequireAdmin])
EndpointId = Annotated[int, Path(ge=1, le=MAX_ID, description="webhook endpoint id")]
EventName = Literal[
    "sent", "deferred", "bounced", "complained", "opened", "clicked", "unsubscribed"
]
assert set(get_args(EventName)) == set(OUTGOING_EVENT_KINDS)


class EndpointIn(BaseModel):
    url: Text = Field(max_length=MAX_URL_CHARS, description="http or https")
    events: list[EventName] = Field(min_length=1, max_length=len(OUTGOING_EVENT_KINDS))
    campaign_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    category: Text | None = Field(default=None, max_length=32)


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str]
    campaign_id: int | None
    category: str | None
    state: str = Field(description="active, or paused after failing every attempt for a while")
    consecutive_failures: int
    failing_since: datetime | None
    next_attempt_at: datetime | None
    pending_events: int
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="signs every request; shown in this answer only")


class AttemptOut(BaseModel):
    attempted_at: datetime
    events: int
    status_code: int | None
    response_ms: int
    error: str | None


class TestResult(BaseModel):
    status_code: int | None
    response_ms: int
    error: str | None


def _out(listing: EndpointListing) -> EndpointOut:
    return EndpointOut(**asdict(listing))


@router.get("", summary="Every webhook endpoint with its state and waiting events")
def get_endpoints(database: DatabaseDep) -> list[EndpointOut]:
    return [_out(listing) for listing in list_endpoints(database)]


@router.post("", status_code=201, summary="Subscribe a URL to delivery events")
async def post_endpoint(
    body: EndpointIn, database: DatabaseDep, settings: SettingsDep
) -> EndpointCreated:
    # Resolving the host may take a while: off the event loop.
    created, secret = await run_in_threadpool(
        add_endpoint,
        database,
        body.url,
        events=list(body.events),
        campaign_id=body.campaign_id,
        category=body.category,
        allow_private=settings.outgoing_webhook_allow_private,
    )
    return EndpointCreated(**asdict(created), secret=secret)


@router.get("/{endpoint_id}", summary="One endpoint")
def get_endpoint(endpoint_id: EndpointId, database: DatabaseDep) -> EndpointOut:
    return _out(endpoint(database, endpoint_id))


@router.get("/{endpoint_id}/attempts", summary="The endpoint's latest POSTs, newest first")
def get_attempts(endpoint_id: EndpointId, database: DatabaseDep) -> list[AttemptOut]:
    endpoint(database, endpoint_id)
    return [AttemptOut(**asdict(attempt)) for attempt in recent_attempts(database, endpoint_id)]


@router.delete("/{endpoint_id}", status_code=204, summary="Remove an endpoint and its events")
def delete_endpoint(endpoint_id: EndpointId, database: DatabaseDep) -> None:
    remove_endpoint(database, endpoint_id)


@router.post("/{endpoint_id}/resume", summary="Deliver a paused endpoint's events again")
def post_resume(endpoint_id: EndpointId, database: DatabaseDep) -> EndpointOut:
    return _out(resume_endpoint(database, endpoint_id))


@router.post("/{endpoint_id}/test", summary="POST a signed test event to the endpoint now")
async def post_test(
    endpoint_id: EndpointId, database: DatabaseDep, settings: SettingsDep
) -> TestResult:
    result = await run_in_threadpool(send_test_event, database, settings, endpoint_id)
    return TestResult(
        status_code=result.status_code, response_ms=result.response_ms, error=result.error
    )

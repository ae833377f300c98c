"""The webhooks page (admins only): endpoints with their state, add, remove, resume, test, and
each endpoint's delivery log. Forms post here and the page is drawn again with the outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from campaigns.core.errors import EdmError
from campaigns.core.event_outbox import OUTGOING_EVENT_KINDS
from campaigns.webhooks.destinations import MAX_URL_CHARS
from campaigns.webhooks.endpoints import (
    add_endpoint,
    list_endpoints,
    recent_attempts,
    remove_endpoint,
    resume_endpoint,
)
from dashboard.auth import RequireAdmin
from dashboard.dependencies import MAX_ID, DatabaseDep, SettingsDep, Text
from dashboard.http_errors import status_of
from dashboard.page_rendering import render
from workers.webhook_delivery import send_test_event

router = APIRouter(include_in_schema=False, dependencies=[RequireAdmin])
EndpointId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _page(
    request: Request,
    database: DatabaseDep,
    *,
    notice: str | None = None,
    error: str | None = None,
    secret: str | None = None,
    status: int = 200,
) -> Response:
    endpoints = list_endpoints(database)
    return render(
        request,
        "webhooks.html",
        {
            "section": "Webhooks",
            "endpoints": endpoints,
            "attempts": {each.id: recent_attempts(database, each.id) for each in endpoints},
            "event_names": OUTGOING_EVENT_KINDS,
            "notice": notice,
            "error": error,
            "secret": secret,
        },
        status_code=status,
    )


@router.get("/webhooks")
def webhooks_page(request: Request, database: DatabaseDep) -> Response:
    return _page(request, database)


@router.post("/webhooks/new")
def new_endpoint(
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    url: Annotated[Text, Form(max_length=MAX_URL_CHARS)] = "",
    events: Annotated[list[Text], Form(max_length=len(OUTGOING_EVENT_KINDS))] = [],  # noqa: B006
    category: Annotated[Text, Form(max_length=32)] = "",
) -> Response:
    try:
        created, secret = add_endpoint(
            database,
            url,
            events=events,
            category=category or None,
            allow_private=settings.outgoing_webhook_allow_private,
        )
    except EdmError as error:
        return _page(request, database, error=str(error), status=status_of(error))
    notice = f"Endpoint {created.id} added. Copy its secret now: it is not shown again."
    return _page(request, database, notice=notice, secret=secret, status=201)


@router.post("/webhooks/{endpoint_id}/remove")
def remove(endpoint_id: EndpointId, database: DatabaseDep) -> Response:
    remove_endpoint(database, endpoint_id)
    return RedirectResponse("/webhooks", status_code=303)


@router.post("/webhooks/{endpoint_id}/resume")
def resume(endpoint_id: EndpointId, database: DatabaseDep) -> Response:
    resume_endpoint(database, endpoint_id)
    return RedirectResponse("/webhooks", status_code=303)


@router.post("/webhooks/{endpoint_id}/test")
def test(
    request: Request, endpoint_id: EndpointId, database: DatabaseDep, settings: SettingsDep
) -> Response:
    result = send_test_event(database, settings, endpoint_id)
    if result.delivered:
        notice = f"Endpoint {endpoint_id}: HTTP {result.status_code} in {result.response_ms} ms."
        return _page(request, database, notice=notice)
    reason = result.error or f"HTTP {result.status_code}"
    return _page(request, database, error=f"Endpoint {endpoint_id}: {reason}", status=502)

"""The workers page: who is online, the queue, the send rate against every limit, the alarm."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dashboard.api_workers import snapshot_of
from dashboard.auth import RequireViewer
from dashboard.dependencies import MonitorDep
from dashboard.page_rendering import render

router = APIRouter(include_in_schema=False, dependencies=[RequireViewer])


@router.get("/workers")
def workers_page(request: Request, monitor: MonitorDep) -> Response:
    return render(request, "workers.html", {"section": "Workers", "snapshot": snapshot_of(monitor)})


@router.get("/workers/live")
def workers_live(request: Request, monitor: MonitorDep) -> Response:
    return render(request, "workers_live.html", {"snapshot": snapshot_of(monitor)})

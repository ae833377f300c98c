"""List pages: the lists with the upload area, an import's progress and report, one list's
recipients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from dashboard.api_lists import import_out
from dashboard.auth import RequireViewer
from dashboard.dependencies import MAX_ID, DatabaseDep, ImportsDep, ListId, Text
from dashboard.list_queries import list_summaries, list_summary, search_recipients
from dashboard.page_rendering import render

router = APIRouter(include_in_schema=False, dependencies=[RequireViewer])
ImportId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/lists")
def lists_page(request: Request, database: DatabaseDep, imports: ImportsDep) -> Response:
    return render(
        request,
        "lists.html",
        {
            "section": "Lists",
            "lists": list_summaries(database),
            "imports": [import_out(progress, rows=0) for progress in imports.recent(10)],
        },
    )


@router.get("/lists/imports/{import_id}")
def import_page(request: Request, import_id: ImportId, imports: ImportsDep) -> Response:
    return render(
        request,
        "import.html",
        {"section": "Lists", "task": import_out(imports.progress(import_id))},
    )


@router.get("/lists/imports/{import_id}/progress")
def import_progress(request: Request, import_id: ImportId, imports: ImportsDep) -> Response:
    return render(
        request, "import_progress.html", {"task": import_out(imports.progress(import_id))}
    )


@router.get("/lists/{list_id}")
def list_page(request: Request, list_id: ListId, database: DatabaseDep) -> Response:
    summary = list_summary(database, list_id)
    return render(
        request,
        "list.html",
        {
            "section": "Lists",
            "summary": summary,
            "page": search_recipients(database, list_id, limit=25),
            "q": "",
        },
    )


@router.get("/lists/{list_id}/recipients")
def list_recipients(
    request: Request,
    list_id: ListId,
    database: DatabaseDep,
    q: Annotated[Text, Query(max_length=320)] = "",
    after: Annotated[Text, Query(max_length=320)] = "",
) -> Response:
    summary = list_summary(database, list_id)
    page = search_recipients(database, list_id, starts_with=q, after=after, limit=25)
    return render(request, "list_recipients.html", {"summary": summary, "page": page, "q": q})

"""List pages: the lists with the upload area, an import's progress and report, one list's
recipients, and renaming or deleting a list."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from campaigns.core.errors import EdmError
from campaigns.lifecycle.list_removal import delete_list, list_removal, rename_list
from dashboard.api_lists import import_out
from dashboard.auth import RequireEditor, RequireViewer
from dashboard.dependencies import MAX_ID, DatabaseDep, ImportsDep, ListId, Text
from dashboard.http_errors import status_of
from dashboard.list_queries import list_summaries, list_summary, search_recipients
from dashboard.page_rendering import render

router = APIRouter(include_in_schema=False, dependencies=[RequireViewer])
ImportId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/lists")
def lists_page(
    request: Request,
    database: DatabaseDep,
    imports: ImportsDep,
    deleted: Annotated[Text, Query(max_length=200)] = "",
) -> Response:
    return render(
        request,
        "lists.html",
        {
            "section": "Lists",
            "notice": f"List {deleted!r} deleted with its people." if deleted else None,
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
    return _list_page(request, list_id, database)


def _list_page(
    request: Request,
    list_id: int,
    database: DatabaseDep,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    summary = list_summary(database, list_id)
    notice = "Renamed." if request.query_params.get("notice") == "renamed" else None
    return render(
        request,
        "list.html",
        {
            "section": "Lists",
            "summary": summary,
            "removal": list_removal(database, list_id),
            "page": search_recipients(database, list_id, limit=25),
            "q": "",
            "error": error,
            "notice": notice,
        },
        status_code=status,
    )


@router.post("/lists/{list_id}/delete", dependencies=[RequireEditor])
def delete_list_form(request: Request, list_id: ListId, database: DatabaseDep) -> Response:
    try:
        removal = delete_list(database, list_id)
    except EdmError as error:
        return _list_page(request, list_id, database, error=str(error), status=status_of(error))
    return RedirectResponse(f"/lists?deleted={quote(removal.name)}", status_code=303)


@router.post("/lists/{list_id}/rename", dependencies=[RequireEditor])
def rename_list_form(
    request: Request,
    list_id: ListId,
    database: DatabaseDep,
    name: Annotated[Text, Form(max_length=200)] = "",
) -> Response:
    try:
        rename_list(database, list_id, name)
    except EdmError as error:
        return _list_page(request, list_id, database, error=str(error), status=status_of(error))
    return RedirectResponse(f"/lists/{list_id}?notice=renamed", status_code=303)


@router.get("/lists/{list_id}/recipients")
def list_recipients(
    request: Request,
    list_id: ListId,
    database: DatabaseDep,
    q: Annotated[Text, Query(max_length=320)] = "",
    after: Annotated[Text, Query(max_length=320)] = "",
    before: Annotated[Text, Query(max_length=320)] = "",
) -> Response:
    summary = list_summary(database, list_id)
    page = search_recipients(database, list_id, contains=q, after=after, before=before, limit=25)
    return render(request, "list_recipients.html", {"summary": summary, "page": page, "q": q})

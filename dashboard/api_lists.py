"""JSON API for recipient lists: upload and import in the background, reports, browsing."""

from __future__ import annotations

import builtins
import io
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from campaigns.core.spreadsheet_csv import write_csv
from campaigns.lifecycle.list_removal import (
    CampaignRef,
    ListRemoval,
    delete_list,
    list_removal,
    rename_list,
)
from dashboard.auth import EditorUser, RequireEditor, RequireViewer
from dashboard.background_imports import ImportProgress
from dashboard.dependencies import MAX_ID, DatabaseDep, ImportsDep, ListId, Text
from dashboard.list_queries import (
    ListSummary,
    RecipientPage,
    list_summaries,
    list_summary,
    search_recipients,
)

router = APIRouter(prefix="/api", tags=["lists"], dependencies=[RequireViewer])
ImportId = Annotated[int, Path(ge=1, le=MAX_ID, description="import id")]
SHOWN_REJECTED_ROWS = 100


class ImportOut(BaseModel):
    id: int
    list: str
    file_name: str
    state: str
    """queued, running, done or failed"""
    bytes_total: int
    bytes_read: int | None
    percent: float | None
    error: str | None
    counts: dict[str, int] | None
    """imported, updated, duplicates, rejected, suppressed (once done)"""
    # builtins: the field ``list`` above shadows the type inside this class.
    rejected_rows: builtins.list[dict[str, Any]]
    """The first rejected rows, each with line and reason; all of them: rejected.csv"""
    created_at: datetime
    finished_at: datetime | None


def import_out(progress: ImportProgress, *, rows: int = SHOWN_REJECTED_ROWS) -> ImportOut:
    report = progress.report or {}
    counts = None
    if progress.report is not None:
        counts = {
            name: int(report.get(name, 0))
            for name in ("imported", "updated", "duplicates", "rejected", "suppressed")
        }
    return ImportOut(
        id=progress.id,
        list=progress.list_name,
        file_name=progress.file_name,
        state=progress.state,
        bytes_total=progress.bytes_total,
        bytes_read=progress.bytes_read,
        percent=progress.percent,
        error=progress.error,
        counts=counts,
        rejected_rows=list(report.get("errors", []))[:rows],
        created_at=progress.created_at,
        finished_at=progress.finished_at,
    )


@router.get("/lists", summary="Recipient lists with their sizes")
def get_lists(database: DatabaseDep) -> list[ListSummary]:
    return list_summaries(database)


@router.get("/lists/{list_id}", summary="One recipient list")
def get_list(list_id: ListId, database: DatabaseDep) -> ListSummary:
    return list_summary(database, list_id)


class ListRemovalOut(BaseModel):
    id: int
    name: str
    people: int
    drafts: builtins.list[CampaignRef]
    keeping: builtins.list[CampaignRef]
    summary: str


def removal_out(removal: ListRemoval) -> ListRemovalOut:
    return ListRemovalOut(
        id=removal.list_id,
        name=removal.name,
        people=removal.people,
        drafts=removal.drafts,
        keeping=removal.keeping,
        summary=removal.summary(),
    )


class ListRename(BaseModel):
    name: Text = Field(min_length=1, max_length=200, description="the new name")


@router.get(
    "/lists/{list_id}/removal",
    summary="What deleting the list would take with it, or which campaigns keep it",
)
def get_removal(list_id: ListId, database: DatabaseDep) -> ListRemovalOut:
    return removal_out(list_removal(database, list_id))


@router.delete(
    "/lists/{list_id}",
    summary="Delete a list with its people and its drafts (refused once a campaign sent to it)",
    dependencies=[RequireEditor],
)
def delete_list_route(list_id: ListId, database: DatabaseDep) -> ListRemovalOut:
    return removal_out(delete_list(database, list_id))


@router.patch("/lists/{list_id}", summary="Rename a list", dependencies=[RequireEditor])
def patch_list(list_id: ListId, body: ListRename, database: DatabaseDep) -> ListSummary:
    rename_list(database, list_id, body.name)
    return list_summary(database, list_id)


@router.get("/lists/{list_id}/recipients", summary="Recipients whose address contains q")
def get_recipients(
    list_id: ListId,
    database: DatabaseDep,
    q: Annotated[Text, Query(max_length=320, description="any part of the address")] = "",
    after: Annotated[Text, Query(max_length=320, description="next_after of the page before")] = "",
    before: Annotated[
        Text, Query(max_length=320, description="previous_before of the page after")
    ] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RecipientPage:
    return search_recipients(database, list_id, contains=q, after=after, before=before, limit=limit)


@router.post(
    "/imports",
    status_code=202,
    summary="Upload a CSV and import it into a list in the background",
)
def post_import(
    user: EditorUser,
    imports: ImportsDep,
    file: Annotated[UploadFile, File(description="the recipient CSV")],
    list_name: Annotated[Text, Form(alias="list", min_length=1, max_length=200)],
    encoding: Annotated[Text, Form(max_length=40)] = "",
) -> ImportOut:
    task_id = imports.submit(
        file.file,
        file_name=file.filename or "upload.csv",
        list_name=list_name,
        encoding=encoding.strip() or None,
        user_id=user.user.id,
    )
    return import_out(imports.progress(task_id))


@router.get("/imports", summary="Recent imports, newest first")
def get_imports(imports: ImportsDep) -> list[ImportOut]:
    return [import_out(progress, rows=0) for progress in imports.recent()]


@router.get("/imports/{import_id}", summary="An import's progress, then its report")
def get_import(import_id: ImportId, imports: ImportsDep) -> ImportOut:
    return import_out(imports.progress(import_id))


@router.get(
    "/imports/{import_id}/rejected.csv",
    summary="Every rejected row of an import (line, reason) as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_rejected_csv(import_id: ImportId, imports: ImportsDep) -> StreamingResponse:
    progress = imports.progress(import_id)
    errors = (progress.report or {}).get("errors", [])
    buffer = io.StringIO()
    write_csv(((row["line"], row["reason"]) for row in errors), ("line", "reason"), buffer)
    name = f"import-{import_id}-rejected.csv"
    return StreamingResponse(
        iter([buffer.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

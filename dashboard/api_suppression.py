"""JSON API for the suppression list: search, add, remove, import a CSV, export as CSV."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from campaigns.core.models import Suppression
from campaigns.core.private_files import create_private_file, make_private_directory
from campaigns.lists.suppression import (
    EXPORT_COLUMNS,
    add_suppressions,
    iter_suppressions,
    parse_reason,
    remove_suppression,
)
from campaigns.lists.suppression_import import import_suppressions
from dashboard.address_pages import MAX_PAGE, address_page
from dashboard.api_campaigns import csv_lines
from dashboard.auth import EditorUser, RequireViewer
from dashboard.dependencies import DatabaseDep, SettingsDep, Text

router = APIRouter(prefix="/api/suppression", tags=["suppression"], dependencies=[RequireViewer])
MAX_ADDRESSES = 1000


class SuppressedOut(BaseModel):
    email: str
    """The address, or ``erased:`` and a keyed hash for an erased person."""
    reason: str
    detail: str | None
    created_at: datetime


class SuppressionPage(BaseModel):
    entries: list[SuppressedOut]
    next_after: str | None
    previous_before: str | None
    total: int
    first: int


class SuppressionAdd(BaseModel):
    addresses: list[Annotated[Text, Field(max_length=320)]] = Field(
        min_length=1, max_length=MAX_ADDRESSES
    )
    reason: Text = "manual"
    detail: Annotated[Text, Field(max_length=2000)] | None = None


class Address(BaseModel):
    email: Text = Field(min_length=1, max_length=320)


@router.get("", summary="Suppressed addresses that contain q, in address order")
def get_suppressions(
    database: DatabaseDep,
    q: Annotated[Text, Query(max_length=320, description="any part of the address")] = "",
    after: Annotated[Text, Query(max_length=320, description="next_after of the page before")] = "",
    before: Annotated[
        Text, Query(max_length=320, description="previous_before of the page after")
    ] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> SuppressionPage:
    with database.session() as session:
        query = select(Suppression, Suppression.email_key)
        rows, place = address_page(
            session,
            query,
            Suppression.email_key,
            contains=q,
            after=after,
            before=before,
            limit=limit,
        )
    return SuppressionPage(
        entries=[
            SuppressedOut(
                email=r.email_key, reason=r.reason, detail=r.detail, created_at=r.created_at
            )
            for r, _key in rows
        ],
        next_after=place.next_after,
        previous_before=place.previous_before,
        total=place.total,
        first=place.first,
    )


@router.post("", summary="Suppress addresses")
def post_suppressions(
    body: SuppressionAdd, database: DatabaseDep, _user: EditorUser
) -> dict[str, int]:
    reason = parse_reason(body.reason, "reason")
    added = add_suppressions(database, body.addresses, reason=reason, detail=body.detail)
    return {"added": added}


@router.post("/remove", summary="Allow mail to an address again")
def post_remove(body: Address, database: DatabaseDep, _user: EditorUser) -> dict[str, str]:
    remove_suppression(database, body.email)
    return {"detail": "removed"}


@router.post("/import", summary="Suppress every address of a CSV (reason, detail columns win)")
def post_import(
    database: DatabaseDep,
    settings: SettingsDep,
    _user: EditorUser,
    file: Annotated[UploadFile, File(description="a CSV with an email column")],
    reason: Annotated[Text, Form(max_length=32)] = "manual",
    encoding: Annotated[Text, Form(max_length=40)] = "",
) -> dict[str, Any]:
    checked = parse_reason(reason, "reason")
    uploads = settings.data_dir / "uploads"
    make_private_directory(uploads)
    path = uploads / f"suppression-{uuid.uuid4().hex}.csv"
    try:
        with create_private_file(path) as saved:
            shutil.copyfileobj(file.file, saved, length=1024 * 1024)
        report = import_suppressions(
            database, path, reason=checked, encoding=encoding.strip() or None
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    result = report.as_dict()
    name = file.filename or "upload.csv"
    result["path"] = name
    for error in result["errors"]:
        error["reason"] = str(error["reason"]).replace(str(path), name)
    return result


@router.get(
    "/export.csv",
    summary="The suppression list as CSV, safe for spreadsheets",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_export(database: DatabaseDep) -> StreamingResponse:
    rows = (
        (entry.email_key, entry.reason, entry.detail, entry.created_at)
        for entry in iter_suppressions(database)
    )
    return StreamingResponse(
        csv_lines(EXPORT_COLUMNS, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="suppressed.csv"'},
    )

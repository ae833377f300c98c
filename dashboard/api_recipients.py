"""JSON API for people: one address across lists (show, correct, remove, export, erase), and
lists exported as CSV. Addresses travel in the query or the body, never the path: a local part
may hold a ``/``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from campaigns.audience.audit import record_audit
from campaigns.audience.erasure import erase_person
from campaigns.audience.people import person_record
from campaigns.audience.recipient_edits import remove_from_list, update_fields
from dashboard.accounts import SignedIn
from dashboard.api_campaigns import csv_lines
from dashboard.auth import EditorUser, RequireViewer, ViewerUser
from dashboard.dependencies import DatabaseDep, ListId, SettingsDep, Text
from dashboard.list_queries import iter_list_rows

router = APIRouter(prefix="/api", tags=["people"], dependencies=[RequireViewer])
Address = Annotated[Text, Query(min_length=1, max_length=320, description="the address")]


class ListMembership(BaseModel):
    email: Text = Field(min_length=1, max_length=320)
    list: Text = Field(min_length=1, max_length=200)


class FieldsChange(ListMembership):
    fields: dict[Annotated[str, Field(max_length=200)], Annotated[str, Field(max_length=10_000)]]
    """Field name to value; an empty value clears the field."""


class Person(BaseModel):
    email: Text = Field(min_length=1, max_length=320)


def actor(user: SignedIn) -> str:
    return f"user:{user.user.id} {user.user.email}"


@router.get("/recipients", summary="A person: lists, fields, suppression, messages, events")
def get_person(email: Address, database: DatabaseDep) -> dict[str, Any]:
    return person_record(database, email)


@router.get("/recipients/export", summary="Everything held about a person (GDPR art. 15)")
def get_person_export(email: Address, database: DatabaseDep, user: ViewerUser) -> dict[str, Any]:
    record = person_record(database, email)
    with database.session() as session:
        record_audit(session, "export", actor(user), {"messages": len(record["messages"])})
    return record


@router.put("/recipients/fields", summary="Set fields of a person in one list")
def put_fields(change: FieldsChange, database: DatabaseDep, _user: EditorUser) -> dict[str, str]:
    return update_fields(database, change.email, change.list, change.fields)


@router.post("/recipients/remove", summary="Take a person out of one list")
def post_remove(
    membership: ListMembership, database: DatabaseDep, _user: EditorUser
) -> dict[str, str]:
    remove_from_list(database, membership.email, membership.list)
    return {"detail": "removed"}


@router.post("/recipients/erase", summary="Erase a person; only a keyed hash stays suppressed")
def post_erase(
    person: Person, database: DatabaseDep, settings: SettingsDep, user: EditorUser
) -> dict[str, int]:
    report = erase_person(
        database,
        person.email,
        secret=settings.secret,
        data_dir=settings.data_dir,
        actor=actor(user),
    )
    return asdict(report)


@router.get(
    "/lists/{list_id}/export.csv",
    summary="A list as CSV: email, then its fields",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_list_export(list_id: ListId, database: DatabaseDep) -> StreamingResponse:
    rows = iter_list_rows(database, list_id)
    header = tuple(next(rows))
    return StreamingResponse(
        csv_lines(header, (tuple(row) for row in rows)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="list-{list_id}.csv"'},
    )

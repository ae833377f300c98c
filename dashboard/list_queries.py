"""Reading recipient lists for people: the lists with their sizes, and finding recipients.

Searches match any part of an address (see ``dashboard.address_pages``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from campaigns.core.errors import NotFound
from campaigns.core.job_predicates import transactional_list_ids
from campaigns.core.models import Recipient, RecipientList
from campaigns.core.storage import Database
from campaigns.lists.fields import EMAIL_FIELD
from campaigns.lists.holding_lists import HOLDING_PREFIX, is_holding_list
from dashboard.address_pages import address_page


@dataclass(frozen=True)
class ListSummary:
    id: int
    name: str
    recipients: int
    field_names: list[str]
    created_at: datetime


@dataclass(frozen=True)
class RecipientRow:
    id: int
    email: str
    fields: dict[str, str]
    updated_at: datetime


@dataclass(frozen=True)
class RecipientPage:
    recipients: list[RecipientRow]
    next_after: str | None
    """Pass as ``after`` for the next page; None on the last one."""
    previous_before: str | None
    """Pass as ``before`` for the page before; None on the first one."""
    total: int
    first: int


def list_summaries(database: Database) -> list[ListSummary]:
    with database.session() as session:
        counts = dict(
            session.execute(
                select(Recipient.list_id, func.count()).group_by(Recipient.list_id)
            ).all()
        )
        return [
            ListSummary(
                row.id, row.name, counts.get(row.id, 0), list(row.field_names), row.created_at
            )
            for row in session.scalars(
                select(RecipientList)
                .where(
                    RecipientList.id.not_in(transactional_list_ids()),
                    RecipientList.name.not_like(f"{HOLDING_PREFIX}%"),
                )
                .order_by(RecipientList.name)
            )
        ]


def iter_list_rows(
    database: Database, list_id: int, *, page_rows: int = 1000
) -> Iterator[list[str]]:
    """The list's header (its field names, ``email`` first), then each recipient's values in
    address order, read a page at a time."""
    field_names = list_summary(database, list_id).field_names
    columns = [EMAIL_FIELD, *(name for name in field_names if name != EMAIL_FIELD)]
    yield columns
    after = ""
    while True:
        with database.session() as session:
            page = session.execute(
                select(Recipient.email_key, Recipient.email, Recipient.fields)
                .where(Recipient.list_id == list_id, Recipient.email_key > after)
                .order_by(Recipient.email_key)
                .limit(page_rows)
            ).all()
        for row in page:
            fields = dict(row.fields)
            yield [row.email, *(fields.get(name, "") for name in columns[1:])]
        if len(page) < page_rows:
            return
        after = page[-1].email_key


def list_summary(database: Database, list_id: int) -> ListSummary:
    with database.session() as session:
        row = session.get(RecipientList, list_id)
        if row is None or is_holding_list(row.name):
            raise NotFound(f"list {list_id} not found")
        count = session.scalar(select(func.count()).where(Recipient.list_id == list_id)) or 0
        return ListSummary(row.id, row.name, count, list(row.field_names), row.created_at)


def search_recipients(
    database: Database,
    list_id: int,
    *,
    contains: str = "",
    after: str = "",
    before: str = "",
    limit: int = 50,
) -> RecipientPage:
    """Recipients whose address holds ``contains``, in address order, a page after ``after`` or
    before ``before``."""
    with database.session() as session:
        if session.get(RecipientList, list_id) is None:
            raise NotFound(f"list {list_id} not found")
        query = select(Recipient, Recipient.email_key).where(Recipient.list_id == list_id)
        rows, place = address_page(
            session,
            query,
            Recipient.email_key,
            contains=contains,
            after=after,
            before=before,
            limit=limit,
        )
    return RecipientPage(
        recipients=[RecipientRow(r.id, r.email, dict(r.fields), r.updated_at) for r, _key in rows],
        next_after=place.next_after,
        previous_before=place.previous_before,
        total=place.total,
        first=place.first,
    )


def recipient_fields(database: Database, recipient_id: int) -> tuple[str, dict[str, str], int]:
    """(address, merge fields, list id) of one recipient."""
    with database.session() as session:
        row = session.get(Recipient, recipient_id)
        if row is None:
            raise NotFound(f"recipient {recipient_id} not found")
        return row.email, dict(row.fields), row.list_id


def first_recipient(database: Database, list_id: int) -> int | None:
    with database.session() as session:
        return session.scalar(
            select(Recipient.id).where(Recipient.list_id == list_id).order_by(Recipient.id).limit(1)
        )

"""Reading recipient lists for people: the lists with their sizes, and finding recipients.

Searches match the start of an address (``ann`` finds ``anna@…``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from campaigns.core.errors import NotFound
from campaigns.core.models import Recipient, RecipientList
from campaigns.core.storage import Database
from campaigns.lists.fields import EMAIL_FIELD
from campaigns.lists.holding_lists import HOLDING_PREFIX, is_holding_list
from campaigns.transactional.streams import transactional_list_ids

MAX_PAGE = 200


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


CODE_POINT_COLLATIONS = frozenset({"c", "posix", "c.utf-8", "c.utf8", "ucs_basic"})
_orders_by_code_point: dict[str, bool] = {}


def starts_with_conditions(session: Session, column: Any, prefix: str) -> list[Any]:
    """Conditions for ``column`` starting with ``prefix``, answered by an index on it.

    LIKE alone uses no index (SQLite's is case-insensitive; PostgreSQL's needs the C collation),
    so where text sorts by code point the prefix is also given as a range the index answers.
    """
    conditions = [column.startswith(prefix, autoescape=True)]
    if _sorts_by_code_point(session):
        conditions += [column >= prefix, column < prefix + "\U0010ffff"]
    return conditions


def _sorts_by_code_point(session: Session) -> bool:
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        return True
    if bind.dialect.name != "postgresql":
        return False
    key = str(bind.engine.url)
    if key not in _orders_by_code_point:
        collation = session.scalar(
            text("SELECT datcollate FROM pg_database WHERE datname = current_database()")
        )
        _orders_by_code_point[key] = str(collation).lower() in CODE_POINT_COLLATIONS
    return _orders_by_code_point[key]


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


def list_id_by_name(database: Database, name: str) -> int:
    with database.session() as session:
        found = session.scalar(select(RecipientList.id).where(RecipientList.name == name))
        if found is None or is_holding_list(name):
            raise NotFound(f"list: no list named {name[:200]!r}")
        return found


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
    database: Database, list_id: int, *, starts_with: str = "", after: str = "", limit: int = 50
) -> RecipientPage:
    """Recipients whose address starts with ``starts_with``, in address order, after ``after``."""
    limit = max(1, min(limit, MAX_PAGE))
    prefix = starts_with.strip().lower()
    with database.session() as session:
        if session.get(RecipientList, list_id) is None:
            raise NotFound(f"list {list_id} not found")
        query = select(Recipient).where(Recipient.list_id == list_id)
        if prefix:
            query = query.where(*starts_with_conditions(session, Recipient.email_key, prefix))
        if after:
            query = query.where(Recipient.email_key > after.lower())
        rows = list(session.scalars(query.order_by(Recipient.email_key).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return RecipientPage(
        recipients=[RecipientRow(r.id, r.email, dict(r.fields), r.updated_at) for r in rows],
        next_after=rows[-1].email_key if more and rows else None,
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

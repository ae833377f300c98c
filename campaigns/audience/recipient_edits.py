"""Correcting a person in one list, and taking them out of it."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from campaigns.audience.people import person_key
from campaigns.core.errors import InputError, NotFound
from campaigns.core.models import Job, Recipient, RecipientList, utc_now
from campaigns.core.storage import Database
from campaigns.lists.fields import EMAIL_FIELD, normalise_field_name
from campaigns.lists.holding_lists import holding_list, is_holding_list, removed_list_name

MAX_FIELD_VALUE_CHARS = 10_000


def parse_field_assignments(assignments: list[str], field: str = "field") -> dict[str, str]:
    """``["first_name=Ann", ...]`` as a mapping; raises InputError naming the bad one."""
    parsed: dict[str, str] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals:
            raise InputError(f"{field}: {assignment[:80]!r} is not NAME=VALUE")
        parsed[name] = value
    return parsed


def update_fields(
    database: Database, address: str, list_name: str, fields: Mapping[str, str]
) -> dict[str, str]:
    """Set ``fields`` (names normalised as CSV headers are) of the person in ``list_name``; an
    empty value clears one. Returns the fields as stored. The address itself is not a field
    to change: remove the person and import the new address."""
    person = person_key(address)
    if not fields:
        raise InputError("field: give at least one NAME=VALUE")
    normalised: dict[str, str] = {}
    for name, value in fields.items():
        field_name = normalise_field_name(name)
        if not field_name:
            raise InputError(f"field: {name[:80]!r} is not a usable field name")
        if field_name == EMAIL_FIELD:
            raise InputError("field: email cannot be changed (remove, then import the address)")
        if len(value) > MAX_FIELD_VALUE_CHARS or "\x00" in value:
            raise InputError(f"field {field_name}: at most {MAX_FIELD_VALUE_CHARS} characters")
        normalised[field_name] = value.strip()
    with database.session() as session:
        recipient_list = _audience_list(session, list_name)
        row = session.scalar(
            select(Recipient).where(
                Recipient.list_id == recipient_list.id, Recipient.email_key == person.key
            )
        )
        if row is None:
            raise NotFound(f"email: {person.address!r} is not in the list {list_name!r}")
        row.fields = {**row.fields, **normalised, EMAIL_FIELD: row.email}
        row.updated_at = utc_now()
        known = list(recipient_list.field_names)
        recipient_list.field_names = known + [name for name in normalised if name not in known]
        return dict(row.fields)


def remove_from_list(database: Database, address: str, list_name: str) -> None:
    """Take the person out of ``list_name``. Their messages keep their history: a row that jobs
    name moves to the list's ``(removed from list N)`` holding list instead of being deleted."""
    person = person_key(address)
    with database.session() as session:
        recipient_list = _audience_list(session, list_name)
        row = session.scalar(
            select(Recipient).where(
                Recipient.list_id == recipient_list.id, Recipient.email_key == person.key
            )
        )
        if row is None:
            raise NotFound(f"email: {person.address!r} is not in the list {list_name!r}")
        if not session.scalar(select(exists().where(Job.recipient_id == row.id))):
            session.delete(row)
            return
        holding = holding_list(session, removed_list_name(recipient_list.id))
        held = session.scalar(
            select(Recipient.id).where(
                Recipient.list_id == holding.id, Recipient.email_key == person.key
            )
        )
        if held is None:
            row.list_id = holding.id
            return
        # Removed before: one row in the holding list carries all their messages. A campaign's
        # jobs were made from one list at one time, so no campaign has a job for both rows.
        session.execute(update(Job).where(Job.recipient_id == row.id).values(recipient_id=held))
        session.execute(delete(Recipient).where(Recipient.id == row.id))


def _audience_list(session: Session, list_name: str) -> RecipientList:
    recipient_list = session.scalar(select(RecipientList).where(RecipientList.name == list_name))
    if recipient_list is None or is_holding_list(list_name):
        raise NotFound(f"list: no list named {list_name[:200]!r}")
    return recipient_list

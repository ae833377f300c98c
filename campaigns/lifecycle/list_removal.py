"""Housekeeping of recipient lists: rename, and delete with the people on them.

A list a campaign has sent to stays: that campaign's jobs name its people, and a campaign that
has sent keeps its history. Drafts made on the list (no jobs yet) go with it, and the plan
says so before anything is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from campaigns.core.errors import InputError, NotFound, StateError
from campaigns.core.job_predicates import transactional_list_ids
from campaigns.core.models import Campaign, Job, Recipient, RecipientList
from campaigns.core.storage import Database
from campaigns.lists.holding_lists import is_holding_list

MAX_LIST_NAME_CHARS = 200


@dataclass(frozen=True)
class CampaignRef:
    id: int
    name: str
    state: str


@dataclass(frozen=True)
class ListRemoval:
    """What deleting a list takes with it, or what keeps it."""

    list_id: int
    name: str
    people: int
    drafts: list[CampaignRef]
    """Campaigns with no jobs on the list: deleted with it."""
    keeping: list[CampaignRef]
    """Campaigns that have recipients on the list: while any is there, the list stays."""

    def summary(self) -> str:
        """One line a confirmation shows: what goes, or why nothing can."""
        if self.keeping:
            used = ", ".join(f"{ref.id} {ref.name!r} ({ref.state})" for ref in self.keeping[:3])
            more = f" and {len(self.keeping) - 3} more" if len(self.keeping) > 3 else ""
            return (
                f"list {self.name!r} stays: campaign {used}{more} sent to it and keeps its history"
            )
        drafts = f" and {len(self.drafts)} draft campaigns made on it" if self.drafts else ""
        return f"list {self.name!r} goes with its {self.people} people{drafts}"


def list_id_by_name(database: Database, name: str) -> int:
    """The id of the people's list named ``name`` (the command line names lists)."""
    with database.session() as session:
        list_id = session.scalar(
            select(RecipientList.id).where(
                RecipientList.name == name, RecipientList.id.not_in(transactional_list_ids())
            )
        )
    if list_id is None or is_holding_list(name):
        raise NotFound(f"list: no list named {name[:200]!r}")
    return int(list_id)


def list_removal(database: Database, list_id: int) -> ListRemoval:
    with database.session() as session:
        return _removal(session, _people_list(session, list_id))


def delete_list(database: Database, list_id: int) -> ListRemoval:
    """Delete the list, its people and the drafts on it, in one transaction; refused (nothing
    deleted) while a campaign that has recipients on it exists."""
    with database.session() as session:
        recipient_list = _people_list(session, list_id, for_update=True)
        removal = _removal(session, recipient_list)
        if removal.keeping:
            raise StateError(removal.summary())
        draft_ids = [ref.id for ref in removal.drafts]
        if draft_ids:
            session.execute(delete(Campaign).where(Campaign.id.in_(draft_ids)))
        # Explicit rather than by the foreign key's cascade, which SQLite applies only when told.
        session.execute(delete(Recipient).where(Recipient.list_id == list_id))
        session.execute(delete(RecipientList).where(RecipientList.id == list_id))
        return removal


def rename_list(database: Database, list_id: int, name: str) -> str:
    """Give the list a new name (campaigns refer to it by id, so they follow)."""
    name = name.strip()
    if not name:
        raise InputError("name: give the list a name")
    if len(name) > MAX_LIST_NAME_CHARS:
        raise InputError(f"name: at most {MAX_LIST_NAME_CHARS} characters")
    with database.session() as session:
        recipient_list = _people_list(session, list_id, for_update=True)
        taken = session.scalar(
            select(RecipientList.id).where(RecipientList.name == name, RecipientList.id != list_id)
        )
        if taken is not None:
            raise InputError(f"name: a list named {name!r} exists already")
        recipient_list.name = name
        return name


def _removal(session: Any, recipient_list: RecipientList) -> ListRemoval:
    people = session.scalar(select(func.count()).where(Recipient.list_id == recipient_list.id))
    has_jobs = select(Job.id).where(Job.campaign_id == Campaign.id).exists()
    rows = session.execute(
        select(Campaign.id, Campaign.name, Campaign.state, has_jobs)
        .where(Campaign.list_id == recipient_list.id)
        .order_by(Campaign.id)
    ).all()
    return ListRemoval(
        list_id=recipient_list.id,
        name=recipient_list.name,
        people=people or 0,
        drafts=[CampaignRef(row.id, row.name, row.state) for row in rows if not row[3]],
        keeping=[CampaignRef(row.id, row.name, row.state) for row in rows if row[3]],
    )


def _people_list(session: Any, list_id: int, *, for_update: bool = False) -> RecipientList:
    # A transactional message's list holds its one recipient: not a list a person manages.
    query = select(RecipientList).where(
        RecipientList.id == list_id, RecipientList.id.not_in(transactional_list_ids())
    )
    if for_update:
        query = query.with_for_update()
    recipient_list = session.scalar(query)
    if recipient_list is None:
        raise NotFound(f"list {list_id} not found")
    return recipient_list

"""Streams: the system campaign of each category of one-to-one mail, made on first use.

A stream campaign is ``running`` for ever: the dispatcher never completes it, and the lists,
pages and commands about campaigns leave it out.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from campaigns.core.models import (
    Campaign,
    CampaignState,
    RecipientList,
    TransactionalStream,
    utc_now,
)
from campaigns.core.storage import Database

PER_MESSAGE = "(each message its own)"
"""What a stream campaign says where a campaign keeps its template."""


@dataclass(frozen=True)
class Stream:
    category: str
    campaign_id: int
    campaign_uuid: str


_known: weakref.WeakKeyDictionary[Database, dict[str, Stream]] = weakref.WeakKeyDictionary()
"""Streams met before, per database: a stream, once made, is never changed or removed, so every
message after the first of its category need not ask the database for it."""
_known_lock = threading.Lock()


def stream_for(database: Database, category: str) -> Stream:
    """The stream of ``category``, made now if it is the first message of its kind."""
    with _known_lock:
        known = _known.setdefault(database, {}).get(category)
    if known is not None:
        return known
    found = _find(database, category) or _made(database, category)
    with _known_lock:
        _known[database][category] = found
    return found


def _made(database: Database, category: str) -> Stream:
    try:
        with database.session() as session:
            stream_list = RecipientList(name=f"(transactional stream: {category})", field_names=[])
            session.add(stream_list)
            session.flush()
            campaign = Campaign(
                name=f"Transactional: {category}",
                list_id=stream_list.id,
                state=CampaignState.RUNNING,
                from_address="",
                template_name=PER_MESSAGE,
                subject_template="",
                html_template="",
                text_template=None,
                tracking=False,
                started_at=utc_now(),
            )
            session.add(campaign)
            session.flush()
            session.add(TransactionalStream(category=category, campaign_id=campaign.id))
    except IntegrityError:
        pass  # another process made it first
    found = _find(database, category)
    if found is None:
        raise RuntimeError(f"transactional stream {category!r} could not be made")
    return found


def _find(database: Database, category: str) -> Stream | None:
    with database.session() as session:
        row = session.execute(
            select(TransactionalStream.campaign_id, Campaign.uuid)
            .join(Campaign, Campaign.id == TransactionalStream.campaign_id)
            .where(TransactionalStream.category == category)
        ).first()
    return None if row is None else Stream(category, row.campaign_id, row.uuid)

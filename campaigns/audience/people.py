"""A person: one address across lists, with everything held about them.

Fields are per list: the same address in two lists has two rows, each with the fields its
list's CSV gave (see the README, "People"). ``person_record`` gathers every row that names the
address, so it serves both ``edm recipients show`` and the data-subject export.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.audience.scrubbing import AddressScrubber
from campaigns.core.batching import chunked
from campaigns.core.errors import InputError, NotFound
from campaigns.core.models import (
    Campaign,
    ImportTask,
    Job,
    JobEvent,
    Recipient,
    RecipientList,
    Suppression,
    TransactionalMessage,
)
from campaigns.core.storage import Database
from campaigns.lists.fields import email_key, normalise_email
from campaigns.lists.holding_lists import ERASED_LIST_NAME


@dataclass(frozen=True)
class PersonKey:
    address: str
    """As typed, trimmed."""
    key: str
    """The ``email_key`` rows are stored under."""


def person_key(address: str, field: str = "email") -> PersonKey:
    """Raises InputError naming ``field`` for an address that cannot be one."""
    typed = address.strip()
    if not typed:
        raise InputError(f"{field}: an email address is required")
    try:
        key = email_key(normalise_email(typed))
    except InputError as error:
        raise InputError(f"{field}: {typed[:80]!r} is not an email address: {error}") from None
    return PersonKey(typed, key)


def recipient_rows(session: Session, key: str) -> list[tuple[Recipient, RecipientList]]:
    """Every row of the address, in every list (holding lists included), oldest first."""
    return [
        (row[0], row[1])
        for row in session.execute(
            select(Recipient, RecipientList)
            .join(RecipientList, RecipientList.id == Recipient.list_id)
            .where(Recipient.email_key == key)
            .order_by(Recipient.id)
        )
    ]


def person_record(database: Database, address: str) -> dict[str, Any]:
    """Everything held about the person at ``address``, as JSON data (GDPR art. 15).

    Raises NotFound when nothing is held: no list row, no message and no suppression entry.
    """
    person = person_key(address)
    with database.session() as session:
        rows = recipient_rows(session, person.key)
        suppression = session.get(Suppression, person.key)
        if not rows and suppression is None:
            raise NotFound(f"email: no one with the address {person.address!r} is held")
        transactional_lists = set(
            session.scalars(
                select(TransactionalMessage.list_id).where(
                    TransactionalMessage.list_id.in_({row.list_id for row, _ in rows})
                )
            )
        )
        lists = [
            {
                "list_id": recipient_list.id,
                "list": recipient_list.name,
                "email": row.email,
                "fields": dict(row.fields),
                "created_at": row.created_at,
                "updated_at": row.updated_at,
            }
            for row, recipient_list in rows
            if recipient_list.id not in transactional_lists
            and recipient_list.name != ERASED_LIST_NAME
        ]
        messages = _messages(session, [row.id for row, _ in rows])
        return {
            "email": person.key,
            "lists": lists,
            "suppression": None
            if suppression is None
            else {
                "reason": suppression.reason,
                "detail": suppression.detail,
                "created_at": suppression.created_at,
            },
            "messages": messages,
            "import_reports": _import_report_rows(session, person.key),
        }


def _messages(session: Session, recipient_ids: list[int]) -> list[dict[str, Any]]:
    jobs: list[tuple[Job, str]] = []
    for ids in chunked(recipient_ids):
        jobs += [
            (row[0], row[1])
            for row in session.execute(
                select(Job, Campaign.name)
                .join(Campaign, Campaign.id == Job.campaign_id)
                .where(Job.recipient_id.in_(ids))
            )
        ]
    jobs.sort(key=lambda pair: pair[0].id)
    job_ids = [job.id for job, _ in jobs]
    events: dict[int, list[dict[str, Any]]] = {}
    transactional: dict[int, TransactionalMessage] = {}
    for ids in chunked(job_ids):
        for event in session.scalars(
            select(JobEvent).where(JobEvent.job_id.in_(ids)).order_by(JobEvent.id)
        ):
            events.setdefault(event.job_id, []).append(
                {"kind": event.kind, "occurred_at": event.occurred_at, "detail": event.detail}
            )
        for message in session.scalars(
            select(TransactionalMessage).where(TransactionalMessage.job_id.in_(ids))
        ):
            transactional[message.job_id] = message
    return [
        {
            "job_id": job.id,
            "campaign_id": job.campaign_id,
            "campaign": campaign_name,
            "state": job.state,
            "attempts": job.attempts,
            "first_attempt_at": job.first_attempt_at,
            "sent_at": job.sent_at,
            "last_code": job.last_code,
            "last_status": job.last_status,
            "last_reply": job.last_reply,
            "first_opened_at": job.first_opened_at,
            "first_clicked_at": job.first_clicked_at,
            "unsubscribed_at": job.unsubscribed_at,
            "transactional": _transactional(transactional.get(job.id)),
            "events": events.get(job.id, []),
        }
        for job, campaign_name in jobs
    ]


def _transactional(message: TransactionalMessage | None) -> dict[str, Any] | None:
    if message is None:
        return None
    return {
        "id": message.uuid,
        "category": message.category,
        "from": message.from_address,
        "to_name": message.to_name,
        "reply_to": message.reply_to,
        "template": message.template_name,
        "subject": message.subject_template,
        "headers": dict(message.headers),
        "tags": list(message.tags),
        "attachments": [attachment.get("filename") for attachment in message.attachments],
        "created_at": message.created_at,
    }


def _import_report_rows(session: Session, key: str) -> list[dict[str, Any]]:
    """Rejected rows of import reports whose reason quotes the address."""
    scrubber = AddressScrubber(key)
    found = []
    for task in session.scalars(select(ImportTask).order_by(ImportTask.id)):
        for error in (task.report or {}).get("errors", []):
            with contextlib.suppress(AttributeError, TypeError):
                if scrubber.found_in(error.get("reason")):
                    found.append({"import_id": task.id, "list": task.list_name, **error})
        if scrubber.found_in(task.error):
            found.append({"import_id": task.id, "list": task.list_name, "error": task.error})
    return found

"""Erasing a person (GDPR art. 17): the address and its fields leave every table and file.

What stays is what the campaigns' numbers need: each job keeps its state, times and counters'
worth of events, but its recipient row moves to the ``(erased people)`` holding list with no
address and no fields, and every text that quoted the address (relay replies, event details,
transactional content, links with merge fields, import reports) has it replaced. The
suppression list keeps only the keyed hash (``erased_addresses``), so no later import takes the
address back in and no campaign mails it. Messages still waiting to go end ``suppressed``.

All of it is one transaction: an erase either happens whole or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from campaigns.audience.audit import record_audit
from campaigns.audience.people import person_key, recipient_rows
from campaigns.audience.scrubbing import AddressScrubber
from campaigns.core.batching import chunked
from campaigns.core.errors import NotFound
from campaigns.core.models import (
    CampaignLink,
    ImportTask,
    Job,
    JobEvent,
    JobState,
    Recipient,
    SubmittedMime,
    Suppression,
    TransactionalMessage,
    utc_now,
)
from campaigns.core.storage import Database, conflict_insert
from campaigns.lists.erased_addresses import erased_key
from campaigns.lists.holding_lists import ERASED_LIST_NAME, erased_row_key, holding_list
from campaigns.lists.suppression import SuppressionReason

WAITING_STATES = (JobState.QUEUED, JobState.DEFERRED)


@dataclass
class ErasureReport:
    list_rows: int = 0
    messages: int = 0
    messages_stopped: int = 0
    events_changed: int = 0
    texts_changed: int = 0
    files_changed: int = 0


def erase_person(
    database: Database, address: str, *, secret: bytes, data_dir: Path, actor: str
) -> ErasureReport:
    """Erase everything held about ``address``; raises NotFound when nothing is.

    ``data_dir``'s kept uploads are searched too; the audit log records ``actor`` and the
    counts, never the address.
    """
    person = person_key(address)
    scrubber = AddressScrubber(person.key)
    report = ErasureReport()
    with database.session() as session:
        _zero_deleted_content(session)
        rows = recipient_rows(session, person.key)
        suppression = session.get(Suppression, person.key)
        if not rows and suppression is None:
            raise NotFound(f"email: no one with the address {person.address!r} is held")
        recipient_ids = [row.id for row, _ in rows]
        job_ids = _job_ids(session, recipient_ids)
        report.list_rows = len(rows)
        report.messages = len(job_ids)
        report.messages_stopped = _stop_waiting(session, job_ids)
        report.texts_changed += _scrub_jobs(session, job_ids, scrubber)
        report.events_changed = _scrub_events(session, job_ids, scrubber)
        report.texts_changed += _scrub_transactional(session, job_ids, scrubber)
        report.texts_changed += _scrub_links(session, job_ids, scrubber)
        report.texts_changed += _scrub_import_reports(session, scrubber)
        _detach_rows(session, recipient_ids, job_ids)
        session.execute(delete(Suppression).where(Suppression.email_key == person.key))
        session.execute(
            conflict_insert(session, Suppression).on_conflict_do_nothing(),
            [
                {
                    "email_key": erased_key(secret, person.key),
                    "reason": str(SuppressionReason.ERASED),
                    "detail": None,
                    "created_at": utc_now(),
                }
            ],
        )
        report.files_changed = _scrub_uploads(data_dir / "uploads", scrubber)
        record_audit(session, "erase", actor, asdict(report))
    _checkpoint(database)
    return report


def _zero_deleted_content(session: Session) -> None:
    # SQLite leaves deleted rows' bytes in free pages until they are reused: the database file
    # would still hold the address. secure_delete overwrites them with zeros as they are freed.
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA secure_delete = ON"))


def _checkpoint(database: Database) -> None:
    # The write-ahead log holds the pages as they were before; copy it back and empty it.
    with database.session() as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def _job_ids(session: Session, recipient_ids: list[int]) -> list[int]:
    found: list[int] = []
    for ids in chunked(recipient_ids):
        found += session.scalars(select(Job.id).where(Job.recipient_id.in_(ids)))
    return found


def _stop_waiting(session: Session, job_ids: list[int]) -> int:
    stopped = 0
    for ids in chunked(job_ids):
        stopped += len(
            session.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.state.in_(WAITING_STATES))
                .values(state=JobState.SUPPRESSED, updated_at=utc_now())
                .returning(Job.id)
            ).all()
        )
    return stopped


def _scrub_jobs(session: Session, job_ids: list[int], scrubber: AddressScrubber) -> int:
    changed = 0
    for ids in chunked(job_ids):
        for job in session.scalars(select(Job).where(Job.id.in_(ids))):
            if scrubber.found_in(job.last_reply) or scrubber.found_in(job.claimed_by):
                job.last_reply = scrubber.text(job.last_reply)
                job.claimed_by = scrubber.text(job.claimed_by)
                changed += 1
    return changed


def _scrub_events(session: Session, job_ids: list[int], scrubber: AddressScrubber) -> int:
    changed = 0
    for ids in chunked(job_ids):
        for event in session.scalars(select(JobEvent).where(JobEvent.job_id.in_(ids))):
            if scrubber.found_in(event.detail):
                event.detail = scrubber.json(event.detail)
                changed += 1
    return changed


def _scrub_transactional(session: Session, job_ids: list[int], scrubber: AddressScrubber) -> int:
    """A transactional message is the person's own: its raw copy, name and attachments go, and
    the address leaves its templates and headers (what it said stays for the sender's records)."""
    changed = 0
    shared_copies: set[int] = set()
    for ids in chunked(job_ids):
        for message in session.scalars(
            select(TransactionalMessage).where(TransactionalMessage.job_id.in_(ids))
        ):
            message.raw_mime = None
            if message.mime_id is not None:
                shared_copies.add(message.mime_id)
                message.mime_id = None
            message.to_name = None
            message.attachments = []
            message.headers = scrubber.json(message.headers)
            message.tags = scrubber.json(message.tags)
            message.subject_template = scrubber.text(message.subject_template) or ""
            message.html_template = scrubber.text(message.html_template) or ""
            message.text_template = scrubber.text(message.text_template)
            message.reply_to = scrubber.text(message.reply_to)
            message.idempotency_key = scrubber.text(message.idempotency_key)
            changed += 1
    session.flush()
    for mime_id in shared_copies:
        _scrub_submitted_copy(session, mime_id, scrubber)
    return changed


def _scrub_submitted_copy(session: Session, mime_id: int, scrubber: AddressScrubber) -> None:
    """A message submitted by SMTP is kept once for all its recipients: the copy goes when only
    the erased person had it, else the address leaves its bytes (their To or Cc header)."""
    copy = session.get(SubmittedMime, mime_id)
    if copy is None:
        return
    still_used = session.scalar(
        select(TransactionalMessage.job_id).where(TransactionalMessage.mime_id == mime_id).limit(1)
    )
    if still_used is None:
        session.delete(copy)
        return
    scrubbed = scrubber.raw(copy.raw)
    if scrubbed != copy.raw:
        copy.raw = scrubbed
        # The hash finds a resent copy again; the scrubbed bytes are no longer what was sent.
        copy.sha256 = hashlib.sha256(scrubbed).hexdigest()


def _scrub_links(session: Session, job_ids: list[int], scrubber: AddressScrubber) -> int:
    """Links whose merge fields put the address in the URL (one row per distinct URL)."""
    campaign_ids: set[int] = set()
    for ids in chunked(job_ids):
        campaign_ids.update(session.scalars(select(Job.campaign_id).where(Job.id.in_(ids))))
    changed = 0
    for ids in chunked(sorted(campaign_ids)):
        for link in session.scalars(select(CampaignLink).where(CampaignLink.campaign_id.in_(ids))):
            if scrubber.found_in(link.url):
                link.url = scrubber.text(link.url) or ""
                changed += 1
    return changed


def _scrub_import_reports(session: Session, scrubber: AddressScrubber) -> int:
    changed = 0
    for task in session.scalars(select(ImportTask)):
        if any(scrubber.found_in(value) for value in (task.report, task.error, task.file_name)):
            task.report = scrubber.json(task.report)
            task.error = scrubber.text(task.error)
            task.file_name = scrubber.text(task.file_name) or ""
            changed += 1
    return changed


def _detach_rows(session: Session, recipient_ids: list[int], job_ids: list[int]) -> None:
    """Rows no job names are deleted; the others move, emptied, to the erased holding list."""
    named: set[int] = set()
    for ids in chunked(job_ids):
        named.update(session.scalars(select(Job.recipient_id).where(Job.id.in_(ids))))
    erased_list_id = holding_list(session, ERASED_LIST_NAME).id if named else None
    for recipient_id in recipient_ids:
        if recipient_id not in named:
            session.execute(delete(Recipient).where(Recipient.id == recipient_id))
            continue
        # A random key: the holding list's rows must differ, and must not lead back to anyone.
        session.execute(
            update(Recipient)
            .where(Recipient.id == recipient_id)
            .values(
                list_id=erased_list_id,
                email="",
                email_key=erased_row_key(uuid.uuid4().hex),
                fields={},
                updated_at=utc_now(),
            )
        )


def _scrub_uploads(uploads_dir: Path, scrubber: AddressScrubber) -> int:
    """Uploads kept while their import runs: lines naming the address are dropped."""
    changed = 0
    if not uploads_dir.is_dir():
        return 0
    for path in sorted(uploads_dir.iterdir()):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            content = path.read_bytes()
            if not scrubber.found_in(content):
                continue
            kept = [
                line for line in content.splitlines(keepends=True) if not scrubber.found_in(line)
            ]
            path.write_bytes(b"".join(kept))
            changed += 1
    return changed
